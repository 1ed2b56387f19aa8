"""The ``cron`` trigger: fires on a cron expression, a macro or ``@every``, in the job's time zone."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..plugin_api import (
    Problem,
    ScheduleTrigger,
    Trigger,
    TriggerContext,
    TriggerSpec,
    duration_schema,
    hookimpl,
    parse_duration,
)
from ._cron import (
    MACROS,
    CronSchedule,
    EverySchedule,
    ScheduleError,
    jitter_fraction,
    parse_schedule,
)

__all__ = ["CronTrigger", "ComputedSchedule"]

JITTER_SCHEMA: Mapping[str, Any] = duration_schema(
    "Delay each fire by a pseudo-random amount in [0, jitter) (30s, 5m), the same for a "
    "given fire across restarts, to spread jobs that share a schedule.",
    "0s",
)


def check_jitter(options: Mapping[str, Any]) -> list[Problem]:
    try:
        parse_duration(options.get("jitter", 0))
    except ValueError as exc:
        return [Problem(("jitter",), str(exc))]
    return []


class ComputedSchedule(ScheduleTrigger):
    """What the cron and interval triggers share: a parsed ``schedule`` and a ``jitter``."""

    schedule: CronSchedule | EverySchedule
    jitter: float

    def next_fire(self, after: datetime) -> datetime | None:
        return self.schedule.next_fire(after)

    def jitter_for(self, due: datetime) -> float:
        if not self.jitter:
            return 0.0
        return self.jitter * jitter_fraction(self.spec.key, due)

    def next_due(self) -> datetime | None:
        now = datetime.fromtimestamp(self.context.clock.now(), timezone.utc)
        return self.next_fire(now)


class CronTrigger(ComputedSchedule):
    """Fires at the times of a cron expression, computed in the job's ``timezone``."""

    type_name = "cron"
    description = "Fire on a cron schedule (5 fields, or 6 with seconds first), a macro or @every."
    config_schema: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "schedule": {
                "type": "string",
                "minLength": 1,
                "description": (
                    "When to fire: 5 fields 'min hour day-of-month month day-of-week' "
                    "('0 18 * * 1-5'), 6 fields with SECONDS FIRST ('*/10 * * * * *'), a macro ("
                    + ", ".join(MACROS)
                    + ") or '@every 90s' (a fixed interval). Day-of-week numbers are cron's, 0-7 "
                    "with 0 and 7 Sunday (not Quartz's 1-7); '?' is '*', 'L' alone in "
                    "day-of-month the last day, '5L' the last Friday, '5#3' the third Friday. "
                    "Vixie cron rules: day-of-month and day-of-week are OR-ed when both are "
                    "restricted; times in the job's timezone."
                ),
                "examples": ["0 18 * * *", "*/15 * * * *", "0 0 6 * * 1-5", "0 0 9 ? * MON#1", "@daily", "@every 1h30m"],
            },
            "jitter": JITTER_SCHEMA,
        },
        "required": ["schedule"],
    }

    def __init__(self, spec: TriggerSpec, context: TriggerContext) -> None:
        super().__init__(spec, context)
        self.timezone = context.job.timezone
        self.expression = str(spec.options["schedule"])
        self.schedule = parse_schedule(self.expression, self.timezone)
        self.jitter = parse_duration(spec.options.get("jitter", 0))

    @classmethod
    def check(cls, options: Mapping[str, Any], *, config_dir: Path | None = None) -> list[Problem]:
        problems = check_jitter(options)
        try:
            parse_schedule(options.get("schedule", ""))
        except ScheduleError as exc:
            problems.insert(0, Problem(("schedule",), str(exc)))
        return problems


    def event_for(self, due: datetime) -> tuple[Mapping[str, Any], Mapping[str, str]]:
        zone = self.schedule.zone if isinstance(self.schedule, CronSchedule) else timezone.utc
        when = due.astimezone(zone).isoformat()
        payload = {"scheduled_for": when, "schedule": self.expression, "timezone": self.timezone}
        return payload, {"FIRELINK_SCHEDULED_FOR": when}



@hookimpl(trylast=True)
def firelink_register_triggers() -> list[type[Trigger]]:
    return [CronTrigger]
