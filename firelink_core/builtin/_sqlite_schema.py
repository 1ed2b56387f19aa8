"""The SQLite schema of the ``sqlite`` storage as an ordered list of migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

__all__ = ["MIGRATIONS", "Migration", "RUN_COLUMNS", "ATTEMPT_COLUMNS", "EVENT_COLUMNS", "schema_version", "migrate"]

Migration = Sequence[str]
"""One schema step: SQL statements run in one transaction that also bumps ``user_version``."""

# Column order matches the record dataclasses, so rows map onto them positionally.
EVENT_COLUMNS = (
    "id", "job", "trigger", "trigger_key", "payload", "env", "created_at", "scheduled_for",
    "dedupe_key", "run_id", "options",
)
RUN_COLUMNS = (
    "id", "job", "state", "trigger", "trigger_key", "event_id", "payload", "env", "created_at",
    "scheduled_for", "started_at", "finished_at", "attempts", "next_attempt_at", "exit_code",
    "signal", "error", "reason", "log_path", "owner", "parent_run", "options",
)
ATTEMPT_COLUMNS = (
    "run_id", "number", "executor", "started_at", "finished_at", "exit_code", "signal",
    "timed_out", "error", "log_path", "handle",
)

_V1: Migration = (
    # seq (the rowid) keeps insertion order among events or runs created in the same instant.
    """CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        job TEXT NOT NULL,
        trigger TEXT NOT NULL,
        trigger_key TEXT NOT NULL,
        payload TEXT NOT NULL,
        env TEXT NOT NULL,
        created_at REAL NOT NULL,
        scheduled_for REAL,
        dedupe_key TEXT,
        run_id TEXT,
        options TEXT NOT NULL
    )""",
    "CREATE INDEX events_by_created ON events (created_at)",
    # Dedupe keys outlive their events (consumed or dropped) for 30 days.
    """CREATE TABLE event_dedupe (
        trigger_key TEXT NOT NULL,
        dedupe_key TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (trigger_key, dedupe_key)
    ) WITHOUT ROWID""",
    "CREATE INDEX event_dedupe_by_created ON event_dedupe (created_at)",
    """CREATE TABLE runs (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        job TEXT NOT NULL,
        state TEXT NOT NULL,
        trigger TEXT,
        trigger_key TEXT,
        event_id TEXT,
        payload TEXT NOT NULL,
        env TEXT NOT NULL,
        created_at REAL NOT NULL,
        scheduled_for REAL,
        started_at REAL,
        finished_at REAL,
        attempts INTEGER NOT NULL,
        next_attempt_at REAL,
        exit_code INTEGER,
        signal INTEGER,
        error TEXT,
        reason TEXT,
        log_path TEXT,
        owner TEXT,
        parent_run TEXT,
        options TEXT NOT NULL
    )""",
    "CREATE INDEX runs_by_job_created ON runs (job, created_at)",
    "CREATE INDEX runs_by_created ON runs (created_at)",
    # Active runs (queued, waiting, running, retrying) are few among many finished ones:
    # lists of them go through these (see SqliteStorage.list_runs).
    "CREATE INDEX runs_by_state ON runs (state, created_at)",
    "CREATE INDEX runs_by_job_state ON runs (job, state, created_at)",
    "CREATE INDEX runs_by_finished ON runs (finished_at)",
    """CREATE TABLE attempts (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        executor TEXT NOT NULL,
        started_at REAL NOT NULL,
        finished_at REAL,
        exit_code INTEGER,
        signal INTEGER,
        timed_out INTEGER NOT NULL,
        error TEXT,
        log_path TEXT,
        handle TEXT NOT NULL,
        PRIMARY KEY (run_id, number)
    ) WITHOUT ROWID""",
    """CREATE TABLE schedule_state (
        trigger_key TEXT PRIMARY KEY,
        last_fire REAL NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE checkpoints (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID""",
)

_PAUSES_AND_DECISIONS: Migration = (
    """CREATE TABLE pauses (
        job TEXT PRIMARY KEY,
        since REAL NOT NULL,
        reason TEXT,
        by TEXT NOT NULL
    ) WITHOUT ROWID""",
    # seq orders decisions; (job, seq) serves `firelink explain` and the per-job prune.
    """CREATE TABLE decisions (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        job TEXT NOT NULL,
        at REAL NOT NULL,
        outcome TEXT NOT NULL,
        reason TEXT,
        run_id TEXT,
        trigger TEXT,
        scheduled_for REAL
    )""",
    "CREATE INDEX decisions_job_seq ON decisions (job, seq)",
)
"""``firelink pause`` and ``firelink explain`` (issue 13)."""

_RUNS_BY_SCHEDULED: Migration = (
    # A backfill asks which instants of a range already have a run (list_scheduled_runs).
    "CREATE INDEX runs_by_job_scheduled ON runs (job, scheduled_for)",
)

MIGRATIONS: tuple[Migration, ...] = (_V1, _PAUSES_AND_DECISIONS, _RUNS_BY_SCHEDULED)
"""Step ``i`` takes a database from ``user_version`` ``i`` to ``i + 1``. Append, never edit."""


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> tuple[int, int]:
    """Apply the missing steps, each in its own transaction; return (version before, version after).

    The version is read again inside each write transaction, so two processes opening a new
    file at once apply every step exactly once. A database newer than ``migrations`` is left
    untouched: the caller refuses it.
    """
    before = schema_version(conn)
    current = before
    while current < len(migrations):
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = schema_version(conn)
            if current < len(migrations):
                for statement in migrations[current]:
                    conn.execute(statement)
                current += 1
                # PRAGMA takes no parameters; current is an int we computed.
                conn.execute(f"PRAGMA user_version = {current:d}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return before, current
