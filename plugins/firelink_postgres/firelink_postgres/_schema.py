"""The PostgreSQL schema of the ``postgres`` storage: an ordered list of migrations, applied
at open under an advisory lock so daemons starting together apply each step exactly once."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from psycopg import AsyncConnection, sql

__all__ = [
    "MIGRATIONS",
    "Migration",
    "RUN_COLUMNS",
    "ATTEMPT_COLUMNS",
    "EVENT_COLUMNS",
    "VERSION_TABLE",
    "lock_key",
    "migrate",
    "read_version",
]

Migration = Sequence[str]
"""One schema step: statements run in the transaction that also bumps the stored version."""

VERSION_TABLE = "firelink_schema_version"
"""One row, one column: the number of migrations applied to this schema."""

# Column order matches the record dataclasses, so rows map onto them positionally.
EVENT_COLUMNS = (
    "id",
    "job",
    "trigger",
    "trigger_key",
    "payload",
    "env",
    "created_at",
    "scheduled_for",
    "dedupe_key",
    "run_id",
    "options",
)
RUN_COLUMNS = (
    "id",
    "job",
    "state",
    "trigger",
    "trigger_key",
    "event_id",
    "payload",
    "env",
    "created_at",
    "scheduled_for",
    "started_at",
    "finished_at",
    "attempts",
    "next_attempt_at",
    "exit_code",
    "signal",
    "error",
    "reason",
    "log_path",
    "owner",
    "parent_run",
    "options",
)
ATTEMPT_COLUMNS = (
    "run_id",
    "number",
    "executor",
    "started_at",
    "finished_at",
    "exit_code",
    "signal",
    "timed_out",
    "error",
    "log_path",
    "handle",
)

# Names and ids compare byte-wise (COLLATE "C") whatever the database's locale: orderings
# match Python's, and a run-id prefix (LIKE 'abc%') is answered by the btree index.
_V1: Migration = (
    # seq keeps insertion order among events or runs created in the same instant.
    """CREATE TABLE events (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT COLLATE "C" NOT NULL UNIQUE,
        job TEXT COLLATE "C" NOT NULL,
        trigger TEXT NOT NULL,
        trigger_key TEXT COLLATE "C" NOT NULL,
        payload TEXT NOT NULL,
        env TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        scheduled_for DOUBLE PRECISION,
        dedupe_key TEXT,
        run_id TEXT COLLATE "C",
        options TEXT NOT NULL
    )""",
    "CREATE INDEX events_by_created ON events (created_at, seq)",
    # Dedupe keys outlive their events (consumed or dropped) for 30 days.
    """CREATE TABLE event_dedupe (
        trigger_key TEXT COLLATE "C" NOT NULL,
        dedupe_key TEXT COLLATE "C" NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (trigger_key, dedupe_key)
    )""",
    "CREATE INDEX event_dedupe_by_created ON event_dedupe (created_at)",
    """CREATE TABLE runs (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT COLLATE "C" NOT NULL UNIQUE,
        job TEXT COLLATE "C" NOT NULL,
        state TEXT COLLATE "C" NOT NULL,
        trigger TEXT,
        trigger_key TEXT COLLATE "C",
        event_id TEXT COLLATE "C",
        payload TEXT NOT NULL,
        env TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        scheduled_for DOUBLE PRECISION,
        started_at DOUBLE PRECISION,
        finished_at DOUBLE PRECISION,
        attempts INTEGER NOT NULL,
        next_attempt_at DOUBLE PRECISION,
        exit_code INTEGER,
        signal INTEGER,
        error TEXT,
        reason TEXT,
        log_path TEXT,
        owner TEXT,
        parent_run TEXT COLLATE "C",
        options TEXT NOT NULL
    )""",
    "CREATE INDEX runs_by_job_created ON runs (job, created_at, seq)",
    "CREATE INDEX runs_by_created ON runs (created_at, seq)",
    # Active runs (queued, waiting, running, retrying) are few among many finished ones.
    "CREATE INDEX runs_by_state ON runs (state, created_at)",
    "CREATE INDEX runs_by_job_state ON runs (job, state, created_at)",
    "CREATE INDEX runs_by_finished ON runs (finished_at)",
    # A backfill asks which instants of a range already have a run (list_scheduled_runs).
    "CREATE INDEX runs_by_job_scheduled ON runs (job, scheduled_for)",
    """CREATE TABLE attempts (
        run_id TEXT COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        executor TEXT NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        finished_at DOUBLE PRECISION,
        exit_code INTEGER,
        signal INTEGER,
        timed_out BOOLEAN NOT NULL,
        error TEXT,
        log_path TEXT,
        handle TEXT NOT NULL,
        PRIMARY KEY (run_id, number)
    )""",
    """CREATE TABLE schedule_state (
        trigger_key TEXT COLLATE "C" PRIMARY KEY,
        last_fire DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE checkpoints (
        namespace TEXT COLLATE "C" NOT NULL,
        key TEXT COLLATE "C" NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (namespace, key)
    )""",
    """CREATE TABLE pauses (
        job TEXT COLLATE "C" PRIMARY KEY,
        since DOUBLE PRECISION NOT NULL,
        reason TEXT,
        "by" TEXT NOT NULL
    )""",
    # seq orders decisions; (job, seq) serves `firelink explain` and the per-job prune.
    """CREATE TABLE decisions (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        job TEXT COLLATE "C" NOT NULL,
        "at" DOUBLE PRECISION NOT NULL,
        outcome TEXT NOT NULL,
        reason TEXT,
        run_id TEXT COLLATE "C",
        trigger TEXT,
        scheduled_for DOUBLE PRECISION
    )""",
    "CREATE INDEX decisions_job_seq ON decisions (job, seq)",
)

MIGRATIONS: tuple[Migration, ...] = (_V1,)
"""Step ``i`` takes a schema from version ``i`` to ``i + 1``. Append, never edit."""


def lock_key(schema: str) -> int:
    """The advisory lock (a signed 64-bit key) that serialises migrations of ``schema``."""
    digest = hashlib.sha256(f"firelink-schema:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def read_version(conn: AsyncConnection, schema: str) -> int | None:
    """The schema's stored version; ``None`` when it holds no firelink tables yet."""
    cur = await conn.execute("SELECT to_regclass(%s)", (f"{schema}.{VERSION_TABLE}",))
    row = await cur.fetchone()
    if row is None or row[0] is None:
        return None
    cur = await conn.execute(
        sql.SQL("SELECT version FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(VERSION_TABLE)
        )
    )
    found = await cur.fetchone()
    return int(found[0]) if found else 0


async def migrate(
    conn: AsyncConnection, schema: str, migrations: Sequence[Migration] = MIGRATIONS
) -> tuple[int, int]:
    """Create ``schema`` if needed and apply the missing steps; return (version before, after).

    Everything happens in one transaction holding a transaction-level advisory lock on the
    schema's name, so a second daemon opening at the same time waits, then finds the work
    done. A schema newer than ``migrations`` is left untouched: the caller refuses it.
    ``conn`` is in autocommit mode with ``search_path`` set to ``schema``.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(schema),))
        cur = await conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if await cur.fetchone() is None:
            await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        before = await read_version(conn, schema)
        table = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(VERSION_TABLE))
        if before is None:
            await conn.execute(sql.SQL("CREATE TABLE {} (version INTEGER NOT NULL)").format(table))
            await conn.execute(sql.SQL("INSERT INTO {} (version) VALUES (0)").format(table))
            before = 0
        if before >= len(migrations):
            return before, before
        for step in migrations[before:]:
            for statement in step:
                await conn.execute(statement)  # type: ignore[arg-type]  # our own constant SQL
        await conn.execute(sql.SQL("UPDATE {} SET version = %s").format(table), (len(migrations),))
    return before, len(migrations)
