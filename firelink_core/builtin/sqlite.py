"""The ``sqlite`` storage (the default): one SQLite file in WAL mode, every method one transaction."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from ..plugin_api import (
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
    hookimpl,
    parse_duration,
    parse_run_cursor,
    run_cursor,
)
from ._sqlite_lock import DatabaseLock
from ._sqlite_schema import (
    ATTEMPT_COLUMNS,
    EVENT_COLUMNS,
    MIGRATIONS,
    RUN_COLUMNS,
    Migration,
    migrate,
    schema_version,
)

__all__ = ["SqliteStorage"]

log = logging.getLogger("firelink.storage.sqlite")

_JSON_COLUMNS = frozenset({"payload", "env", "options", "handle"})
_RUN_SELECT = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs"
_RUN_INSERT = f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})"
_EVENT_SELECT = f"SELECT {', '.join(EVENT_COLUMNS)} FROM events"
_EVENT_INSERT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
)
_ATTEMPT_SELECT = f"SELECT {', '.join(ATTEMPT_COLUMNS)} FROM attempts"
_ATTEMPT_INSERT = (
    f"INSERT INTO attempts ({', '.join(ATTEMPT_COLUMNS)}) VALUES ({', '.join('?' * len(ATTEMPT_COLUMNS))})"
)
_TERMINAL = tuple(sorted(state.value for state in TERMINAL_STATES))
_TERMINAL_SQL = f"state IN ({', '.join('?' * len(_TERMINAL))})"
_RUN_TIMES = ("created_at", "scheduled_for", "started_at", "finished_at", "next_attempt_at")
_DEDUPE_PURGE_EVERY = 1000
"""Expired dedupe keys are purged on open and after this many deduplicated events."""


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _event_from_row(row: Sequence[Any]) -> TriggerEvent:
    (id_, job, trigger, key, payload, env, created, scheduled, dedupe, run_id, options) = row
    return TriggerEvent(
        id=id_, job=job, trigger=trigger, trigger_key=key, payload=json.loads(payload),
        env=json.loads(env), created_at=float(created), scheduled_for=_float(scheduled), dedupe_key=dedupe,
        run_id=run_id, options=json.loads(options),
    )


def _float(value: float | None) -> float | None:
    # SQLite hands back integral REAL values as int in some paths (RETURNING): keep floats floats.
    return None if value is None else float(value)


def _run_from_row(row: Sequence[Any]) -> RunRecord:
    values = dict(zip(RUN_COLUMNS, row, strict=True))
    values["state"] = RunState(values["state"])
    for name in _RUN_TIMES:
        values[name] = _float(values[name])
    for name in ("payload", "env", "options"):
        values[name] = json.loads(values[name])
    return RunRecord(**values)


def _run_params(run: RunRecord) -> tuple[Any, ...]:
    return tuple(_column_value(name, getattr(run, name)) for name in RUN_COLUMNS)


def _attempt_from_row(row: Sequence[Any]) -> AttemptRecord:
    values = dict(zip(ATTEMPT_COLUMNS, row, strict=True))
    values["timed_out"] = bool(values["timed_out"])
    values["started_at"] = float(values["started_at"])
    values["finished_at"] = _float(values["finished_at"])
    values["handle"] = json.loads(values["handle"])
    return AttemptRecord(**values)


def _column_value(name: str, value: Any) -> Any:
    if name == "env":
        # Environment variables are strings; store them as the job will see them.
        return _dumps({str(key): str(val) for key, val in value.items()})
    if name in _JSON_COLUMNS:
        return _dumps(dict(value) if isinstance(value, Mapping) else value)
    if name == "state":
        return RunState(value).value
    if name == "timed_out":
        return int(bool(value))
    return value


def _sql_limit(limit: int | None) -> int:
    # SQLite's LIMIT is a 64-bit integer; a larger one asks for everything, as -1 does.
    return -1 if limit is None or limit >= 2**63 else limit


_RESTORE_ADVICE = (
    " Nothing was changed. Restore it from a backup, or salvage what is readable with"
    " `sqlite3 {path} .recover | sqlite3 repaired.db` and put repaired.db in its place;"
    " or move {path} and its -wal and -shm files away to start with an empty history."
)


def _advice(path: Path, exc: sqlite3.Error) -> str:
    text = str(exc)
    if "malformed" in text or "not a database" in text or "corrupt" in text:
        return _RESTORE_ADVICE.format(path=path)
    return ""


def _check_not_emptied(path: Path) -> None:
    """Refuse an empty file where a database was: SQLite would quietly start a new one."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise StorageError(f"cannot open the database {path}: {exc.strerror or exc}") from None
    if size == 0:
        raise StorageError(
            f"the database {path} is empty (0 bytes): its history is gone, and firelink does not"
            " silently start a new one." + _RESTORE_ADVICE.format(path=path)
        )


def _check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    """``PRAGMA quick_check`` at start: damage is reported once, before any run depends on it.

    It reads every page once (about 0.1 s for 100 MB here, see docs/storage.md), without
    the index cross-checks of ``integrity_check`` that take minutes on large files.
    """
    rows = [row[0] for row in conn.execute("PRAGMA quick_check(5)").fetchall()]
    if rows != ["ok"]:
        detail = "; ".join(str(row) for row in rows)
        raise StorageError(f"the database {path} is damaged ({detail})." + _RESTORE_ADVICE.format(path=path))


class SqliteStorage(Storage):
    """State in one SQLite file (WAL): the default storage, durable across crashes and restarts.

    Calls run synchronously on the event loop: each is one short transaction on one
    connection with cached prepared statements and no fsync (``synchronous=NORMAL``), which
    costs microseconds, far less than a thread hand-off, and keeps calls in order. The one
    wait is ``busy_timeout`` when another process holds SQLite's write lock (a ``sqlite3``
    shell, a backup); readers such as ``firelink runs`` never block the daemon in WAL mode.
    A second daemon on the same file is refused at ``open()`` (see ``DatabaseLock``).
    """

    type_name = "sqlite"
    description = "State in one SQLite file (the default): durable, shared with the CLI while the daemon runs."
    config_schema: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "path": {
                "type": "string",
                "minLength": 1,
                "description": "The database file; a relative path is relative to state_dir.",
                "default": "firelink.db",
            },
            "synchronous": {
                "enum": ["normal", "full"],
                "description": (
                    "normal: every committed write survives a crash or kill of the daemon, the last"
                    " ones may be lost on power loss or a kernel crash; full: also survives power"
                    " loss, at the cost of one fsync per write."
                ),
                "default": "normal",
            },
            "busy_timeout": {
                "type": ["string", "number"],
                "pattern": DURATION_PATTERN,
                "minimum": 0,
                "description": "How long to wait for another process holding the write lock before failing.",
                "default": "5s",
            },
            "readonly": {
                "type": "boolean",
                "description": "Open for reading only (CLI commands); the file must exist and is never migrated.",
                "default": False,
            },
        },
        "additionalProperties": False,
    }

    migrations: Sequence[Migration] = MIGRATIONS
    """The schema steps this version knows (a subclass may extend them in tests)."""

    def __init__(self, options: Mapping[str, Any], context: StorageContext) -> None:
        super().__init__(options, context)
        self._conn: sqlite3.Connection | None = None
        # Serialises use of the one connection should a caller come from a worker thread.
        self._lock = threading.RLock()
        self._dedupe_adds = 0
        self._db_lock: DatabaseLock | None = None
        self.readonly = bool(options.get("readonly", False))
        self.path = self._resolve_path()

    @classmethod
    def check(cls, options: Mapping[str, Any], *, config_dir: Path | None = None) -> list[Problem]:
        path = options.get("path")
        if isinstance(path, str) and os.path.isabs(os.path.expanduser(path)):
            if Path(path).expanduser().is_dir():
                return [Problem(("path",), f"{path} is a directory; give the database file's path")]
        return []

    def _resolve_path(self) -> Path:
        path = Path(str(self.options.get("path", "firelink.db"))).expanduser()
        if not path.is_absolute():
            path = Path(self.context.state_dir).expanduser() / path
        return path

    @property
    def _logger(self) -> logging.Logger:
        return getattr(self.context, "logger", None) or log

    # lifecycle ------------------------------------------------------------
    async def open(self) -> None:
        if self._conn is None:
            # Opening may create folders and migrate: once per daemon, off the event loop.
            self._conn = await asyncio.to_thread(self._connect)

    async def open_readonly(self) -> bool:
        if not self.path.exists():
            return False  # the daemon never ran with these options: leave no file behind
        self.readonly = True
        await self.open()
        return True

    def _connect(self) -> sqlite3.Connection:
        path = self.path
        try:
            busy = parse_duration(self.options.get("busy_timeout", "5s"))
        except ValueError as exc:
            raise StorageError(f"storage option busy_timeout: {exc}") from None
        sync = str(self.options.get("synchronous", "normal")).upper()
        if sync not in ("NORMAL", "FULL"):
            raise StorageError(f"storage option synchronous: expected normal or full, got {sync.lower()!r}")
        if self.readonly:
            if not path.exists():
                raise StorageError(f"no firelink database at {path} (has the daemon ever run with this config?)")
            return self._open_existing(path, busy, sync)
        # State may hold event payloads and paths: private to the daemon's user.
        Path(self.context.state_dir).expanduser().mkdir(mode=0o700, parents=True, exist_ok=True)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = DatabaseLock(path)
        lock.acquire()
        try:
            if not path.exists():
                self._create(path)
            conn = self._open_existing(path, busy, sync)
        except BaseException:
            lock.release()
            raise
        self._db_lock = lock
        return conn

    def _create(self, path: Path) -> None:
        """Build a new database under a temporary name and move it into place once complete.

        So a file at ``path`` always is a whole database: an empty or half-made one there
        means damage, never a start interrupted by a crash, and is refused rather than
        silently re-created (see ``_check_not_emptied``).
        """
        tmp = path.with_name(f".{path.name}.creating")
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            with suppress(FileNotFoundError):
                leftover.unlink()
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                migrate(conn, self.migrations)
            finally:
                conn.close()  # the last connection checkpoints the WAL into the file
            os.rename(tmp, path)  # no other writer: DatabaseLock is held
        except sqlite3.Error as exc:
            raise StorageError(f"cannot create the database {path}: {exc}") from None
        except OSError as exc:
            raise StorageError(f"cannot create the database {path}: {exc.strerror or exc}") from None
        self._logger.info("%s: new database, schema version %d", path, len(self.migrations))

    def _open_existing(self, path: Path, busy: float, sync: str) -> sqlite3.Connection:
        _check_not_emptied(path)
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=256)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the database {path}: {exc}") from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy * 1000):d}")
            version = schema_version(conn)
            known = len(self.migrations)
            if version > known:
                raise StorageError(
                    f"the database {path} has schema version {version}, written by a newer firelink;"
                    f" this firelink knows versions up to {known}. Upgrade firelink (nothing was changed)."
                )
            if self.readonly:
                if version < known:
                    raise StorageError(
                        f"the database {path} has schema version {version} and needs migrating to {known};"
                        " start the daemon once with this firelink version (reading it was refused)."
                    )
                conn.execute("PRAGMA query_only = ON")
            else:
                _check_integrity(conn, path)
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    self._logger.warning("%s: journal mode %s (WAL unavailable here): readers may block", path, mode)
                conn.execute("PRAGMA journal_size_limit = 67108864")
                before, after = migrate(conn, self.migrations)
                if before != after:
                    self._logger.info("%s: schema migrated from version %d to %d", path, before, after)
                # Expiry is measured against the newest stored key (event time, not this
                # machine's clock), the same reference add_event uses.
                conn.execute(
                    "DELETE FROM event_dedupe WHERE created_at < (SELECT MAX(created_at) FROM event_dedupe) - ?",
                    (DEDUPE_SECONDS,),
                )
            conn.execute(f"PRAGMA synchronous = {sync}")
            conn.execute("PRAGMA foreign_keys = ON")
        except StorageError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise StorageError(f"cannot use {path} as a firelink database: {exc}{_advice(path, exc)}") from None
        return conn

    async def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is None:
                return
            try:
                if not self.readonly:
                    conn.execute("PRAGMA optimize")
            except sqlite3.Error as exc:
                self._logger.warning("%s: closing: %s", self.path, exc)
            finally:
                conn.close()
                lock, self._db_lock = self._db_lock, None
                if lock is not None:
                    lock.release()

    # plumbing -------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            raise StorageError(f"the storage {self.path} is not open")
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE takes the write lock up front so a
        transaction never fails half-way on a lock upgrade."""
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                raise self._error(exc) from None
            try:
                yield conn
            except sqlite3.IntegrityError as exc:
                conn.execute("ROLLBACK")
                raise StorageConflict(f"{self.path}: {exc}") from None
            except sqlite3.DatabaseError as exc:
                # A damaged page or a lost lock: the rollback may fail the same way.
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise self._error(exc) from None
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                # Leave the connection usable for the next call whatever went wrong.
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise self._error(exc) from None

    def _error(self, exc: sqlite3.Error) -> StorageError:
        if self.readonly and "readonly" in str(exc):
            return StorageError(f"{self.path} is opened read-only: {exc}")
        return StorageError(f"{self.path}: {exc}{_advice(self.path, exc)}")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._connection().execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise self._error(exc) from None

    # events -------------------------------------------------------------
    async def add_event(self, event: TriggerEvent) -> bool:
        with self._write() as conn:
            return self._add_event(conn, event)

    async def add_fire(self, event: TriggerEvent, when: float) -> bool:
        # One transaction (one commit) for a schedule's fire and its last-fire time.
        with self._write() as conn:
            added = self._add_event(conn, event)
            self._set_last_fire(conn, event.trigger_key, when)
        return added

    def _add_event(self, conn: sqlite3.Connection, event: TriggerEvent) -> bool:
        params = tuple(_column_value(name, getattr(event, name)) for name in EVENT_COLUMNS)
        if event.dedupe_key is not None:
            cursor = conn.execute(
                "INSERT INTO event_dedupe (trigger_key, dedupe_key, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (trigger_key, dedupe_key) DO UPDATE SET created_at = excluded.created_at"
                " WHERE event_dedupe.created_at < excluded.created_at - ?",
                (event.trigger_key, event.dedupe_key, event.created_at, DEDUPE_SECONDS),
            )
            if cursor.rowcount == 0:
                return False
            self._dedupe_adds += 1
            if self._dedupe_adds % _DEDUPE_PURGE_EVERY == 0:
                conn.execute("DELETE FROM event_dedupe WHERE created_at < ?", (event.created_at - DEDUPE_SECONDS,))
        conn.execute(_EVENT_INSERT, params)
        return True

    async def pending_events(self, limit: int | None = None) -> list[TriggerEvent]:
        rows = self._read(f"{_EVENT_SELECT} ORDER BY created_at, seq LIMIT ?", (_sql_limit(limit),))
        return [_event_from_row(row) for row in rows]

    async def drop_event(self, event_id: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM events WHERE id = ?", (event_id,))

    # runs ---------------------------------------------------------------
    async def create_run(self, run: RunRecord, *, consume_event: str | None = None) -> None:
        params = _run_params(run)
        with self._write() as conn:
            if consume_event is not None:
                if conn.execute("DELETE FROM events WHERE id = ?", (consume_event,)).rowcount == 0:
                    raise StorageConflict(
                        f"event {consume_event!r} is no longer pending (already turned into a run?)"
                    )
            try:
                conn.execute(_RUN_INSERT, params)
            except sqlite3.IntegrityError:
                raise StorageConflict(f"a run with id {run.id!r} exists already") from None

    async def claim_run(
        self, run_id: str, owner: str, *, from_states: Sequence[RunState] = (RunState.QUEUED,)
    ) -> RunRecord | None:
        states = [RunState(state).value for state in from_states]
        if not states:
            return None
        with self._write() as conn:
            rows = conn.execute(
                f"UPDATE runs SET state = ?, owner = ? WHERE id = ? AND state IN ({', '.join('?' * len(states))})"
                f" RETURNING {', '.join(RUN_COLUMNS)}",
                (RunState.RUNNING.value, owner, run_id, *states),
            ).fetchall()
        return _run_from_row(rows[0]) if rows else None

    async def update_run(self, run_id: str, **changes: Any) -> RunRecord:
        checked = check_changes(changes, UPDATABLE_RUN_FIELDS, "run")
        with self._write() as conn:
            return self._update_run(conn, run_id, checked)

    @staticmethod
    def _update_run(conn: sqlite3.Connection, run_id: str, checked: Mapping[str, Any]) -> RunRecord:
        if checked:
            names = sorted(checked)
            rows = conn.execute(
                f"UPDATE runs SET {', '.join(f'{name} = ?' for name in names)} WHERE id = ?"
                f" RETURNING {', '.join(RUN_COLUMNS)}",
                (*(_column_value(name, checked[name]) for name in names), run_id),
            ).fetchall()
        else:
            rows = conn.execute(f"{_RUN_SELECT} WHERE id = ?", (run_id,)).fetchall()
        if not rows:
            raise KeyError(f"no run {run_id!r}")
        return _run_from_row(rows[0])

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._read(f"{_RUN_SELECT} WHERE id = ?", (run_id,))
        return _run_from_row(rows[0]) if rows else None

    async def find_runs_by_prefix(self, prefix: str, *, limit: int = 10) -> list[RunRecord]:
        # A range on the primary key (ids are ASCII): the index answers, no LIKE escaping.
        rows = self._read(
            f"{_RUN_SELECT} WHERE id >= ? AND id < ? ORDER BY created_at DESC LIMIT ?",
            (prefix, prefix + "\U0010ffff", limit),
        )
        return [_run_from_row(row) for row in rows]

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
            where.append("job = ?")
            params.append(job)
        if states is not None:
            values = [RunState(state).value for state in states]
            if not values:
                return [], None
            where.append(f"state IN ({', '.join('?' * len(values))})")
            params.extend(values)
        if created_after is not None:
            where.append("created_at >= ?")
            params.append(created_after)
        if created_before is not None:
            where.append("created_at < ?")
            params.append(created_before)
        if cursor:
            at, run_id = parse_run_cursor(cursor)
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            params.extend((at, at, run_id))
        sql = _RUN_SELECT + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        params.append(limit + 1)
        runs = [_run_from_row(row) for row in self._read(sql, params)]
        page = runs[:limit]
        return page, (run_cursor(page[-1]) if len(runs) > limit else None)

    async def list_scheduled_runs(self, job: str, start: float, end: float) -> list[RunRecord]:
        rows = self._read(
            f"{_RUN_SELECT} INDEXED BY runs_by_job_scheduled WHERE job = ? AND scheduled_for >= ?"
            " AND scheduled_for < ? ORDER BY scheduled_for, seq",
            (job, start, end),
        )
        return [_run_from_row(row) for row in rows]

    async def list_runs(
        self,
        job: str | None = None,
        *,
        states: Sequence[RunState] | None = None,
        limit: int | None = 50,
        finished_after: float | None = None,
    ) -> list[RunRecord]:
        where: list[str] = []
        params: list[Any] = []
        if job is not None:
            where.append("job = ?")
            params.append(job)
        if states is not None:
            values = [RunState(state).value for state in states]
            if not values:
                return []
            where.append(f"state IN ({', '.join('?' * len(values))})")
            params.extend(values)
        if finished_after is not None:
            where.append("finished_at > ?")
            params.append(finished_after)
        sql = _RUN_SELECT
        if states is not None and not TERMINAL_STATES.intersection(map(RunState, states)):
            # Without statistics on which states are rare the planner would walk every run
            # of the job by date; active runs are few, so go straight to them.
            sql += " INDEXED BY runs_by_job_state" if job is not None else " INDEXED BY runs_by_state"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, seq DESC LIMIT ?"
        params.append(_sql_limit(limit))
        return [_run_from_row(row) for row in self._read(sql, params)]

    # attempts -----------------------------------------------------------
    async def add_attempt(self, attempt: AttemptRecord) -> None:
        with self._write() as conn:
            self._add_attempt(conn, attempt)

    @staticmethod
    def _add_attempt(conn: sqlite3.Connection, attempt: AttemptRecord) -> None:
        params = tuple(_column_value(name, getattr(attempt, name)) for name in ATTEMPT_COLUMNS)
        if conn.execute("SELECT 1 FROM runs WHERE id = ?", (attempt.run_id,)).fetchone() is None:
            raise KeyError(f"no run {attempt.run_id!r}")
        try:
            conn.execute(_ATTEMPT_INSERT, params)
        except sqlite3.IntegrityError:
            raise StorageConflict(f"run {attempt.run_id!r} already has attempt {attempt.number}") from None

    async def update_attempt(self, run_id: str, number: int, **changes: Any) -> None:
        checked = check_changes(changes, UPDATABLE_ATTEMPT_FIELDS, "attempt")
        with self._write() as conn:
            self._update_attempt(conn, run_id, number, checked)

    @staticmethod
    def _update_attempt(conn: sqlite3.Connection, run_id: str, number: int, checked: Mapping[str, Any]) -> None:
        names = sorted(checked)
        if names:
            sql = (
                f"UPDATE attempts SET {', '.join(f'{name} = ?' for name in names)}"
                " WHERE run_id = ? AND number = ?"
            )
            params = (*(_column_value(name, checked[name]) for name in names), run_id, number)
            found = conn.execute(sql, params).rowcount
        else:
            found = len(
                conn.execute("SELECT 1 FROM attempts WHERE run_id = ? AND number = ?", (run_id, number)).fetchall()
            )
        if not found:
            raise KeyError(f"no attempt {number} of run {run_id!r}")

    async def end_attempt(
        self, attempt: AttemptRecord, changes: Mapping[str, Any], run_changes: Mapping[str, Any], *, stored: bool
    ) -> RunRecord:
        # One transaction (one commit) for the attempt's end and its run's outcome.
        checked = check_changes(dict(changes), UPDATABLE_ATTEMPT_FIELDS, "attempt") if stored else {}
        run_checked = check_changes(dict(run_changes), UPDATABLE_RUN_FIELDS, "run")
        with self._write() as conn:
            if stored:
                self._update_attempt(conn, attempt.run_id, attempt.number, checked)
            else:
                self._add_attempt(conn, attempt)
            return self._update_run(conn, attempt.run_id, run_checked)

    async def list_attempts(self, run_id: str) -> list[AttemptRecord]:
        rows = self._read(f"{_ATTEMPT_SELECT} WHERE run_id = ? ORDER BY number", (run_id,))
        return [_attempt_from_row(row) for row in rows]

    # schedules and checkpoints -----------------------------------------
    async def get_last_fire(self, trigger_key: str) -> float | None:
        rows = self._read("SELECT last_fire FROM schedule_state WHERE trigger_key = ?", (trigger_key,))
        return float(rows[0][0]) if rows else None

    async def set_last_fire(self, trigger_key: str, when: float) -> None:
        with self._write() as conn:
            self._set_last_fire(conn, trigger_key, when)

    @staticmethod
    def _set_last_fire(conn: sqlite3.Connection, trigger_key: str, when: float) -> None:
        conn.execute(
            "INSERT INTO schedule_state (trigger_key, last_fire) VALUES (?, ?)"
            " ON CONFLICT (trigger_key) DO UPDATE SET last_fire = excluded.last_fire",
            (trigger_key, float(when)),
        )

    async def get_checkpoint(self, namespace: str, key: str) -> Any | None:
        rows = self._read("SELECT value FROM checkpoints WHERE namespace = ? AND key = ?", (namespace, key))
        return json.loads(rows[0][0]) if rows else None

    async def set_checkpoint(self, namespace: str, key: str, value: Any) -> None:
        text = _dumps(value)
        with self._write() as conn:
            conn.execute(
                "INSERT INTO checkpoints (namespace, key, value) VALUES (?, ?, ?)"
                " ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
                (namespace, key, text),
            )

    # pauses and decisions -----------------------------------------------
    async def set_pause(self, pause: PauseRecord) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO pauses (job, since, reason, by) VALUES (?, ?, ?, ?) ON CONFLICT (job) DO UPDATE"
                " SET since = excluded.since, reason = excluded.reason, by = excluded.by",
                (pause.job, float(pause.since), pause.reason, pause.by),
            )

    async def clear_pause(self, job: str) -> PauseRecord | None:
        with self._write() as conn:
            row = conn.execute("SELECT job, since, reason, by FROM pauses WHERE job = ?", (job,)).fetchone()
            if row is None:
                return None
            conn.execute("DELETE FROM pauses WHERE job = ?", (job,))
        return PauseRecord(job=row[0], since=row[1], reason=row[2], by=row[3])

    async def list_pauses(self) -> list[PauseRecord]:
        rows = self._read("SELECT job, since, reason, by FROM pauses ORDER BY job")
        return [PauseRecord(job=r[0], since=r[1], reason=r[2], by=r[3]) for r in rows]

    async def add_decisions(self, decisions: Sequence[DecisionRecord], *, keep_last: int) -> None:
        if not decisions:
            return
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO decisions (job, at, outcome, reason, run_id, trigger, scheduled_for)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(d.job, float(d.at), d.outcome, d.reason, d.run_id, d.trigger, _float(d.scheduled_for))
                 for d in decisions],
            )
            for job in dict.fromkeys(d.job for d in decisions):
                # The newest keep_last by the (job, seq) index; older rows of the job go.
                row = conn.execute(
                    "SELECT seq FROM decisions WHERE job = ? ORDER BY seq DESC LIMIT 1 OFFSET ?",
                    (job, max(keep_last, 0)),
                ).fetchone()
                if row is not None:
                    conn.execute("DELETE FROM decisions WHERE job = ? AND seq <= ?", (job, row[0]))

    async def list_decisions(self, job: str, *, limit: int = 50) -> list[DecisionRecord]:
        rows = self._read(
            "SELECT job, at, outcome, reason, run_id, trigger, scheduled_for FROM decisions"
            " WHERE job = ? ORDER BY seq DESC LIMIT ?",
            (job, _sql_limit(limit)),
        )
        return [
            DecisionRecord(job=r[0], at=r[1], outcome=r[2], reason=r[3], run_id=r[4], trigger=r[5], scheduled_for=r[6])
            for r in rows
        ]

    # retention ----------------------------------------------------------
    async def prune_runs(self, job: str, *, keep_last: int | None, older_than: float | None) -> list[str]:
        selects: list[str] = []
        params: list[Any] = []
        if keep_last is not None:
            selects.append(
                f"SELECT seq FROM (SELECT seq FROM runs WHERE job = ? AND {_TERMINAL_SQL}"
                " ORDER BY created_at DESC, seq DESC LIMIT -1 OFFSET ?)"
            )
            params.extend((job, *_TERMINAL, max(0, keep_last)))
        if older_than is not None:
            selects.append(
                f"SELECT seq FROM runs WHERE job = ? AND {_TERMINAL_SQL} AND COALESCE(finished_at, created_at) < ?"
            )
            params.extend((job, *_TERMINAL, older_than))
        if not selects:
            return []
        doomed = f"SELECT id, log_path FROM runs WHERE seq IN ({' UNION '.join(selects)}) ORDER BY seq"
        paths: dict[str, None] = {}
        with self._write() as conn:
            runs = conn.execute(doomed, params).fetchall()
            for run_id, log_path in runs:
                if log_path:
                    paths[log_path] = None
                for (attempt_log,) in conn.execute(
                    "SELECT log_path FROM attempts WHERE run_id = ? ORDER BY number", (run_id,)
                ):
                    if attempt_log:
                        paths[attempt_log] = None
            ids = [(run_id,) for run_id, _ in runs]
            conn.executemany("DELETE FROM attempts WHERE run_id = ?", ids)
            conn.executemany("DELETE FROM runs WHERE id = ?", ids)
        return list(paths)


@hookimpl
def firelink_register_storages() -> list[type[Storage]]:
    return [SqliteStorage]


@hookimpl(trylast=True)
def firelink_default_type(kind: str) -> str | None:
    """A config without ``storage:`` keeps its state in SQLite."""
    return SqliteStorage.type_name if kind == "storage" else None
