"""Run parameters end to end through ``firelink``: ``trigger --param`` read by the declared
type, errors that name the parameter (exit 2), values reaching the command as
FIRELINK_PARAM_<NAME> and ``{params.NAME}`` items, stored with the run, and a secret value
never in clear text in the database, the logs, ``runs --json``, ``status`` or ``/metrics``."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path

from firelink_core.testing import wait_for

from .conftest import FirelinkProcess

SECRET = "p4ram-s3cret-9b1e77"

CONFIG = """\
notifiers:
  audit:
    type: command
    command: ["sh", "-c", "cat >> {notes}"]
jobs:
  - name: report
    trigger: manual
    notify: [{{notifier: audit, on: [success]}}]
    params:
      day: {{type: string, pattern: "^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$", description: the day to report}}
      count: {{type: integer, default: 3}}
      loud: {{type: boolean, default: false}}
      mode: {{enum: [fast, slow], default: fast}}
      token: {{type: string, secret: true}}
    command: ["sh", "-c", 'printf "%s|%s|%s|%s|%s" "$FIRELINK_PARAM_DAY" "$1" "$FIRELINK_PARAM_LOUD" "$2" "$FIRELINK_PARAM_MODE" > {out}; printf %s "$FIRELINK_PARAM_TOKEN" > {token}; echo done', "x", "{{params.count}}", "a b {{params.day}}"]
  - name: nightly
    trigger: cron
    schedule: "0 3 * * *"
    params:
      mode: {{enum: [fast, slow], default: slow}}
    command: ["true"]
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _files_hold(root: Path, text: str) -> list[str]:
    needle = text.encode()
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_params_reach_the_command_and_errors_name_the_parameter(
    daemon: FirelinkProcess, tmp_path: Path
) -> None:
    out, token, notes = tmp_path / "out.txt", tmp_path / "token.txt", tmp_path / "notes.json"
    daemon.write_config(CONFIG.format(out=out, token=token, notes=notes))
    port = _free_port()
    daemon.start("--metrics", f"127.0.0.1:{port}")

    for args, name, said in [
        (["--param", "colour=red"], "colour", "has no parameter 'colour'"),
        (["--param", "day=2026-11-03", "--param", "count=many"], "count", "expected an integer"),
        (["--param", "day=yesterday"], "day", "matching"),
        (["--param", "day=2026-11-03", "--param", "mode=medium"], "mode", "one of fast, slow"),
        (["--param", "count=4"], "day", "is required"),
        (["--param", "day=2026-11-03", "--param", "loud=perhaps"], "loud", "true or false"),
    ]:
        result = daemon.cli("trigger", "report", "--param", f"token={SECRET}", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert f"'{name}'" in result.stderr and said in result.stderr, (args, result.stderr)
        assert SECRET not in result.stderr
    assert daemon.runs("report") == []

    answer = daemon.cli(
        "trigger",
        "report",
        "--param",
        "day=2026-11-03",
        "--param",
        "count=7",
        "--param",
        "loud=yes",
        "--param",
        f"token={SECRET}",
        "--json",
    )
    assert answer.returncode == 0, answer.stderr
    run_id = json.loads(answer.stdout)["run_id"]
    run = daemon.wait_run_state(run_id, {"success", "failed"})
    assert run["state"] == "success", run
    # Each {params.NAME} item is substituted whole: "a b 2026-11-03" stays one argument.
    assert out.read_text() == "2026-11-03|7|true|a b 2026-11-03|fast"
    assert token.read_text() == SECRET
    assert run["options"]["params"] == {
        "day": "2026-11-03",
        "count": 7,
        "loud": True,
        "mode": "fast",
        "token": "***",
    }
    # The notifier heard of the run with its parameters, the secret one masked.
    heard = wait_for(lambda: notes.exists() and notes.read_text(), 30, message="the notifier ran")
    assert json.loads(heard)["params"] == run["options"]["params"] and SECRET not in heard
    status = daemon.job_status("report")
    assert status is not None and status["last_run"]["options"]["params"]["day"] == "2026-11-03"
    assert status["last_run"]["options"]["params"]["token"] == "***"
    shown_runs = daemon.cli("runs").stdout
    assert "day=2026-11-03" in shown_runs and "token=***" in shown_runs, shown_runs

    shown = [
        answer.stdout,
        daemon.cli("runs", "--json").stdout,
        shown_runs,
        daemon.cli("status", "--json").stdout,
        daemon.cli("status").stdout,
        daemon.cli("logs", "report").stdout,
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode(),
    ]
    assert not _files_hold(daemon.state_dir, SECRET), "at rest while the daemon runs (the WAL)"
    assert daemon.cli("stop", "--grace", "10s").returncode == 0
    assert daemon.wait_exit() == 0
    shown.append(daemon.cli("runs", "--json").stdout)  # read from the database, the daemon down
    shown.append(daemon.daemon_log())
    assert not [text for text in shown if SECRET in text], "the secret parameter shown"
    assert not _files_hold(daemon.state_dir, SECRET), "the secret parameter at rest"


def test_a_required_parameter_without_default_on_a_scheduled_job_is_refused(
    daemon: FirelinkProcess,
) -> None:
    daemon.write_config(
        """\
        jobs:
          - name: nightly
            trigger: cron
            schedule: "0 3 * * *"
            params:
              day: {type: string}
            command: ["echo", "{params.day}", "{params.dya}"]
        """
    )
    result = daemon.cli("validate", str(daemon.config), state=False)
    assert result.returncode == 1
    assert (
        "parameter 'day' has no default" in result.stdout and "firelink.yaml:6:" in result.stdout
    ), result.stdout
    assert "{params.dya} names no parameter" in result.stdout, result.stdout
