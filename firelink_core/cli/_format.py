"""How client commands print: times, run results, tables, JSON and a run's streamed output."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Mapping
from typing import Any

import click

from .._control import ControlError, run_from_dict, to_jsonable
from ..durations import format_duration
from ..records import AttemptRecord, RunRecord, RunState

__all__ = [
    "when",
    "iso_to_ts",
    "result_text",
    "workers_text",
    "exit_code_of",
    "print_run_end",
    "last_run_text",
    "table",
    "print_json",
    "json_times",
    "iso_time",
    "show_stream_message",
]

_TIME_KEYS = frozenset({"scheduled_for", "next_due", "since", "waiting_since"})
"""Timestamp fields not named ``*_at``."""
_OPAQUE_KEYS = frozenset({"payload", "env", "options", "handle"})
"""A run's data from its trigger and executor: printed as they wrote it, never reformatted."""


def when(ts: float | None, now: float | None = None) -> str:
    """A local time with its zone and how far it is: ``12:00:05 CET (3s ago)``; a date when it
    is over 12 hours away. The zone is the client's (``TZ``); a zone without a name shows its offset."""
    if ts is None:
        return "-"
    now = time.time() if now is None else now
    local = dt.datetime.fromtimestamp(ts).astimezone()
    delta = ts - now
    text = local.strftime("%H:%M:%S") if abs(delta) < 43200 else local.strftime("%Y-%m-%d %H:%M")
    text += " " + (local.tzname() or local.strftime("%z"))
    rel = format_duration(abs(delta))
    return f"{text} (in {rel})" if delta > 0 else f"{text} ({rel} ago)"


def iso_to_ts(value: Any) -> float | None:
    """Epoch seconds of an ISO 8601 text, ``None`` for nothing or something else."""
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def result_text(run: RunRecord) -> str:
    """The run's state with its exit code or signal: ``failed (exit 3)``."""
    text = run.state.value
    if run.exit_code not in (None, 0):
        text += f" (exit {run.exit_code})"
    elif run.signal:
        text += f" (signal {run.signal})"
    return text


def workers_text(attempts: list[AttemptRecord]) -> str:
    """The worker hosts that ran a run's attempts (a remote executor's ``worker`` handle), in
    attempt order without repeats; empty when the attempts ran on the daemon's host."""
    workers: dict[str, None] = {}
    for attempt in sorted(attempts, key=lambda a: a.number):
        if attempt.handle and attempt.handle.get("worker"):
            workers[str(attempt.handle["worker"])] = None
    return ", ".join(workers)


def exit_code_of(run: RunRecord) -> int:
    """A finished run as an exit code: 0 success, the job's own 1-255, else 1 (timeout, signal,
    executor error, skipped, upstream failed, interrupted)."""
    if run.state == RunState.SUCCESS:
        return 0
    if run.exit_code is not None and 0 < run.exit_code < 256:
        return run.exit_code
    return 1


def print_run_end(run: RunRecord) -> None:
    """``firelink: run ID failed (exit 3) in 2s: reason`` on stderr."""
    took = run.duration()
    extra = f" in {format_duration(took)}" if took is not None else ""
    reason = f": {run.reason}" if run.reason else (f": {run.error}" if run.error else "")
    click.echo(f"firelink: run {run.id} {result_text(run)}{extra}{reason}", err=True)


def last_run_text(run: RunRecord | None, now: float) -> str:
    """A status line's LAST RUN cell: the result and when it ended (``-`` for none)."""
    if run is None:
        return "-"
    return f"{result_text(run)} {when(run.finished_at or run.started_at or run.created_at, now)}"


def table(rows: list[list[str]], header: list[str]) -> str:
    """Left-aligned columns two spaces apart, without trailing blanks."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def iso_time(ts: float) -> str:
    """The one timestamp format of ``--json`` output: ISO 8601 in UTC with its offset, to the microsecond."""
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="microseconds")


def _time_value(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return iso_time(value)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
        # A naive time is the daemon's local time; astimezone() reads it so before converting.
        return parsed.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")
    return value


def json_times(value: Any) -> Any:
    """Every timestamp field (``*_at``, ``scheduled_for``, ``next_due``, ``since``) of plain JSON
    values as ``iso_time``: the control protocol carries epoch seconds, scripts get one format."""
    if isinstance(value, Mapping):
        return {
            key: item if key in _OPAQUE_KEYS
            else _time_value(item) if key.endswith("_at") or key in _TIME_KEYS
            else json_times(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [json_times(item) for item in value]
    return value


def print_json(value: Any) -> None:
    """Records, dates and enums as indented JSON on stdout, timestamps as ``iso_time``."""
    click.echo(json.dumps(json_times(to_jsonable(value)), indent=2))


def show_stream_message(message: Mapping[str, Any], *, quiet: bool = False) -> RunRecord | None:
    """Print one message of a followed run (progress on stderr, output on stdout); return
    the run when it is the final one. ``quiet`` prints nothing (``--json``)."""
    if "error" in message:
        err = message["error"]
        raise ControlError(err.get("code", "error"), err.get("message", "error"))
    if "state" in message:
        if message["state"] in ("waiting", "retrying") and not quiet:
            reason = f": {message['reason']}" if message.get("reason") else ""
            click.echo(f"firelink: run {message['state']}{reason}", err=True)
    elif "attempt" in message:
        if message["attempt"] > 1 and not quiet:
            click.echo(f"firelink: attempt {message['attempt']}", err=True)
    elif "log" in message:
        if not quiet:
            sys.stdout.write(message["log"])
            sys.stdout.flush()
    elif message.get("done") and "run" in message:
        return run_from_dict(message["run"])
    return None
