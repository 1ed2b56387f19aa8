"""The SQL of the ``postgres`` storage's steady-state queries, named, so the plan test
(tests/test_plans.py) runs ``EXPLAIN`` on exactly what the storage executes."""

from __future__ import annotations

from ._schema import ATTEMPT_COLUMNS, EVENT_COLUMNS, RUN_COLUMNS

_RUNS = ", ".join(RUN_COLUMNS)
_EVENTS = ", ".join(EVENT_COLUMNS)

RUN_SELECT = f"SELECT {_RUNS} FROM runs"
RUN_INSERT = f"INSERT INTO runs ({_RUNS}) VALUES ({', '.join(['%s'] * len(RUN_COLUMNS))})"
EVENT_INSERT = f"INSERT INTO events ({_EVENTS}) VALUES ({', '.join(['%s'] * len(EVENT_COLUMNS))})"
ATTEMPT_SELECT = f"SELECT {', '.join(ATTEMPT_COLUMNS)} FROM attempts"
ATTEMPT_INSERT = f"INSERT INTO attempts ({', '.join(ATTEMPT_COLUMNS)}) VALUES ({', '.join(['%s'] * len(ATTEMPT_COLUMNS))})"

PENDING_EVENTS = f"SELECT {_EVENTS} FROM events ORDER BY created_at, seq LIMIT %s"
"""Parameters: limit (``None`` for all)."""

CLAIM_RUN = (
    f"UPDATE runs SET state = %s, owner = %s WHERE id = %s AND state = ANY(%s) RETURNING {_RUNS}"
)
"""One statement: the row lock makes a concurrent claimer wait, then re-check ``state`` and
find it taken. Parameters: new state, owner, run id, list of states it may be claimed from."""

GET_RUN = f"{RUN_SELECT} WHERE id = %s"

RUNS_OF_JOB = f"{RUN_SELECT} WHERE job = %s ORDER BY created_at DESC, seq DESC LIMIT %s"
"""Parameters: job, limit."""

RUNS_OF_JOB_IN_STATES = (
    f"{RUN_SELECT} WHERE job = %s AND state = ANY(%s) ORDER BY created_at DESC, seq DESC LIMIT %s"
)
"""Parameters: job, states, limit."""

RUNS_IN_STATES = f"{RUN_SELECT} WHERE state = ANY(%s) ORDER BY created_at DESC, seq DESC LIMIT %s"
"""Parameters: states, limit."""

SCHEDULED_RUNS = f"{RUN_SELECT} WHERE job = %s AND scheduled_for >= %s AND scheduled_for < %s ORDER BY scheduled_for, seq"
"""Parameters: job, start, end."""

RUNS_BY_PREFIX = f"{RUN_SELECT} WHERE id LIKE %s ORDER BY created_at DESC LIMIT %s"
"""Parameters: the escaped prefix followed by ``%``, limit. ``id`` is ``COLLATE "C"``, so
the unique index on it answers the prefix."""

DECISIONS_OF_JOB = (
    'SELECT job, "at", outcome, reason, run_id, trigger, scheduled_for FROM decisions'
    " WHERE job = %s ORDER BY seq DESC LIMIT %s"
)
"""Parameters: job, limit."""

PRUNE_DECISIONS = (
    "DELETE FROM decisions WHERE job = %s AND seq <= "
    "(SELECT seq FROM decisions WHERE job = %s ORDER BY seq DESC LIMIT 1 OFFSET %s)"
)
"""Keeps the job's newest ``keep_last``. Parameters: job, job, keep_last."""

ADD_DEDUPE = (
    "INSERT INTO event_dedupe (trigger_key, dedupe_key, created_at) VALUES (%s, %s, %s)"
    " ON CONFLICT (trigger_key, dedupe_key) DO UPDATE SET created_at = excluded.created_at"
    " WHERE event_dedupe.created_at < excluded.created_at - %s"
)
"""Stores a dedupe key unless it was seen within the window (then no row is affected)."""

SET_LAST_FIRE = (
    "INSERT INTO schedule_state (trigger_key, last_fire) VALUES (%s, %s)"
    " ON CONFLICT (trigger_key) DO UPDATE SET last_fire = excluded.last_fire"
)
