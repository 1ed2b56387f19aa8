"""The ``interval`` trigger: fires every fixed duration from a stable anchor."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..plugin_api import (
    Problem,
    Trigger,
    TriggerContext,
    TriggerSpec,
    duration_schema,
    format_duration,
    hookimpl,
    parse_duration,
)
from ._cron import EPOCH, EverySchedule, ScheduleError, get_zone, parse_every
from .cron import JITTER_SCHEMA, ComputedSchedule, check_jitter

__all__ = ["IntervalTrigger"]


def parse_start_at(value: Any, timezone_name: str) -> datetime:
    """An ISO 8601 anchor; without an offset it is read in ``timezone_name``."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise ScheduleError(
                f"expected an ISO 8601 date-time like 2026-01-01T06:00:00+01:00, got {value!r}"
            ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=get_zone(timezone_name))
    return moment.astimezone(timezone.utc)


class IntervalTrigger(ComputedSchedule):
    """Fires at ``start_at + k * every`` (default anchor: 1970-01-01 UTC), in real time."""

    type_name = "interval"
    description = "Fire every fixed duration (90s, 1h30m), on a cadence that survives restarts."
    config_schema: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "every": duration_schema(
                "The period (90s, 5m, 1h30m; a bare number is seconds; at least 1s). Fires "
                "fall on start_at + k * every, so restarts keep the cadence.",
                examples=["90s", "15m", "1h30m"],
            ),
            "start_at": {
                "type": "string",
                "description": (
                    "ISO 8601 anchor of the cadence (2026-01-01T06:00:00+01:00; without an "
                    "offset, read in the job's timezone). No fire happens before it. Default: "
                    "1970-01-01T00:00:00Z, so an 'every' that divides a day lands on round "
                    "UTC times."
                ),
                "default": "1970-01-01T00:00:00+00:00",
            },
            "jitter": JITTER_SCHEMA,
        },
        "required": ["every"],
    }

    def __init__(self, spec: TriggerSpec, context: TriggerContext) -> None:
        super().__init__(spec, context)
        self.timezone = context.job.timezone
        self.every = parse_every(spec.options["every"])
        start = spec.options.get("start_at")
        anchor = EPOCH if start is None else parse_start_at(start, self.timezone)
        self.schedule = EverySchedule(self.every, anchor)
        self.jitter = parse_duration(spec.options.get("jitter", 0))

    @classmethod
    def check(cls, options: Mapping[str, Any], *, config_dir: Path | None = None) -> list[Problem]:
        problems = check_jitter(options)
        try:
            parse_every(options.get("every", ""))
        except ScheduleError as exc:
            problems.append(Problem(("every",), str(exc)))
        if options.get("start_at") is not None:
            try:
                parse_start_at(options["start_at"], "UTC")
            except ScheduleError as exc:
                problems.append(Problem(("start_at",), str(exc)))
        return problems


    def event_for(self, due: datetime) -> tuple[Mapping[str, Any], Mapping[str, str]]:
        when = due.astimezone(get_zone(self.timezone)).isoformat()
        payload = {"scheduled_for": when, "every": format_duration(self.every), "timezone": self.timezone}
        return payload, {"FIRELINK_SCHEDULED_FOR": when}



@hookimpl(trylast=True)
def firelink_register_triggers() -> list[type[Trigger]]:
    return [IntervalTrigger]
