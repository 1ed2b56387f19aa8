"""Paused jobs (``firelink pause``, the circuit breaker): which jobs are paused, why and
since when, and the events held for them until they are resumed. Plain data: the engine
reads the pauses from storage at start and writes each change through to storage first."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..events import TriggerEvent
from ..records import PauseRecord

__all__ = ["FORCE", "BREAKER", "USER", "Pauses", "is_forced", "skip_reason"]

FORCE = "force"
"""Key of the flag in an event's ``options``: a request run with ``--force`` runs although its job is paused."""
USER = "user"
"""A pause made by ``firelink pause``."""
BREAKER = "breaker"
"""A pause made by the circuit breaker (``pause_after_failures``)."""


def is_forced(options: Mapping[str, Any]) -> bool:
    return bool(options.get(FORCE))


def skip_reason(pause: PauseRecord) -> str:
    """Why a fire of a paused job is skipped: ``circuit open: 3 consecutive failures`` or ``paused: <reason>``."""
    if pause.by == BREAKER:
        return f"circuit open: {pause.reason}"
    return f"paused: {pause.reason}" if pause.reason else "paused"


class Pauses:
    """The paused jobs by name, and the events waiting for each one's resume, oldest first."""

    def __init__(self) -> None:
        self._pauses: dict[str, PauseRecord] = {}
        self._held: dict[str, list[TriggerEvent]] = {}

    def load(self, pauses: Iterable[PauseRecord]) -> None:
        """The pauses read from storage at start."""
        self._pauses = {pause.job: pause for pause in pauses}

    def get(self, job: str) -> PauseRecord | None:
        return self._pauses.get(job)

    def __contains__(self, job: object) -> bool:
        return job in self._pauses

    def paused(self, pause: PauseRecord) -> None:
        """Note a pause storage has stored."""
        self._pauses[pause.job] = pause

    def resumed(self, job: str) -> list[TriggerEvent]:
        """Note a resume storage has stored; return the events held meanwhile, oldest first."""
        self._pauses.pop(job, None)
        return self._held.pop(job, [])

    def release(self, job: str) -> list[TriggerEvent]:
        """The events held for ``job``, handed back without resuming it (its job was removed)."""
        return self._held.pop(job, [])

    def hold(self, event: TriggerEvent) -> bool:
        """Keep an event of a paused job until its resume (it stays pending in storage);
        False if it was held already (dispatched again after a storage failure)."""
        held = self._held.setdefault(event.job, [])
        if any(e.id == event.id for e in held):
            return False
        held.append(event)
        return True

    def skipping(self, job: str) -> str | None:
        """Why the job's schedule fires are skipped now, None while it is not paused."""
        pause = self._pauses.get(job)
        return skip_reason(pause) if pause is not None else None

    def held(self, job: str) -> int:
        """How many events wait for the job's resume."""
        return len(self._held.get(job, ()))
