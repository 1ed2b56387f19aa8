"""The ``log`` notifier: writes run lifecycle events to the daemon's log through ``logging``."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from ..plugin_api import Notifier, RunEvent, format_duration, hookimpl

__all__ = ["LogNotifier"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class LogNotifier(Notifier):
    """One log line per event: job, run, what happened and why. Never the job's ``env`` values."""

    type_name = "log"
    description = "Write run events to the daemon's log."
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "level": {
                "description": "Log level of the lines.",
                "enum": sorted(_LEVELS),
                "default": "info",
            },
            "logger": {
                "description": "Name of the Python logger to write to.",
                "type": "string",
                "default": "firelink.notify",
            },
        },
        "additionalProperties": False,
    }

    async def notify(self, event: RunEvent) -> None:
        level = _LEVELS.get(str(self.options.get("level", "info")), logging.INFO)
        logger = logging.getLogger(str(self.options.get("logger", "firelink.notify")))
        run = event.run
        parts = [f"job {run.job} run {run.id}: {event.kind}"]
        if event.attempt is not None:
            parts.append(f"attempt {event.attempt.number}")
        if run.exit_code is not None and event.kind in ("failure", "retry", "success"):
            parts.append(f"exit code {run.exit_code}")
        duration = run.duration()
        if duration is not None and run.finished:
            parts.append(f"after {format_duration(duration)}")
        detail = event.detail or run.reason
        if detail:
            parts.append(f"({detail})")
        # Deliberately no env: run.env comes from the event and the job's env may hold secrets.
        logger.log(level, " ".join(parts))


@hookimpl(trylast=True)
def firelink_register_notifiers() -> list[type[Notifier]]:
    return [LogNotifier]
