"""Waiting on conditions with deadlines (never bare sleeps)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

__all__ = ["wait_for", "async_wait_for"]


def wait_for(
    condition: Callable[[], T], timeout: float = 10.0, *, interval: float = 0.02, message: str = ""
) -> T:
    """Call ``condition`` until it returns something truthy; return that, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {message or condition!r}")
        time.sleep(interval)


async def async_wait_for(
    condition: Callable[[], T | Awaitable[T]],
    timeout: float = 10.0,
    *,
    interval: float = 0.02,
    message: str = "",
) -> T:
    """The async twin of :func:`wait_for`; ``condition`` may be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {message or condition!r}")
        await asyncio.sleep(interval)
