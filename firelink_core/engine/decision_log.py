"""The engine's decisions on their way to storage (``firelink explain``): noted as they are
made, written by one storage call a moment later, and read back. A failed write keeps
them for the next one: decisions never fail the engine."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..abc import Storage
from ..records import DecisionRecord
from .decisions import FLUSH_DELAY, KEEP_DECISIONS, Decisions

__all__ = ["DecisionLog"]

log = logging.getLogger("firelink.engine")


class DecisionLog:
    """The decisions noted and not yet written, and the background write that takes them.

    ``storage`` answers the engine's storage (made when first needed); ``stopping`` says
    whether the engine is stopping: from then on a note starts no background write, the
    engine's last ``flush(wait=False)`` takes them all."""

    def __init__(self, storage: Callable[[], Storage], stopping: Callable[[], bool]) -> None:
        self._storage = storage
        self._stopping = stopping
        self._pending = Decisions()
        self._flush: asyncio.Task[None] | None = None

    def note(self, decision: DecisionRecord) -> None:
        """Note a decision; a background write takes it with the others of the next moment."""
        self._pending.note(decision)
        if not self._stopping() and (self._flush is None or self._flush.done()):
            self._flush = asyncio.get_running_loop().create_task(self.flush())

    async def flush(self, *, wait: bool = True) -> None:
        """Write the decisions noted so far in one call (after ``FLUSH_DELAY`` when ``wait``;
        without, a delayed write under way is cancelled: this one takes its batch)."""
        if wait:
            await asyncio.sleep(FLUSH_DELAY)
        else:
            task = self._flush
            if task is not None and task is not asyncio.current_task() and not task.done():
                task.cancel()
        # Shielded: cancelling a delayed flush (explain, stop) never loses a batch mid-write.
        await asyncio.shield(self._write())

    async def _write(self) -> None:
        batch = self._pending.take()
        if not batch:
            return
        try:
            await self._storage().add_decisions(batch, keep_last=KEEP_DECISIONS)
        except Exception as exc:  # noqa: BLE001 - diagnostics only: kept for the next write
            log.warning("could not record %d engine decision(s): %s", len(batch), exc)
            self._pending.put_back(batch)

    async def read(self, job: str, limit: int) -> list[DecisionRecord]:
        """The job's newest ``limit`` decisions, newest first, everything noted so far written
        first (for ``Engine.explain``)."""
        await self.flush(wait=False)
        return await self._storage().list_decisions(job, limit=limit)
