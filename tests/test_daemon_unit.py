"""The daemon's parts that need no engine: state directory, lock, logging, socket errors, client exit codes."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from firelink_core._daemon import (
    AlreadyRunning,
    JsonFormatter,
    StateLock,
    ensure_state_dir,
    lock_holder,
)
from firelink_core._state_dir import config_state_dir

FIRELINK = [sys.executable, "-c", "import sys; from firelink_core.cli import main; sys.exit(main(prog_name='firelink'))"]


def firelink(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("FIRELINK_STATE_DIR", None)
    full_env.pop("FIRELINK_CONFIG", None)
    return subprocess.run([*FIRELINK, *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=60)


# --------------------------------------------------------------------------- state directory


def test_state_dir_is_created_owner_only(tmp_path: Path) -> None:
    target = tmp_path / "a" / "state"
    old = os.umask(0o022)
    try:
        ensure_state_dir(target)
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o700


def test_config_state_dir_is_relative_to_the_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    config = conf / "firelink.yaml"
    config.write_text("state_dir: ./st\njobs: []\n")
    monkeypatch.chdir(tmp_path)
    assert config_state_dir(Path("conf/firelink.yaml")) == (conf / "st").resolve()

    monkeypatch.setenv("FL_TEST_STATE", str(tmp_path / "from-env"))
    config.write_text("state_dir: ${FL_TEST_STATE}\njobs: []\n")
    assert config_state_dir(config) == (tmp_path / "from-env").resolve()


def test_config_state_dir_survives_an_invalid_config(tmp_path: Path) -> None:
    """A config edited into an invalid state after the daemon started must not stop
    clients from finding it: only ``state_dir`` is read."""
    config = tmp_path / "firelink.yaml"
    config.write_text("state_dir: ./st\njobs:\n  - name: a\n    trigger: nosuchtype\n    bogus: 1\n")
    assert config_state_dir(config) == (tmp_path / "st").resolve()


# --------------------------------------------------------------------------- lock


HOLDER = """
import sys, time
from pathlib import Path
from firelink_core._daemon import StateLock
lock = StateLock(Path(sys.argv[1]))
lock.acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_second_lock_names_the_holder_and_kill_9_frees_it(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert lock_holder(tmp_path) == holder.pid
        with pytest.raises(AlreadyRunning) as info:
            StateLock(tmp_path).acquire(retry=0.1)
        assert info.value.pid == holder.pid
        assert f"pid {holder.pid}" in str(info.value)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel dropped the lock with the process: no stale lock to clean up.
    assert lock_holder(tmp_path) is None
    lock = StateLock(tmp_path)
    lock.acquire(retry=0)
    assert (tmp_path / "firelink.lock").read_text().strip() == str(os.getpid())
    lock.release()


# --------------------------------------------------------------------------- logging


def test_json_log_lines_carry_extras_and_exceptions() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord("firelink.engine", logging.ERROR, __file__, 1, "run %s failed", ("r1",), None)
    record.job = "jobA"
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    line = json.loads(formatter.format(record))
    assert line["message"] == "run r1 failed"
    assert line["level"] == "error"
    assert line["logger"] == "firelink.engine"
    assert line["job"] == "jobA"
    assert "RuntimeError: boom" in line["exc"]
    assert line["time"].endswith("Z")


# --------------------------------------------------------------------------- clients without a daemon


def test_client_commands_exit_3_when_nothing_runs(tmp_path: Path) -> None:
    for args in (["status"], ["stop"], ["reload"], ["trigger", "x"]):
        result = firelink(*args, "--state-dir", str(tmp_path))
        assert result.returncode == 3, (args, result.stderr)
        assert "not running" in (result.stdout + result.stderr)
        assert "Traceback" not in result.stderr


def test_a_stale_socket_is_reported_as_such(tmp_path: Path) -> None:
    path = tmp_path / "firelink.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()  # what a killed daemon leaves behind: a socket file nobody listens on
    result = firelink("status", "--state-dir", str(tmp_path))
    assert result.returncode == 3
    assert "stale control socket" in result.stdout + result.stderr


def test_a_locked_state_dir_without_socket_is_not_called_down(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        result = firelink("status", "--state-dir", str(tmp_path))
        assert result.returncode == 1
        assert f"pid {holder.pid}" in result.stderr
        assert "does not answer" in result.stderr
    finally:
        holder.kill()
        holder.wait()


def test_bad_env_option_is_a_usage_error(tmp_path: Path) -> None:
    result = firelink("trigger", "job", "--env", "NOEQUALS", "--state-dir", str(tmp_path))
    assert result.returncode == 2
    assert "KEY=VALUE" in result.stderr


def test_run_refuses_an_invalid_config_with_located_errors(tmp_path: Path) -> None:
    config = tmp_path / "firelink.yaml"
    config.write_text("jobs:\n  - name: a\n    trigger: manual\n    comand: ['true']\n")
    result = firelink("run", str(config), "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 1
    assert f"{config}:4" in result.stderr
    assert "comand" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state").exists()  # nothing created for a config that never ran


def test_run_missing_config_is_a_usage_error(tmp_path: Path) -> None:
    result = firelink("run", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr



def test_run_with_a_damaged_database_says_so_without_traceback(tmp_path: Path) -> None:
    config = tmp_path / "firelink.yaml"
    config.write_text("jobs:\n  - name: a\n    trigger: manual\n    command: ['true']\n")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    damaged = b"this is not a database" * 100
    (state / "firelink.db").write_bytes(damaged)
    result = firelink("run", str(config), "--state-dir", str(state))
    assert result.returncode == 1
    assert "firelink could not start" in result.stderr
    assert "firelink.db" in result.stderr
    assert "Traceback" not in result.stderr
    assert (state / "firelink.db").read_bytes() == damaged  # nothing overwritten
    assert not (state / "firelink.sock").exists()
    assert lock_holder(state) is None


def test_shell_completion_offers_job_names_from_the_config(tmp_path: Path) -> None:
    (tmp_path / "firelink.yaml").write_text(
        "state_dir: ./state\njobs:\n"
        "  - {name: nightly, trigger: manual, command: ['true']}\n"
        "  - {name: notify, trigger: manual, command: ['true']}\n"
        "  - {name: hourly, trigger: manual, command: ['true']}\n"
    )
    result = firelink(
        cwd=tmp_path,
        env={"_FIRELINK_COMPLETE": "bash_complete", "COMP_WORDS": "firelink trigger n", "COMP_CWORD": "2"},
    )
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split()) == ["plain,nightly", "plain,notify"]


def test_detach_reports_why_the_daemon_did_not_start(tmp_path: Path) -> None:
    config = tmp_path / "firelink.yaml"
    config.write_text("jobs:\n  - name: a\n    trigger: manual\n    command: ['true']\n")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "firelink.db").write_bytes(b"not a database" * 100)
    result = firelink("run", str(config), "--state-dir", str(state), "--detach")
    assert result.returncode == 1
    assert "exited during startup" in result.stderr
    assert "firelink could not start" in result.stderr  # the end of its log, shown to the user
    assert not (state / "firelink.pid").exists()


# --------------------------------------------------------------------------- what client commands load

# Runs the CLI in this interpreter, then prints the modules it imported and its exit code.
CLI_PROBE = """
import sys
from firelink_core.cli import main
try:
    main(sys.argv[1:], prog_name="firelink")
except SystemExit as exc:
    code = exc.code
print("\\nprobe:", code, " ".join(sorted(sys.modules)))
"""


def loaded_by(*args: str) -> tuple[int, str, set[str]]:
    """The exit code, the output and the modules loaded by ``firelink ARGS``."""
    result = subprocess.run(
        [sys.executable, "-c", CLI_PROBE, *args], capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k not in ("FIRELINK_STATE_DIR", "FIRELINK_CONFIG")},
    )
    assert "Traceback" not in result.stderr, result.stderr
    output, probe = result.stdout.rsplit("\nprobe: ", 1)
    code, *modules = probe.split()
    return (0 if code == "None" else int(code)), output, set(modules)


def is_engine(module: str) -> bool:
    return module in ("firelink_core._engine", "firelink_core.engine") or module.startswith("firelink_core.engine.")


def test_validate_and_status_never_import_the_engine(tmp_path: Path) -> None:
    config = tmp_path / "firelink.yaml"
    config.write_text("state_dir: ./state\njobs:\n  - {name: a, trigger: manual, command: ['true']}\n")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    # A history to read, so `status` with the daemon stopped opens the storage too.
    from firelink_core.builtin.sqlite import SqliteStorage
    from firelink_core.plugin_api import RunRecord, RunState
    from firelink_core.testing import BasicStorageContext

    async def write_history() -> None:
        storage = SqliteStorage({}, BasicStorageContext(state))
        await storage.open()
        await storage.create_run(RunRecord(id="r1", job="a", state=RunState.SUCCESS, created_at=1.0))
        await storage.close()

    asyncio.run(write_history())

    code, output, modules = loaded_by("validate", str(config))
    assert code == 0 and "valid" in output and "firelink_core.cli" in modules
    assert not [m for m in modules if is_engine(m)]
    code, output, modules = loaded_by("status", "-c", str(config), "--json")
    assert code == 3 and json.loads(output)["jobs"][0]["last_run"]["id"] == "r1"  # read offline
    assert not [m for m in modules if is_engine(m)]
    code, output, modules = loaded_by("runs", "--state-dir", str(state))
    assert code == 0 and "r1" in output
    assert not [m for m in modules if is_engine(m)]


def test_history_of_a_memory_storage_is_gone_with_the_daemon(tmp_path: Path) -> None:
    config = tmp_path / "firelink.yaml"
    config.write_text(
        "state_dir: ./state\nstorage: {type: memory}\njobs:\n  - {name: a, trigger: manual, command: ['true']}\n"
    )
    (tmp_path / "state").mkdir(mode=0o700)
    result = firelink("runs", "-c", str(config))
    assert result.returncode == 1
    assert "memory keeps no history once the daemon stops" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_control_command_declares_its_request_fields() -> None:
    # A command missing from REQUEST_FIELDS would be answered "unknown command".
    from firelink_core._control import REQUEST_FIELDS, ControlServer

    commands = {name.removeprefix("_cmd_") for name in dir(ControlServer) if name.startswith("_cmd_")}
    assert commands == set(REQUEST_FIELDS)


def test_a_state_dir_group_writable_by_the_users_own_group_is_accepted(tmp_path: Path) -> None:
    # umask 002 with per-user groups makes folders 0775: that group is the user's own.
    from firelink_core._state_dir import UnsafeStateDir, check_state_dir

    state = tmp_path / "state"
    (state / "logs" / "job").mkdir(parents=True)
    for folder in (state, state / "logs", state / "logs" / "job"):
        os.chmod(folder, 0o775)
    check_state_dir(state)
    os.chown(state / "logs" / "job", -1, os.getegid() + 1)
    with pytest.raises(UnsafeStateDir, match="other users may write in it"):
        check_state_dir(state)


def test_process_exited_counts_an_unreaped_child_as_exited() -> None:
    """`firelink stop` waits for this after the lock is free: a zombie has exited, a sleeper has not."""
    from firelink_core._daemon import process_exited
    from firelink_core.testing import wait_for

    sleeper = subprocess.Popen(["sleep", "30"])
    quick = subprocess.Popen(["true"])
    try:
        assert not process_exited(sleeper.pid)
        wait_for(lambda: process_exited(quick.pid), 10, message="the unreaped child counts as exited")
        assert quick.returncode is None  # still a zombie: nobody reaped it yet
    finally:
        sleeper.kill()
        sleeper.wait()
        quick.wait()
    assert process_exited(quick.pid)
