"""Prometheus metrics scraped from a real ``firelink run --metrics`` daemon and parsed."""

from __future__ import annotations

import socket
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from firelink_core.testing import wait_for


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


CONFIG = """\
notifiers:
  hook: {{type: webhook, url: "http://127.0.0.1:{closed}/hook", retries: 0, timeout: 2s}}
jobs:
  - name: ok
    trigger: manual
    command: ["true"]
  - name: fail
    trigger: manual
    command: ["sh", "-c", "exit 3"]
    notify: [hook]
  - name: hourly
    trigger: interval
    every: 1h
    command: ["true"]
  - name: inbox
    trigger: watch
    source: ./missing-folder
    command: ["true"]
"""


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_report_runs_schedules_health_and_notifier_failures(daemon) -> None:
    daemon.write_config(CONFIG.format(closed=_free_port()))
    port = _free_port()
    before = time.time()
    daemon.start("--metrics", f"127.0.0.1:{port}")
    url = daemon.status()["metrics"]
    assert url == f"http://127.0.0.1:{port}/metrics"
    assert daemon.cli("trigger", "ok", "--wait").returncode == 0
    assert daemon.cli("trigger", "fail", "--wait").returncode == 3

    # the failed run's notification goes to a closed port: counted, never blocking the run
    samples = wait_for(
        lambda: (s := _scrape(url)).get(("firelink_notifier_failures_total", ())) == 1.0 and s,
        30, message="the notifier failure is counted",
    )
    assert samples[("firelink_runs_started_total", (("job", "ok"),))] == 1.0
    assert samples[("firelink_runs_finished_total", (("job", "ok"), ("outcome", "success")))] == 1.0
    assert samples[("firelink_runs_finished_total", (("job", "fail"), ("outcome", "failed")))] == 1.0
    assert samples[("firelink_run_duration_seconds_count", (("job", "ok"),))] == 1.0
    assert samples[("firelink_trigger_events_total", (("trigger", "manual"),))] == 2.0
    assert samples[("firelink_queue_depth", ())] == 0.0
    assert samples[("firelink_runs_running", (("job", "ok"),))] == 0.0
    # staleness alerts: last success of ok is recent; fail never succeeded, so it has none
    assert before <= samples[("firelink_last_success_timestamp_seconds", (("job", "ok"),))] <= time.time()
    assert ("firelink_last_success_timestamp_seconds", (("job", "fail"),)) not in samples
    next_due = samples[("firelink_next_due_timestamp_seconds", (("job", "hourly"),))]
    assert time.time() < next_due <= time.time() + 3600
    # the watch on a missing folder is degraded, and says so
    assert samples[("firelink_trigger_degraded", (("job", "inbox"), ("trigger", "inbox#0")))] == 1.0
    assert samples[("process_resident_memory_bytes", ())] > 0


def test_metrics_address_must_be_valid(daemon) -> None:
    daemon.write_config(CONFIG.format(closed=_free_port()))
    result = daemon.cli("run", str(daemon.config), "--metrics", "nowhere", state=True)
    assert result.returncode == 2
    assert "HOST:PORT" in result.stderr
