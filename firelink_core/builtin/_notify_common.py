"""What every built-in notifier sends: the documented event body, and secret-safe error text."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from ..plugin_api import NotifierContext, RunEvent

__all__ = ["event_body", "event_text", "redact", "DEFAULT_EVENTS"]

DEFAULT_EVENTS = ("failure",)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat()


def event_body(event: RunEvent, context: NotifierContext, *, log_lines: int = 20) -> dict[str, Any]:
    """The JSON body documented in docs/notifiers.md (stable: add keys, never rename)."""
    run = event.run
    attempt = event.attempt
    body: dict[str, Any] = {
        "event": event.kind,
        "job": run.job,
        "run_id": run.id,
        "state": str(run.state),
        "attempt": attempt.number if attempt else run.attempts,
        "exit_code": run.exit_code,
        "signal": run.signal,
        "error": run.error,
        "reason": run.reason or event.detail,
        "trigger": run.trigger,
        "scheduled_for": _iso(run.scheduled_for),
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration": run.duration(),
        "host": socket.gethostname(),
        "log_tail": context.log_tail(run, log_lines) if log_lines > 0 else "",
    }
    params = run.options.get("params")
    if isinstance(params, dict) and params:
        body["params"] = dict(params)  # as stored: a secret parameter's value is ***
    delay = getattr(event, "delay", None)
    if delay is not None:
        body["retry_in"] = delay
    return body


def event_text(body: dict[str, Any]) -> str:
    """One human line: ``firelink: job 'etl' failure (exit 1, attempt 3) run 0f3a...``."""
    bits = []
    if body.get("exit_code") is not None:
        bits.append(f"exit {body['exit_code']}")
    if body.get("signal") is not None:
        bits.append(f"signal {body['signal']}")
    if body.get("attempt"):
        bits.append(f"attempt {body['attempt']}")
    if body.get("error"):
        bits.append(str(body["error"]))
    if body.get("reason"):
        bits.append(str(body["reason"]))
    detail = f" ({', '.join(bits)})" if bits else ""
    return f"firelink on {body['host']}: job '{body['job']}' {body['event']}{detail} run {body['run_id']}"


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every secret value that appears in ``text`` (URLs with tokens, passwords)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "<redacted>")
    return text
