"""The ``postgres`` storage: firelink's state in a PostgreSQL schema, through psycopg 3's
asynchronous connection pool; every method is one transaction (most, one statement)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import AsyncConnection, errors, sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from firelink_core.plugin_api import (
    DEDUPE_SECONDS,
    DURATION_PATTERN,
    TERMINAL_STATES,
    UPDATABLE_ATTEMPT_FIELDS,
    UPDATABLE_RUN_FIELDS,
    AttemptRecord,
    DecisionRecord,
    PauseRecord,
    Problem,
    RunRecord,
    RunState,
    Storage,
    StorageConflict,
    StorageContext,
    StorageError,
    TriggerEvent,
    check_changes,
    parse_duration,
    parse_run_cursor,
    run_cursor,
)

from . import _queries as q
from ._dsn import describe, is_dsn, resolve, scrub
from ._rows import (
    attempt_from_row,
    column_value,
    decision_from_row,
    dumps,
    event_from_row,
    pause_from_row,
    run_from_row,
)
from ._schema import (
    ATTEMPT_COLUMNS,
    EVENT_COLUMNS,
    MIGRATIONS,
    RUN_COLUMNS,
    Migration,
    lock_key,
    migrate,
    read_version,
)

__all__ = ["PostgresStorage"]

log = logging.getLogger("firelink.storage.postgres")

_SCHEMA_NAME = "^[a-z_][a-z0-9_]{0,62}$"
_TERMINAL = sorted(state.value for state in TERMINAL_STATES)
_DEDUPE_PURGE_EVERY = 1000
"""Expired dedupe keys are purged on open and after this many deduplicated events."""


def _limit(limit: int | None) -> int | None:
    # LIMIT NULL is no limit; a limit beyond bigint asks for everything too.
    return None if limit is None or limit >= 2**63 else limit


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


class PostgresStorage(Storage):
    """State in a PostgreSQL schema: durable, on a server the daemon reaches over the network.

    ``open()`` connects once, creates the schema or migrates it (under an advisory lock), then
    opens a pool of at most ``pool_size`` connections in autocommit mode. Nothing polls: an
    idle daemon sends no query, and the pool checks nothing in the background (psycopg_pool
    replaces a connection when it is found broken, and each one after an hour).
    """

    type_name = "postgres"
    description = "State in a PostgreSQL database (firelink-postgres)."
    config_schema: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "dsn": {
                "type": "string",
                "minLength": 1,
                "description": (
                    "libpq connection string or postgresql:// URL, e.g. ${FIRELINK_DSN}; its password"
                    " is never logged or shown."
                ),
            },
            "schema": {
                "type": "string",
                "pattern": _SCHEMA_NAME,
                "description": "The PostgreSQL schema holding firelink's tables (created when missing).",
                "default": "firelink",
            },
            "pool_size": {
                "type": "integer",
                "minimum": 1,
                "maximum": 100,
                "description": "At most this many connections to the server.",
                "default": 5,
            },
            "connect_timeout": {
                "type": ["string", "number"],
                "pattern": DURATION_PATTERN,
                "minimum": 0,
                "description": "How long to wait for a connection (at start, or from a busy pool) before failing.",
                "default": "10s",
            },
        },
        "required": ["dsn"],
        "additionalProperties": False,
    }

    migrations: Sequence[Migration] = MIGRATIONS
    """The schema steps this version knows (a subclass may extend them in tests)."""

    def __init__(self, options: Mapping[str, Any], context: StorageContext) -> None:
        super().__init__(options, context)
        self._dsn = str(options.get("dsn", ""))  # holds the password: never shown as is
        self._dsn_problem: str | None = None
        try:
            self._dsn = resolve(self._dsn)
        except ValueError as exc:
            self._dsn_problem = f"storage option dsn: {exc}"  # reported by open()
        self.schema = str(options.get("schema", "firelink"))
        self.pool_size = int(options.get("pool_size", 5))
        self.readonly = False
        self._pool: AsyncConnectionPool | None = None
        self._guard: AsyncConnection | None = None
        self._dedupe_adds = 0

    @classmethod
    def check(cls, options: Mapping[str, Any], *, config_dir: Path | None = None) -> list[Problem]:
        dsn = options.get("dsn")
        if isinstance(dsn, str) and "${" not in dsn and not is_dsn(dsn):
            # Never echo it: it may hold a password.
            return [
                Problem(
                    ("dsn",),
                    "not a PostgreSQL connection string (key=value pairs or a postgresql:// URL)",
                )
            ]
        return []

    @property
    def where(self) -> str:
        """Where the state lives, for messages: the server and schema, never the password."""
        return f"{describe(self._dsn)} (schema {self.schema})"

    @property
    def _logger(self) -> logging.Logger:
        return getattr(self.context, "logger", None) or log

    def _checked_timeout(self) -> float:
        """The connect timeout, once the options were found usable (``StorageError`` if not)."""
        if self._dsn_problem is not None:
            raise StorageError(self._dsn_problem)
        try:
            return parse_duration(self.options.get("connect_timeout", "10s"))
        except ValueError as exc:
            raise StorageError(f"storage option connect_timeout: {exc}") from None

    def _error(self, exc: BaseException) -> StorageError:
        return StorageError(f"{self.where}: {scrub(str(exc).strip(), self._dsn)}")

    # lifecycle ------------------------------------------------------------
    async def open(self) -> None:
        if self._pool is not None:
            return
        timeout = self._checked_timeout()
        conn = await self._connect(timeout)
        try:
            before, after = await migrate(conn, self.schema, self.migrations)
            self._refuse_newer(after)
            if before != after:
                self._logger.info(
                    "%s: schema migrated from version %d to %d", self.where, before, after
                )
            await self._hold_the_schema(conn)
            # Expiry is measured against the newest stored key (event time, not this
            # machine's clock), the same reference add_event uses.
            await conn.execute(
                "DELETE FROM event_dedupe WHERE created_at < (SELECT MAX(created_at) FROM event_dedupe) - %s",
                (DEDUPE_SECONDS,),
            )
            self._pool = await self._open_pool(timeout)
        except BaseException as exc:
            await conn.close()  # ends the session: its lock on the schema goes with it
            if isinstance(exc, psycopg.Error):
                raise self._error(exc) from None
            raise
        self._guard = conn

    async def _hold_the_schema(self, conn: AsyncConnection) -> None:
        """One daemon per schema for now: a session advisory lock, held by this connection
        (idle, outside the pool) until ``close()``, refuses a second daemon."""
        cur = await conn.execute(
            "SELECT pg_try_advisory_lock(%s)", (lock_key(f"{self.schema}:daemon"),)
        )
        row = await cur.fetchone()
        if not (row and row[0]):
            raise StorageError(
                f"{self.where} is in use by another firelink daemon: one daemon per schema (several"
                " daemons on one database are not supported yet). Stop the other one, or give this"
                " one another schema."
            )

    async def open_readonly(self) -> bool:
        timeout = self._checked_timeout()
        self.readonly = True
        conn = await self._connect(timeout)
        try:
            version = await read_version(conn, self.schema)
        except psycopg.Error as exc:
            raise self._error(exc) from None
        finally:
            await conn.close()
        if version is None:
            return False  # the daemon never ran with these options: create nothing
        self._refuse_newer(version)
        if version < len(self.migrations):
            raise StorageError(
                f"{self.where} has schema version {version} and needs migrating to {len(self.migrations)};"
                " start the daemon once with this firelink version (reading it was refused)."
            )
        self._pool = await self._open_pool(timeout)
        return True

    def _refuse_newer(self, version: int) -> None:
        known = len(self.migrations)
        if version > known:
            raise StorageError(
                f"{self.where} has schema version {version}, written by a newer firelink-postgres;"
                f" this one knows versions up to {known}. Upgrade firelink-postgres (nothing was changed)."
            )

    def _connect_kwargs(self, timeout: float) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"autocommit": True}
        try:
            given = conninfo_to_dict(self._dsn)
        except psycopg.Error:
            raise StorageError(
                "storage option dsn: not a PostgreSQL connection string (key=value pairs or a postgresql:// URL)"
            ) from None
        given.pop("password", None)
        if "application_name" not in given:
            kwargs["application_name"] = "firelink"
        if "connect_timeout" not in given:
            kwargs["connect_timeout"] = max(2, round(timeout))  # libpq's minimum is 2 s
        return kwargs

    async def _connect(self, timeout: float) -> AsyncConnection:
        """One connection outside the pool, for the schema work at open: its failure is
        reported with libpq's own reason (the pool would only say it timed out)."""
        kwargs = self._connect_kwargs(timeout)
        try:
            conn = await AsyncConnection.connect(self._dsn, **kwargs)
        except psycopg.Error as exc:
            raise StorageError(
                f"cannot connect to {self.where}: {scrub(str(exc).strip(), self._dsn)}"
            ) from None
        try:
            await self._configure(conn)
        except psycopg.Error as exc:
            await conn.close()
            raise self._error(exc) from None
        return conn

    async def _configure(self, conn: AsyncConnection) -> None:
        """Every connection: the schema first on the search path; read-only for a CLI reader."""
        await conn.execute(
            "SELECT set_config('search_path', quote_ident(%s), false)", (self.schema,)
        )
        if self.readonly:
            await conn.execute("SET default_transaction_read_only = on")

    async def _open_pool(self, timeout: float) -> AsyncConnectionPool:
        pool = AsyncConnectionPool(
            self._dsn,
            kwargs=self._connect_kwargs(timeout),
            min_size=1,
            max_size=self.pool_size,
            open=False,
            configure=self._configure,
            timeout=timeout,
            name="firelink",
        )
        try:
            await pool.open(wait=True, timeout=timeout)
        except PoolTimeout:
            await pool.close()
            raise StorageError(f"cannot connect to {self.where} within {timeout:g}s") from None
        return pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        guard, self._guard = self._guard, None
        try:
            if pool is not None:
                await pool.close()
        finally:
            if guard is not None:
                await guard.close()

    # plumbing -------------------------------------------------------------
    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        pool = self._pool
        if pool is None:
            raise StorageError(f"the storage {self.where} is not open")
        try:
            async with pool.connection() as conn:
                yield conn
        except errors.ReadOnlySqlTransaction as exc:
            raise StorageError(f"{self.where} is opened read-only: {exc}") from None
        except errors.IntegrityError as exc:
            raise StorageConflict(f"{self.where}: {scrub(str(exc).strip(), self._dsn)}") from None
        except psycopg.Error as exc:
            raise self._error(exc) from None
        except PoolTimeout:
            raise StorageError(
                f"{self.where}: no connection available within {self._checked_timeout():g}s"
            ) from None

    async def _read(self, query: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self._connection() as conn:
            cur = await conn.execute(query, params)  # type: ignore[arg-type]
            return await cur.fetchall()

    # events -------------------------------------------------------------
    async def add_event(self, event: TriggerEvent) -> bool:
        async with self._connection() as conn, conn.transaction():
            return await self._add_event(conn, event)

    async def add_fire(self, event: TriggerEvent, when: float) -> bool:
        # One transaction for a schedule's fire and its last-fire time.
        async with self._connection() as conn, conn.transaction():
            added = await self._add_event(conn, event)
            await conn.execute(q.SET_LAST_FIRE, (event.trigger_key, float(when)))
        return added

    async def _add_event(self, conn: AsyncConnection, event: TriggerEvent) -> bool:
        params = tuple(column_value(name, getattr(event, name)) for name in EVENT_COLUMNS)
        if event.dedupe_key is not None:
            cur = await conn.execute(
                q.ADD_DEDUPE,
                (event.trigger_key, event.dedupe_key, event.created_at, DEDUPE_SECONDS),
            )
            if cur.rowcount == 0:
                return False
            self._dedupe_adds += 1
            if self._dedupe_adds % _DEDUPE_PURGE_EVERY == 0:
                await conn.execute(
                    "DELETE FROM event_dedupe WHERE created_at < %s",
                    (event.created_at - DEDUPE_SECONDS,),
                )
        await conn.execute(q.EVENT_INSERT, params)
        return True

    async def pending_events(self, limit: int | None = None) -> list[TriggerEvent]:
        return [event_from_row(row) for row in await self._read(q.PENDING_EVENTS, (_limit(limit),))]

    async def drop_event(self, event_id: str) -> None:
        async with self._connection() as conn:
            await conn.execute("DELETE FROM events WHERE id = %s", (event_id,))

    # runs ---------------------------------------------------------------
    async def create_run(self, run: RunRecord, *, consume_event: str | None = None) -> None:
        params = tuple(column_value(name, getattr(run, name)) for name in RUN_COLUMNS)
        async with self._connection() as conn, conn.transaction():
            if consume_event is not None:
                cur = await conn.execute("DELETE FROM events WHERE id = %s", (consume_event,))
                if cur.rowcount == 0:
                    raise StorageConflict(
                        f"event {consume_event!r} is no longer pending (already turned into a run?)"
                    )
            try:
                await conn.execute(q.RUN_INSERT, params)
            except errors.UniqueViolation:
                raise StorageConflict(f"a run with id {run.id!r} exists already") from None

    async def claim_run(
        self, run_id: str, owner: str, *, from_states: Sequence[RunState] = (RunState.QUEUED,)
    ) -> RunRecord | None:
        states = [RunState(state).value for state in from_states]
        if not states:
            return None
        rows = await self._read(q.CLAIM_RUN, (RunState.RUNNING.value, owner, run_id, states))
        return run_from_row(rows[0]) if rows else None

    async def update_run(self, run_id: str, **changes: Any) -> RunRecord:
        checked = check_changes(changes, UPDATABLE_RUN_FIELDS, "run")
        async with self._connection() as conn:
            return await self._update_run(conn, run_id, checked)

    @staticmethod
    async def _update_run(
        conn: AsyncConnection, run_id: str, checked: Mapping[str, Any]
    ) -> RunRecord:
        if checked:
            names = sorted(checked)
            query = sql.SQL("UPDATE runs SET {} WHERE id = %s RETURNING {}").format(
                sql.SQL(", ").join(
                    sql.SQL("{} = %s").format(sql.Identifier(name)) for name in names
                ),
                sql.SQL(", ".join(RUN_COLUMNS)),
            )
            cur = await conn.execute(
                query, (*(column_value(name, checked[name]) for name in names), run_id)
            )
        else:
            cur = await conn.execute(q.GET_RUN, (run_id,))
        row = await cur.fetchone()
        if row is None:
            raise KeyError(f"no run {run_id!r}")
        return run_from_row(row)

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = await self._read(q.GET_RUN, (run_id,))
        return run_from_row(rows[0]) if rows else None

    async def find_runs_by_prefix(self, prefix: str, *, limit: int = 10) -> list[RunRecord]:
        rows = await self._read(q.RUNS_BY_PREFIX, (_like_prefix(prefix), _limit(limit)))
        return [run_from_row(row) for row in rows]

    async def page_runs(
        self,
        job: str | None = None,
        *,
        states: Sequence[RunState] | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[RunRecord], str | None]:
        where: list[str] = []
        params: list[Any] = []
        if job is not None:
            where.append("job = %s")
            params.append(job)
        if states is not None:
            values = [RunState(state).value for state in states]
            if not values:
                return [], None
            where.append("state = ANY(%s)")
            params.append(values)
        if created_after is not None:
            where.append("created_at >= %s")
            params.append(created_after)
        if created_before is not None:
            where.append("created_at < %s")
            params.append(created_before)
        if cursor:
            at, run_id = parse_run_cursor(cursor)
            where.append("(created_at < %s OR (created_at = %s AND id < %s))")
            params.extend((at, at, run_id))
        query = q.RUN_SELECT + (" WHERE " + " AND ".join(where) if where else "")
        query += " ORDER BY created_at DESC, id DESC LIMIT %s"
        params.append(limit + 1)
        runs = [run_from_row(row) for row in await self._read(query, params)]
        page = runs[:limit]
        return page, (run_cursor(page[-1]) if len(runs) > limit else None)

    async def list_scheduled_runs(self, job: str, start: float, end: float) -> list[RunRecord]:
        return [run_from_row(row) for row in await self._read(q.SCHEDULED_RUNS, (job, start, end))]

    async def list_runs(
        self,
        job: str | None = None,
        *,
        states: Sequence[RunState] | None = None,
        limit: int | None = 50,
        finished_after: float | None = None,
    ) -> list[RunRecord]:
        values = None if states is None else [RunState(state).value for state in states]
        if values == []:
            return []
        if finished_after is None and job is not None:
            query, params = (
                (q.RUNS_OF_JOB, [job])
                if values is None
                else (q.RUNS_OF_JOB_IN_STATES, [job, values])
            )
        elif finished_after is None and values is not None:
            query, params = q.RUNS_IN_STATES, [values]
        else:
            where: list[str] = []
            params = []
            if job is not None:
                where.append("job = %s")
                params.append(job)
            if values is not None:
                where.append("state = ANY(%s)")
                params.append(values)
            if finished_after is not None:
                where.append("finished_at > %s")
                params.append(finished_after)
            query = q.RUN_SELECT + (" WHERE " + " AND ".join(where) if where else "")
            query += " ORDER BY created_at DESC, seq DESC LIMIT %s"
        params.append(_limit(limit))
        return [run_from_row(row) for row in await self._read(query, params)]

    # attempts -----------------------------------------------------------
    async def add_attempt(self, attempt: AttemptRecord) -> None:
        async with self._connection() as conn, conn.transaction():
            await self._add_attempt(conn, attempt)

    @staticmethod
    async def _add_attempt(conn: AsyncConnection, attempt: AttemptRecord) -> None:
        params = tuple(column_value(name, getattr(attempt, name)) for name in ATTEMPT_COLUMNS)
        try:
            await conn.execute(q.ATTEMPT_INSERT, params)
        except errors.ForeignKeyViolation:
            raise KeyError(f"no run {attempt.run_id!r}") from None
        except errors.UniqueViolation:
            raise StorageConflict(
                f"run {attempt.run_id!r} already has attempt {attempt.number}"
            ) from None

    async def update_attempt(self, run_id: str, number: int, **changes: Any) -> None:
        checked = check_changes(changes, UPDATABLE_ATTEMPT_FIELDS, "attempt")
        async with self._connection() as conn:
            await self._update_attempt(conn, run_id, number, checked)

    @staticmethod
    async def _update_attempt(
        conn: AsyncConnection, run_id: str, number: int, checked: Mapping[str, Any]
    ) -> None:
        names = sorted(checked)
        if names:
            query = sql.SQL("UPDATE attempts SET {} WHERE run_id = %s AND number = %s").format(
                sql.SQL(", ").join(
                    sql.SQL("{} = %s").format(sql.Identifier(name)) for name in names
                )
            )
            cur = await conn.execute(
                query, (*(column_value(name, checked[name]) for name in names), run_id, number)
            )
            found = cur.rowcount
        else:
            cur = await conn.execute(
                "SELECT 1 FROM attempts WHERE run_id = %s AND number = %s", (run_id, number)
            )
            found = len(await cur.fetchall())
        if not found:
            raise KeyError(f"no attempt {number} of run {run_id!r}")

    async def end_attempt(
        self,
        attempt: AttemptRecord,
        changes: Mapping[str, Any],
        run_changes: Mapping[str, Any],
        *,
        stored: bool,
    ) -> RunRecord:
        # One transaction (one commit) for the attempt's end and its run's outcome.
        checked = (
            check_changes(dict(changes), UPDATABLE_ATTEMPT_FIELDS, "attempt") if stored else {}
        )
        run_checked = check_changes(dict(run_changes), UPDATABLE_RUN_FIELDS, "run")
        async with self._connection() as conn, conn.transaction():
            if stored:
                await self._update_attempt(conn, attempt.run_id, attempt.number, checked)
            else:
                await self._add_attempt(conn, attempt)
            return await self._update_run(conn, attempt.run_id, run_checked)

    async def list_attempts(self, run_id: str) -> list[AttemptRecord]:
        rows = await self._read(f"{q.ATTEMPT_SELECT} WHERE run_id = %s ORDER BY number", (run_id,))
        return [attempt_from_row(row) for row in rows]

    # schedules and checkpoints -----------------------------------------
    async def get_last_fire(self, trigger_key: str) -> float | None:
        rows = await self._read(
            "SELECT last_fire FROM schedule_state WHERE trigger_key = %s", (trigger_key,)
        )
        return float(rows[0][0]) if rows else None

    async def set_last_fire(self, trigger_key: str, when: float) -> None:
        async with self._connection() as conn:
            await conn.execute(q.SET_LAST_FIRE, (trigger_key, float(when)))

    async def get_checkpoint(self, namespace: str, key: str) -> Any | None:
        rows = await self._read(
            "SELECT value FROM checkpoints WHERE namespace = %s AND key = %s", (namespace, key)
        )
        return json.loads(rows[0][0]) if rows else None

    async def set_checkpoint(self, namespace: str, key: str, value: Any) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO checkpoints (namespace, key, value) VALUES (%s, %s, %s)"
                " ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
                (namespace, key, dumps(value)),
            )

    # pauses and decisions -----------------------------------------------
    async def set_pause(self, pause: PauseRecord) -> None:
        async with self._connection() as conn:
            await conn.execute(
                'INSERT INTO pauses (job, since, reason, "by") VALUES (%s, %s, %s, %s) ON CONFLICT (job)'
                ' DO UPDATE SET since = excluded.since, reason = excluded.reason, "by" = excluded."by"',
                (pause.job, float(pause.since), pause.reason, pause.by),
            )

    async def clear_pause(self, job: str) -> PauseRecord | None:
        rows = await self._read(
            'DELETE FROM pauses WHERE job = %s RETURNING job, since, reason, "by"', (job,)
        )
        return pause_from_row(rows[0]) if rows else None

    async def list_pauses(self) -> list[PauseRecord]:
        return [
            pause_from_row(r)
            for r in await self._read('SELECT job, since, reason, "by" FROM pauses ORDER BY job')
        ]

    async def add_decisions(self, decisions: Sequence[DecisionRecord], *, keep_last: int) -> None:
        if not decisions:
            return
        async with self._connection() as conn, conn.transaction():
            async with conn.cursor() as cur:
                await cur.executemany(
                    'INSERT INTO decisions (job, "at", outcome, reason, run_id, trigger, scheduled_for)'
                    " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            d.job,
                            float(d.at),
                            d.outcome,
                            d.reason,
                            d.run_id,
                            d.trigger,
                            d.scheduled_for,
                        )
                        for d in decisions
                    ],
                )
            for job in dict.fromkeys(d.job for d in decisions):
                await conn.execute(q.PRUNE_DECISIONS, (job, job, max(keep_last, 0)))

    async def list_decisions(self, job: str, *, limit: int = 50) -> list[DecisionRecord]:
        return [
            decision_from_row(r) for r in await self._read(q.DECISIONS_OF_JOB, (job, _limit(limit)))
        ]

    # retention ----------------------------------------------------------
    async def prune_runs(
        self, job: str, *, keep_last: int | None, older_than: float | None
    ) -> list[str]:
        selects: list[str] = []
        params: list[Any] = []
        if keep_last is not None:
            selects.append(
                "SELECT seq FROM (SELECT seq FROM runs WHERE job = %s AND state = ANY(%s)"
                " ORDER BY created_at DESC, seq DESC OFFSET %s) AS beyond"
            )
            params.extend((job, _TERMINAL, max(0, keep_last)))
        if older_than is not None:
            selects.append(
                "SELECT seq FROM runs WHERE job = %s AND state = ANY(%s) AND COALESCE(finished_at, created_at) < %s"
            )
            params.extend((job, _TERMINAL, older_than))
        if not selects:
            return []
        doomed = (
            f"SELECT id, log_path FROM runs WHERE seq IN ({' UNION '.join(selects)}) ORDER BY seq"
        )
        paths: dict[str, None] = {}
        async with self._connection() as conn, conn.transaction():
            cur = await conn.execute(doomed, params)  # type: ignore[arg-type]
            runs = await cur.fetchall()
            if not runs:
                return []
            ids = [run_id for run_id, _ in runs]
            cur = await conn.execute(
                "SELECT run_id, log_path FROM attempts WHERE run_id = ANY(%s) AND log_path IS NOT NULL"
                " ORDER BY run_id, number",
                (ids,),
            )
            attempt_logs: dict[str, list[str]] = {}
            for run_id, log_path in await cur.fetchall():
                attempt_logs.setdefault(run_id, []).append(log_path)
            for run_id, log_path in runs:
                if log_path:
                    paths[log_path] = None
                for attempt_log in attempt_logs.get(run_id, []):
                    paths[attempt_log] = None
            # Attempts go with their runs (ON DELETE CASCADE).
            await conn.execute("DELETE FROM runs WHERE id = ANY(%s)", (ids,))
        return list(paths)
