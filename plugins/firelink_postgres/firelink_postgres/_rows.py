"""Records to and from rows of the ``postgres`` storage's tables (JSON kept as text)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from firelink_core.plugin_api import (
    AttemptRecord,
    DecisionRecord,
    PauseRecord,
    RunRecord,
    RunState,
    TriggerEvent,
)

from ._schema import ATTEMPT_COLUMNS, RUN_COLUMNS

__all__ = [
    "attempt_from_row",
    "column_value",
    "decision_from_row",
    "dumps",
    "event_from_row",
    "pause_from_row",
    "run_from_row",
]

_JSON_COLUMNS = frozenset({"payload", "env", "options", "handle"})
# PostgreSQL text cannot hold NUL: an error message or path carrying one keeps a visible mark.
_FREE_TEXT = frozenset({"error", "reason", "log_path"})


def dumps(value: Any) -> str:
    """JSON as stored: compact, non-ASCII kept (escapes keep NUL out of the text column)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def column_value(name: str, value: Any) -> Any:
    """A record field's value as its column holds it."""
    if name == "env":
        # Environment variables are strings; store them as the job will see them.
        return dumps({str(key): str(val) for key, val in value.items()})
    if name in _JSON_COLUMNS:
        return dumps(dict(value) if isinstance(value, Mapping) else value)
    if name == "state":
        return RunState(value).value
    if name == "timed_out":
        return bool(value)
    if name in _FREE_TEXT and isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    return value


def event_from_row(row: Sequence[Any]) -> TriggerEvent:
    (id_, job, trigger, key, payload, env, created, scheduled, dedupe, run_id, options) = row
    return TriggerEvent(
        id=id_,
        job=job,
        trigger=trigger,
        trigger_key=key,
        payload=json.loads(payload),
        env=json.loads(env),
        created_at=created,
        scheduled_for=scheduled,
        dedupe_key=dedupe,
        run_id=run_id,
        options=json.loads(options),
    )


def run_from_row(row: Sequence[Any]) -> RunRecord:
    values = dict(zip(RUN_COLUMNS, row, strict=True))
    values["state"] = RunState(values["state"])
    for name in ("payload", "env", "options"):
        values[name] = json.loads(values[name])
    return RunRecord(**values)


def attempt_from_row(row: Sequence[Any]) -> AttemptRecord:
    values = dict(zip(ATTEMPT_COLUMNS, row, strict=True))
    values["handle"] = json.loads(values["handle"])
    return AttemptRecord(**values)


def pause_from_row(row: Sequence[Any]) -> PauseRecord:
    return PauseRecord(job=row[0], since=row[1], reason=row[2], by=row[3])


def decision_from_row(row: Sequence[Any]) -> DecisionRecord:
    return DecisionRecord(
        job=row[0],
        at=row[1],
        outcome=row[2],
        reason=row[3],
        run_id=row[4],
        trigger=row[5],
        scheduled_for=row[6],
    )
