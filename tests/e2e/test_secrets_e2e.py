"""Values given with ``firelink trigger --env`` and a job's ``env:`` are secrets: they reach
the run's process and nothing else (not the database, its WAL, ``runs``, ``status``, the
daemon's log or the control socket's answers)."""

from __future__ import annotations

import json

SECRET = "tr1gger-s3cret-7f3a9c"
JOB_SECRET = "j0b-s3cret-51d2e8"

CONFIG = """\
jobs:
  - name: deploy
    trigger: manual
    overlap: queue
    command: ["sh", "-c", 'printf "%s %s" "$DB_PASSWORD" "$TOKEN" > {out}; sleep "$PAUSE"']
    env: {{DB_PASSWORD: {job_secret}, PAUSE: "0"}}
"""


def _files_hold(daemon, text: str) -> list[str]:
    """The files of the state directory (database, WAL, logs ...) holding ``text``."""
    needle = text.encode()
    return [str(p) for p in daemon.state_dir.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_trigger_env_values_reach_the_process_only(daemon) -> None:
    out = daemon.root / "seen.txt"
    daemon.write_config(CONFIG.format(out=out, job_secret=JOB_SECRET))
    daemon.start()

    answer = daemon.cli("trigger", "deploy", "--env", f"DB_PASSWORD={SECRET}", "--env", f"TOKEN={SECRET}x", "--json")
    assert answer.returncode == 0, answer.stderr
    run_id = json.loads(answer.stdout)["run_id"]
    run = daemon.wait_run_state(run_id, {"success", "failed"})
    assert run["state"] == "success", run
    assert out.read_text() == f"{SECRET} {SECRET}x"  # the override reached the process

    assert run["env"] == {"DB_PASSWORD": "***", "TOKEN": "***"}
    assert not _files_hold(daemon, SECRET), "at rest while the daemon runs (the WAL)"
    shown = [
        answer.stdout,
        daemon.cli("runs", "--json").stdout,
        daemon.cli("runs").stdout,
        daemon.cli("status", "--json").stdout,
        daemon.cli("status").stdout,
        daemon.cli("logs", "deploy").stdout,
    ]
    assert daemon.cli("stop", "--grace", "10s").returncode == 0
    assert daemon.wait_exit() == 0
    shown.append(daemon.cli("runs", "--json").stdout)  # read from the database, the daemon down
    shown.append(daemon.daemon_log())
    for secret in (SECRET, JOB_SECRET):
        assert not [text for text in shown if secret in text], f"{secret} shown"
        assert not _files_hold(daemon, secret), f"{secret} at rest"


def test_a_queued_request_whose_values_a_crash_lost_fails_naming_them(daemon) -> None:
    out = daemon.root / "seen.txt"
    daemon.write_config(CONFIG.format(out=out, job_secret=JOB_SECRET))
    daemon.start()
    first = json.loads(daemon.cli("trigger", "deploy", "--env", "PAUSE=30", "--json").stdout)["run_id"]
    daemon.wait_run_state(first, {"running"})
    second = json.loads(daemon.cli("trigger", "deploy", "--env", f"TOKEN={SECRET}", "--json").stdout)["run_id"]
    assert daemon.wait_run_state(second, {"queued"})["env"] == {"TOKEN": "***"}
    daemon.kill()  # kill -9: the value lived in the daemon's memory only

    daemon.start()
    run = daemon.wait_run_state(second, {"success", "failed", "interrupted"}, timeout=60)
    assert run["state"] == "failed", run
    assert "TOKEN" in run["reason"] and "trigger the job again" in run["reason"], run["reason"]
    assert not _files_hold(daemon, SECRET)
