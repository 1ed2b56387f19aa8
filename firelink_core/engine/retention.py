"""Retention: when to prune a job's old runs (``log.keep_runs``, ``log.keep_days``), and the pruning itself."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from ..abc import Storage
from ..model import JobSpec

__all__ = ["PRUNE_INTERVAL", "Retention", "prune"]

PRUNE_INTERVAL = 60.0
"""Retention runs at most once per this many seconds per job (the first time a minute after start)."""


class Retention:
    """Counts finishes per job and says when a prune is due."""

    def __init__(self) -> None:
        self._last_prune: dict[str, float] = {}
        self._finished_since_prune: dict[str, int] = {}

    def due(self, job: JobSpec, now: float, started_at: float | None) -> bool:
        """Note one finished run of ``job``; return whether to prune it now.

        The first prune of a job comes a minute after start, not on its first finish:
        thousands of jobs finishing together after a start must not each pay a prune.
        A busy job is also pruned every ``keep_runs`` finishes, so it never holds more than
        twice its retention however fast it runs."""
        policy = job.log
        if policy.keep_runs is None and policy.keep_days is None:
            return False
        finished = self._finished_since_prune[job.name] = self._finished_since_prune.get(job.name, 0) + 1
        last = self._last_prune.get(job.name, started_at or now)
        due_by_count = policy.keep_runs is not None and finished >= max(policy.keep_runs, 1)
        if now - last < PRUNE_INTERVAL and not due_by_count:
            return False
        self._last_prune[job.name] = now
        self._finished_since_prune[job.name] = 0
        return True


async def prune(storage: Storage, job: JobSpec, now: float) -> None:
    """Delete the job's runs beyond its retention, and their log files."""
    keep_days = job.log.keep_days
    older_than = now - keep_days * 86400 if keep_days is not None else None
    paths = await storage.prune_runs(job.name, keep_last=job.log.keep_runs, older_than=older_than)
    if paths:
        await asyncio.to_thread(_unlink_all, paths)


def _unlink_all(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            Path(path).unlink()
