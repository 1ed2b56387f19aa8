"""The subprocess executor with real processes: the executor contract and its own behaviour."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from firelink_core.builtin.subprocess import SubprocessExecutor, group_alive, process_start_time
from firelink_core.logs import parse_dropped_marker, read_log
from firelink_core.plugin_api import AttemptRecord, AttemptRequest, AttemptResult
from firelink_core.plugins import make_plugins
from firelink_core.testing import (
    ExecutorContract,
    ExecutorUnderTest,
    RecordingReporter,
    executor_context,
    wait_for,
)

LOGGER = logging.getLogger("firelink.test.subprocess")


@pytest.fixture
def make_executor(tmp_path):
    def make(config_dir: Path | None = None) -> SubprocessExecutor:
        return SubprocessExecutor(executor_context(tmp_path / "state", config_dir, logger=LOGGER))

    return make


@pytest.fixture
def make_request(tmp_path):
    counter = iter(range(1, 1_000_000))

    def make(command, **fields) -> AttemptRequest:
        run_id = f"r{next(counter)}"
        values = {
            "run_id": run_id,
            "job": "job",
            "attempt": 1,
            "command": command,
            "shell": False,
            "env": {"FIRELINK_JOB": "job", "FIRELINK_RUN_ID": run_id, "FIRELINK_ATTEMPT": "1"},
            "cwd": None,
            "timeout": None,
            "kill_grace": 2.0,
            "log_path": tmp_path / "state" / "logs" / "job" / f"{run_id}.1.log",
            "log_max_bytes": 1024 * 1024,
        }
        values.update(fields)
        return AttemptRequest(**values)

    return make


class TestSubprocessExecutorContract(ExecutorContract):
    """The shared executor contract, against real local processes."""

    @pytest.fixture
    def executor_under_test(self) -> ExecutorUnderTest:
        # A process group cannot be re-attached: its output pipe died with the daemon.
        return ExecutorUnderTest(SubprocessExecutor, reattaches=False)


def run(executor, request) -> tuple[AttemptResult, RecordingReporter]:
    result, reporter = ExecutorContract().run(executor, request)
    assert isinstance(result, AttemptResult)
    return result, reporter


def log_of(request) -> str:
    return read_log(request.log_path).decode(errors="replace")


def test_registered_as_the_builtin_executor():
    assert make_plugins().executors()["subprocess"] is SubprocessExecutor


def test_the_job_runs_in_its_own_session_and_the_handle_identifies_it(make_executor, make_request, tmp_path):
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    # The job waits on the fifo, so it is surely still running when its handle is made.
    script = f"set -- $(cat /proc/$$/stat); echo sid=$6 pgid=$5 pid=$$ start=${{22}}; read x < {fifo}"
    request = make_request(["sh", "-c", script])

    async def release(task, reporter):
        await asyncio.wait_for(reporter.started_event.wait(), 30)
        await asyncio.to_thread(fifo.write_text, "go\n")

    result, reporter = ExecutorContract().run(make_executor(), request, during=release)
    assert isinstance(result, AttemptResult) and result.ok
    handle = reporter.handles[0]
    pid = handle["pid"]
    assert handle["pgid"] == pid
    assert f"sid={pid} pgid={pid} pid={pid} start={handle['start_time']}" in log_of(request)


def test_signal_is_recorded(make_executor, make_request):
    result, _ = run(make_executor(), make_request(["sh", "-c", "kill -USR1 $$"]))
    assert result.signal == signal.SIGUSR1 and result.exit_code is None and not result.ok


def test_env_is_merged_over_the_daemons_environment(make_executor, make_request, monkeypatch):
    monkeypatch.setenv("FROM_DAEMON", "daemon-value")
    monkeypatch.setenv("OVERRIDDEN", "daemon")
    request = make_request(
        ["sh", "-c", 'echo "$FROM_DAEMON/$OVERRIDDEN/$FIRELINK_RUN_ID"'],
        env={"OVERRIDDEN": "job", "FIRELINK_RUN_ID": "r-merge"},
    )
    result, _ = run(make_executor(), request)
    assert result.ok and "daemon-value/job/r-merge" in log_of(request)


def test_inherit_env_false_gives_only_the_jobs_variables(make_executor, make_request, monkeypatch):
    monkeypatch.setenv("DAEMON_SECRET", "s3cr3t")
    request = make_request(
        ["sh", "-c", 'echo "secret=[$DAEMON_SECRET] mine=[$MINE]"'],
        env={"MINE": "yes"},
        options={"inherit_env": False},
    )
    result, _ = run(make_executor(), request)
    assert result.ok and "secret=[] mine=[yes]" in log_of(request)


def test_cwd_absolute_and_relative_to_the_config_folder(make_executor, make_request, tmp_path):
    (tmp_path / "work").mkdir()
    request = make_request(["pwd"], cwd=str(tmp_path / "work"))
    assert run(make_executor(), request)[0].ok
    assert log_of(request).strip() == str(tmp_path / "work")
    request = make_request(["pwd"], cwd="work")
    assert run(make_executor(config_dir=tmp_path), request)[0].ok
    assert log_of(request).strip() == str(tmp_path / "work")


def test_missing_cwd_is_an_attempt_error_written_to_the_log(make_executor, make_request, tmp_path):
    request = make_request(["true"], cwd=str(tmp_path / "nowhere"))
    result, reporter = run(make_executor(), request)
    assert result.error and "nowhere" in result.error and "does not exist" in result.error
    assert result.error in log_of(request) and reporter.handles == []


def test_command_not_found(make_executor, make_request):
    request = make_request(["firelink-no-such-program", "x"])
    result, _ = run(make_executor(), request)
    assert not result.ok and result.exit_code is None
    assert "command not found" in result.error and "firelink-no-such-program" in result.error
    assert "PATH=" in result.error and result.error in log_of(request)


def test_not_executable(make_executor, make_request, tmp_path):
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    result, _ = run(make_executor(), make_request([str(script)]))
    assert "permission denied" in result.error


def test_string_command_is_split_without_a_shell(make_executor, make_request, tmp_path):
    marker = tmp_path / "pwned"
    request = make_request(f"echo 'a  b' ; touch {marker}")
    result, _ = run(make_executor(), request)
    assert result.ok
    # echo received ';' and 'touch' as arguments: no shell ran them
    assert log_of(request) == f"a  b ; touch {marker}\n"
    assert not marker.exists()


def test_string_command_with_shell_true(make_executor, make_request, tmp_path):
    marker = tmp_path / "made"
    request = make_request(f"echo one; touch {marker} && echo two", shell=True)
    result, _ = run(make_executor(), request)
    assert result.ok and log_of(request) == "one\ntwo\n" and marker.exists()


def test_unbalanced_quotes_and_empty_commands(make_executor, make_request):
    result, _ = run(make_executor(), make_request("echo 'oops"))
    assert "cannot split" in result.error
    for empty in (None, "", "   ", ()):
        result, _ = run(make_executor(), make_request(empty))
        assert result.error == "the job has no command"


def test_stdout_and_stderr_interleave_in_arrival_order(make_executor, make_request):
    script = "for i in 1 2 3; do echo out$i; echo err$i >&2; done"
    request = make_request(["sh", "-c", script])
    assert run(make_executor(), request)[0].ok
    assert log_of(request) == "out1\nerr1\nout2\nerr2\nout3\nerr3\n"


GRANDCHILD = """
import os, signal, sys, time
pidfile = sys.argv[1]
if os.fork() == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with open(pidfile, "w") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(1)
print("parent waiting", flush=True)
os.wait()
"""


def pid_alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_group(pgid: int) -> None:
    """Test cleanup, so a failing test leaves nothing running."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_timeout_kills_a_grandchild_that_ignores_sigterm(make_executor, make_request, tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    request = make_request([sys.executable, "-c", GRANDCHILD, str(pidfile)], timeout=1.0, kill_grace=0.5)
    result, reporter = run(make_executor(), request)
    try:
        assert result.timed_out and not result.ok
        grandchild = int(pidfile.read_text())
        wait_for(lambda: not pid_alive(grandchild), timeout=10, message="grandchild still alive")
        assert not group_alive(reporter.handles[0]["pgid"])
    finally:
        kill_group(reporter.handles[0]["pgid"])
    text = log_of(request)
    assert "parent waiting" in text and "timed out after 1s" in text
    assert "left processes" not in text  # the timeout's own termination got them all


def test_leftover_background_processes_are_terminated_when_the_command_exits(make_executor, make_request, tmp_path):
    pidfile = tmp_path / "bg.pid"
    request = make_request(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; echo done"], kill_grace=1.0)
    result, reporter = run(make_executor(), request)
    try:
        assert result.ok
        wait_for(lambda: not pid_alive(int(pidfile.read_text())), timeout=10)
    finally:
        kill_group(reporter.handles[0]["pgid"])
    assert "left processes in its process group" in log_of(request)


def test_log_cap_keeps_the_tail(make_executor, make_request):
    script = "i=0; while [ $i -lt 20000 ]; do echo line-$i; i=$((i+1)); done"
    request = make_request(["sh", "-c", script], log_max_bytes=20_000)
    result, _ = run(make_executor(), request)
    assert result.ok
    content = read_log(request.log_path)
    dropped, header = parse_dropped_marker(content)
    assert header and len(content) <= 20_000 + 64
    lines = content[header:].decode().splitlines()
    assert lines[-1] == "line-19999"
    # the kept lines are the last ones, contiguous and complete
    first = int(lines[0].split("-")[1])
    assert lines == [f"line-{i}" for i in range(first, 20000)]
    total = sum(len(f"line-{i}\n") for i in range(20000))
    assert dropped + len(content) - header == total


def test_recover_terminates_a_group_left_by_a_crashed_daemon(make_executor, make_request, tmp_path):
    # A process group started "by the previous daemon": a session of its own.
    proc = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 60 & wait"], start_new_session=True)
    try:
        wait_for(lambda: process_start_time(proc.pid) is not None)
        request = make_request(["true"], kill_grace=0.5)
        handle = {"pid": proc.pid, "pgid": proc.pid, "start_time": process_start_time(proc.pid),
                  "boot_id": Path("/proc/sys/kernel/random/boot_id").read_text().strip()}
        attempt = AttemptRecord(run_id=request.run_id, number=1, executor="subprocess", started_at=0, handle=handle)

        async def main():
            return await make_executor().recover(request, attempt, RecordingReporter(), reattach=True)

        assert asyncio.run(main()) is None
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        wait_for(lambda: not group_alive(proc.pid), timeout=10)
        assert "cannot be re-attached" in log_of(request)
    finally:
        kill_group(proc.pid)
        proc.wait()


def test_recover_leaves_alone_a_pid_reused_by_another_program(make_executor, make_request):
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        wait_for(lambda: process_start_time(proc.pid) is not None)
        handle = {"pid": proc.pid, "pgid": proc.pid, "start_time": process_start_time(proc.pid) - 1}
        request = make_request(["true"])
        attempt = AttemptRecord(run_id=request.run_id, number=1, executor="subprocess", started_at=0, handle=handle)

        async def main():
            return await make_executor().recover(request, attempt, RecordingReporter(), reattach=False)

        assert asyncio.run(main()) is None
        assert proc.poll() is None and not request.log_path.exists()
    finally:
        proc.kill()
        proc.wait()


def test_a_log_that_cannot_be_written_does_not_fail_the_job(make_executor, make_request, caplog):
    # /dev/full accepts the open and refuses every write with ENOSPC, like a full disk.
    request = make_request(["sh", "-c", "echo lost; exit 0"], log_path=Path("/dev/full"))
    with caplog.at_level(logging.ERROR, logger="firelink.test.subprocess"):
        result, _ = run(make_executor(), request)
    assert result.ok
    assert "output could not be written" in caplog.text and "No space left" in caplog.text


def test_a_log_that_cannot_be_opened_is_an_attempt_error(make_executor, make_request, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    request = make_request(["true"], log_path=tmp_path / "file" / "x.log")
    result, reporter = run(make_executor(), request)
    assert "cannot open the log" in result.error and reporter.handles == []
