"""Pausing and resuming jobs (``firelink pause``, ``firelink resume``, the circuit breaker
tripping): each change written through to storage, recorded as a decision and applied to
the ``Pauses`` and the ``Breaker``; the events of a paused job held or skipped."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..abc import Clock, ScheduleTrigger, Storage, Trigger
from ..events import RunEvent, RunTripped, TriggerEvent
from ..model import JobSpec
from ..records import DecisionRecord, PauseRecord, RunRecord
from .breaker import CHECKPOINT_NAMESPACE as BREAKER_COUNTS
from .breaker import Breaker, trip_reason
from .decisions import of_event
from .pauses import BREAKER, USER, Pauses, skip_reason
from .schedules import Schedules

__all__ = ["PauseControl"]

log = logging.getLogger("firelink.engine")


class PauseControl:
    """The operations on paused jobs, over the ``Pauses`` and ``Breaker`` parts.

    ``note`` records a decision, ``run_event`` sends a run event, ``release`` queues an
    event again for dispatch and ``wake`` wakes the engine's loop; ``trigger_classes``
    answers the registered trigger classes by type; ``started_at`` is the engine's start."""

    def __init__(
        self,
        *,
        storage: Storage,
        clock: Clock,
        pauses: Pauses,
        breaker: Breaker,
        schedules: Schedules,
        trigger_classes: Callable[[], Mapping[str, type[Trigger]]],
        note: Callable[[DecisionRecord], None],
        run_event: Callable[[RunEvent], None],
        release: Callable[[TriggerEvent], None],
        wake: Callable[[], None],
        started_at: float,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._pauses = pauses
        self._breaker = breaker
        self._schedules = schedules
        self._trigger_classes = trigger_classes
        self._note = note
        self._run_event = run_event
        self._release = release
        self._wake = wake
        self._started_at = started_at

    async def load(self, jobs: Iterable[JobSpec]) -> None:
        """The stored pauses and breaker counts, before any stored event is dispatched."""
        self._pauses.load(await self._storage.list_pauses())
        counts = [
            (job.name, int(await self._storage.get_checkpoint(BREAKER_COUNTS, job.name) or 0))
            for job in jobs
            if job.pause_after_failures is not None
        ]
        self._breaker.load(counts)

    async def pause(
        self, names: Iterable[str], reason: str | None
    ) -> list[tuple[PauseRecord, bool]]:
        """``Engine.pause`` of known jobs: each job's pause and whether this call made it."""
        out = []
        for name in names:
            pause = self._pauses.get(name)
            if pause is not None:
                out.append((pause, False))
                continue
            pause = PauseRecord(job=name, since=self._clock.now(), reason=reason, by=USER)
            await self._storage.set_pause(pause)
            self._pauses.paused(pause)
            self._note(DecisionRecord(job=name, at=pause.since, outcome="paused", reason=reason))
            log.info("job %s paused%s", name, f": {reason}" if reason else "")
            out.append((pause, True))
        return out

    async def resume(self, jobs: Iterable[JobSpec], *, catch_up: bool) -> list[dict[str, Any]]:
        """``Engine.resume`` of known jobs: held events queued again, the breaker's count
        reset, with ``catch_up`` the fires skipped during the pause caught up."""
        out = []
        for job in jobs:
            name = job.name
            if self._breaker.reset(name):
                await self._storage.set_checkpoint(BREAKER_COUNTS, name, 0)
            pause = await self._storage.clear_pause(name) or self._pauses.get(name)
            held = self._pauses.resumed(name)
            if pause is None:
                out.append({"job": name, "resumed": False})
                continue
            for event in held:
                self._release(event)
            caught = 0
            if catch_up:
                for spec in job.triggers:
                    caught += await self._schedules.catch_up_since(spec.key, pause.since)
            detail = f"{len(held)} held event(s) released" + (
                f", {caught} fire(s) caught up" if catch_up else ""
            )
            self._note(
                DecisionRecord(job=name, at=self._clock.now(), outcome="resumed", reason=detail)
            )
            log.info("job %s resumed: %s", name, detail)
            out.append(
                {
                    "job": name,
                    "resumed": True,
                    "paused_since": pause.since,
                    "reason": pause.reason,
                    "by": pause.by,
                    "released": len(held),
                    "caught_up": caught,
                }
            )
        self._wake()
        return out

    async def paused_event(self, event: TriggerEvent) -> None:
        """An event of a paused job: a schedule's fire is skipped (and recorded), any other
        event is held, still pending in storage, until the job is resumed."""
        pause = self._pauses.get(event.job)
        reason = skip_reason(pause) if pause is not None else "paused"
        cls = self._trigger_classes().get(event.trigger)
        fire = (
            isinstance(cls, type)
            and issubclass(cls, ScheduleTrigger)
            and str(event.dedupe_key).startswith("fire:")
        )
        if fire:
            await self._storage.drop_event(event.id)
            self._note(of_event(event, self._clock.now(), "skipped", reason))
        elif self._pauses.hold(event) and event.created_at >= self._started_at:
            # (an event stored before this start was held, and recorded, by the previous daemon)
            self._note(of_event(event, self._clock.now(), "held", f"{reason}; runs after resume"))

    async def count_failures(
        self, job: JobSpec | None, run: RunRecord, count: int, tripped: bool
    ) -> None:
        """Store the job's consecutive failures; at ``pause_after_failures``, pause the job
        (the breaker opens) and send the ``tripped`` run event."""
        limit = job.pause_after_failures if job is not None else None
        if tripped and limit is not None and run.job not in self._pauses:
            reason = trip_reason(limit)
            pause = PauseRecord(job=run.job, since=self._clock.now(), reason=reason, by=BREAKER)
            # first: a failure finishing meanwhile does not trip it twice
            self._pauses.paused(pause)
            await self._storage.set_pause(pause)
            log.warning(
                "job %s paused by its circuit breaker after %s; `firelink resume %s` resumes it",
                run.job,
                reason,
                run.job,
            )
            self._note(
                DecisionRecord(
                    job=run.job, at=pause.since, outcome="tripped", reason=reason, run_id=run.id
                )
            )
            why = f"paused after {reason}: `firelink resume {run.job}` resumes it"
            self._run_event(RunTripped(run=dataclasses.replace(run, reason=why), detail=why))
        await self._storage.set_checkpoint(BREAKER_COUNTS, run.job, count)
