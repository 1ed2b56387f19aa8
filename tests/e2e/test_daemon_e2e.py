"""``firelink run`` as a real process, driven only through the ``firelink`` command."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
from pathlib import Path

from firelink_core.testing import wait_for

BASIC = """
jobs:
  - name: ok
    trigger: manual
    command: ["sh", "-c", "echo hello from ok; echo who=$WHO"]
  - name: fail
    trigger: manual
    command: ["sh", "-c", "echo failing >&2; exit 7"]
  - name: slow
    trigger: manual
    kill_grace: 1s
    command: ["sh", "-c", "echo started; while [ ! -e GATE ]; do sleep 0.05; done; echo finished"]
"""


def basic(daemon, extra: str = "") -> Path:
    gate = daemon.root / "gate"
    return daemon.write_config(BASIC.replace("GATE", str(gate)) + extra)


def start_slow(daemon) -> str:
    """Trigger ``slow`` and wait until its output shows it is running; return the run id."""
    result = daemon.cli("trigger", "slow")
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip()
    wait_for(lambda: "started" in daemon.cli("logs", "slow", run_id).stdout, 30, message="slow started")
    return run_id


# --------------------------------------------------------------------------- status


def test_status_up_and_down(daemon) -> None:
    basic(daemon)
    daemon.start()
    result = daemon.cli("status")
    assert result.returncode == 0, result.stderr
    assert re.search(r"firelink \S+ running \(pid \d+\), up \w+", result.stdout)
    for name in ("ok", "fail", "slow"):
        assert re.search(rf"^{name}\s+manual\s+idle", result.stdout, re.M), result.stdout

    assert daemon.cli("trigger", "ok", "--wait").returncode == 0
    assert daemon.cli("trigger", "fail", "--wait").returncode == 7
    jobs = {j["name"]: j for j in daemon.status()["jobs"]}
    assert jobs["ok"]["last_run"]["state"] == "success"
    assert jobs["fail"]["state"] == "failing"

    stop = daemon.cli("stop")
    assert stop.returncode == 0, stop.stderr
    assert daemon.wait_exit() == 0

    down = daemon.cli("status", "-c", str(daemon.config))
    assert down.returncode == 3
    assert "not running" in down.stdout
    assert re.search(r"^ok\s+manual\s+idle\s+success", down.stdout, re.M), down.stdout
    assert re.search(r"^fail\s+manual\s+failing\s+failed \(exit 7\)", down.stdout, re.M), down.stdout
    as_json = json.loads(daemon.cli("status", "--json", "-c", str(daemon.config)).stdout)
    assert as_json["running"] is False
    assert {j["name"] for j in as_json["jobs"]} == {"ok", "fail", "slow"}


# --------------------------------------------------------------------------- trigger


def test_trigger_wait_streams_output_and_returns_the_exit_code(daemon) -> None:
    basic(daemon)
    daemon.start()
    ok = daemon.cli("trigger", "ok", "--wait", "--env", "WHO=tester")
    assert ok.returncode == 0, ok.stderr
    assert "hello from ok" in ok.stdout
    assert "who=tester" in ok.stdout
    assert re.search(r"run \w+ of ok triggered", ok.stderr)

    failed = daemon.cli("trigger", "fail", "--wait")
    assert failed.returncode == 7
    assert "failing" in failed.stdout
    assert "failed (exit 7)" in failed.stderr

    queued = daemon.cli("trigger", "ok")
    assert queued.returncode == 0
    run_id = queued.stdout.strip()
    assert daemon.wait_run_state(run_id, {"success"})["job"] == "ok"


def test_unknown_job_suggests_a_close_name(daemon) -> None:
    basic(daemon)
    daemon.start()
    result = daemon.cli("trigger", "slwo")
    assert result.returncode == 2
    assert "no job named 'slwo'; did you mean 'slow'?" in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- logs and runs


def test_logs_of_a_run_and_following_a_running_one(daemon) -> None:
    basic(daemon)
    daemon.start()
    none_yet = daemon.cli("logs", "ok")
    assert none_yet.returncode == 1
    assert "has not run yet" in none_yet.stderr

    run_id = start_slow(daemon)
    follower = daemon.cli_popen("logs", "slow", run_id, "-f")
    assert follower.stdout is not None
    assert follower.stdout.readline().strip() == "started"
    (daemon.root / "gate").touch()
    rest, err = follower.communicate(timeout=30)
    assert follower.returncode == 0, err
    assert "finished" in rest

    by_id = daemon.cli("logs", "slow", run_id)
    assert by_id.stdout.splitlines() == ["started", "finished"]
    wrong_job = daemon.cli("logs", "ok", run_id)
    assert wrong_job.returncode == 1
    assert "belongs to job 'slow'" in wrong_job.stderr


def test_runs_filters_up_and_down(daemon) -> None:
    basic(daemon)
    daemon.start()
    for job in ("ok", "fail", "ok"):
        daemon.cli("trigger", job, "--wait")
    runs = daemon.runs()
    assert [r["job"] for r in runs] == ["ok", "fail", "ok"]
    assert {r["job"] for r in daemon.runs("ok")} == {"ok"} and len(daemon.runs("ok")) == 2
    failed = daemon.runs("--state", "failed")
    assert [(r["job"], r["exit_code"]) for r in failed] == [("fail", 7)]
    assert [r["id"] for r in daemon.runs("--limit", "1")] == [runs[0]["id"]]
    text = daemon.cli("runs")
    assert text.stdout.splitlines()[0].split()[:3] == ["RUN", "JOB", "STATE"]

    assert daemon.cli("stop").returncode == 0
    assert daemon.wait_exit() == 0
    assert [r["job"] for r in daemon.runs("--state", "failed")] == ["fail"]
    assert len(daemon.runs()) == 3
    assert daemon.cli("logs", "fail").stdout.strip() == "failing"


# --------------------------------------------------------------------------- reload


def test_reload_applies_a_good_config_and_rejects_a_broken_one(daemon) -> None:
    basic(daemon)
    daemon.start()
    extra = """
  - name: extra
    trigger: manual
    command: ["sh", "-c", "echo extra ran"]
"""
    basic(daemon, extra)
    result = daemon.cli("reload")
    assert result.returncode == 0, result.stderr
    assert "added extra" in result.stdout
    assert daemon.job_status("extra") is not None
    assert "extra ran" in daemon.cli("trigger", "extra", "--wait").stdout

    daemon.config.write_text(daemon.config.read_text() + "  - name: broken\n    trigger: manual\n    comand: [x]\n")
    rejected = daemon.cli("reload")
    assert rejected.returncode == 1
    assert "reload rejected" in rejected.stderr
    assert re.search(rf"{re.escape(str(daemon.config))}:\d+:\d+: .*comand", rejected.stderr), rejected.stderr
    assert "reload rejected" in daemon.wait_log("reload rejected")
    # The old config keeps running.
    assert daemon.job_status("broken") is None
    assert daemon.cli("trigger", "extra", "--wait").returncode == 0

    basic(daemon)  # extra removed, through SIGHUP this time
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: daemon.job_status("extra") is None, 30, message="extra removed by SIGHUP")
    assert "removed extra" in daemon.daemon_log()


# --------------------------------------------------------------------------- stopping


def test_sigterm_lets_a_running_job_finish_within_grace(daemon) -> None:
    basic(daemon)
    daemon.start()
    run_id = start_slow(daemon)
    daemon.signal(signal.SIGTERM)
    daemon.wait_log("received SIGTERM: stopping")
    assert daemon.cli("trigger", "ok").returncode != 0  # no new runs while stopping
    (daemon.root / "gate").touch()
    assert daemon.wait_exit() == 0
    assert daemon.run_record(run_id)["state"] == "success"


def test_sigterm_with_a_short_grace_interrupts_and_records(daemon) -> None:
    basic(daemon)
    daemon.start("--grace", "200ms")
    run_id = start_slow(daemon)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    assert daemon.run_record(run_id)["state"] == "interrupted"


def test_a_second_sigint_stops_at_once(daemon) -> None:
    basic(daemon)
    daemon.start("--grace", "1h")
    run_id = start_slow(daemon)
    daemon.signal(signal.SIGINT)
    daemon.wait_log("received SIGINT: stopping")
    daemon.signal(signal.SIGINT)
    assert daemon.wait_exit() == 0
    assert daemon.run_record(run_id)["state"] == "interrupted"
    assert "received SIGINT again" in daemon.daemon_log()


def test_kill_9_then_restart_recovers(daemon) -> None:
    basic(daemon)
    daemon.config.write_text(
        daemon.config.read_text().replace("    kill_grace: 1s\n", "    kill_grace: 1s\n    recovery: fail\n    overlap: queue\n")
    )
    daemon.start()
    first = start_slow(daemon)
    second = daemon.cli("trigger", "slow").stdout.strip()
    daemon.wait_run_state(second, {"queued", "waiting"})
    daemon.kill()

    stale = daemon.cli("status")
    assert stale.returncode == 3
    assert "stale control socket" in stale.stdout
    (daemon.root / "gate").touch()  # lets the orphaned job and the next run end

    daemon.start()
    assert daemon.wait_run_state(first, {"interrupted"})["reason"]
    assert daemon.wait_run_state(second, {"success"})


# --------------------------------------------------------------------------- one daemon, permissions


def test_a_second_daemon_on_the_same_state_dir_refuses(daemon) -> None:
    basic(daemon)
    daemon.start()
    second = daemon.cli("run", str(daemon.config))
    assert second.returncode == 1
    assert "already running" in second.stderr
    assert f"pid {daemon.proc.pid}" in second.stderr
    assert daemon.status() is not None  # the first one is undisturbed


def test_socket_and_state_dir_are_owner_only(daemon) -> None:
    basic(daemon)
    daemon.start()
    assert stat.S_IMODE(daemon.state_dir.stat().st_mode) == 0o700
    sock = daemon.state_dir / "firelink.sock"
    assert stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert int((daemon.state_dir / "firelink.pid").read_text()) == daemon.proc.pid


# --------------------------------------------------------------------------- detach and log format


def test_detach_writes_a_pid_file_and_stops_cleanly(daemon) -> None:
    basic(daemon)
    pid_file = daemon.state_dir / "firelink.pid"
    result = daemon.cli("run", str(daemon.config), "--detach")
    try:
        assert result.returncode == 0, result.stderr
        pid = int(pid_file.read_text())
        assert f"pid {pid}" in result.stdout
        info = daemon.status()
        assert info["pid"] == pid
        assert daemon.cli("trigger", "ok", "--wait").returncode == 0
        assert "running (pid" in (daemon.state_dir / "firelink.log").read_text()

        stop = daemon.cli("stop")
        assert stop.returncode == 0, stop.stderr
        assert not pid_file.exists()
        wait_for(lambda: not _alive(pid), 10, message="the detached daemon exited")
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie waiting for init to reap it counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_json_log_lines_parse(daemon) -> None:
    basic(daemon)
    daemon.start("--log-format", "json")
    assert daemon.cli("trigger", "fail", "--wait").returncode == 7
    assert daemon.cli("stop").returncode == 0
    assert daemon.wait_exit() == 0
    lines = [json.loads(line) for line in daemon.daemon_log().splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    messages = " ".join(line["message"] for line in lines)
    assert "running (pid" in messages and "stopped" in messages


def test_the_control_protocol_is_newline_delimited_json(daemon) -> None:
    basic(daemon)
    daemon.start()

    def exchange(line: bytes) -> list[dict]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(str(daemon.state_dir / "firelink.sock"))
            sock.sendall(line)
            sock.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return [json.loads(part) for part in data.splitlines()]

    assert exchange(b"not json\n")[0]["error"]["code"] == "bad-request"
    assert exchange(b'{"cmd": "dance"}\n')[0]["error"]["code"] == "unknown-command"
    unknown = exchange(b'{"cmd": "trigger", "job": "fial"}\n')[0]["error"]
    assert (unknown["code"], unknown["suggestions"]) == ("unknown-job", ["fail"])

    messages = exchange(b'{"cmd": "trigger", "job": "ok", "follow": true}\n')
    assert messages[0]["ok"] is True
    assert "hello from ok" in "".join(m.get("log", "") for m in messages)
    assert messages[-1]["done"] is True
    assert messages[-1]["run"]["state"] == "success"
    assert daemon.status() is not None  # a misbehaving client never hurts the daemon



def test_trigger_wait_says_when_the_run_waits_for_upstream(daemon) -> None:
    basic(daemon, """
  - name: downstream
    trigger: manual
    depends_on: [slow]
    command: ["sh", "-c", "echo downstream ran"]
""")
    daemon.start()
    start_slow(daemon)
    waiter = daemon.cli_popen("trigger", "downstream", "--wait")
    assert waiter.stderr is not None
    lines = iter(waiter.stderr.readline, "")
    assert any(line.startswith("firelink: run waiting") for line in lines)
    (daemon.root / "gate").touch()
    out, _err = waiter.communicate(timeout=30)
    assert waiter.returncode == 0
    assert out.strip() == "downstream ran"


def test_clients_find_the_daemon_by_config_env_or_current_folder(daemon) -> None:
    daemon.write_config("state_dir: ./state\n" + BASIC.replace("GATE", str(daemon.root / "gate")))
    daemon.start()
    pid = daemon.proc.pid
    by_config = daemon.cli("status", "--json", "-c", str(daemon.config), state=False)
    assert json.loads(by_config.stdout)["pid"] == pid
    daemon.env["FIRELINK_STATE_DIR"] = str(daemon.state_dir)
    by_env = daemon.cli("status", "--json", state=False)
    assert json.loads(by_env.stdout)["pid"] == pid
    del daemon.env["FIRELINK_STATE_DIR"]
    # ./firelink.yaml in the current folder (the daemon's root) is used when nothing is given
    by_cwd = daemon.cli("status", "--json", state=False)
    assert json.loads(by_cwd.stdout)["pid"] == pid
