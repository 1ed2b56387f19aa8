"""Recovery: what a previous daemon left in storage (recent history, unfinished runs) and the replacement of runs a crash interrupted."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..abc import Storage
from ..records import TERMINAL_STATES, AttemptRecord, RunRecord, RunState
from .ids import derived_id
from .requests import requested_option

__all__ = ["CRASHED", "HISTORY_DEPTH", "Leftovers", "Recovery", "replacement_run"]

CRASHED = "the daemon stopped unexpectedly during the run"
"""The reason recorded on a run the previous daemon left running."""
HISTORY_DEPTH = 20
"""Finished runs read per job at start (conditions and ``status`` need only the latest)."""


@dataclass
class Leftovers:
    """Unfinished runs in storage, oldest first, by state."""

    running: list[tuple[RunRecord, AttemptRecord | None]] = field(default_factory=list)
    """With their latest attempt, if one was stored."""
    retrying: list[RunRecord] = field(default_factory=list)
    queued: list[RunRecord] = field(default_factory=list)
    waiting: list[RunRecord] = field(default_factory=list)


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
        options={"recovery_of": run.id, **requested_option(run.options)},
    )
