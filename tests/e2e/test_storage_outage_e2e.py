"""A storage outage (SQLite's write lock held by another process longer than the busy
timeout) is retried: the schedule goes on by itself, and the outage shows in ``status`` and
metrics meanwhile. Driven through ``firelink run`` and the ``firelink`` command."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
import urllib.request
from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families

from firelink_core.testing import wait_for

CONFIG = """\
storage: {type: sqlite, busy_timeout: 500ms}
jobs:
  - name: tick
    trigger: cron
    schedule: "* * * * * *"
    catchup: latest
    command: ["true"]
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise AssertionError(f"{name} not in the metrics")


class WriteLock(threading.Thread):
    """Another process's writer: holds SQLite's write lock on the database until released."""

    def __init__(self, path: str) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.held = threading.Event()
        self.release = threading.Event()

    def run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            self.held.set()
            self.release.wait(60)
            conn.execute("ROLLBACK")
        finally:
            conn.close()


def _tick(daemon) -> dict:
    status = daemon.job_status("tick")
    assert status is not None
    return status


def test_a_locked_database_delays_fires_and_the_schedule_resumes_by_itself(daemon) -> None:
    daemon.write_config(CONFIG)
    port = _free_port()
    daemon.start("--metrics", f"127.0.0.1:{port}")
    url = f"http://127.0.0.1:{port}/metrics"
    wait_for(lambda: len(daemon.runs("tick")) >= 2, 20, message="the schedule fires")

    lock = WriteLock(str(daemon.state_dir / "firelink.db"))
    lock.start()
    assert lock.held.wait(10)
    try:
        # Fires fail for longer than the busy timeout: the outage shows on the job and in metrics.
        degraded = wait_for(
            lambda: (h := _tick(daemon)["health"].get("tick#0")) and h["state"] == "degraded" and h,
            20, message="the tick trigger shows the storage outage",
        )
        assert "storage unavailable" in degraded["message"]
        assert "(trigger degraded)" in daemon.cli("status").stdout
        wait_for(lambda: _metric(url, "firelink_storage_retries_pending") > 0, 20, message="the outage in metrics")
        # Held across several fire times (one a second) and several retries.
        wait_for(lambda: _metric(url, "firelink_storage_errors_total") >= 3, 20, message="several failed steps")
        held_since = time.monotonic()
        wait_for(lambda: time.monotonic() - held_since > 3, 5, interval=0.1, message="three more fire times")
    finally:
        lock.release.set()
        lock.join(10)
    released = time.time()

    # Storage is back: the schedule resumes by itself, healthy, its next due in the future.
    wait_for(
        lambda: any(
            r["scheduled_for"] and datetime.fromisoformat(r["scheduled_for"]).timestamp() > released + 1
            for r in daemon.runs("tick")
        ),
        30, message="fires after the outage",
    )
    status = _tick(daemon)
    assert status["health"]["tick#0"]["state"] == "ok", status
    assert datetime.fromisoformat(status["next_due"]).timestamp() > time.time() - 2, status
    assert _metric(url, "firelink_storage_retries_pending") == 0
    runs = daemon.runs("tick", "--limit", "1000")
    instants = [r["scheduled_for"] for r in runs]
    assert len(instants) == len(set(instants)), "a fire stored twice"
    # The fire that failed first is retried; those missed meanwhile follow catchup: latest.
    assert any(r["payload"].get("catchup") for r in runs), "no caught-up fire after the outage"
