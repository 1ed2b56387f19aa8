"""The timer: one heap of due times (schedule fires, retries, wait timeouts), schedule
planning and catch-up, and the loop's sleep with clock-jump detection. Plain data and
arithmetic; the engine does the storage reads and writes the timer's answers call for."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .._clock import SystemClock
from ..abc import Clock, ScheduleTrigger

__all__ = [
    "CATCHUP_ALL_LIMIT",
    "CATCHUP_MERGE",
    "CATCHUP_SCAN_LIMIT",
    "DISPATCH",
    "FOLLOW_UP",
    "JUMP_TOLERANCE",
    "MAX_SLEEP",
    "REPLAN",
    "RETRY",
    "SCHEDULE",
    "WAIT_TIMEOUT",
    "CatchUp",
    "Timer",
    "fire_event",
    "utc",
]

log = logging.getLogger("firelink.engine")

MAX_SLEEP = 3900.0
"""The longest single sleep of the timer (65 minutes). The event loop sleeps on the
monotonic clock, which stands still during a suspend and ignores wall-clock steps; waking
at least this often bounds how late a schedule can fire after either, while an idle
daemon with nothing due within the hour still sleeps through the whole hour."""
JUMP_TOLERANCE = 2.0
"""Wall-clock progress differing from monotonic progress by more than this (seconds) is a
clock step or a suspend: schedules are recomputed from the wall clock."""
CATCHUP_SCAN_LIMIT = 100_000
"""Missed fires examined per schedule after downtime (``catchup: all`` keeps the newest 1000)."""
CATCHUP_ALL_LIMIT = 1000
CATCHUP_MERGE = 0.1
"""The latest missed fire is not caught up when the next regular fire is due within this
share of the gap between the two (a restart right after a stop: one run, not two back to back)."""

SCHEDULE = "schedule"
"""A schedule's fire is due; data: ``(generation, due)``."""
RETRY = "retry"
"""A retrying run's next attempt is due; data: the run."""
WAIT_TIMEOUT = "wait_timeout"
"""A waiting run's ``wait_timeout`` passed; data: the job name."""
REPLAN = "replan"
"""A schedule storage failed to plan is planned again (with catch-up); data: None."""
DISPATCH = "dispatch"
"""An event storage failed to turn into a run is dispatched again; data: the event."""
FOLLOW_UP = "follow_up"
"""An upstream finish whose follow-up storage failed is followed up again; data:
``(finished run, follower run ids)``."""


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def fire_event(trigger: ScheduleTrigger, due: float, *, catchup: bool = False) -> tuple[dict[str, Any], Mapping[str, str], str]:
    """The payload, env and dedupe key of a schedule's fire at ``due``.

    The dedupe key makes a fire stored just before a crash not fire again on restart."""
    payload, env = trigger.event_for(utc(due))
    payload = dict(payload)
    if catchup:
        payload["catchup"] = True
    return payload, env, f"fire:{due!r}"


@dataclass
class _Schedule:
    trigger: ScheduleTrigger
    generation: int
    next_due: datetime | None = None


@dataclass
class CatchUp:
    """What re-planning a schedule asks of the engine: emit the missed fires ``fire`` of
    ``trigger`` (oldest first, as catch-up fires), then store ``last_fire`` as its last fire time."""

    trigger: ScheduleTrigger | None
    fire: list[float]
    last_fire: float | None
    missed: int = 0
    """Fires found missed within ``misfire_grace`` (more than ``fire`` holds under ``catchup: latest``/``skip``)."""
    past_grace: bool = False
    """Whether fires older than ``misfire_grace`` were missed too (never emitted)."""


class Timer:
    """Due times in one heap; schedules planned from the wall clock with a generation, so
    an entry planned before a re-plan is ignored when it comes due."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.wake = asyncio.Event()
        """Set to end the loop's sleep early (new events, new due times, shutdown)."""
        self.wakeups = 0
        """How many times the loop's sleep ended (for the idle benchmark)."""
        self.sleeping_until: float | None = None
        """While the loop sleeps: the wall time it will wake at (None while busy)."""
        self._heap: list[tuple[float, int, str, str, Any]] = []  # (when, seq, kind, key, data)
        self._seq = 0
        self._schedules: dict[str, _Schedule] = {}
        self._generation = 0
        self._last_wall = 0.0
        self._last_mono = 0.0

    # ------------------------------------------------------------------ the heap
    def push(self, when: float, kind: str, key: str, data: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, kind, key, data))
        self.wake.set()

    def due(self, now: float, limit: int) -> Iterator[tuple[str, str, Any]]:
        """Pop up to ``limit`` entries due at ``now``, earliest first, as ``(kind, key, data)``."""
        heap = self._heap
        count = 0
        while heap and heap[0][0] <= now and count < limit:
            _when, _seq, kind, key, data = heapq.heappop(heap)
            count += 1
            yield kind, key, data

    # ------------------------------------------------------------------ schedules
    def add_schedule(self, key: str, trigger: ScheduleTrigger) -> None:
        self._generation += 1
        self._schedules[key] = _Schedule(trigger, self._generation)

    def remove_schedule(self, key: str) -> None:
        self._schedules.pop(key, None)

    def is_schedule(self, key: str) -> bool:
        return key in self._schedules

    def schedule_keys(self) -> list[str]:
        return list(self._schedules)

    def next_due(self, key: str) -> datetime | None:
        sched = self._schedules.get(key)
        return sched.next_due if sched is not None else None

    def plan_next(self, key: str, after: datetime) -> None:
        """Push the schedule's first fire after ``after`` (with its jitter)."""
        sched = self._schedules.get(key)
        if sched is None:
            return
        try:
            nxt = sched.trigger.next_fire(after)
            jitter = max(sched.trigger.jitter_for(nxt), 0.0) if nxt is not None else 0.0
        except Exception as exc:  # noqa: BLE001 - a plugin's schedule bug stops that schedule only
            log.exception("schedule %s cannot compute its next fire", key)
            sched.trigger.context.set_health("degraded", f"cannot compute the next fire: {exc}")
            sched.next_due = None
            return
        sched.next_due = nxt
        if nxt is None:
            return
        due = nxt.timestamp()
        self.push(due + jitter, SCHEDULE, key, (sched.generation, due))

    def fire(self, key: str, data: tuple[int, float]) -> tuple[ScheduleTrigger, float] | None:
        """A due ``SCHEDULE`` entry: its trigger and fire time, or None if planned before a re-plan."""
        generation, due = data
        sched = self._schedules.get(key)
        if sched is None or sched.generation != generation:
            return None
        return sched.trigger, due

    def catch_up(self, key: str, last: float | None, now: float, *, plan_from: float | None = None) -> CatchUp:
        """(Re)plan one schedule from the wall clock given its stored last fire ``last``: plan
        the next fire, and say which missed fires to emit per the job's ``catchup``.

        ``plan_from``: for a schedule never fired, plan from this time instead of now."""
        sched = self._schedules.get(key)
        if sched is None:
            return CatchUp(None, [], None)
        self._generation += 1
        sched.generation = self._generation
        job = sched.trigger.context.job
        if last is None and sched.next_due is not None:
            # Planned but not fired yet (a clock step before the first fire): the planned
            # fire counts as missed if the clock is past it.
            last = sched.next_due.timestamp() - 1e-3
        if last is None:
            self.plan_next(key, utc(now if plan_from is None else min(plan_from, now)))
            return CatchUp(sched.trigger, [], None)
        start = last
        past_grace = False
        if job.misfire_grace is not None and now - job.misfire_grace > last:
            start = now - job.misfire_grace
            with contextlib.suppress(Exception):  # a schedule bug is reported by plan_next below
                first = sched.trigger.next_fire(utc(last))
                past_grace = first is not None and first.timestamp() <= start
        missed: deque[float] = deque(maxlen=CATCHUP_ALL_LIMIT if job.catchup == "all" else 1)
        scanned = 0
        try:
            t = sched.trigger.next_fire(utc(start))
            while t is not None and t.timestamp() <= now and scanned < CATCHUP_SCAN_LIMIT:
                missed.append(t.timestamp())
                t = sched.trigger.next_fire(t)
                scanned += 1
        except Exception:  # noqa: BLE001 - reported by plan_next below
            missed.clear()
        result = CatchUp(sched.trigger, [], None, missed=scanned if missed else 0, past_grace=past_grace)
        if missed:
            fires = list(missed) if job.catchup != "skip" else []
            regular = t.timestamp() if t is not None and t.timestamp() > now else None
            if fires and regular is not None and regular - now <= CATCHUP_MERGE * (regular - fires[-1]):
                # The next regular fire is about to come: it stands for the latest missed one,
                # rather than a catch-up fire now and the regular one right after it.
                log.info("%s: the missed fire is not caught up: the next fire is due in %.3gs", key, regular - now)
                fires.pop()
            if fires:
                log.info("%s: catching up %d missed fire(s) (catchup: %s)", key, len(fires), job.catchup)
                result.fire = fires
            result.last_fire = last = missed[-1]
        elif past_grace:
            result.last_fire = last = start  # those fires are not reported again at the next start
        self.plan_next(key, utc(max(now, last)))
        return result

    # ------------------------------------------------------------------ sleeping
    def reset_clock_reference(self) -> None:
        """Measure clock jumps from now on."""
        self._last_wall, self._last_mono = self.clock.now(), self.clock.monotonic()

    async def sleep_until_due(self) -> bool:
        """Sleep until the earliest entry is due (at most ``MAX_SLEEP``) or ``wake`` is set;
        return whether the wall clock jumped meanwhile (schedules then need re-planning)."""
        delay = MAX_SLEEP
        if self._heap:
            delay = min(max(self._heap[0][0] - self.clock.now(), 0.0), MAX_SLEEP)
        self.sleeping_until = self.clock.now() + delay
        try:
            await self.sleep(delay)
        finally:
            self.sleeping_until = None
        self.wakeups += 1
        wall, mono = self.clock.now(), self.clock.monotonic()
        drift = (wall - self._last_wall) - (mono - self._last_mono)
        self._last_wall, self._last_mono = wall, mono
        if abs(drift) > JUMP_TOLERANCE:
            log.warning("wall clock moved %+.0fs against the monotonic clock: recomputing schedules", drift)
            return True
        return False

    async def sleep(self, delay: float) -> None:
        """Sleep ``delay`` seconds of the clock's time, or until ``wake`` is set."""
        if isinstance(self.clock, SystemClock):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), delay)
            return
        sleeper = asyncio.ensure_future(self.clock.sleep(delay))
        waker = asyncio.ensure_future(self.wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
