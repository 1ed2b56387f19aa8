"""Schedules against storage: a schedule's fire stored with its last-fire time, and
(re)planning from the stored last fire with catch-up. The timer does the arithmetic."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..abc import ScheduleTrigger, Storage
from ..durations import format_duration
from ..records import DecisionRecord
from .contexts import EmitEvent
from .timer import CatchUp, Timer, fire_event, utc

__all__ = ["Schedules"]

log = logging.getLogger("firelink.engine")


class Schedules:
    """Fires and plans the timer's schedules, reading and writing their last fire times."""

    def __init__(
        self,
        timer: Timer,
        storage: Storage,
        emit: EmitEvent,
        *,
        skipping: Callable[[str], str | None] = lambda job: None,
        note: Callable[[DecisionRecord], None] = lambda decision: None,
    ) -> None:
        """``skipping(job)``: why the job's fires are skipped now (it is paused), or None;
        ``note``: where each fire skipped here is recorded (``firelink explain``)."""
        self._timer = timer
        self._storage = storage
        self._emit = emit
        self._skipping = skipping
        self._note = note

    async def plan(self, key: str, *, plan_from: float | None = None) -> None:
        """(Re)plan one schedule from its stored last fire, emitting missed fires per ``catchup``."""
        timer = self._timer
        if not timer.is_schedule(key):
            return
        last = await self._storage.get_last_fire(key)
        await self._catch_up(key, last, plan_from=plan_from)

    async def catch_up_since(self, key: str, since: float) -> int:
        """Emit the fires missed since ``since`` per the job's ``catchup`` (a job resumed with
        ``--catch-up``: the fires skipped while it was paused); return how many."""
        if not self._timer.is_schedule(key):
            return 0
        return await self._catch_up(key, since)

    async def _catch_up(self, key: str, last: float | None, *, plan_from: float | None = None) -> int:
        timer = self._timer
        catch_up = timer.catch_up(key, last, timer.clock.now(), plan_from=plan_from)
        if catch_up.trigger is not None:
            self._missed(catch_up)
        fired = 0
        for due in catch_up.fire if catch_up.trigger is not None else ():
            if not self._skipped(catch_up.trigger, due):
                await self._emit_fire(catch_up.trigger, due, catchup=True)
                fired += 1
        if catch_up.last_fire is not None and (last is None or catch_up.last_fire > last):
            await self._storage.set_last_fire(key, catch_up.last_fire)
        return fired

    async def fire(self, key: str, data: tuple[int, float], *, retried: bool = False) -> None:
        """A due schedule entry: store and queue its fire, then plan the next one.

        ``retried``: the fire failed before (storage was down); it is dropped if it is now
        older than the job's ``misfire_grace``, as a fire missed while the daemon was down is."""
        current = self._timer.fire(key, data)
        if current is None:
            return
        trigger, due = current
        grace = trigger.context.job.misfire_grace
        if retried and grace is not None and self._timer.clock.now() - due > grace:
            self._record(trigger, due, f"past misfire_grace ({format_duration(grace)})")
        elif self._skipped(trigger, due):
            await self._storage.set_last_fire(key, due)  # a restart does not catch it up
        else:
            await self._emit_fire(trigger, due, last_fire=True)
        self._timer.plan_next(key, utc(due))

    def _missed(self, catch_up: CatchUp) -> None:
        """Record the missed fires ``catchup`` and ``misfire_grace`` leave out (``firelink explain``)."""
        trigger = catch_up.trigger
        assert trigger is not None
        job = trigger.context.job
        if catch_up.past_grace and job.misfire_grace is not None:
            self._record(trigger, None, f"missed fires past misfire_grace ({format_duration(job.misfire_grace)})")
        left = catch_up.missed - len(catch_up.fire)
        if left > 0:
            self._record(trigger, None, f"{left} missed fire(s) not run (catchup: {job.catchup})")

    def _skipped(self, trigger: ScheduleTrigger, due: float) -> bool:
        """Whether the fire is skipped because its job is paused (and record it if so)."""
        reason = self._skipping(trigger.spec.job)
        if reason is None:
            return False
        self._record(trigger, due, reason)
        return True

    def _record(self, trigger: ScheduleTrigger, due: float | None, reason: str) -> None:
        self._note(DecisionRecord(
            job=trigger.spec.job, at=self._timer.clock.now(), outcome="skipped", reason=reason,
            trigger=trigger.spec.type, scheduled_for=due,
        ))

    async def _emit_fire(
        self, trigger: ScheduleTrigger, due: float, *, catchup: bool = False, last_fire: bool = False
    ) -> None:
        payload, env, dedupe_key = fire_event(trigger, due, catchup=catchup)
        await self._emit(
            trigger.spec, payload, env, dedupe_key=dedupe_key, scheduled_for=due,
            last_fire=due if last_fire else None,
        )
