"""``ScheduleTriggerContract``: what every schedule trigger (cron, interval...) owes the engine's timer."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest

from ..plugin_api import ScheduleTrigger
from ._recorder import EventRecorder, FakeClock

__all__ = ["ScheduleTriggerContract", "ScheduleUnderTest"]

_UTC = timezone.utc
_START = datetime(2026, 1, 1, tzinfo=_UTC)


@dataclass
class ScheduleUnderTest:
    """What a schedule trigger's test supplies to :class:`ScheduleTriggerContract`."""

    cls: type[ScheduleTrigger]
    options: Mapping[str, object] = field(default_factory=dict)
    timezone: str = "UTC"
    """The job's ``timezone``."""
    max_jitter: float = 0.0
    """The jitter ``options`` configure, in seconds: every ``jitter_for`` lies in ``[0, max_jitter)``."""
    last_fire: datetime | None = None
    """For a schedule that ends, a time after which it never fires; ``None``: it never ends."""
    horizon: timedelta = timedelta(days=400)
    """How far ahead of 2026-01-01 the contract asks for fire times."""


class ScheduleTriggerContract:
    """Subclass it as ``Test<Name>ScheduleContract`` and override the ``schedule_under_test`` fixture::

        class TestCronScheduleContract(ScheduleTriggerContract):
            @pytest.fixture
            def schedule_under_test(self) -> ScheduleUnderTest:
                return ScheduleUnderTest(CronTrigger, {"schedule": "0 18 * * 1-5", "jitter": "5m"},
                                         timezone="Europe/Paris", max_jitter=300)

    Every contract in ``firelink_core.testing`` asks for one fixture, ``<subject>_under_test``,
    returning a ``<Subject>UnderTest`` that says what the contract cannot guess. No event
    loop is needed: a schedule only computes times, the engine's timer does the rest.
    """

    samples: int = 200
    """How many instants of the horizon the contract asks about."""

    @pytest.fixture
    def schedule_under_test(self) -> ScheduleUnderTest:
        raise NotImplementedError("override the schedule_under_test fixture")

    def make(self, sut: ScheduleUnderTest, clock: FakeClock | None = None) -> ScheduleTrigger:
        """A trigger of ``sut`` as an engine makes it, with a recording context."""
        recorder = EventRecorder("contract-job", sut.cls.type_name, sut.options, clock=clock)
        recorder.job = dataclasses.replace(recorder.job, timezone=sut.timezone)
        return sut.cls(recorder.spec, recorder)

    def instants(self, sut: ScheduleUnderTest) -> list[datetime]:
        """Fixed pseudo-random instants over the horizon (with microseconds), the same every run."""
        rng = random.Random(f"{sut.cls.__name__}:{sorted(sut.options.items())!r}")
        span = sut.horizon.total_seconds()
        return sorted(_START + timedelta(seconds=rng.uniform(0, span)) for _ in range(self.samples))

    def fires(self, trigger: ScheduleTrigger, sut: ScheduleUnderTest, count: int = 50) -> list[datetime]:
        out: list[datetime] = []
        after: datetime | None = _START
        while after is not None and len(out) < count:
            after = trigger.next_fire(after)
            if after is not None:
                out.append(after)
        return out

    # ------------------------------------------------------------------ the contract
    def test_declares_type_and_described_schema(self, schedule_under_test: ScheduleUnderTest) -> None:
        cls = schedule_under_test.cls
        assert issubclass(cls, ScheduleTrigger)
        assert isinstance(cls.type_name, str) and cls.type_name
        assert cls.config_schema.get("type") == "object"
        for name, prop in cls.config_schema.get("properties", {}).items():
            assert prop.get("description"), f"option {name!r} has no description"
        assert cls.check(schedule_under_test.options) == [], "the contract's options must be valid"

    def test_next_fire_is_strictly_after_and_aware(self, schedule_under_test: ScheduleUnderTest) -> None:
        trigger = self.make(schedule_under_test)
        for after in self.instants(schedule_under_test):
            due = trigger.next_fire(after)
            if due is None:
                continue
            assert due.tzinfo is not None and due.utcoffset() is not None, f"naive fire time after {after}"
            assert due > after, f"next_fire({after}) = {due} is not after it"
            # Asked from a fire time itself, the answer is the next one, never the same.
            following = trigger.next_fire(due)
            assert following is None or following > due

    def test_next_fire_is_pure_and_deterministic(self, schedule_under_test: ScheduleUnderTest) -> None:
        instants = self.instants(schedule_under_test)
        forwards = self.make(schedule_under_test)
        expected = [forwards.next_fire(t) for t in instants]
        # Another instance (a restarted daemon), asked in another order and twice: same answers.
        shuffled = list(enumerate(instants))
        random.Random(7).shuffle(shuffled)
        other = self.make(schedule_under_test)
        for index, after in shuffled:
            assert other.next_fire(after) == expected[index]
            assert other.next_fire(after) == expected[index]
        assert self.fires(forwards, schedule_under_test) == self.fires(other, schedule_under_test)

    def test_none_means_never_again(self, schedule_under_test: ScheduleUnderTest) -> None:
        trigger = self.make(schedule_under_test)
        last = schedule_under_test.last_fire
        if last is None:
            assert all(trigger.next_fire(t) is not None for t in self.instants(schedule_under_test)), (
                "a schedule without last_fire must always have a next fire"
            )
            return
        assert trigger.next_fire(last) is None
        assert trigger.next_fire(last + timedelta(days=3650)) is None
        clock = FakeClock(start=(last + timedelta(seconds=1)).timestamp())
        assert self.make(schedule_under_test, clock).next_due() is None

    def test_jitter_stays_in_bounds_and_is_stable(self, schedule_under_test: ScheduleUnderTest) -> None:
        trigger, again = self.make(schedule_under_test), self.make(schedule_under_test)
        fires = self.fires(trigger, schedule_under_test)
        assert fires, "the schedule never fires within the horizon"
        jitters = [trigger.jitter_for(due) for due in fires]
        assert jitters == [again.jitter_for(due) for due in fires], "jitter must survive restarts"
        bound = schedule_under_test.max_jitter
        if bound == 0:
            assert set(jitters) == {0.0}
        else:
            assert all(0 <= j < bound for j in jitters), f"jitter outside [0, {bound})"
            assert len(set(jitters)) > 1, "every fire got the same delay: nothing is spread"

    def test_event_for_names_the_scheduled_time(self, schedule_under_test: ScheduleUnderTest) -> None:
        trigger = self.make(schedule_under_test)
        for due in self.fires(trigger, schedule_under_test, count=10):
            payload, env = trigger.event_for(due)
            json.dumps(dict(payload))
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
            scheduled = datetime.fromisoformat(str(payload["scheduled_for"]))
            assert scheduled.tzinfo is not None and scheduled == due

    def test_next_due_follows_the_context_clock(self, schedule_under_test: ScheduleUnderTest) -> None:
        now = _START + timedelta(days=3, seconds=17.5)
        trigger = self.make(schedule_under_test, FakeClock(start=now.timestamp()))
        assert trigger.next_due() in (None, trigger.next_fire(now))

    def test_start_and_stop_are_harmless(self, schedule_under_test: ScheduleUnderTest) -> None:
        async def scenario() -> None:
            trigger = self.make(schedule_under_test)
            await trigger.stop()
            await trigger.start()
            await trigger.stop()
            await trigger.stop()

        asyncio.run(asyncio.wait_for(scenario(), 30))
