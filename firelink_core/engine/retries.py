"""The retry policy: whether a failed attempt is retried, after how long, and how it failed in words."""

from __future__ import annotations

import random

from ..abc import AttemptResult
from ..model import Retries

__all__ = ["describe_result", "retry_delay", "should_retry"]


def describe_result(result: AttemptResult) -> str:
    """How an attempt that did not succeed ended (``exited with code 3``, ``timed out`` ...)."""
    if result.timed_out:
        return "timed out"
    if result.error:
        return f"failed: {result.error}"
    if result.signal is not None:
        return f"killed by signal {result.signal}"
    return f"exited with code {result.exit_code}"


def should_retry(retries: Retries, number: int, result: AttemptResult) -> bool:
    """Whether attempt ``number`` (1 for the first), which did not succeed, gets another attempt."""
    if number > retries.count:
        return False
    if result.timed_out:
        return retries.on_timeout
    if retries.on_exit_codes is not None:
        return result.exit_code is not None and result.exit_code in retries.on_exit_codes
    return True


def retry_delay(retries: Retries, number: int) -> float:
    """Delay before retry ``number`` (1 after the first attempt failed)."""
    delay = retries.delay
    if retries.backoff == "exponential":
        delay = retries.delay * 2 ** (number - 1)
    delay = min(delay, retries.max_delay)
    if retries.jitter:
        delay += random.uniform(0, retries.jitter)
    return delay
