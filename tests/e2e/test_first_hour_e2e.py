"""Issue 20, the first hour: the traps a user coming from crontab meets, through the real CLI."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import time

from firelink_core.testing import wait_for

from .conftest import FirelinkProcess


def _validate(daemon: FirelinkProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return daemon.cli("validate", str(daemon.config), *args, state=False)


def test_validate_refuses_a_string_command_with_a_redirection(daemon: FirelinkProcess) -> None:
    daemon.write_config("""
        jobs:
          - name: backup
            trigger: manual
            command: "backup.sh >> /var/log/backup.log 2>&1"
          - name: plain
            trigger: manual
            command: "echo 'a > b' plain words"
    """)
    result = _validate(daemon)
    assert result.returncode == 1, result.stderr
    lines = [
        line for line in (result.stdout + result.stderr).splitlines() if "firelink.yaml:" in line
    ]
    assert len(lines) == 1, result.stderr  # the plain string (quoted '>' included) is allowed
    assert re.match(r".*firelink\.yaml:5:\d+: job 'backup': .*'>>'", lines[0]), lines[0]
    assert "shell: true" in lines[0] and "list" in lines[0]


def test_with_shell_true_the_redirection_works_end_to_end(daemon: FirelinkProcess) -> None:
    out = daemon.root / "backup.log"
    daemon.write_config(f"""
        jobs:
          - name: backup
            trigger: manual
            shell: true
            command: "echo saved >> {out} 2>&1"
    """)
    assert _validate(daemon).returncode == 0
    daemon.start()
    result = daemon.cli("trigger", "backup", "--wait")
    assert result.returncode == 0, result.stderr
    assert out.read_text() == "saved\n"


# --------------------------------------------------------------------------- run ids and cancel


def test_a_unique_prefix_works_for_logs_and_cancel_and_tables_show_8_characters(
    daemon: FirelinkProcess,
) -> None:
    daemon.write_config("""
        jobs:
          - name: hello
            trigger: manual
            command: [echo, hello]
          - name: slow
            trigger: manual
            command: [sleep, "60"]
    """)
    daemon.start()
    assert daemon.cli("trigger", "hello", "--wait").returncode == 0
    first = daemon.runs("hello")[0]["id"]
    result = daemon.cli("logs", "hello", first[:8])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello\n"
    table = daemon.cli("runs", "hello")
    assert first[:8] in table.stdout and first not in table.stdout
    retried = daemon.cli("retry", first[:8])
    assert retried.returncode == 0, retried.stderr
    assert daemon.wait_run_state(retried.stdout.strip(), {"success"})["parent_run"] == first

    run_id = daemon.cli("trigger", "slow").stdout.strip()
    daemon.wait_run_state(run_id, {"running"})
    ended = daemon.cli("cancel", run_id[:8], timeout=30)
    assert ended.returncode == 0, ended.stderr
    assert daemon.run_record(run_id)["state"] == "cancelled"
    again = daemon.cli("cancel", run_id[:8])
    assert again.returncode == 1 and "already ended (cancelled)" in again.stderr
    unknown = daemon.cli("cancel", "ffffffffff")
    assert unknown.returncode == 2 and "no run 'ffffffffff'" in unknown.stderr


def test_cancel_of_a_waiting_and_of_a_queued_run(daemon: FirelinkProcess) -> None:
    daemon.write_config("""
        jobs:
          - name: upstream
            trigger: manual
            command: [sleep, "60"]
          - name: downstream
            trigger: manual
            depends_on: [upstream]
            command: [echo, down]
          - name: one-at-a-time
            trigger: manual
            overlap: queue
            command: [sleep, "60"]
    """)
    daemon.start()
    waiting = daemon.cli("trigger", "downstream").stdout.strip()
    daemon.wait_run_state(waiting, {"waiting"})
    assert daemon.cli("cancel", waiting).returncode == 0
    assert daemon.run_record(waiting)["state"] == "cancelled"
    running = daemon.cli("trigger", "one-at-a-time").stdout.strip()
    daemon.wait_run_state(running, {"running"})
    queued = daemon.cli("trigger", "one-at-a-time").stdout.strip()
    daemon.wait_run_state(queued, {"queued"})
    assert daemon.cli("cancel", queued).returncode == 0
    assert daemon.run_record(queued)["state"] == "cancelled"
    assert daemon.run_record(running)["state"] == "running"


def test_an_ambiguous_prefix_is_an_error_listing_the_candidates(daemon: FirelinkProcess) -> None:
    daemon.write_config("""
        jobs:
          - name: hello
            trigger: manual
            command: [echo, hello]
    """)
    daemon.start()
    ids = [daemon.cli("trigger", "hello", "--wait").returncode for _ in range(2)]
    assert ids == [0, 0]
    daemon.cli("stop")
    # Two run ids that share a 6-character prefix, written as the daemon would have.
    database = next(daemon.state_dir.glob("*.db"))
    with sqlite3.connect(database) as conn:
        rows = conn.execute("SELECT id FROM runs").fetchall()
        for (old,), new in zip(rows, ["abcdef0001", "abcdef0002"], strict=True):
            conn.execute("UPDATE runs SET id = ? WHERE id = ?", (new, old))
            conn.execute("UPDATE attempts SET run_id = ? WHERE run_id = ?", (new, old))
    daemon.start()
    for args in (("logs", "hello", "abcdef"), ("cancel", "abcdef"), ("retry", "abcdef")):
        result = daemon.cli(*args)
        assert result.returncode == 2, result.stderr
        assert "ambiguous" in result.stderr
        assert "abcdef0001" in result.stderr and "abcdef0002" in result.stderr
    assert daemon.cli("logs", "hello", "abcdef0002").stdout == "hello\n"


def test_cancel_of_a_running_sleep_ends_it_within_the_grace_and_records_cancelled(
    daemon: FirelinkProcess,
) -> None:
    marker = daemon.root / "got-term"
    daemon.write_config(f"""
        jobs:
          - name: slow
            trigger: manual
            shell: true
            kill_grace: 2s
            command: "trap 'touch {marker}; exit 143' TERM; sleep 60 & wait"
          - name: waiting
            trigger: manual
            command: [sleep, "60"]
    """)
    daemon.start()
    run_id = daemon.cli("trigger", "slow").stdout.strip()
    daemon.wait_run_state(run_id, {"running"})
    started = time.monotonic()
    result = daemon.cli("cancel", run_id, timeout=30)
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "cancelled" in result.stderr
    assert took < 2 + 3, took  # the job's grace, and a margin
    assert marker.exists()  # the job got its stop signal
    record = daemon.run_record(run_id)
    assert record["state"] == "cancelled"
    assert "cancelled by hand" in record["reason"]
    # Not running any more: status shows the job idle again.
    wait_for(
        lambda: (s := daemon.job_status("slow")) and s["state"] != "running",
        10,
        message="slow not running",
    )


# --------------------------------------------------------------------------- status: zones and waiting


def test_status_of_a_berlin_job_under_utc_shows_zones(daemon: FirelinkProcess) -> None:
    daemon.write_config("""
        jobs:
          - name: nightly
            description: Say hi at night.
            trigger: cron
            schedule: "30 2 * * *"
            timezone: Europe/Berlin
            command: [echo, hi]
    """)
    daemon.env["TZ"] = "UTC"
    daemon.start()
    text = daemon.cli("status").stdout
    row = next(line for line in text.splitlines() if line.startswith("nightly"))
    assert "cron 30 2 * * * Europe/Berlin" in row, row
    # 02:30 in Berlin is 01:30 or 00:30 UTC, shown with its zone.
    assert re.search(r"0[01]:30:00 UTC \(in ", row), row
    info = daemon.job_status("nightly")
    assert info is not None and info["timezone"] == "Europe/Berlin"
    assert info["description"] == "Say hi at night."
    assert info["next_due"].endswith("+00:00"), info["next_due"]  # ISO 8601 with its offset


def test_a_chain_whose_downstream_waits_shows_waiting_and_names_the_upstream(
    daemon: FirelinkProcess,
) -> None:
    daemon.write_config("""
        jobs:
          - name: sync
            trigger: manual
            command: [sleep, "60"]
          - name: report
            trigger: manual
            depends_on: [sync]
            command: [echo, report]
          - name: publish
            depends_on: [report]
            command: [echo, publish]
    """)
    daemon.start()
    waiting = daemon.cli("trigger", "report").stdout.strip()
    daemon.wait_run_state(waiting, {"waiting"})
    text = daemon.cli("status").stdout
    assert re.search(r"^report\s+manual\s+waiting", text, re.M), text
    assert "report: sync has not succeeded yet" in text, text
    # No triggers of its own: it waits on its upstream too.
    assert "publish: report has not succeeded yet" in text, text
    info = daemon.job_status("report")
    assert info is not None and info["state"] == "waiting" and info["waiting_on"] == ["sync"]


# --------------------------------------------------------------------------- reload


def test_reload_reports_what_changed_by_meaning_not_by_position(daemon: FirelinkProcess) -> None:
    config = """
        notifiers:
          ops:
            type: webhook
            url: http://127.0.0.1:9/hook
        defaults:
          notify: [ops]
        jobs:
          - name: a
            trigger: manual
            command: [echo, a]
          - name: b
            trigger: interval
            every: 1h
            command: [echo, b]
          - name: c
            depends_on: [a]
            command: [echo, c]
    """
    daemon.write_config(config)
    daemon.start()
    daemon.write_config("# a comment, and the jobs move down a line\n" + config)
    result = daemon.cli("reload")
    assert result.returncode == 0, result.stderr
    assert "nothing changed" in result.stdout, result.stdout

    daemon.write_config(config.replace("[echo, a]", "[echo, a, again]"))
    result = daemon.cli("reload", "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert (answer["added"], answer["removed"], answer["changed"]) == ([], [], ["a"])
    assert answer["notifiers"] == {"added": [], "removed": [], "changed": []}

    daemon.write_config(
        config.replace("[echo, a]", "[echo, a, again]").replace("9/hook", "9/other")
    )
    result = daemon.cli("reload")
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.strip()
        == "firelink: reloaded; added -; removed -; changed -; notifiers changed ops"
    )


# --------------------------------------------------------------------------- run-once


def test_run_once_exits_with_the_jobs_code_records_the_run_and_refuses_beside_a_daemon(
    daemon: FirelinkProcess,
) -> None:
    daemon.write_config("""
        jobs:
          - name: hello
            trigger: cron
            schedule: "0 0 * * *"
            command: [sh, -c, "echo hello from $FIRELINK_JOB; exit 3"]
          - name: after
            depends_on: [hello]
            command: [echo, after]
    """)
    once = daemon.cli("run-once", "hello", "-c", str(daemon.config))
    assert once.returncode == 3, once.stderr
    assert once.stdout == "hello from hello\n"
    assert "failed (exit 3)" in once.stderr
    runs = daemon.runs()  # read from the database: no daemon runs; nothing ran after it
    assert [(r["job"], r["state"], r["exit_code"]) for r in runs] == [("hello", "failed", 3)]
    assert daemon.cli("logs", "hello", runs[0]["id"][:8]).stdout == "hello from hello\n"
    assert daemon.cli("run-once", "nope", "-c", str(daemon.config)).returncode == 2

    daemon.start()
    refused = daemon.cli("run-once", "hello", "-c", str(daemon.config))
    assert refused.returncode == 1
    assert "firelink trigger hello --wait" in refused.stderr


# --------------------------------------------------------------------------- retries


def test_trigger_wait_prints_every_retry_with_its_reason_and_runs_counts_attempts(
    daemon: FirelinkProcess,
) -> None:
    daemon.write_config("""
        jobs:
          - name: flaky
            trigger: manual
            command: [sh, -c, "echo try $FIRELINK_ATTEMPT; exit $((FIRELINK_ATTEMPT + 10))"]
            retries: {count: 3, delay: 0s}
    """)
    daemon.start()
    result = daemon.cli("trigger", "flaky", "--wait")
    assert result.returncode == 14, result.stderr
    assert result.stdout == "try 1\ntry 2\ntry 3\ntry 4\n"
    for number in (1, 2, 3):
        assert f"attempt {number} exited with code {number + 10}" in result.stderr, result.stderr
    table = daemon.cli("runs", "flaky").stdout.splitlines()
    assert table[0].split()[6] == "ATTEMPTS", table
    assert re.search(r"\s4\s+exited with code 14$", table[1]), table
