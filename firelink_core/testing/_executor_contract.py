"""``ExecutorContract``: the behaviour every executor owes the engine, as reusable tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..abc import AttemptReporter, AttemptRequest, AttemptResult, Executor
from ..logs import read_log

__all__ = ["ExecutorContract", "RecordingReporter"]


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


class ExecutorContract:
    """Subclass in a plugin's tests (``class TestMyExecutor(ExecutorContract): ...``).

    The tests need two fixtures, defined in your module or ``conftest.py``:

    * ``make_executor()`` -> a new, not yet started :class:`~firelink_core.abc.Executor`
      (each test starts and stops it inside its own event loop);
    * ``make_request(command, **fields)`` -> an :class:`~firelink_core.abc.AttemptRequest`
      for ``command`` with any field overridden (``env``, ``timeout``, ``kill_grace``), its
      ``log_path`` in a temporary folder and whatever ``options`` your executor needs.

    Commands are ``["sh", "-c", script]`` with POSIX shell scripts (busybox is enough).
    Override :meth:`attempt_alive` if your handle is not a local ``pid``.
    """

    # Generous: these only bound a test that would otherwise hang on a broken executor.
    deadline: float = 60.0

    def attempt_alive(self, handle: Mapping[str, Any]) -> bool:
        """Whether the work identified by a reported handle still runs."""
        from ..builtin.subprocess import group_alive

        pid = handle.get("pgid", handle.get("pid"))
        if not isinstance(pid, int):
            raise NotImplementedError("override ExecutorContract.attempt_alive for this handle")
        return group_alive(pid)

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

    @staticmethod
    def output(request: AttemptRequest, reporter: RecordingReporter) -> str:
        """Everything the attempt logged, whichever way the executor wrote it."""
        return (read_log(request.log_path) + b"".join(reporter.output)).decode(errors="replace")

    # ------------------------------------------------------------------ the contract
    def test_exit_zero_is_success(self, make_executor, make_request):
        result, reporter = self.run(make_executor(), make_request(self.sh("exit 0")))
        assert isinstance(result, AttemptResult) and result.ok
        assert result.exit_code == 0 and result.error is None and not result.timed_out
        assert len(reporter.handles) == 1

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

    def test_timeout_terminates_and_is_reported(self, make_executor, make_request):
        request = make_request(self.sh("echo begun; sleep 60; echo never"), timeout=0.5, kill_grace=2.0)
        result, reporter = self.run(make_executor(), request)
        assert isinstance(result, AttemptResult)
        assert result.timed_out and not result.ok
        text = self.output(request, reporter)
        assert "begun" in text and "never" not in text
        assert not self.attempt_alive(reporter.handles[0])

    def test_cancellation_terminates_and_reraises(self, make_executor, make_request):
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
        assert not self.attempt_alive(reporter.handles[0])
        assert "never" not in self.output(request, reporter)
