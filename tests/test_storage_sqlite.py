"""What only the SQLite storage promises: durability across restarts and kill -9, migrations,
several processes on one file, read-only access for the CLI."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from firelink_core.abc import StorageError
from firelink_core.builtin._sqlite_schema import (
    ATTEMPT_COLUMNS,
    EVENT_COLUMNS,
    MIGRATIONS,
    RUN_COLUMNS,
)
from firelink_core.builtin.memory import MemoryStorage
from firelink_core.builtin.sqlite import SqliteStorage
from firelink_core.events import TriggerEvent
from firelink_core.plugins import make_plugins
from firelink_core.records import AttemptRecord, RunRecord, RunState
from firelink_core.testing import BasicStorageContext

T0 = 1_700_000_000.5

CHILD_PRELUDE = """
import asyncio, sys
from pathlib import Path
from firelink_core.builtin.sqlite import SqliteStorage
from firelink_core.events import TriggerEvent
from firelink_core.testing import BasicStorageContext
path = Path(sys.argv[1])
"""


def sqlite_storage(path: Path, **options: Any) -> SqliteStorage:
    return SqliteStorage({"path": str(path), **options}, BasicStorageContext(path.parent))


def opened(path: Path, **options: Any) -> SqliteStorage:
    storage = sqlite_storage(path, **options)
    asyncio.run(storage.open())
    return storage


def close(storage: SqliteStorage) -> None:
    asyncio.run(storage.close())


def child(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD_PRELUDE + textwrap.dedent(script), *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def close_pipes(process: subprocess.Popen[str]) -> None:
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- files


def test_creates_a_private_state_dir_and_database(tmp_path: Path) -> None:
    state = tmp_path / "deep" / "state"
    storage = SqliteStorage({}, BasicStorageContext(state))
    asyncio.run(storage.open())
    close(storage)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "firelink.db").stat().st_mode) == 0o600


def test_relative_path_is_relative_to_state_dir(tmp_path: Path) -> None:
    storage = SqliteStorage({"path": "db/jobs.sqlite"}, BasicStorageContext(tmp_path / "state"))
    asyncio.run(storage.open())
    asyncio.run(storage.set_checkpoint("ns", "k", 1))
    close(storage)
    assert (tmp_path / "state" / "db" / "jobs.sqlite").is_file()


def test_wal_mode_and_synchronous_option(tmp_path: Path) -> None:
    normal = opened(tmp_path / "a.db")
    full = opened(tmp_path / "b.db", synchronous="full")
    try:
        assert raw(tmp_path / "a.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        # 1 = NORMAL, 2 = FULL (per connection, so read through the storage's own).
        assert normal._connection().execute("PRAGMA synchronous").fetchone()[0] == 1
        assert full._connection().execute("PRAGMA synchronous").fetchone()[0] == 2
        assert normal._connection().execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        close(normal)
        close(full)


def test_not_a_database_is_a_clear_error_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "firelink.db"
    path.write_bytes(b"this is my shopping list, not a database\n" * 200)
    before = digest(path)
    with pytest.raises(StorageError, match="not a database"):
        opened(path)
    assert digest(path) == before


def test_an_emptied_database_is_refused_never_recreated(tmp_path: Path) -> None:
    path = tmp_path / "firelink.db"
    close(opened(path))
    path.write_bytes(b"")
    with pytest.raises(StorageError, match=r"is empty \(0 bytes\).*Restore it from a backup"):
        opened(path)
    assert path.stat().st_size == 0


def test_a_new_database_appears_only_complete(tmp_path: Path) -> None:
    path = tmp_path / "firelink.db"
    (tmp_path / ".firelink.db.creating").write_bytes(b"left by a killed start")
    close(opened(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["firelink.db", "firelink.db.lock"]
    assert raw(path).execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_damaged_pages_are_found_at_open_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "firelink.db"
    storage = opened(path)
    for i in range(200):
        asyncio.run(storage.create_run(RunRecord(id=f"r{i}", job="a", created_at=T0 + i, payload={"i": "x" * 200})))
    close(storage)
    data = bytearray(path.read_bytes())
    data[3 * 4096 : 6 * 4096] = bytes(3 * 4096)
    path.write_bytes(bytes(data))
    before = digest(path)
    with pytest.raises(StorageError, match=r"damaged|malformed") as refused:
        opened(path)
    assert ".recover" in str(refused.value)
    assert digest(path) == before


def test_check_refuses_a_directory_as_path(tmp_path: Path) -> None:
    (problem,) = SqliteStorage.check({"path": str(tmp_path)})
    assert problem.path == ("path",) and "directory" in problem.message
    assert SqliteStorage.check({"path": str(tmp_path / "x.db")}) == []


@pytest.mark.parametrize("cls", [SqliteStorage, MemoryStorage])
def test_config_schema_is_valid_and_documented(cls: type) -> None:
    jsonschema.Draft202012Validator.check_schema(cls.config_schema)
    for name, prop in cls.config_schema["properties"].items():
        assert prop.get("description"), name
        assert "default" in prop, name
    jsonschema.validate({}, cls.config_schema)


def test_sqlite_options_are_validated_by_the_schema() -> None:
    validator = jsonschema.Draft202012Validator(SqliteStorage.config_schema)
    assert not list(validator.iter_errors({"path": "x.db", "synchronous": "full", "busy_timeout": "2s"}))
    assert list(validator.iter_errors({"synchronous": "off"}))
    assert list(validator.iter_errors({"busy_timeout": "soon"}))
    assert list(validator.iter_errors({"pth": "typo.db"}))


def test_both_backends_are_registered_through_the_hook() -> None:
    storages = make_plugins(entry_points=False, env=False).storages()
    assert storages["sqlite"] is SqliteStorage
    assert storages["memory"] is MemoryStorage


def test_schema_columns_match_the_records() -> None:
    # A field added to a record needs a migration; this fails until one is written.
    assert RUN_COLUMNS == tuple(f.name for f in dataclasses.fields(RunRecord))
    assert ATTEMPT_COLUMNS == tuple(f.name for f in dataclasses.fields(AttemptRecord))
    assert EVENT_COLUMNS == tuple(f.name for f in dataclasses.fields(TriggerEvent))


# --------------------------------------------------------------------------- durability


def test_everything_survives_reopening_in_a_new_instance(tmp_path: Path) -> None:
    path = tmp_path / "firelink.db"
    ev = TriggerEvent(id="e1", job="a", trigger="cron", trigger_key="a#0", created_at=T0, dedupe_key="d",
                      payload={"k": [1, 2]}, env={"V": "1"}, scheduled_for=T0)
    run = RunRecord(id="r1", job="a", created_at=T0, payload={"x": 1}, state=RunState.RUNNING, owner="me")
    attempt = AttemptRecord(run_id="r1", number=1, executor="subprocess", started_at=T0, handle={"pid": 5})

    async def write() -> None:
        storage = sqlite_storage(path)
        await storage.open()
        await storage.add_event(ev)
        await storage.create_run(run)
        await storage.add_attempt(attempt)
        await storage.set_last_fire("a#0", T0)
        await storage.set_checkpoint("a#1", "cursor", {"after": "k"})
        await storage.close()

    async def read() -> tuple[Any, ...]:
        storage = sqlite_storage(path)
        await storage.open()
        try:
            return (
                await storage.pending_events(), await storage.get_run("r1"), await storage.list_attempts("r1"),
                await storage.get_last_fire("a#0"), await storage.get_checkpoint("a#1", "cursor"),
                await storage.add_event(dataclasses.replace(ev, id="e2")),
            )
        finally:
            await storage.close()

    asyncio.run(write())
    assert asyncio.run(read()) == ([ev], run, [attempt], T0, {"after": "k"}, False)


def test_kill_9_while_writing_loses_no_acknowledged_event(tmp_path: Path) -> None:
    path = tmp_path / "firelink.db"
    writer = child(
        """
        async def main():
            storage = SqliteStorage({"path": str(path)}, BasicStorageContext(path.parent))
            await storage.open()
            i = 0
            while True:
                event = TriggerEvent(id=f"e{i}", job="a", trigger="watch", trigger_key="a#0",
                                     created_at=1.0 + i, dedupe_key=f"obj-{i}", payload={"pad": "x" * 300})
                await storage.add_event(event)
                print(event.id, flush=True)
                i += 1
        asyncio.run(main())
        """,
        str(path),
    )
    assert writer.stdout is not None
    acknowledged = []
    while len(acknowledged) < 2000:
        line = writer.stdout.readline()
        assert line, writer.stderr.read() if writer.stderr else "writer died"
        acknowledged.append(line.strip())
    os.kill(writer.pid, signal.SIGKILL)
    assert writer.wait(timeout=60) == -signal.SIGKILL
    # Read through the same buffered reader: lines it already holds count too.
    acknowledged += writer.stdout.read().split()
    close_pipes(writer)

    storage = opened(path)
    try:
        pending = [e.id for e in asyncio.run(storage.pending_events())]
        assert raw(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        close(storage)
    # Every acknowledged event is there, in order; at most the one being printed is extra.
    assert pending[: len(acknowledged)] == acknowledged
    assert len(pending) - len(acknowledged) in (0, 1)


# --------------------------------------------------------------------------- concurrency


def test_a_second_writer_on_one_file_is_refused_until_the_first_dies(tmp_path: Path) -> None:
    # Two writers used to share a file (claims never overlapped), but each daemon's recovery
    # took the other's live runs for crashed ones: a second writer is now refused.
    path = tmp_path / "firelink.db"
    close(opened(path))
    script = """
        async def main():
            storage = SqliteStorage({"path": str(path)}, BasicStorageContext(path.parent))
            await storage.open()
            await storage.create_run(RunRecord(id="r1", job="a", created_at=1.0))
            print("ready", flush=True)
            sys.stdin.readline()
        from firelink_core.records import RunRecord
        asyncio.run(main())
        """
    first = child(script, str(path))
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "ready"
        with pytest.raises(StorageError, match=rf"in use by another firelink daemon \(pid {first.pid}\)"):
            opened(path)
        reader = opened(path, readonly=True)  # the CLI's history still reads
        try:
            assert asyncio.run(reader.get_run("r1")) is not None
        finally:
            close(reader)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        close_pipes(first)
    close(opened(path))  # the kernel dropped the lock with the process


def test_readonly_reader_in_another_process_while_a_writer_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "firelink.db"
    daemon = opened(path)
    asyncio.run(daemon.create_run(RunRecord(id="committed", job="a", created_at=T0)))
    # Another writer sits in the middle of a transaction: readers must neither wait nor see it.
    blocker = raw(path)
    blocker.execute("BEGIN IMMEDIATE")
    blocker.execute(
        "INSERT INTO runs (id, job, state, payload, env, created_at, attempts, options)"
        " VALUES ('uncommitted', 'a', 'queued', '{}', '{}', 0, 0, '{}')"
    )
    try:
        reader = child(
            """
            from firelink_core.abc import StorageError
            async def main():
                storage = SqliteStorage({"path": str(path), "readonly": True, "busy_timeout": 0},
                                        BasicStorageContext(path.parent))
                await storage.open()
                print(" ".join(run.id for run in await storage.list_runs()), flush=True)
                try:
                    await storage.update_run("committed", state="failed")
                except StorageError as exc:
                    print("refused:", exc, flush=True)
                await storage.close()
            asyncio.run(main())
            """,
            str(path),
        )
        out, err = reader.communicate(timeout=60)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert reader.returncode == 0, err
    listed, refused = out.splitlines()
    assert listed == "committed"
    assert refused.startswith("refused:") and "read-only" in refused
    assert asyncio.run(daemon.get_run("committed")).state is RunState.QUEUED
    close(daemon)


def test_readonly_with_the_daemon_stopped(tmp_path: Path) -> None:
    path = tmp_path / "firelink.db"
    writer = opened(path)
    asyncio.run(writer.create_run(RunRecord(id="r1", job="a", created_at=T0)))
    close(writer)
    reader = opened(path, readonly=True)
    try:
        assert [run.id for run in asyncio.run(reader.list_runs())] == ["r1"]
    finally:
        close(reader)


def test_readonly_never_creates_a_database(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "firelink.db"
    with pytest.raises(StorageError, match="no firelink database"):
        opened(path, readonly=True)
    assert not path.parent.exists()


# --------------------------------------------------------------------------- migrations

EXTRA_STEP = ("ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",)


class NextVersionStorage(SqliteStorage):
    """The storage as a later firelink with one more schema step would ship it."""

    migrations = (*MIGRATIONS, EXTRA_STEP)


def test_a_new_database_is_at_the_current_version(tmp_path: Path) -> None:
    close(opened(tmp_path / "firelink.db"))
    assert raw(tmp_path / "firelink.db").execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_an_older_database_is_migrated_keeping_its_data(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "firelink.db"
    old = opened(path)
    asyncio.run(old.create_run(RunRecord(id="r1", job="a", created_at=T0, payload={"x": 1})))
    asyncio.run(old.add_event(TriggerEvent(id="e1", job="a", trigger="manual", trigger_key="a#0", created_at=T0)))
    close(old)

    new = NextVersionStorage({"path": str(path)}, BasicStorageContext(tmp_path))
    with caplog.at_level(logging.INFO):
        asyncio.run(new.open())
    try:
        assert asyncio.run(new.get_run("r1")) == RunRecord(id="r1", job="a", created_at=T0, payload={"x": 1})
        assert [e.id for e in asyncio.run(new.pending_events())] == ["e1"]
    finally:
        close(new)
    db = raw(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) + 1
    assert db.execute("SELECT priority FROM runs WHERE id = 'r1'").fetchone() == (0,)
    assert f"from version {len(MIGRATIONS)} to {len(MIGRATIONS) + 1}" in caplog.text


def test_a_failing_migration_step_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "firelink.db"
    old = opened(path)
    asyncio.run(old.create_run(RunRecord(id="r1", job="a", created_at=T0)))
    close(old)

    class BrokenStep(SqliteStorage):
        migrations = (*MIGRATIONS, ("ALTER TABLE runs ADD COLUMN priority INTEGER", "THIS IS NOT SQL"))

    with pytest.raises(StorageError, match="syntax error"):
        asyncio.run(BrokenStep({"path": str(path)}, BasicStorageContext(tmp_path)).open())
    db = raw(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert "priority" not in {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    reopened = opened(path)
    try:
        assert asyncio.run(reopened.get_run("r1")) is not None
    finally:
        close(reopened)


def test_a_database_from_a_newer_firelink_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "firelink.db"
    newer = NextVersionStorage({"path": str(path)}, BasicStorageContext(tmp_path))
    asyncio.run(newer.open())
    asyncio.run(newer.create_run(RunRecord(id="r1", job="a", created_at=T0)))
    close(newer)
    before = digest(path)
    with pytest.raises(StorageError, match=rf"schema version {len(MIGRATIONS) + 1}.*newer firelink"):
        opened(path)
    with pytest.raises(StorageError, match="newer firelink"):
        opened(path, readonly=True)
    assert digest(path) == before


def test_readonly_refuses_a_database_that_needs_migrating(tmp_path: Path) -> None:
    path = tmp_path / "firelink.db"
    close(opened(path))
    reader = NextVersionStorage({"path": str(path), "readonly": True}, BasicStorageContext(tmp_path))
    with pytest.raises(StorageError, match="needs migrating"):
        asyncio.run(reader.open())
    assert raw(path).execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


# --------------------------------------------------------------------------- housekeeping


def test_expired_dedupe_keys_are_purged(tmp_path: Path) -> None:
    path = tmp_path / "firelink.db"
    storage = opened(path)

    async def fill() -> None:
        await storage.add_event(TriggerEvent(id="old", job="a", trigger="watch", trigger_key="a#0",
                                             created_at=T0, dedupe_key="old-key"))
        for i in range(1000):
            await storage.add_event(TriggerEvent(id=f"e{i}", job="a", trigger="watch", trigger_key="a#0",
                                                 created_at=T0 + 31 * 86400, dedupe_key=f"k{i}"))

    asyncio.run(fill())
    close(storage)
    keys = {row[0] for row in raw(path).execute("SELECT dedupe_key FROM event_dedupe")}
    assert "old-key" not in keys and len(keys) == 1000


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({"job": "a"}, "runs_by_job_created"),
        ({}, "runs_by_created"),
        ({"job": "a", "states": [RunState.RUNNING, RunState.QUEUED]}, "runs_by_job_state"),
        ({"states": [RunState.RUNNING, RunState.RETRYING]}, "runs_by_state"),
    ],
)
def test_list_runs_reads_through_an_index(tmp_path: Path, filters: dict[str, Any], index: str) -> None:
    storage = opened(tmp_path / "firelink.db")
    conn = storage._connection()
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        asyncio.run(storage.list_runs(**filters, limit=20))
        (query,) = [sql for sql in statements if sql.lstrip().upper().startswith("SELECT")]
        plan = " ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}"))
    finally:
        conn.set_trace_callback(None)
        close(storage)
    # Runs come off an index, never from a scan of the whole table; listing a job's newest
    # runs needs no sort either.
    assert f"INDEX {index}" in plan.split(" (")[0]
    assert "SCAN runs " not in plan.replace("SCAN runs USING INDEX", "")
    if "states" not in filters:
        assert "TEMP B-TREE" not in plan


def test_a_locked_database_is_a_clear_error_and_the_storage_recovers(tmp_path: Path) -> None:
    path = tmp_path / "firelink.db"
    storage = opened(path, busy_timeout=0)
    ev = TriggerEvent(id="e1", job="a", trigger="manual", trigger_key="a#0", created_at=T0, dedupe_key="k")
    blocker = raw(path)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageError, match="locked"):
            asyncio.run(storage.add_event(ev))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    try:
        assert asyncio.run(storage.add_event(ev)) is True
        assert asyncio.run(storage.pending_events()) == [ev]
    finally:
        close(storage)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"synchronous": "off"}, "synchronous: expected normal or full"), ({"busy_timeout": "soon"}, "busy_timeout")],
)
def test_bad_options_are_refused_before_touching_the_disk(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    storage = SqliteStorage(options, BasicStorageContext(tmp_path / "state"))
    with pytest.raises(StorageError, match=message):
        asyncio.run(storage.open())
    assert not (tmp_path / "state").exists()
