"""Waiters: callers of ``Engine.wait_run`` waiting for a run to reach a terminal state."""

from __future__ import annotations

import asyncio

from ..abc import Storage
from ..records import RunRecord

__all__ = ["RunWaiters"]


class RunWaiters:
    """One future per awaited run, resolved when the run finishes."""

    def __init__(self) -> None:
        self._futures: dict[str, asyncio.Future[RunRecord]] = {}

    async def wait(self, run_id: str, storage: Storage, timeout: float | None) -> RunRecord:
        """Wait until the run is terminal; return it (TimeoutError at the deadline)."""
        future = self._futures.get(run_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._futures[run_id] = future
        run = await storage.get_run(run_id)
        if run is not None and run.finished:
            if not future.done():
                self._futures.pop(run_id, None)
            return run
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"run {run_id} did not finish within {timeout}s") from None

    def finished(self, run: RunRecord) -> None:
        future = self._futures.pop(run.id, None)
        if future is not None and not future.done():
            future.set_result(run)
