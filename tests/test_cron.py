"""The cron trigger: parsing, Vixie day rules, DST in real zones, jitter and events."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from firelink_core.builtin.cron import CronTrigger
from firelink_core.plugins import make_plugins
from firelink_core.testing import EventRecorder, ScheduleTriggerContract, ScheduleUnderTest

UTC = timezone.utc


def cron(schedule: str, tz: str = "UTC", *, jitter: str | None = None, job: str = "job") -> CronTrigger:
    options = {"schedule": schedule}
    if jitter is not None:
        options["jitter"] = jitter
    rec = EventRecorder(job, "cron", options)
    rec.job = dataclasses.replace(rec.job, timezone=tz)
    return CronTrigger(rec.spec, rec)


def fires(trigger: CronTrigger, start: datetime, count: int) -> list[datetime]:
    out, after = [], start
    for _ in range(count):
        after = trigger.next_fire(after)
        assert after is not None and after.tzinfo is not None and after.utcoffset() == timedelta(0)
        out.append(after)
    return out


def local(times: list[datetime], tz: str) -> list[str]:
    return [t.astimezone(ZoneInfo(tz)).strftime("%m-%d %H:%M:%S%z") for t in times]


def at(*args: int, tz: str = "UTC") -> datetime:
    return datetime(*args, tzinfo=UTC if tz == "UTC" else ZoneInfo(tz))


def test_registered_as_a_builtin():
    assert make_plugins().triggers()["cron"] is CronTrigger


# --------------------------------------------------------------------------- parsing


def test_five_fields():
    got = fires(cron("0 18 * * 1-5"), at(2026, 1, 2, 18, 0), 3)  # a Friday, exactly at 18:00
    assert got == [at(2026, 1, 5, 18), at(2026, 1, 6, 18), at(2026, 1, 7, 18)]


def test_six_fields_put_seconds_first():
    assert fires(cron("*/20 * * * * *"), at(2026, 1, 1, 0, 0, 5), 3) == [
        at(2026, 1, 1, 0, 0, 20), at(2026, 1, 1, 0, 0, 40), at(2026, 1, 1, 0, 1, 0),
    ]
    # 30 seconds past 12:00 (seconds last would have been 12:30 on the 30th ... never).
    assert fires(cron("30 0 12 * * *"), at(2026, 1, 1), 2) == [
        at(2026, 1, 1, 12, 0, 30), at(2026, 1, 2, 12, 0, 30),
    ]


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("@hourly", at(2026, 5, 13, 11)),
        ("@daily", at(2026, 5, 14)),
        ("@midnight", at(2026, 5, 14)),
        ("@weekly", at(2026, 5, 17)),  # Sunday
        ("@monthly", at(2026, 6, 1)),
        ("@yearly", at(2027, 1, 1)),
        ("@annually", at(2027, 1, 1)),
        ("@DAILY", at(2026, 5, 14)),
    ],
)
def test_macros(macro, expected):
    assert cron(macro).next_fire(at(2026, 5, 13, 10, 17)) == expected


def test_names_last_day_and_nth_weekday():
    assert fires(cron("0 9 * jan,feb mon"), at(2026, 1, 31), 2) == [at(2026, 2, 2, 9), at(2026, 2, 9, 9)]
    assert fires(cron("0 0 L * *"), at(2026, 1, 1), 3) == [at(2026, 1, 31), at(2026, 2, 28), at(2026, 3, 31)]
    assert fires(cron("0 0 * * FRI#3"), at(2026, 1, 1), 2) == [at(2026, 1, 16), at(2026, 2, 20)]
    # a reversed range wraps around
    assert fires(cron("0 0 * * fri-mon"), at(2026, 1, 1), 4) == [at(2026, 1, d) for d in (2, 3, 4, 5)]
    # 7 is Sunday, as in Vixie cron
    assert cron("0 0 * * 7").next_fire(at(2026, 1, 1)) == at(2026, 1, 4)


@pytest.mark.parametrize(
    ("schedule", "days"),
    [
        # '?' is '*' (robfig, Spring, dkron): the other day field alone decides.
        ("0 0 ? * 5", [2, 9, 16, 23, 30]),
        ("0 0 0 ? * MON", [5, 12, 19, 26, 33]),
        ("0 0 13 * ?", [13, 44, 72, 103, 133]),
        # nL and NAMEL: the last such weekday of the month.
        ("0 0 * * 5L", [30, 58, 86, 114, 149]),
        ("0 0 * * FRIL", [30, 58, 86, 114, 149]),
        ("0 0 * * 0L", [25, 53, 88, 116, 151]),
        ("0 0 * * 7L", [25, 53, 88, 116, 151]),
        # n#k with cron's numbers: 5 is Friday, 0 and 7 Sunday (Quartz's 6 would be Friday).
        ("0 0 * * 5#3", [16, 51, 79, 107, 135]),
        ("0 0 * * 0#1", [4, 32, 60, 95, 123]),
        ("0 0 * * 7#1", [4, 32, 60, 95, 123]),
        ("0 0 * * sun#1,5#3", [4, 16, 32, 51, 60]),
        # Vixie's OR when both day fields are restricted, also with n#k and nL.
        ("0 0 13 * 5#3", [13, 16, 44, 51, 72]),
        ("0 0 L * 5L", [30, 31, 58, 59, 86]),
        # and AND when one starts with '*': odd days that are the first Monday.
        ("0 0 */2 * 1#1", [5, 152, 215, 250, 278]),
    ],
)
def test_day_forms_from_other_tools(schedule, days):
    start = at(2026, 1, 1)
    assert fires(cron(schedule), start, 5) == [start + timedelta(days=d - 1) for d in days]


def test_quartz_day_numbers_are_not_used():
    # Quartz's 'FRI' is 6; in firelink (cron) 6 is Saturday and 5 is Friday, as plain numbers are.
    assert cron("0 0 0 ? * 6#1").next_fire(at(2026, 1, 1)) == at(2026, 1, 3)
    assert cron("0 0 0 ? * 6").next_fire(at(2026, 1, 1)) == at(2026, 1, 3)


def test_every_is_anchored_so_restarts_keep_the_cadence():
    first = fires(cron("@every 90s"), at(2026, 1, 1, 0, 0, 1), 3)
    assert first == [at(2026, 1, 1, 0, 1, 30), at(2026, 1, 1, 0, 3), at(2026, 1, 1, 0, 4, 30)]
    # a "restarted" daemon: fresh instance, asked from a time in the middle
    assert fires(cron("@every 90s"), at(2026, 1, 1, 0, 3, 0), 1) == [first[2]]
    assert fires(cron("@every 1h30m", "Europe/Paris"), at(2026, 1, 1, 0, 30), 2) == [
        at(2026, 1, 1, 1, 30), at(2026, 1, 1, 3, 0),
    ]


@pytest.mark.parametrize(
    ("schedule", "says"),
    [
        ("0 0 12 * * ? 2026", "7 fields"),
        ("0 0 12 * * ? 2026", "not Quartz's 1-7 from Sunday"),
        ("0 ? * * *", "'?' (no specific value) stands for the whole day-of-month or day-of-week"),
        ("0 0 ?,1 * *", "'?'"),
        ("0 0 * * L", "Quartz's Saturday"),
        ("0 0 * * 5#6", "counted 1-5"),
        ("0 0 * * 5#0", "counted 1-5"),
        ("0 0 * * 8#1", "8 is out of range in '8#1'"),
        ("0 0 * * 8L", "8 is out of range in '8L'"),
        ("0 0 * * 1-5#2", "DAY#N"),
        ("0 0 * * 1,5L", "mixes plain days"),
        ("0 0 * * 5L-2", "'L' is the last day of the month alone in day-of-month, or nL"),
        ("0 0 15W * *", "'W'"),
        ("0 0 L-3 * *", "'L' is the last day"),
        ("0 0 LW * *", "'W'"),
        ("60 * * * *", "60 is out of range in '60' (minute is 0-59)"),
        ("* * * * 8", "day-of-week is 0-7"),
        ("0 0 0 * *", "day-of-month is 1-31"),
        ("0 0 * 1-13 *", "13 is out of range"),
        ("0 70 * * * *", "minute is 0-59"),
        ("*/0 * * * *", "step of 0"),
        ("0 0 31 2 *", "never matches"),
        ("* * *", "3 fields"),
        ("@reboot", "not supported"),
        ("@fortnightly", "unknown macro"),
        ("@every", "needs a duration"),
        ("@every soon", "duration"),
        ("@every 500ms", "at least 1s"),
        ("H * * * *", "not a valid minute"),
        ("", "non-empty"),
    ],
)
def test_check_rejects_what_would_be_misread(schedule, says):
    problems = CronTrigger.check({"schedule": schedule})
    assert len(problems) == 1 and problems[0].path == ("schedule",)
    assert says in problems[0].message


def test_check_accepts_and_reports_jitter():
    assert CronTrigger.check({"schedule": "*/5 * * * *", "jitter": "30s"}) == []
    problems = CronTrigger.check({"schedule": "*/5 * * * *", "jitter": "a bit"})
    assert [p.path for p in problems] == [("jitter",)]


# --------------------------------------------------------------------------- Vixie days


def test_day_of_month_or_day_of_week_when_both_restricted():
    # Friday the 13th style: the 13th OR any Friday (Vixie), not only Friday the 13th.
    got = fires(cron("0 0 13 * 5"), at(2026, 2, 1), 4)
    assert got == [at(2026, 2, 6), at(2026, 2, 13), at(2026, 2, 20), at(2026, 2, 27)]
    got = fires(cron("0 0 13 * 5"), at(2026, 3, 7), 3)
    assert got == [at(2026, 3, 13), at(2026, 3, 20), at(2026, 3, 27)]


def test_a_star_step_in_a_day_field_means_both_must_match():
    # '*/2' starts with '*': odd days of the month AND Mondays (croniter's default ORs).
    got = fires(cron("0 0 */2 * 1"), at(2026, 1, 1), 4)
    assert got == [at(2026, 1, 5), at(2026, 1, 19), at(2026, 2, 9), at(2026, 2, 23)]
    assert all(d.weekday() == 0 and d.day % 2 == 1 for d in got)
    # and in day-of-week: days 1-7 that are Sunday, Tuesday, Thursday or Saturday
    got = fires(cron("0 0 1-7 * */2"), at(2026, 3, 1), 4)
    assert got == [at(2026, 3, 3), at(2026, 3, 5), at(2026, 3, 7), at(2026, 4, 2)]


def test_plain_star_day_fields():
    assert fires(cron("0 0 * * 1"), at(2026, 1, 1), 2) == [at(2026, 1, 5), at(2026, 1, 12)]
    assert fires(cron("0 0 10 * *"), at(2026, 1, 1), 2) == [at(2026, 1, 10), at(2026, 2, 10)]


# --------------------------------------------------------------------------- DST


NY, BERLIN = "America/New_York", "Europe/Berlin"


def test_fixed_time_in_the_skipped_hour_runs_once_when_the_clock_jumps():
    got = fires(cron("30 2 * * *", NY), at(2026, 3, 7, tz=NY), 3)
    assert local(got, NY) == ["03-07 02:30:00-0500", "03-08 03:00:00-0400", "03-09 02:30:00-0400"]
    got = fires(cron("30 2 * * *", BERLIN), at(2026, 3, 28, tz=BERLIN), 3)
    assert local(got, BERLIN) == ["03-28 02:30:00+0100", "03-29 03:00:00+0200", "03-30 02:30:00+0200"]
    # two fixed times in the gap still make one run
    got = fires(cron("0,30 2 * * *", NY), at(2026, 3, 8, 1, tz=NY), 2)
    assert local(got, NY) == ["03-08 03:00:00-0400", "03-09 02:00:00-0400"]


def test_fixed_time_in_the_repeated_hour_runs_once_at_the_first_occurrence():
    got = fires(cron("30 1 * * *", NY), at(2026, 10, 31, 12, tz=NY), 3)
    assert local(got, NY) == ["11-01 01:30:00-0400", "11-02 01:30:00-0500", "11-03 01:30:00-0500"]
    got = fires(cron("30 2 * * *", BERLIN), at(2026, 10, 24, 12, tz=BERLIN), 3)
    assert local(got, BERLIN) == ["10-25 02:30:00+0200", "10-26 02:30:00+0100", "10-27 02:30:00+0100"]


def test_fixed_time_asked_from_inside_the_second_pass_waits_for_the_next_day():
    second_pass = datetime(2026, 11, 1, 1, 10, tzinfo=ZoneInfo(NY), fold=1)
    got = cron("30 1 * * *", NY).next_fire(second_pass)
    assert local([got], NY) == ["11-02 01:30:00-0500"]


def test_wildcard_job_runs_every_real_quarter_hour_through_the_repeated_hour():
    got = fires(cron("*/15 * * * *", NY), at(2026, 11, 1, 0, 50, tz=NY), 10)
    assert local(got, NY) == [
        "11-01 01:00:00-0400", "11-01 01:15:00-0400", "11-01 01:30:00-0400", "11-01 01:45:00-0400",
        "11-01 01:00:00-0500", "11-01 01:15:00-0500", "11-01 01:30:00-0500", "11-01 01:45:00-0500",
        "11-01 02:00:00-0500", "11-01 02:15:00-0500",
    ]
    assert {b - a for a, b in zip(got, got[1:], strict=False)} == {timedelta(minutes=15)}


def test_wildcard_job_skips_the_skipped_hour_without_catching_up():
    got = fires(cron("*/15 * * * *", NY), at(2026, 3, 8, 1, 20, tz=NY), 4)
    assert local(got, NY) == [
        "03-08 01:30:00-0500", "03-08 01:45:00-0500", "03-08 03:00:00-0400", "03-08 03:15:00-0400",
    ]
    got = fires(cron("30 * * * *", BERLIN), at(2026, 3, 29, 1, tz=BERLIN), 2)
    assert local(got, BERLIN) == ["03-29 01:30:00+0100", "03-29 03:30:00+0200"]
    got = fires(cron("@hourly", BERLIN), at(2026, 10, 25, 1, 30, tz=BERLIN), 3)
    assert local(got, BERLIN) == ["10-25 02:00:00+0200", "10-25 02:00:00+0100", "10-25 03:00:00+0100"]


DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def weekday_matches(item: str, wall: datetime) -> bool:
    """One day-of-week item of the forms other tools bring: ``n#k`` and ``nL`` (cron numbers, names)."""
    def number(text: str) -> int:
        return DAY_NAMES.index(text.lower()) if text.lower() in DAY_NAMES else int(text) % 7

    if "#" in item:
        day, k = item.split("#")
        return wall.isoweekday() % 7 == number(day) and (wall.day - 1) // 7 + 1 == int(k)
    assert item[-1] in "lL"
    return wall.isoweekday() % 7 == number(item[:-1]) and (wall + timedelta(days=7)).month != wall.month


def vixie_reference(expr: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    """Vixie cron's documented rules, simulated minute by minute of real time.

    ``?`` is ``*``; day-of-week items ``n#k`` and ``nL`` and day-of-month ``L`` are matched here.
    """
    zone = ZoneInfo(tz)
    fields = expr.replace("?", "*").split()
    fixed = not (fields[0].startswith("*") or fields[1].startswith("*"))
    day_or = not (fields[2].startswith("*") or fields[4].startswith("*"))
    last_day = fields[2] == "L"
    special = [] if fields[4] == "*" or not any(c in fields[4] for c in "#lL") else fields[4].split(",")
    plain = " ".join(fields[:2] + ["*" if last_day else fields[2], fields[3], "*" if special else fields[4]])
    minute, hour, dom, month, dow = (None if f == ["*"] else set(f) for f in croniter.expand(plain)[0])

    def matches(wall: datetime) -> bool:
        if (minute and wall.minute not in minute) or (hour and wall.hour not in hour):
            return False
        if month and wall.month not in month:
            return False
        dom_ok = (wall + timedelta(days=1)).day == 1 if last_day else dom is None or wall.day in dom
        if special:
            dow_ok = any(weekday_matches(item, wall) for item in special)
        else:
            dow_ok = dow is None or (wall.isoweekday() % 7) in dow
        return (dom_ok or dow_ok) if day_or else (dom_ok and dow_ok)

    out = []
    t = start.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    prev_wall = (t - timedelta(minutes=1)).astimezone(zone).replace(tzinfo=None, fold=0)
    while t <= end:
        here = t.astimezone(zone)
        wall = here.replace(tzinfo=None, fold=0)
        if not fixed:
            fire = matches(wall)
        else:
            repeated = here.fold == 1 and here.utcoffset() != wall.replace(tzinfo=zone).utcoffset()
            skipped = []
            step = prev_wall + timedelta(minutes=1)
            while step < wall:  # wall times the jump forward skipped
                skipped.append(step)
                step += timedelta(minutes=1)
            fire = (matches(wall) and not repeated) or any(matches(s) for s in skipped)
        if fire:
            out.append(t)
        prev_wall = wall
        t += timedelta(minutes=1)
    return out


TRANSITIONS_2026 = [
    (NY, 3, 8), (NY, 11, 1), (BERLIN, 3, 29), (BERLIN, 10, 25),
    ("Australia/Lord_Howe", 4, 5), ("Australia/Lord_Howe", 10, 4),  # moves by 30 minutes
]


@pytest.mark.parametrize(("tz", "month", "day"), TRANSITIONS_2026)
@pytest.mark.parametrize(
    "expr",
    ["30 2 * * *", "0,30 1-3 * * *", "*/15 * * * *", "0 * * * *", "45 1 * * *", "15 2 * * 0", "*/20 2 * * *", "10 */2 * * *"],
)
def test_matches_a_minute_by_minute_simulation_of_vixie_rules(tz, month, day, expr):
    check_against_the_simulation(tz, month, day, expr)


@pytest.mark.parametrize(("tz", "month", "day"), TRANSITIONS_2026)
@pytest.mark.parametrize(
    "expr",
    [
        "30 2 ? * 0#2",      # New York changes on the second Sunday of March ...
        "30 1 ? * 0#1",      # ... and the first Sunday of November
        "30 2 * * SUNL",     # Berlin on the last Sunday of March and October
        "0,30 1-3 ? * 7L",
        "*/30 * * * 0L",
        "45 1 * * sun#1",
        "0,30 1-3 8 * 0#2",  # Vixie's OR: the 8th or the second Sunday
        "15 2 L * 0L",
        "15 2 ? * *",
        "*/20 2 * * 0#1,0#2",
    ],
)
def test_forms_from_other_tools_follow_the_same_dst_rules(tz, month, day, expr):
    check_against_the_simulation(tz, month, day, expr)


def check_against_the_simulation(tz: str, month: int, day: int, expr: str) -> None:
    start = at(2026, month, day, tz=tz) - timedelta(hours=6)
    end = start.astimezone(UTC) + timedelta(hours=30)
    trigger = cron(expr, tz)
    got, after = [], start
    while True:
        after = trigger.next_fire(after)
        if after > end:
            break
        got.append(after)
    assert local(got, tz) == local(vixie_reference(expr, tz, start, end), tz)


# --------------------------------------------------------------------------- jitter, events


def test_jitter_is_stable_across_restarts_and_spread():
    due = [at(2026, 1, 1, h) for h in range(24)]
    a = [cron("0 * * * *", jitter="5m").jitter_for(d) for d in due]
    b = [cron("0 * * * *", jitter="5m").jitter_for(d) for d in due]
    other_job = [cron("0 * * * *", jitter="5m", job="other").jitter_for(d) for d in due]
    assert a == b
    assert all(0 <= x < 300 for x in a)
    assert len(set(a)) == 24 and a != other_job
    assert cron("0 * * * *").jitter_for(due[0]) == 0.0


def test_event_carries_the_scheduled_time_in_the_jobs_zone():
    trigger = cron("30 2 * * *", BERLIN)
    due = trigger.next_fire(at(2026, 7, 1))
    payload, env = trigger.event_for(due)
    assert payload == {
        "scheduled_for": "2026-07-01T02:30:00+02:00", "schedule": "30 2 * * *", "timezone": BERLIN,
    }
    assert env == {"FIRELINK_SCHEDULED_FOR": "2026-07-01T02:30:00+02:00"}
    assert datetime.fromisoformat(env["FIRELINK_SCHEDULED_FOR"]) == due


def test_next_due_uses_the_context_clock():
    from firelink_core.testing import FakeClock

    rec = EventRecorder("job", "cron", {"schedule": "0 12 * * *"}, clock=FakeClock(at(2026, 1, 1, 13).timestamp()))
    assert CronTrigger(rec.spec, rec).next_due() == at(2026, 1, 2, 12)


@pytest.mark.parametrize(("tz", "month", "day"), [(NY, 11, 1), (BERLIN, 3, 29), ("Australia/Lord_Howe", 4, 5)])
@pytest.mark.parametrize(
    "expr", ["30 1 * * *", "*/15 * * * *", "0,30 0-4 * * *", "15 */3 * * *", "30 1 ? * 0#1", "*/15 * * * SUNL"]
)
def test_asked_from_any_moment_it_agrees_with_the_simulation(tz, month, day, expr):
    # A daemon may (re)start at any moment, in either pass of a repeated hour.
    start = at(2026, month, day, tz=tz).astimezone(UTC) - timedelta(hours=3)
    reference = vixie_reference(expr, tz, start, start + timedelta(hours=36))
    trigger = cron(expr, tz)
    moment = start + timedelta(seconds=17)
    while moment < start + timedelta(hours=12):
        expected = next((t for t in reference if t > moment), None)
        got = trigger.next_fire(moment)
        if expected is None:  # a monthly form's next fire lies beyond the simulated window
            assert got > start + timedelta(hours=36), moment.astimezone(ZoneInfo(tz))
        else:
            assert got == expected, moment.astimezone(ZoneInfo(tz))
        moment += timedelta(minutes=7)


class TestCronScheduleContract(ScheduleTriggerContract):
    @pytest.fixture(params=["0 18 * * 1-5", "*/20 * * * * *", "30 2 * * *", "@every 1h30m"])
    def schedule_under_test(self, request) -> ScheduleUnderTest:
        # 02:30 Paris falls in the skipped hour once a year: a DST edge for the contract too.
        return ScheduleUnderTest(
            CronTrigger, {"schedule": request.param, "jitter": "5m"}, timezone="Europe/Paris", max_jitter=300
        )
