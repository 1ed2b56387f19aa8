"""The engine's exceptions, importable without loading the engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..records import PauseRecord

__all__ = ["EngineError", "JobPaused"]


class EngineError(Exception):
    """The engine cannot start with this config and these plugins (a missing component type)."""


class JobPaused(EngineError):
    """A run asked for by hand of a paused job, without ``force``."""

    def __init__(self, pause: PauseRecord) -> None:
        why = f" ({pause.reason})" if pause.reason else ""
        what = "paused by its circuit breaker" if pause.by == "breaker" else "paused"
        super().__init__(
            f"job {pause.job!r} is {what}{why}: resume it with `firelink resume {pause.job}`"
            f" or run it anyway with `firelink trigger {pause.job} --force`"
        )
        self.pause = pause
