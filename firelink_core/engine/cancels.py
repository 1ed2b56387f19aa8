"""Cancelling a run by hand (``firelink cancel``): how each state of a run is cancelled, and
which runs are being cancelled so their ends are recorded ``cancelled``, not ``interrupted``."""

from __future__ import annotations

from typing import Literal

from ..records import RunRecord, RunState

__all__ = ["CANCELLED", "Cancels", "how_to_cancel"]

CANCELLED = "cancelled by hand (firelink cancel)"
"""The reason recorded on a cancelled run (and its attempt, when one was running)."""

How = Literal["ended", "task", "waiting", "line", "retrying"]


def how_to_cancel(run: RunRecord, has_task: bool) -> How:
    """What cancelling ``run`` takes: ``ended`` (nothing, it is over), ``task`` (stop the
    task running or claiming it: the executor stops the job with its stop signal and grace),
    ``waiting`` (on its upstream), ``line`` (queued for a slot) or ``retrying`` (between
    attempts, keeping its slot)."""
    if run.finished:
        return "ended"
    if has_task:
        return "task"
    if run.state is RunState.WAITING:
        return "waiting"
    if run.state is RunState.RETRYING:
        return "retrying"
    return "line"


class Cancels:
    """Run ids being cancelled: a running task's end, and a retry that must not start."""

    def __init__(self) -> None:
        self._tasks: set[str] = set()
        self._retries: set[str] = set()

    def task(self, run_id: str) -> None:
        """The task of ``run_id`` is being cancelled by hand."""
        self._tasks.add(run_id)

    def is_task(self, run_id: str) -> bool:
        """Whether the task of ``run_id`` ends because of a cancel (its end is ``cancelled``)."""
        return run_id in self._tasks

    def task_done(self, run_id: str) -> None:
        self._tasks.discard(run_id)

    def retry(self, run_id: str) -> None:
        """A retrying run was cancelled: its retry, when due, starts nothing."""
        self._retries.add(run_id)

    def take_retry(self, run_id: str) -> bool:
        """Whether the due retry of ``run_id`` was cancelled (forgotten once asked)."""
        if run_id in self._retries:
            self._retries.discard(run_id)
            return True
        return False
