"""The real clock: wall time from ``time.time``, sleeping on the event loop's monotonic clock."""

from __future__ import annotations

import asyncio
import time

from .abc import Clock

__all__ = ["SystemClock"]


class SystemClock(Clock):
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
