"""Storage outages: steps that storage failed, retried with a backoff until they go
through, shown on the trigger they serve and counted for metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .components import Triggers
    from .timer import Timer

__all__ = ["RETRY_FIRST", "RETRY_MAX", "STORAGE_UNAVAILABLE", "Outages"]

log = logging.getLogger("firelink.engine")

T = TypeVar("T")

RETRY_FIRST = 0.5
"""Seconds before the first retry of a step storage failed; doubled per failure in a row."""
RETRY_MAX = 15.0
"""The longest wait between two retries of a step."""
STORAGE_UNAVAILABLE = "storage unavailable"
"""How a trigger's degraded health message begins while one of its steps waits for storage."""


class Outages:
    """Steps (a schedule's fire, an event's dispatch, a run's claim or end ...) that storage
    failed and that wait for a retry. No step is dropped: nothing goes silently dead.

    A failed timer or dispatch step goes back on the timer under its own kind and key; the
    engine calls ``went_through`` when it succeeds."""

    def __init__(self, timer: Timer, triggers: Triggers, stopping: Callable[[], bool]) -> None:
        self._timer = timer
        self._triggers = triggers
        self._stopping = stopping
        self.errors = 0
        """Storage failures of engine steps since start (for metrics)."""
        self._failing: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self._failing)

    def __len__(self) -> int:
        return len(self._failing)

    def __contains__(self, step: str) -> bool:
        return step in self._failing

    def _failed(self, step: str, exc: BaseException) -> float:
        """Note one more failure of ``step``; return the delay before its retry."""
        self.errors += 1
        count = self._failing.get(step, 0) + 1
        self._failing[step] = count
        delay = min(RETRY_FIRST * 2 ** (count - 1), RETRY_MAX)
        log.warning("%s failed, retrying in %gs: %s: %s", step, delay, type(exc).__name__, exc)
        log.debug("%s failed", step, exc_info=exc)
        return delay

    def retry_later(self, kind: str, key: str, data: Any, exc: BaseException, trigger_key: str | None) -> None:
        """The timer or dispatch step ``kind``/``key`` failed: put it back on the timer after
        the backoff, and show the outage on the trigger it serves."""
        step = f"{kind}:{key}"
        delay = self._failed(step, exc)
        if trigger_key is not None:
            count = self._failing[step]
            self._triggers.degrade(
                trigger_key,
                f"{STORAGE_UNAVAILABLE} ({count} failure(s) in a row): {type(exc).__name__}: {exc}; retrying in {delay:g}s",
            )
        self._timer.push(self._timer.clock.now() + delay, kind, key, data)

    def went_through(self, kind: str, key: str, trigger_key: str | None) -> None:
        """The step succeeded: if it had failed, the outage is over for its trigger."""
        if self._failing.pop(f"{kind}:{key}", None) is not None:
            log.info("%s %s went through after a storage failure", kind, key)
            if trigger_key is not None:
                self._triggers.undegrade(trigger_key, STORAGE_UNAVAILABLE)

    async def until_stored(self, step: str, write: Callable[[], Awaitable[T]]) -> T:
        """A write that ends a claimed run, retried until storage takes it: an outage never
        leaves the run running (at shutdown it gives up; the next start recovers the run)."""
        while True:
            try:
                result = await write()
            except Exception as exc:  # noqa: BLE001 - shown in the log and metrics, retried
                if self._stopping():
                    raise
                await asyncio.sleep(self._failed(step, exc))
            else:
                self._failing.pop(step, None)
                return result
