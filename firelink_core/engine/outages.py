"""Storage outages: the steps waiting to be retried because storage failed them, their
backoff, and the counts metrics show. Plain data; the engine retries and reports health."""

from __future__ import annotations

__all__ = ["RETRY_FIRST", "RETRY_MAX", "STORAGE_UNAVAILABLE", "Outages"]

RETRY_FIRST = 0.5
"""Seconds before the first retry of a step storage failed; doubled per failure in a row."""
RETRY_MAX = 15.0
"""The longest wait between two retries of a step."""
STORAGE_UNAVAILABLE = "storage unavailable"
"""How a trigger's degraded health message begins while one of its steps waits for storage."""


class Outages:
    """Steps (a schedule, an event, a run) that storage failed and that wait for a retry."""

    def __init__(self) -> None:
        self.errors = 0
        """Storage failures of engine steps since start (for metrics)."""
        self._failing: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self._failing)

    def __len__(self) -> int:
        return len(self._failing)

    def __contains__(self, step: str) -> bool:
        return step in self._failing

    def failed(self, step: str) -> float:
        """Note one more failure of ``step``; return the delay before its retry."""
        self.errors += 1
        count = self._failing.get(step, 0) + 1
        self._failing[step] = count
        return min(RETRY_FIRST * 2 ** (count - 1), RETRY_MAX)

    def recovered(self, step: str) -> bool:
        """The step went through: return whether it had failed before."""
        return self._failing.pop(step, None) is not None

    def message(self, step: str, exc: BaseException, delay: float) -> str:
        """The degraded-health message of a trigger whose step waits for storage."""
        count = self._failing.get(step, 0)
        return f"{STORAGE_UNAVAILABLE} ({count} failure(s) in a row): {type(exc).__name__}: {exc}; retrying in {delay:g}s"
