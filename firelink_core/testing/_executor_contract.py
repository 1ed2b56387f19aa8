"""``ExecutorContract``: the behaviour every executor owes the engine, as reusable tests."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..plugin_api import (
    AttemptRecord,
    AttemptReporter,
    AttemptRequest,
    AttemptResult,
    Executor,
    read_log,
)
from ._contexts import executor_context

__all__ = ["ExecutorContract", "ExecutorUnderTest", "RecordingReporter"]


class RecordingReporter(AttemptReporter):
    """Keeps what an executor reports; ``started_event`` lets a test wait for the start."""

    def __init__(self) -> None:
        self.handles: list[dict[str, Any]] = []
        self.output: list[bytes] = []
        self.started_event = asyncio.Event()

    async def started(self, handle: Mapping[str, Any]) -> None:
        self.handles.append(dict(handle))
        self.started_event.set()

    async def log(self, data: bytes) -> None:
        self.output.append(data)


def _local_group_alive(handle: Mapping[str, Any]) -> bool:
    from ..builtin.subprocess import group_alive

    pid = handle.get("pgid", handle.get("pid"))
    if not isinstance(pid, int):
        raise NotImplementedError("give ExecutorUnderTest an `alive` function for this handle")
    return group_alive(pid)


@dataclass
class ExecutorUnderTest:
    """What an executor plugin's test supplies to :class:`ExecutorContract`."""

    cls: type[Executor]
    """The executor class, importable by its module and name (the crash tests rebuild it in
    another process); the contract makes it with :func:`~firelink_core.testing.executor_context`."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """The ``executor:`` options of every request (an image, a queue...)."""
    alive: Callable[[Mapping[str, Any]], bool] = _local_group_alive
    """Whether the work named by a reported handle still runs (default: a local process group
    named by the handle's ``pgid`` or ``pid``)."""
    reattaches: bool = True
    """Whether ``recover(..., reattach=True)`` follows work still running to its end. An
    executor that cannot (the subprocess executor: the output pipe died with the daemon)
    sets it false and must then terminate the work instead."""


# A daemon that starts one attempt, prints the handle and waits to be killed with SIGKILL:
# what a crashed daemon leaves behind for ``recover``.
_CRASHING_DAEMON = """
import asyncio, importlib, json, sys
from pathlib import Path
from firelink_core.plugin_api import AttemptReporter, AttemptRequest
from firelink_core.testing import executor_context

spec = json.loads(sys.argv[1])
module, _, name = spec["cls"].partition(":")
cls = getattr(importlib.import_module(module), name)
request = AttemptRequest(**{**spec["request"], "log_path": Path(spec["request"]["log_path"])})
request.log_path.parent.mkdir(parents=True, exist_ok=True)  # an executor may write only through the reporter

class Reporter(AttemptReporter):
    async def started(self, handle):
        print(json.dumps(dict(handle)), flush=True)
    async def log(self, data):
        with open(request.log_path, "ab") as log:
            log.write(data)

async def main():
    executor = cls(executor_context(spec["state_dir"], spec["config_dir"]))
    await executor.start()
    await executor.run(request, Reporter())
    await asyncio.Event().wait()

asyncio.run(main())
"""


class ExecutorContract:
    """Subclass it as ``Test<Name>ExecutorContract`` and override the ``executor_under_test`` fixture::

        class TestMyExecutorContract(ExecutorContract):
            @pytest.fixture
            def executor_under_test(self) -> ExecutorUnderTest:
                return ExecutorUnderTest(MyExecutor, {"image": "busybox"}, alive=my_alive)

    Every contract in ``firelink_core.testing`` asks for one fixture, ``<subject>_under_test``,
    returning a ``<Subject>UnderTest`` that says what the contract cannot guess. Commands are
    ``["sh", "-c", script]`` with POSIX shell scripts (busybox is enough). Each test runs
    its own event loop, so no async pytest plugin is needed.
    """

    # Generous: these only bound a test that would otherwise hang on a broken executor.
    deadline: float = 60.0

    @pytest.fixture
    def executor_under_test(self) -> ExecutorUnderTest:
        raise NotImplementedError("override the executor_under_test fixture")

    @pytest.fixture
    def make_executor(self, executor_under_test: ExecutorUnderTest, tmp_path: Path) -> Callable[[], Executor]:
        """A new, not yet started executor, as an engine makes it (state in ``tmp_path/state``)."""
        return lambda: executor_under_test.cls(executor_context(tmp_path / "state", tmp_path))

    @pytest.fixture
    def make_request(
        self, executor_under_test: ExecutorUnderTest, tmp_path: Path
    ) -> Callable[..., AttemptRequest]:
        """``make_request(command, **fields)``: a request with a fresh run id and its log in ``tmp_path``."""

        def make(command: Any, **fields: Any) -> AttemptRequest:
            run_id = f"r{uuid.uuid4().hex[:12]}"
            values: dict[str, Any] = {
                "run_id": run_id,
                "job": "contract",
                "attempt": 1,
                "command": command,
                "shell": False,
                "env": {"FIRELINK_JOB": "contract", "FIRELINK_RUN_ID": run_id, "FIRELINK_ATTEMPT": "1"},
                "cwd": None,
                "timeout": None,
                "kill_grace": 2.0,
                "options": dict(executor_under_test.options),
                "log_path": tmp_path / "state" / "logs" / "contract" / f"{run_id}.1.log",
                "log_max_bytes": 1024 * 1024,
            }
            values.update(fields)
            return AttemptRequest(**values)

        return make

    @staticmethod
    def sh(script: str) -> list[str]:
        return ["sh", "-c", script]

    def run(
        self,
        executor: Executor,
        request: AttemptRequest,
        during: Callable[[asyncio.Task[AttemptResult], RecordingReporter], Awaitable[Any]] | None = None,
    ) -> tuple[AttemptResult | BaseException, RecordingReporter]:
        """Start the executor, run one attempt (``during`` runs alongside it), stop it."""
        reporter = RecordingReporter()

        async def main() -> AttemptResult | BaseException:
            await executor.start()
            try:
                task = asyncio.create_task(executor.run(request, reporter))
                if during is not None:
                    await during(task, reporter)
                try:
                    return await asyncio.wait_for(task, self.deadline)
                except asyncio.CancelledError as exc:
                    if task.cancelled():
                        return exc
                    raise
            finally:
                await executor.stop()

        return asyncio.run(main()), reporter

    def recover(
        self, executor: Executor, request: AttemptRequest, handle: Mapping[str, Any], *, reattach: bool
    ) -> AttemptResult | None:
        """Start the executor, ``recover`` the attempt that reported ``handle``, stop it."""
        attempt = AttemptRecord(
            run_id=request.run_id, number=request.attempt, executor=executor.type_name,
            started_at=time.time(), handle=dict(handle),
        )

        async def main() -> AttemptResult | None:
            await executor.start()
            try:
                recovering = executor.recover(request, attempt, RecordingReporter(), reattach=reattach)
                return await asyncio.wait_for(recovering, self.deadline)
            finally:
                await executor.stop()

        return asyncio.run(main())

    def crashed_attempt(
        self, executor_under_test: ExecutorUnderTest, request: AttemptRequest, tmp_path: Path, *, wait_for: str
    ) -> dict[str, Any]:
        """Start ``request`` in a daemon process, kill that process with SIGKILL once ``wait_for``
        is in the attempt's log, and return the handle it reported: work a crash left running."""
        cls = executor_under_test.cls
        values = {name: getattr(request, name) for name in request.__dataclass_fields__}
        values.update(log_path=str(request.log_path), command=request.command, env=dict(request.env),
                      options=dict(request.options), labels=dict(request.labels))
        spec = {"cls": f"{cls.__module__}:{cls.__qualname__}", "request": values,
                "state_dir": str(tmp_path / "state"), "config_dir": str(tmp_path)}
        daemon = subprocess.Popen(
            [sys.executable, "-c", _CRASHING_DAEMON, json.dumps(spec)], stdout=subprocess.PIPE, text=True,
        )
        try:
            deadline = time.monotonic() + self.deadline
            assert daemon.stdout is not None
            ready, _, _ = select.select([daemon.stdout], [], [], self.deadline)
            assert ready, "the daemon process reported no started attempt"
            line = daemon.stdout.readline()
            assert line, f"the daemon process exited ({daemon.wait()}) before the attempt started"
            while wait_for not in read_log(request.log_path).decode(errors="replace"):
                assert time.monotonic() < deadline, f"{wait_for!r} never reached the attempt's log"
                time.sleep(0.02)
            return json.loads(line)
        finally:
            os.kill(daemon.pid, signal.SIGKILL)
            daemon.wait()
            daemon.stdout.close()

    @staticmethod
    def output(request: AttemptRequest, reporter: RecordingReporter) -> str:
        """Everything the attempt logged, whichever way the executor wrote it."""
        return (read_log(request.log_path) + b"".join(reporter.output)).decode(errors="replace")

    # ------------------------------------------------------------------ the contract
    def test_exit_zero_is_success(self, make_executor, make_request):
        result, reporter = self.run(make_executor(), make_request(self.sh("exit 0")))
        assert isinstance(result, AttemptResult) and result.ok
        assert result.exit_code == 0 and result.error is None and not result.timed_out
        # At least once; again when the executor learns more (the worker that took a remote attempt).
        assert reporter.handles

    def test_non_zero_exit_code_propagates(self, make_executor, make_request):
        result, _ = self.run(make_executor(), make_request(self.sh("exit 3")))
        assert isinstance(result, AttemptResult)
        assert result.exit_code == 3 and not result.ok and result.error is None

    def test_stdout_and_stderr_reach_the_log(self, make_executor, make_request):
        request = make_request(self.sh("echo to-stdout; echo to-stderr >&2"))
        result, reporter = self.run(make_executor(), request)
        assert isinstance(result, AttemptResult) and result.ok
        text = self.output(request, reporter)
        assert "to-stdout\n" in text and "to-stderr\n" in text

    def test_environment_reaches_the_job(self, make_executor, make_request):
        env = {
            "FIRELINK_JOB": "contract",
            "FIRELINK_RUN_ID": "r-env",
            "FIRELINK_ATTEMPT": "1",
            "CONTRACT_VALUE": "hello world $HOME 'quoted'",
        }
        request = make_request(self.sh('echo "[$FIRELINK_JOB|$CONTRACT_VALUE]"'), env=env)
        result, reporter = self.run(make_executor(), request)
        assert isinstance(result, AttemptResult) and result.ok
        assert "[contract|hello world $HOME 'quoted']" in self.output(request, reporter)

    def test_timeout_terminates_and_is_reported(self, make_executor, make_request, executor_under_test):
        request = make_request(self.sh("echo begun; sleep 60; echo never"), timeout=0.5, kill_grace=2.0)
        result, reporter = self.run(make_executor(), request)
        assert isinstance(result, AttemptResult)
        assert result.timed_out and not result.ok
        text = self.output(request, reporter)
        assert "begun" in text and "never" not in text
        assert not executor_under_test.alive(reporter.handles[0])

    def test_cancellation_terminates_and_reraises(self, make_executor, make_request, executor_under_test):
        request = make_request(self.sh("echo begun; sleep 60; echo never"), kill_grace=2.0)

        async def cancel_once_running(task: asyncio.Task[AttemptResult], reporter: RecordingReporter) -> None:
            await asyncio.wait_for(reporter.started_event.wait(), self.deadline)
            deadline = asyncio.get_running_loop().time() + self.deadline
            # Cancel once the job has really begun (its first output is in the log).
            while "begun" not in self.output(request, reporter):
                assert asyncio.get_running_loop().time() < deadline, "the job never started"
                await asyncio.sleep(0.02)
            task.cancel()

        result, reporter = self.run(make_executor(), request, during=cancel_once_running)
        assert isinstance(result, asyncio.CancelledError)
        assert not executor_under_test.alive(reporter.handles[0])
        assert "never" not in self.output(request, reporter)

    # ------------------------------------------------------------------ recover()
    def test_recover_with_reattach_returns_the_real_result(
        self, make_executor, make_request, executor_under_test, tmp_path
    ):
        request = make_request(self.sh("echo begun; sleep 5; exit 7"), kill_grace=1.0)
        handle = self.crashed_attempt(executor_under_test, request, tmp_path, wait_for="begun")
        try:
            assert executor_under_test.alive(handle), "the work died with the daemon"
            result = self.recover(make_executor(), request, handle, reattach=True)
            if executor_under_test.reattaches:
                assert isinstance(result, AttemptResult) and result.exit_code == 7 and not result.ok
            else:
                assert result is None
            assert not executor_under_test.alive(handle)
        finally:
            self._leave_nothing(make_executor, request, handle)

    def test_recover_without_reattach_terminates_and_returns_none(
        self, make_executor, make_request, executor_under_test, tmp_path
    ):
        request = make_request(self.sh("echo begun; sleep 60; echo never"), kill_grace=1.0)
        handle = self.crashed_attempt(executor_under_test, request, tmp_path, wait_for="begun")
        try:
            assert executor_under_test.alive(handle), "the work died with the daemon"
            assert self.recover(make_executor(), request, handle, reattach=False) is None
            assert not executor_under_test.alive(handle)
            assert "never" not in read_log(request.log_path).decode(errors="replace")
        finally:
            self._leave_nothing(make_executor, request, handle)

    def test_recover_of_an_unknown_handle_returns_none(self, make_executor, make_request):
        request = make_request(self.sh("exit 0"))
        result, reporter = self.run(make_executor(), request)
        assert isinstance(result, AttemptResult) and result.ok
        # The handle of work that ended and was cleaned up names nothing any more.
        for reattach in (True, False):
            assert self.recover(make_executor(), request, reporter.handles[0], reattach=reattach) is None

    def _leave_nothing(self, make_executor, request: AttemptRequest, handle: Mapping[str, Any]) -> None:
        """Test cleanup: a failed assertion must not leave the crashed attempt running."""
        try:
            self.recover(make_executor(), request, handle, reattach=False)
        except Exception:  # noqa: BLE001 - cleanup only; the test already reports its own failure
            pass
