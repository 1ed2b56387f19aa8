"""The circuit breaker (``pause_after_failures: N``): consecutive failed runs per job, and
when they trip the breaker. The counts are stored as checkpoints so a restart keeps them;
the engine does the reads and writes."""

from __future__ import annotations

from collections.abc import Iterable

from ..model import JobSpec
from ..records import RunRecord, RunState

__all__ = ["CHECKPOINT_NAMESPACE", "FAILED_STATES", "Breaker", "trip_reason"]

CHECKPOINT_NAMESPACE = "firelink:breaker"
"""Checkpoint namespace of the counts: one key per job, the count as the value."""
FAILED_STATES = frozenset({RunState.FAILED, RunState.TIMED_OUT})
"""Run ends that count as a failure; a success resets the count, other ends leave it."""


def trip_reason(limit: int) -> str:
    """The pause reason of a tripped breaker: ``3 consecutive failures``."""
    return f"{limit} consecutive failure{'s' if limit != 1 else ''}"


class Breaker:
    """Consecutive failed runs of the jobs that set ``pause_after_failures``."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def load(self, counts: Iterable[tuple[str, int]]) -> None:
        """The counts read from storage at start."""
        self._counts.update((job, count) for job, count in counts if count)

    def count(self, job: str) -> int:
        return self._counts.get(job, 0)

    def finished(self, job: JobSpec | None, run: RunRecord) -> tuple[int, bool] | None:
        """Note a run's end; return ``(new count, tripped)`` when the count changed (it is
        then written to storage), ``None`` otherwise. ``tripped``: the count reached the limit."""
        limit = job.pause_after_failures if job is not None else None
        if limit is None:
            return None
        before = self._counts.get(run.job, 0)
        if run.state in FAILED_STATES:
            after = before + 1
        elif run.state is RunState.SUCCESS:
            after = 0
        else:
            return None
        if after == before:
            return None
        self._counts[run.job] = after
        return after, after >= limit

    def reset(self, job: str) -> bool:
        """Forget the job's failures (``firelink resume``); whether there were any."""
        return self._counts.pop(job, 0) > 0
