"""Schedules against storage: a schedule's fire stored with its last-fire time, and
(re)planning from the stored last fire with catch-up. The timer does the arithmetic."""

from __future__ import annotations

import logging

from ..abc import ScheduleTrigger, Storage
from .contexts import EmitEvent
from .timer import Timer, fire_event, utc

__all__ = ["Schedules"]

log = logging.getLogger("firelink.engine")


class Schedules:
    """Fires and plans the timer's schedules, reading and writing their last fire times."""

    def __init__(self, timer: Timer, storage: Storage, emit: EmitEvent) -> None:
        self._timer = timer
        self._storage = storage
        self._emit = emit

    async def plan(self, key: str, *, plan_from: float | None = None) -> None:
        """(Re)plan one schedule from its stored last fire, emitting missed fires per ``catchup``."""
        timer = self._timer
        if not timer.is_schedule(key):
            return
        last = await self._storage.get_last_fire(key)
        catch_up = timer.catch_up(key, last, timer.clock.now(), plan_from=plan_from)
        for due in catch_up.fire if catch_up.trigger is not None else ():
            await self._emit_fire(catch_up.trigger, due, catchup=True)
        if catch_up.last_fire is not None:
            await self._storage.set_last_fire(key, catch_up.last_fire)

    async def fire(self, key: str, data: tuple[int, float], *, retried: bool = False) -> None:
        """A due schedule entry: store and queue its fire, then plan the next one.

        ``retried``: the fire failed before (storage was down); it is dropped if it is now
        older than the job's ``misfire_grace``, as a fire missed while the daemon was down is."""
        current = self._timer.fire(key, data)
        if current is None:
            return
        trigger, due = current
        grace = trigger.context.job.misfire_grace
        if not (retried and grace is not None and self._timer.clock.now() - due > grace):
            await self._emit_fire(trigger, due, last_fire=True)
        self._timer.plan_next(key, utc(due))

    async def _emit_fire(
        self, trigger: ScheduleTrigger, due: float, *, catchup: bool = False, last_fire: bool = False
    ) -> None:
        payload, env, dedupe_key = fire_event(trigger, due, catchup=catchup)
        await self._emit(
            trigger.spec, payload, env, dedupe_key=dedupe_key, scheduled_for=due,
            last_fire=due if last_fire else None,
        )
