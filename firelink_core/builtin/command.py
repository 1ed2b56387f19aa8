"""Built-in ``command`` notifier: runs a local program with the event as JSON on its stdin."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Mapping
from typing import Any

from ..plugin_api import Notifier, Problem, RunEvent, duration_schema, hookimpl, parse_duration
from ._notify_common import event_body

__all__ = ["CommandNotifier", "CommandNotifierError"]


class CommandNotifierError(Exception):
    """The program failed, timed out or could not start."""


class CommandNotifier(Notifier):
    """Starts ``command`` (argv list, no shell) per event, writes the event JSON to its stdin."""

    type_name = "command"
    description = "Run a local program with the run event as JSON on stdin"
    config_schema: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "command": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "description": "The program and its arguments (no shell).",
            },
            "env": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "default": {},
                "description": "Extra environment variables for the program.",
            },
            "timeout": duration_schema("The program is killed (with its process group) after this long.", "30s"),
            "log_lines": {
                "type": "integer",
                "minimum": 0,
                "default": 20,
                "description": "How many last lines of the run's log to include as log_tail.",
            },
        },
        "required": ["command"],
    }

    @classmethod
    def check(cls, options: Mapping[str, Any], *, config_dir: Any = None) -> list[Problem]:
        return []

    async def notify(self, event: RunEvent) -> None:
        data = json.dumps(event_body(event, self.context, log_lines=int(self.options.get("log_lines", 20))))
        env = {**os.environ, **{str(k): str(v) for k, v in dict(self.options.get("env") or {}).items()}}
        argv = [str(a) for a in self.options["command"]]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise CommandNotifierError(f"command notifier {self.name!r}: cannot start {argv[0]!r}: {exc.strerror}") from None
        timeout = parse_duration(self.options.get("timeout", "30s"))
        try:
            _out, err = await asyncio.wait_for(proc.communicate(data.encode()), timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise CommandNotifierError(f"command notifier {self.name!r}: timed out after {timeout:g}s") from None
        if proc.returncode != 0:
            tail = (err or b"").decode(errors="replace").strip().splitlines()[-3:]
            raise CommandNotifierError(
                f"command notifier {self.name!r}: exit {proc.returncode}" + (f": {' | '.join(tail)}" if tail else "")
            )


@hookimpl(trylast=True)
def firelink_register_notifiers() -> list[type[Notifier]]:
    return [CommandNotifier]
