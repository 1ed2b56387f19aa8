"""Every ``--json`` output of a real daemon prints its times one way: ISO 8601 with an offset."""

from __future__ import annotations

import json
import re
from typing import Any

from firelink_core.testing import wait_for

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")
EPOCH_SOON = 1e9
"""A number this large (2001 onwards) outside a run's own data is an epoch time that escaped."""

CONFIG = """
jobs:
  - name: tick
    trigger: interval
    every: 1h
    command: ["true"]
  - name: hello
    trigger: manual
    command: ["sh", "-c", "echo hello"]
  - name: fails
    trigger: manual
    retries: {count: 1, delay: "0"}
    command: ["sh", "-c", "exit 4"]
"""


def times_and_epochs(value: Any, key: str = "", found: list | None = None) -> list[tuple[str, Any]]:
    """Every (key, value) that is a time field, and every number that looks like an epoch."""
    found = [] if found is None else found
    if key in ("payload", "env", "options", "handle"):
        return found
    if isinstance(value, dict):
        for k, v in value.items():
            times_and_epochs(v, k, found)
    elif isinstance(value, list):
        for v in value:
            times_and_epochs(v, key, found)
    elif key.endswith("_at") or key in ("scheduled_for", "next_due", "since"):
        if value is not None:
            found.append((key, value))
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and value > EPOCH_SOON:
        found.append((key, value))
    return found


def check(output: str) -> int:
    fields = times_and_epochs(json.loads(output))
    bad = [(k, v) for k, v in fields if not (isinstance(v, str) and ISO.match(v))]
    assert not bad, f"times not in ISO 8601 with offset: {bad}\n{output}"
    return len(fields)


def test_every_json_output_prints_iso_8601_times_with_an_offset(daemon) -> None:
    daemon.write_config(CONFIG)
    daemon.start()
    seen = 0

    ok = daemon.cli("trigger", "hello", "--json")
    assert ok.returncode == 0, ok.stderr
    check(ok.stdout)
    waited = daemon.cli("trigger", "fails", "--wait", "--json")
    assert waited.returncode == 4, waited.stderr
    seen += check(waited.stdout)
    wait_for(lambda: all(r["state"] == "success" for r in daemon.runs("hello")), 30, message="hello ran")

    status = daemon.cli("status", "--json")
    assert status.returncode == 0, status.stderr
    seen += check(status.stdout)
    assert json.loads(status.stdout)["started_at"]
    assert any(job["next_due"] for job in json.loads(status.stdout)["jobs"])

    for args in (("runs", "--json"), ("runs", "fails", "--json", "--state", "failed")):
        result = daemon.cli(*args)
        assert result.returncode == 0, result.stderr
        seen += check(result.stdout)

    reloaded = daemon.cli("reload", "--json")
    assert reloaded.returncode == 0, reloaded.stderr
    check(reloaded.stdout)
    plugins = daemon.cli("plugins", "--json", state=False)
    assert plugins.returncode == 0, plugins.stderr
    check(plugins.stdout)
    validated = daemon.cli("validate", str(daemon.config), "--format", "json", state=False)
    assert validated.returncode == 0, validated.stdout
    check(validated.stdout)

    stopped = daemon.cli("stop", "--json")
    assert stopped.returncode == 0, stopped.stderr
    check(stopped.stdout)
    assert daemon.wait_exit() == 0

    # With the daemon down the history comes from the database: the same format.
    down = daemon.cli("status", "--json", "-c", str(daemon.config))
    assert down.returncode == 3, down.stderr
    seen += check(down.stdout)
    history = daemon.cli("runs", "--json")
    assert history.returncode == 0, history.stderr
    seen += check(history.stdout)
    assert seen > 20, "the outputs hold times to check"
