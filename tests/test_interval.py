"""The interval trigger: an anchored cadence that restarts agree on."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from firelink_core.builtin.interval import IntervalTrigger
from firelink_core.plugins import make_plugins
from firelink_core.testing import EventRecorder, ScheduleTriggerContract, ScheduleUnderTest

UTC = timezone.utc


def interval(tz: str = "UTC", **options) -> IntervalTrigger:
    rec = EventRecorder("job", "interval", options)
    rec.job = dataclasses.replace(rec.job, timezone=tz)
    return IntervalTrigger(rec.spec, rec)


def fires(trigger: IntervalTrigger, after: datetime, count: int) -> list[datetime]:
    out = []
    for _ in range(count):
        after = trigger.next_fire(after)
        out.append(after)
    return out


def test_registered_as_a_builtin():
    assert make_plugins().triggers()["interval"] is IntervalTrigger


def test_default_anchor_gives_round_utc_times():
    got = fires(interval(every="15m"), datetime(2026, 1, 1, 10, 7, 3, tzinfo=UTC), 3)
    assert got == [datetime(2026, 1, 1, 10, m, tzinfo=UTC) for m in (15, 30, 45)]
    # a fire time itself is not repeated: strictly after
    assert interval(every="15m").next_fire(got[0]) == got[1]


def test_restarts_keep_the_cadence():
    start = datetime(2026, 6, 1, 12, 0, 1, tzinfo=UTC)
    before = fires(interval(every="7m13s"), start, 50)
    # a fresh instance (a restarted daemon) asked from any point agrees with the old one
    for i in (0, 17, 48):
        midway = before[i] + timedelta(seconds=1)
        assert fires(interval(every="7m13s"), midway, 1) == [before[i + 1]]
    assert {b - a for a, b in zip(before, before[1:], strict=False)} == {timedelta(minutes=7, seconds=13)}


def test_start_at_anchors_and_nothing_fires_before_it():
    trigger = interval(every="1h", start_at="2026-03-01T09:30:00+01:00")
    assert trigger.next_fire(datetime(2026, 1, 1, tzinfo=UTC)) == datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    assert fires(trigger, datetime(2026, 3, 2, 8, 45, tzinfo=UTC), 2) == [
        datetime(2026, 3, 2, 9, 30, tzinfo=UTC), datetime(2026, 3, 2, 10, 30, tzinfo=UTC),
    ]


def test_start_at_without_offset_is_read_in_the_jobs_zone():
    trigger = interval("Europe/Berlin", every="1d", start_at="2026-07-01T06:00:00")
    assert trigger.next_fire(datetime(2026, 1, 1, tzinfo=UTC)) == datetime(2026, 7, 1, 4, tzinfo=UTC)


def test_interval_is_real_time_across_dst():
    # 24 real hours, so 06:00 CEST becomes 05:00 CET after the October change
    trigger = interval("Europe/Berlin", every="24h", start_at="2026-10-24T06:00:00")
    got = fires(trigger, datetime(2026, 10, 24, 6, tzinfo=ZoneInfo("Europe/Berlin")), 2)
    assert [t.astimezone(ZoneInfo("Europe/Berlin")).hour for t in got] == [5, 5]


@pytest.mark.parametrize(
    ("options", "path", "says"),
    [
        ({"every": "soon"}, ("every",), "duration"),
        ({"every": "0s"}, ("every",), "at least 1s"),
        ({"every": "10m", "start_at": "next tuesday"}, ("start_at",), "ISO 8601"),
        ({"every": "10m", "jitter": "lots"}, ("jitter",), "duration"),
    ],
)
def test_check(options, path, says):
    problems = IntervalTrigger.check(options)
    assert [p.path for p in problems] == [path] and says in problems[0].message


def test_check_accepts_good_options():
    assert IntervalTrigger.check({"every": 90, "start_at": "2026-01-01T00:00:00Z", "jitter": "5s"}) == []


def test_jitter_and_event():
    trigger = interval("Europe/Paris", every="90s", jitter="20s")
    due = trigger.next_fire(datetime(2026, 1, 1, tzinfo=UTC))
    assert 0 <= trigger.jitter_for(due) < 20
    assert trigger.jitter_for(due) == interval("Europe/Paris", every="90s", jitter="20s").jitter_for(due)
    payload, env = trigger.event_for(due)
    assert payload == {"scheduled_for": "2026-01-01T01:01:30+01:00", "every": "1m30s", "timezone": "Europe/Paris"}
    assert env == {"FIRELINK_SCHEDULED_FOR": "2026-01-01T01:01:30+01:00"}


class TestIntervalScheduleContract(ScheduleTriggerContract):
    @pytest.fixture(params=[{"every": "90s"}, {"every": "1h30m", "start_at": "2026-03-29T01:15:00", "jitter": "10s"}])
    def schedule_under_test(self, request) -> ScheduleUnderTest:
        jitter = 10.0 if "jitter" in request.param else 0.0
        return ScheduleUnderTest(IntervalTrigger, request.param, timezone="Europe/Paris", max_jitter=jitter)
