"""Cancelling a run by hand (``firelink cancel``): how each state of a run is cancelled, and
which runs are being cancelled so their ends are recorded ``cancelled``, not ``interrupted``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal

from ..records import AttemptRecord, RunRecord, RunState
from .errors import EngineError

if TYPE_CHECKING:
    from ..abc import Clock, Storage
    from .conditions import Conditions
    from .slots import Slots

__all__ = ["CANCELLED", "Canceller", "Cancels", "how_to_cancel"]

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


class Canceller:
    """``Engine.cancel``: ends a run by hand whatever state it is in.

    ``tasks`` are the engine's tasks by run id (read only); ``dag_lock`` is the lock the
    engine decides waiting runs under; ``release`` gives a job's slot back and
    ``terminal`` does everything that follows a run's end."""

    def __init__(
        self,
        *,
        storage: Storage,
        clock: Clock,
        cancels: Cancels,
        tasks: Mapping[str, asyncio.Task[None]],
        dag_lock: asyncio.Lock,
        conditions: Conditions,
        slots: Slots,
        release: Callable[[str], None],
        terminal: Callable[[RunRecord, AttemptRecord | None], None],
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._cancels = cancels
        self._tasks = tasks
        self._dag_lock = dag_lock
        self._conditions = conditions
        self._slots = slots
        self._release = release
        self._terminal = terminal

    async def cancel(self, run_id: str) -> RunRecord:
        """Cancel a run and return it as it ended (``cancelled``, or its own end if it ended
        first). ``KeyError`` for an unknown run, ``EngineError`` for a run that already ended."""
        run = await self._storage.get_run(run_id)
        if run is None:
            raise KeyError(run_id)
        task = self._tasks.get(run_id)
        how = how_to_cancel(run, task is not None)
        if how == "ended":
            raise EngineError(f"run {run_id} already ended ({run.state.value})")
        if task is not None:
            if not self._cancels.is_task(run_id):  # a second cancel only waits: a second
                self._cancels.task(run_id)  # task.cancel() could cut the end's write short
                task.cancel()
            try:
                await asyncio.wait({task})
            finally:
                self._cancels.task_done(run_id)
            ended = await self._storage.get_run(run_id)
            if ended is not None and ended.finished:
                return ended
            # Cancelled before its executor started (claiming): nothing ran, end it here.
        elif how == "waiting":
            async with self._dag_lock:
                waiting = self._conditions.find_waiting(run_id)
                if waiting is not None and self._conditions.is_waiting(waiting):
                    self._conditions.unwait(waiting)
        elif how == "retrying":
            self._cancels.retry(run_id)
        else:
            held = self._slots.remove(run_id, run.job)
            if held:
                self._release(run.job)
        now = self._clock.now()
        run = await self._storage.update_run(
            run_id, state=RunState.CANCELLED, finished_at=now, reason=CANCELLED
        )
        self._terminal(run, None)
        if how == "retrying":
            self._release(run.job)
        return run
