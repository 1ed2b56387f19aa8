"""Schedule previews: a job's schedule triggers made from the config alone (no daemon, no
storage), their next fire instants, and the DST change that moved an instant, in words.

Times come from each trigger class's own ``ScheduleTrigger.next_fire``; this module names
no trigger type. Used by ``firelink next`` and by backfills (the instants of a range).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .._clock import SystemClock
from ..abc import ScheduleTrigger, TriggerContext
from ..events import TriggerEvent
from ..model import Config, JobSpec, TriggerSpec
from ..plugins import Plugins
from .errors import EngineError

__all__ = [
    "Fire",
    "PreviewContext",
    "dst_note",
    "fires_between",
    "job_zone",
    "next_fires",
    "parse_instant",
    "schedule_triggers",
]

UTC = timezone.utc
_SECOND = timedelta(seconds=1)
MAX_PREVIEW = 10_000
"""The most instants one preview or backfill computes."""


class PreviewContext(TriggerContext):
    """A trigger's context for computing times only: it cannot emit or keep state."""

    def __init__(self, job: JobSpec, spec: TriggerSpec, config: Config) -> None:
        self.job = job
        self.spec = spec
        self.logger = logging.getLogger(f"firelink.trigger.{spec.type}")
        self.clock = SystemClock()
        self.state_dir = config.state_dir
        self.config_dir = config.path.parent if config.path else None

    async def emit(
        self,
        payload: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        *,
        dedupe_key: str | None = None,
        scheduled_for: float | None = None,
    ) -> TriggerEvent | None:
        raise RuntimeError("a schedule preview cannot emit events")

    async def get_checkpoint(self, key: str = "cursor") -> Any | None:
        return None

    async def set_checkpoint(self, value: Any, key: str = "cursor") -> None:
        raise RuntimeError("a schedule preview keeps no state")

    def set_health(self, state: Literal["ok", "degraded"], message: str | None = None) -> None:
        return None


def schedule_triggers(job: JobSpec, plugins: Plugins, config: Config) -> list[ScheduleTrigger]:
    """The job's schedule triggers, created (never started) for computing times.

    ``EngineError`` when a trigger's type is not installed or it cannot be created."""
    found: list[ScheduleTrigger] = []
    for spec in job.triggers:
        cls = plugins.trigger_class(spec.type, spec.options.get("source"))
        if cls is None:
            raise EngineError(f"job {job.name!r}: no plugin provides trigger type {spec.type!r}")
        if not issubclass(cls, ScheduleTrigger):
            continue
        try:
            found.append(cls(spec, PreviewContext(job, spec, config)))
        except Exception as exc:  # noqa: BLE001 - reported in words
            raise EngineError(
                f"job {job.name!r}: trigger {spec.type!r} cannot be created: {exc}"
            ) from None
    return found


def job_zone(job: JobSpec) -> tzinfo:
    """The job's ``timezone`` as a zone (UTC when it cannot be read)."""
    if job.timezone.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(job.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def parse_instant(text: str, zone: tzinfo, *, now: datetime | None = None) -> datetime:
    """An instant given on the command line: ``now``, an ISO 8601 date (midnight) or date-time;
    without an offset it is read in ``zone``. ``ValueError`` says what was expected."""
    value = text.strip()
    if value.lower() == "now":
        return now or datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"expected 'now' or an ISO 8601 date or date-time like 2027-03-28 or 2027-03-28T02:00+01:00, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class Fire:
    """One fire instant of a job: when (UTC and in the job's zone), which trigger, and the DST
    change that moved it, if any."""

    at: datetime
    local: datetime
    trigger: str
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "utc": self.at.isoformat(),
            "local": self.local.isoformat(),
            "timestamp": self.at.timestamp(),
            "trigger": self.trigger,
            "dst": self.note,
        }


def _merged(
    triggers: list[ScheduleTrigger], after: datetime
) -> Iterator[tuple[datetime, ScheduleTrigger]]:
    """Every fire of ``triggers`` strictly after ``after``, in order (same instants once)."""
    nexts: list[tuple[datetime | None, ScheduleTrigger]] = [
        (t.next_fire(after), t) for t in triggers
    ]
    last: datetime | None = None
    while True:
        live = [(at, t) for at, t in nexts if at is not None]
        if not live:
            return
        at, trigger = min(live, key=lambda item: item[0])
        if last is None or at > last:
            yield at, trigger
            last = at
        nexts = [(t.next_fire(at) if a is not None and a <= at else a, t) for a, t in nexts]


def next_fires(
    job: JobSpec, triggers: list[ScheduleTrigger], after: datetime, count: int
) -> list[Fire]:
    """The next ``count`` fires of the job's schedule triggers strictly after ``after``."""
    zone = job_zone(job)
    out: list[Fire] = []
    for at, trigger in _merged(triggers, after):
        if len(out) >= min(count, MAX_PREVIEW):
            break
        out.append(_fire(job, trigger, at, zone))
    return out


def fires_between(
    job: JobSpec, triggers: list[ScheduleTrigger], start: datetime, end: datetime
) -> list[Fire]:
    """The fires in ``[start, end)``; ``ValueError`` past ``MAX_PREVIEW`` of them."""
    zone = job_zone(job)
    out: list[Fire] = []
    for at, trigger in _merged(triggers, start - timedelta(microseconds=1)):
        if at >= end:
            break
        if len(out) >= MAX_PREVIEW:
            raise ValueError(
                f"the range holds more than {MAX_PREVIEW} fires: ask for a shorter one"
            )
        out.append(_fire(job, trigger, at, zone))
    return out


def _fire(job: JobSpec, trigger: ScheduleTrigger, at: datetime, zone: tzinfo) -> Fire:
    at = at.astimezone(UTC)
    return Fire(
        at=at,
        local=at.astimezone(zone),
        trigger=trigger.spec.key,
        note=dst_note(job, trigger, at, zone),
    )


def _offset(at: datetime, zone: tzinfo) -> timedelta:
    offset = at.astimezone(zone).utcoffset()
    return offset if offset is not None else timedelta(0)


def _hm(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S" if moment.second else "%H:%M")


def dst_note(job: JobSpec, trigger: ScheduleTrigger, at: datetime, zone: tzinfo) -> str | None:
    """Why the fire at ``at`` is not at a plain wall-clock time of the job's zone, or None.

    * Spring forward: the fire falls on the instant the clock jumps and is not a time the
      schedule names on the new offset: a wall time in the skipped span moved to the jump,
      e.g. "02:30 does not exist on 2027-03-28 (...); runs at 03:00".
    * Fall back: its wall time happens twice that night; it says whether the job fires once.
    """
    before, after = _offset(at - _SECOND, zone), _offset(at, zone)
    local = at.astimezone(zone)
    if after > before:
        on_new = _fixed_twin(job, trigger, after)
        if on_new is not None and on_new.next_fire(at - _SECOND) == at:
            return None  # the schedule names this wall time itself (03:00 of '*/30 * * * *')
        on_old = _fixed_twin(job, trigger, before)
        intended = on_old.next_fire(at - _SECOND) if on_old is not None else None
        jump_from = local - (after - before)
        if intended is not None and at < intended < at + (after - before):
            wanted = _hm(intended.astimezone(timezone(before)))
        else:
            wanted = f"a time from {_hm(jump_from)} to {_hm(local)}"
        return (
            f"{wanted} does not exist on {local.date().isoformat()} (clocks jump from "
            f"{_hm(jump_from)} to {_hm(local)}); runs at {_hm(local)}"
        )
    naive = local.replace(tzinfo=None)
    first = naive.replace(tzinfo=zone, fold=0)
    second = naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return None
    again = second.astimezone(UTC)
    repeats = trigger.next_fire(again - _SECOND) == again if local.fold == 0 else True
    which = "first" if local.fold == 0 else "second"
    offset = local.strftime("%z")
    said = f"{_hm(local)} happens twice on {local.date().isoformat()} (clocks go back)"
    if repeats:
        return f"{said}; this is the {which} ({offset[:3]}:{offset[3:]}) and the job fires at both"
    return f"{said}; the job fires once, at the {which} ({offset[:3]}:{offset[3:]})"


def _fixed_twin(
    job: JobSpec, trigger: ScheduleTrigger, offset: timedelta
) -> ScheduleTrigger | None:
    """The same trigger made for the job on a fixed-offset zone (IANA has them for whole
    hours only), or None when that cannot be made."""
    hours, rest = divmod(int(offset.total_seconds()), 3600)
    if rest:
        return None
    name = "Etc/GMT" if hours == 0 else f"Etc/GMT{-hours:+d}"
    twin_job = dataclasses.replace(job, timezone=name)
    try:
        return type(trigger)(trigger.spec, PreviewContext(twin_job, trigger.spec, _NO_CONFIG))
    except Exception:  # noqa: BLE001 - a class that cannot be made so gives no wall time
        return None


_NO_CONFIG = Config(state_dir=Path("."))
