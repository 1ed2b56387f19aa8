"""Schedule computation: cron expressions with Vixie cron's day and DST rules, and intervals."""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from ..plugin_api import format_duration, parse_duration

__all__ = [
    "ScheduleError",
    "CronSchedule",
    "EverySchedule",
    "parse_schedule",
    "get_zone",
    "jitter_fraction",
    "MACROS",
    "MIN_EVERY",
]

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
MIN_EVERY = 1.0
"""Shortest ``@every`` / interval accepted, in seconds."""

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# Zones whose clocks moved back by more than this are beyond Vixie's rule (and reality).
_MAX_SHIFT = timedelta(hours=3)

_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
_DAYS = "sun|mon|tue|wed|thu|fri|sat"


def _field(value: str) -> re.Pattern[str]:
    return re.compile(rf"^(\*|({value})(-({value}))?)(/\d+)?$", re.IGNORECASE)


_NUMERIC = _field(r"\d+")
_ITEM = {
    "second": _NUMERIC,
    "minute": _NUMERIC,
    "hour": _NUMERIC,
    "day-of-month": _NUMERIC,
    "month": _field(rf"\d+|{_MONTHS}"),
    "day-of-week": _field(rf"\d+|{_DAYS}"),
}
_RANGES = {
    "second": (0, 59),
    "minute": (0, 59),
    "hour": (0, 23),
    "day-of-month": (1, 31),
    "month": (1, 12),
    "day-of-week": (0, 7),
}
_DAY_NUMBER = {name: str(number) for number, name in enumerate(_DAYS.split("|"))}
# The k-th weekday (``5#3``, ``FRI#3``) and the last one (``5L``, ``FRIL``), cron's numbers 0-7.
_NTH_WEEKDAY = re.compile(rf"^(\d+|{_DAYS})#(\d+)$", re.IGNORECASE)
_LAST_WEEKDAY = re.compile(rf"^(\d+|{_DAYS})L$", re.IGNORECASE)


class ScheduleError(ValueError):
    """A schedule that cannot be used, with the reason in words."""


def get_zone(name: str) -> tzinfo:
    """The ``zoneinfo`` zone called ``name``; ``ScheduleError`` if unknown."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"unknown timezone {name!r} (use an IANA name like Europe/Paris)") from exc


def jitter_fraction(key: str, due: datetime) -> float:
    """A stable pseudo-random number in [0, 1) for one fire of one trigger (restarts agree)."""
    digest = hashlib.blake2b(f"{key}|{due.timestamp()!r}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _weekday(text: str, item: str) -> tuple[str | None, str | None]:
    """A day-of-week number or name as croniter's number, or the reason it is refused."""
    number = _DAY_NUMBER.get(text.lower(), text)
    if not 0 <= int(number) <= 7:
        return None, f"{text} is out of range in {item!r} (day-of-week is 0-7, 0 and 7 are Sunday)"
    return number, None


def _day_of_week_special(item: str) -> tuple[str | None, str | None]:
    """``n#k`` or ``nL`` as croniter writes it (``5#3``, ``L5``), the reason it is refused,
    or ``(None, None)`` for an ordinary item."""
    if nth := _NTH_WEEKDAY.match(item):
        day, reason = _weekday(nth.group(1), item)
        if reason is None and not 1 <= int(nth.group(2)) <= 5:
            reason = f"{item!r}: the n-th weekday of a month is counted 1-5"
        return (None, reason) if reason else (f"{day}#{nth.group(2)}", None)
    if last := _LAST_WEEKDAY.match(item):
        day, reason = _weekday(last.group(1), item)
        return (None, reason) if reason else (f"L{day}", None)
    if "#" in item:
        return None, f"{item!r}: write the n-th weekday as DAY#N, like 5#3 or FRI#3 (the third Friday)"
    return None, None


def _check_item(kind: str, item: str) -> str | None:
    """Why one comma-separated item of a field is refused, or None."""
    low = item.lower()
    if low == "?":
        return "'?' (no specific value) stands for the whole day-of-month or day-of-week field"
    if kind == "day-of-month" and low == "l":
        return None
    if kind == "day-of-week" and low == "l":
        return "'L' alone is Quartz's Saturday: write 6 or SAT, or nL for the last weekday n of the month (5L)"
    if "w" in low and kind == "day-of-month":
        return f"{item!r}: 'W' (nearest weekday) is Quartz syntax, not supported"
    if "l" in low and kind in ("day-of-month", "day-of-week") and low not in _DAYS.split("|"):
        return f"{item!r}: 'L' is the last day of the month alone in day-of-month, or nL in day-of-week"
    match = _ITEM[kind].match(item)
    if not match:
        return f"{item!r} is not a valid {kind} value"
    low_bound, high_bound = _RANGES[kind]
    for number in (match.group(2), match.group(4)):
        if number is not None and number.isdigit() and not low_bound <= int(number) <= high_bound:
            return f"{number} is out of range in {item!r} ({kind} is {low_bound}-{high_bound})"
    if match.group(5) is not None and int(match.group(5)[1:]) == 0:
        return f"{item!r}: a step of 0 never advances"
    return None


def _normalized(kind: str, value: str) -> str:
    """One field as croniter reads it; ``ScheduleError`` says why it is refused.

    ``?`` (robfig, Spring, dkron) is ``*``; ``5L``/``FRIL`` becomes croniter's ``L5``.
    """
    if value == "?" and kind in ("day-of-month", "day-of-week"):
        return "*"
    items = value.split(",")
    special = 0
    out = []
    for item in items:
        if kind == "day-of-week":
            converted, reason = _day_of_week_special(item)
            if converted is not None:
                special += 1
                out.append(converted)
                continue
        else:
            reason = None
        reason = reason or _check_item(kind, item)
        if reason:
            raise ScheduleError(f"{kind} field: {reason}")
        out.append(item)
    if special and special != len(items):
        raise ScheduleError(
            f"day-of-week field: {value!r} mixes plain days with n#k or nL items, which one "
            "expression cannot say: use one trigger for each (triggers:)"
        )
    return ",".join(out)


@dataclass(frozen=True)
class EverySchedule:
    """Fires at ``anchor + k * every`` (real time, independent of time zones)."""

    every: float
    anchor: datetime = EPOCH
    expression: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_every_us", round(self.every * 1_000_000))
        object.__setattr__(self, "_anchor_us", (self.anchor - EPOCH) // _US)

    def next_fire(self, after: datetime) -> datetime:
        after_us = (after - EPOCH) // _US
        every_us: int = self._every_us  # type: ignore[attr-defined]
        anchor_us: int = self._anchor_us  # type: ignore[attr-defined]
        if after_us < anchor_us:
            return self.anchor.astimezone(UTC)
        k = (after_us - anchor_us) // every_us + 1
        return EPOCH + timedelta(microseconds=anchor_us + k * every_us)


class CronSchedule:
    """A 5- or 6-field (seconds first) cron expression computed in one time zone.

    Follows Vixie cron: day-of-month and day-of-week are OR-ed when both are restricted,
    AND-ed when either starts with ``*``; across DST changes a job at a fixed time (hour
    and minute fields not starting with ``*``) runs once, at the jump for a time that was
    skipped and at the first occurrence of a time that repeats; wildcard jobs follow the
    wall clock (every real occurrence, nothing for skipped times).
    """

    def __init__(self, expression: str, zone: tzinfo = UTC) -> None:
        self.expression = expression
        self.zone = zone
        fields = self._fields(expression)
        self.seconds = len(fields) == 6
        minute, hour, dom, dow = fields[-5], fields[-4], fields[-3], fields[-1]
        self.fixed_time = not (minute.startswith("*") or hour.startswith("*"))
        day_or = not (dom.startswith("*") or dow.startswith("*"))
        self._utc = zone is UTC
        self._last: tuple[datetime, datetime | None] | None = None
        if day_or and ("#" in dow or "L" in dow):
            # croniter cannot OR n#k / Ln with day-of-month: two schedules, the earlier fire wins.
            variants = [fields[:-3] + [dom, fields[-2], "*"], fields[:-3] + ["*", fields[-2], dow]]
        else:
            variants = [fields]
        self._iters = []
        for variant in variants:
            try:
                it = croniter(
                    " ".join(variant),
                    datetime(2000, 1, 1),
                    ret_type=datetime,
                    day_or=day_or and len(variants) == 1,
                    second_at_beginning=self.seconds,
                )
                it.get_next()
            except CroniterBadDateError:
                continue  # a variant that never matches adds no fire
            except CroniterError as exc:
                raise ScheduleError(f"{expression!r}: {exc}") from exc
            self._iters.append(it)
        if not self._iters:
            raise ScheduleError(f"{expression!r} never matches a date")
        self._iter = self._iters[0]

    @staticmethod
    def _fields(expression: str) -> list[str]:
        text = expression.strip()
        if text.startswith("@"):
            macro = MACROS.get(text.lower())
            if macro is None:
                raise ScheduleError(
                    f"unknown macro {text!r}; use one of {', '.join(MACROS)} or '@every <duration>'"
                )
            return macro.split()
        fields = text.split()
        if len(fields) == 7:
            raise ScheduleError(
                f"{expression!r} has 7 fields: a year field (Quartz) is not supported; use 5 "
                "fields (min hour dom month dow) or 6 with seconds first, and mind that "
                "day-of-week numbers are cron's (0-7, 0 and 7 Sunday, 1 Monday), not Quartz's 1-7 from Sunday"
            )
        if len(fields) not in (5, 6):
            raise ScheduleError(
                f"{expression!r} has {len(fields)} fields; expected 5 (min hour dom month dow) "
                "or 6 (sec min hour dom month dow)"
            )
        kinds = ["minute", "hour", "day-of-month", "month", "day-of-week"]
        if len(fields) == 6:
            kinds.insert(0, "second")
        return [_normalized(kind, value) for kind, value in zip(kinds, fields, strict=True)]

    def _naive_after(self, naive: datetime) -> datetime:
        # croniter is stateful; one instance per schedule avoids re-parsing (the costly part).
        if len(self._iters) == 1:
            self._iter.set_current(naive, force=True)
            return self._iter.get_next()
        found = []
        for it in self._iters:
            it.set_current(naive, force=True)
            try:
                found.append(it.get_next())
            except CroniterBadDateError:
                continue
        if not found:
            raise CroniterBadDateError(f"no fire after {naive}")
        return min(found)

    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire strictly after ``after`` (aware), as an aware UTC datetime."""
        # Jobs sharing this schedule ask for the same instant one after the other when they
        # fire together (10,000 jobs due at once): answer those from the last computation.
        # Only for UTC datetimes: aware datetimes of one zone compare equal across a fold.
        if after.tzinfo is not UTC:
            return self._next_fire(after)
        last = self._last
        if last is not None and last[0] == after:
            return last[1]
        result = self._next_fire(after)
        self._last = (after, result)
        return result

    def _next_fire(self, after: datetime) -> datetime | None:
        try:
            if self._utc:
                naive = after.astimezone(UTC).replace(tzinfo=None)
                return self._naive_after(naive).replace(tzinfo=UTC)
            local = after.astimezone(self.zone)
            naive = local.replace(tzinfo=None, fold=0)
            candidate = self._naive_after(naive)
            early = candidate.replace(tzinfo=self.zone, fold=0)
            offset = early.utcoffset()
            if offset == candidate.replace(tzinfo=self.zone, fold=1).utcoffset() and offset == local.utcoffset():
                return early.astimezone(UTC)
            return self._near_transition(after.astimezone(UTC), local)
        except CroniterBadDateError:
            return None

    def _instants(self, naive: datetime) -> list[datetime]:
        """The real instants at which the wall-clock time ``naive`` fires."""
        first = naive.replace(tzinfo=self.zone, fold=0)
        second = naive.replace(tzinfo=self.zone, fold=1)
        o0, o1 = first.utcoffset(), second.utcoffset()
        assert o0 is not None and o1 is not None
        if o0 == o1:
            return [first.astimezone(UTC)]
        if o0 > o1:  # the clock went back: this time happens twice
            if self.fixed_time:
                return [first.astimezone(UTC)]
            return [first.astimezone(UTC), second.astimezone(UTC)]
        if not self.fixed_time:  # skipped time: wildcard jobs simply follow the new time
            return []
        return [self._jump(naive - o1, naive - o0)]

    def _jump(self, low: datetime, high: datetime) -> datetime:
        """The instant the clock jumped forward, between two naive UTC bounds."""
        low_s, high_s = int((low - datetime(1970, 1, 1)).total_seconds()), int(
            (high - datetime(1970, 1, 1)).total_seconds()
        )
        new_offset = datetime.fromtimestamp(high_s, self.zone).utcoffset()
        while high_s - low_s > 1:
            mid = (low_s + high_s) // 2
            if datetime.fromtimestamp(mid, self.zone).utcoffset() == new_offset:
                high_s = mid
            else:
                low_s = mid
        return datetime.fromtimestamp(high_s, UTC)

    def _near_transition(self, after: datetime, local: datetime) -> datetime | None:
        naive = local.replace(tzinfo=None, fold=0)
        other = naive.replace(tzinfo=self.zone, fold=1)
        if local.fold == 0 and other.utcoffset() != local.utcoffset() and other.astimezone(UTC) > after:
            # In the first pass of a repeated hour, earlier wall times will come again.
            start = naive - max(local.utcoffset() - other.utcoffset(), timedelta(0))  # type: ignore[operator]
            start -= timedelta(seconds=1)
        else:
            start = naive
        best: datetime | None = None
        best_naive: datetime | None = None
        candidate = start
        limit = naive + timedelta(days=366 * 30)
        while candidate < limit:
            candidate = self._naive_after(candidate)
            instants = [i for i in self._instants(candidate) if i > after]
            if instants and (best is None or min(instants) < best):
                best, best_naive = min(instants), candidate
            # Past a time that exists once, after the best so far, nothing can come earlier.
            if best_naive is not None and candidate > best_naive:
                if self._unique(candidate) or candidate > best_naive + _MAX_SHIFT:
                    return best
        return best

    def _unique(self, naive: datetime) -> bool:
        return naive.replace(tzinfo=self.zone, fold=0).utcoffset() == naive.replace(tzinfo=self.zone, fold=1).utcoffset()


def parse_every(text: str | int | float) -> float:
    """Seconds of an ``@every`` / interval duration; ``ScheduleError`` if unusable."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise ScheduleError(str(exc)) from exc
    if seconds < MIN_EVERY:
        raise ScheduleError(
            f"an interval must be at least {format_duration(MIN_EVERY)}, got {text!r}"
        )
    return seconds


def parse_schedule(expression: str, timezone_name: str = "UTC") -> CronSchedule | EverySchedule:
    """Parse a cron trigger's ``schedule``; ``ScheduleError`` says what is wrong.

    Equal arguments give the same (shared) schedule: building croniter's tables is the costly
    part, and thousands of jobs often share a few schedules. A ``CronSchedule`` is used only
    synchronously (``set_current`` then ``get_next``), so sharing it is safe.
    """
    if not isinstance(expression, str) or not expression.strip():
        raise ScheduleError("a schedule must be a non-empty string like '0 18 * * *'")
    if not isinstance(timezone_name, str):
        return _parse_schedule(expression, timezone_name)
    return _cached_schedule(expression, timezone_name)


@functools.lru_cache(maxsize=16384)
def _cached_schedule(expression: str, timezone_name: str) -> CronSchedule | EverySchedule:
    return _parse_schedule(expression, timezone_name)


def _parse_schedule(expression: str, timezone_name: str) -> CronSchedule | EverySchedule:
    text = expression.strip()
    if text.lower().startswith("@every"):
        rest = text[len("@every") :].strip()
        if not rest:
            raise ScheduleError("'@every' needs a duration, like '@every 90s' or '@every 1h30m'")
        return EverySchedule(parse_every(rest), expression=expression)
    if text.lower() == "@reboot":
        raise ScheduleError("'@reboot' is not supported: a daemon restart is not a schedule")
    return CronSchedule(text, get_zone(timezone_name))
