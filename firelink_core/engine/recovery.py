"""Recovery: what a previous daemon left in storage (recent history, unfinished runs), what
the engine does with each leftover, and the replacement of runs a crash interrupted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..abc import Storage
from ..model import JobSpec
from ..params import PARAMS
from ..records import TERMINAL_STATES, AttemptRecord, RunRecord, RunState
from .conditions import Conditions
from .ids import derived_id
from .requests import requested_option
from .slots import Slots
from .status import JobOutcomes
from .timer import RETRY, Timer

__all__ = ["CRASHED", "HISTORY_DEPTH", "Leftovers", "Recovery", "Takeover", "replacement_run"]

CRASHED = "the daemon stopped unexpectedly during the run"
"""The reason recorded on a run the previous daemon left running."""
HISTORY_DEPTH = 20
"""Finished runs read per job at start (conditions and ``status`` need only the latest)."""
JOB_REMOVED = "job removed from the config"


@dataclass
class Leftovers:
    """Unfinished runs in storage, oldest first, by state."""

    running: list[tuple[RunRecord, AttemptRecord | None]] = field(default_factory=list)
    """With their latest attempt, if one was stored."""
    retrying: list[RunRecord] = field(default_factory=list)
    queued: list[RunRecord] = field(default_factory=list)
    waiting: list[RunRecord] = field(default_factory=list)


@dataclass
class Takeover:
    """What the engine does with the leftovers, in this order."""

    recover: list[tuple[JobSpec, RunRecord, AttemptRecord]] = field(default_factory=list)
    """Running runs whose executor may reattach or report them (``Executor.recover``)."""
    interrupt: list[tuple[JobSpec | None, RunRecord, AttemptRecord | None]] = field(default_factory=list)
    """Running runs that cannot be recovered: interrupted, replaced per ``recovery:``."""
    enqueue: list[tuple[JobSpec, RunRecord]] = field(default_factory=list)
    hold: list[tuple[JobSpec, RunRecord]] = field(default_factory=list)
    """Waiting runs held again, then decided again."""
    finish: list[tuple[RunRecord, RunState, str]] = field(default_factory=list)
    """Runs of jobs no longer configured: finished with this state and reason."""


class Recovery:
    """Reads back what the engine needs from storage when it starts."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def has_history(self) -> bool:
        """Whether any run ever finished here (False for a new state directory)."""
        return bool(await self._storage.list_runs(states=sorted(TERMINAL_STATES), limit=1))

    async def history(self, name: str) -> list[RunRecord]:
        """The job's latest finished runs, oldest first."""
        runs = await self._storage.list_runs(name, states=sorted(TERMINAL_STATES), limit=HISTORY_DEPTH)
        return list(reversed(runs))

    async def load_history(self, names: Iterable[str], outcomes: JobOutcomes, conditions: Conditions) -> None:
        """Note each job's latest finished runs in ``outcomes`` and ``conditions`` (a run
        finished since start wins over a stored one)."""
        for name in names:
            for run in await self.history(name):
                if outcomes.loaded(run):
                    conditions.note_loaded(run)

    async def load_linked_history(
        self, names: Collection[str], outcomes: JobOutcomes, conditions: Conditions
    ) -> list[str]:
        """``load_history`` of the jobs with dependencies (their conditions need it before
        anything runs); return the other jobs, for ``load_history_slowly`` (none in a new
        state directory)."""
        if not await self.has_history():
            return []
        dag = conditions.dag
        linked = {name for name in names if dag.upstream.get(name) or dag.downstream.get(name)}
        await self.load_history(linked, outcomes, conditions)
        return [name for name in names if name not in linked]

    async def load_history_slowly(
        self, names: list[str], outcomes: JobOutcomes, conditions: Conditions, stopping: Callable[[], bool]
    ) -> None:
        """``load_history`` in the background, yielding now and then so a 10,000-job daemon
        answers meanwhile; jobs that finished a run since start are skipped."""
        for i, name in enumerate(names):
            if stopping():
                return
            if name not in outcomes.last_run:
                await self.load_history([name], outcomes, conditions)
            if i % 100 == 99:
                await asyncio.sleep(0)

    async def leftovers(self) -> Leftovers:
        found = Leftovers()
        for run in await self._storage.list_runs(states=[RunState.RUNNING], limit=None):
            attempts = await self._storage.list_attempts(run.id)
            found.running.append((run, attempts[-1] if attempts else None))
        found.retrying = await self._oldest_first(RunState.RETRYING)
        found.queued = await self._oldest_first(RunState.QUEUED)
        found.waiting = await self._oldest_first(RunState.WAITING)
        return found

    async def _oldest_first(self, state: RunState) -> list[RunRecord]:
        return list(reversed(await self._storage.list_runs(states=[state], limit=None)))


def take_over(
    left: Leftovers,
    jobs: Mapping[str, JobSpec],
    retired: Mapping[str, JobSpec],
    can_recover: Callable[[JobSpec], bool],
    *,
    conditions: Conditions,
    slots: Slots,
    timer: Timer,
    now: float,
) -> Takeover:
    """Note every leftover in the parts that own it (references, held slots, retry times)
    and say what the engine must do with each."""
    plan = Takeover()
    for run, attempt in left.running:
        conditions.note_created(run)
        job = jobs.get(run.job)
        if job is None or attempt is None or not can_recover(job):
            plan.interrupt.append((job, run, attempt))
        else:
            plan.recover.append((job, run, attempt))
    for run in left.retrying:
        conditions.note_created(run)
        slots.hold(run.job)
        timer.push(run.next_attempt_at or now, RETRY, run.id, run)
    for run in left.queued:
        conditions.note_created(run)
        job = jobs.get(run.job) or retired.get(run.job)
        if job is None:
            plan.finish.append((run, RunState.CANCELLED, JOB_REMOVED))
        else:
            plan.enqueue.append((job, run))
    for run in left.waiting:
        conditions.note_created(run)
        job = jobs.get(run.job)
        if job is None:
            plan.finish.append((run, RunState.SKIPPED, JOB_REMOVED))
        else:
            plan.hold.append((job, run))
    return plan


def replacement_run(run: RunRecord, now: float) -> RunRecord:
    """The new run that retries one a crash interrupted (``recovery: retry``). Its id is
    derived from the old one, so a crash while recovering retries it exactly once."""
    return RunRecord(
        id=derived_id(run.id, "recovery"),
        job=run.job,
        trigger=run.trigger,
        trigger_key=run.trigger_key,
        payload=dict(run.payload),
        env=dict(run.env),
        created_at=now,
        scheduled_for=run.scheduled_for,
        parent_run=run.id,
        reason=f"retry of run {run.id}, interrupted by a daemon crash",
        # The parameters go with it: a retry after a crash runs with the values it was given.
        options={"recovery_of": run.id, **requested_option(run.options), **_params_option(run.options)},
    )


def _params_option(options: Mapping[str, Any]) -> dict[str, Any]:
    return {PARAMS: options[PARAMS]} if options.get(PARAMS) is not None else {}
