"""Opening the postgres storage: migrations under an advisory lock (daemons starting together
do not race), a schema from a newer version refused, the password never shown, idle means idle."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import psycopg
import pytest
from firelink_postgres import PostgresStorage
from firelink_postgres._schema import MIGRATIONS, VERSION_TABLE

from firelink_core.plugin_api import RunRecord, StorageError
from firelink_core.testing import BasicStorageContext

from .conftest import free_port

pytestmark = pytest.mark.postgres

_SLOW_STEP = (
    "CREATE TABLE applied (n INTEGER)",
    "SELECT pg_sleep(0.3)",  # keeps the step open while the other daemons try to migrate
    "INSERT INTO applied VALUES (1)",
)


class _WithASlowStep(PostgresStorage):
    migrations = (*MIGRATIONS, _SLOW_STEP)


def _storage(cls: type[PostgresStorage], dsn: str, schema: str, tmp_path: Any) -> PostgresStorage:
    return cls({"dsn": dsn, "schema": schema, "pool_size": 2}, BasicStorageContext(tmp_path))


def _query(dsn: str, schema: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT set_config('search_path', quote_ident(%s), false)", (schema,))
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


def test_daemons_opening_a_fresh_schema_together_migrate_it_once(
    postgres_server, schema_name, tmp_path
) -> None:
    """Four daemons start at once on a new schema (its last step is slow, so they overlap):
    the migration runs once, without a DDL error, and then one daemon holds the schema."""
    storages = [
        _storage(_WithASlowStep, postgres_server.dsn, schema_name, tmp_path) for _ in range(4)
    ]

    async def scenario() -> list[BaseException | None]:
        outcomes = await asyncio.gather(*(s.open() for s in storages), return_exceptions=True)
        winner = next(s for s, outcome in zip(storages, outcomes, strict=True) if outcome is None)
        await winner.create_run(_run("r1"))
        await winner.close()
        # Once it stopped, another daemon takes the schema over.
        after = _storage(_WithASlowStep, postgres_server.dsn, schema_name, tmp_path)
        await after.open()
        try:
            assert [r.id for r in await after.list_runs()] == ["r1"]
        finally:
            await after.close()
        return outcomes

    outcomes = asyncio.run(scenario())
    refused = [str(o) for o in outcomes if o is not None]
    assert len(refused) == 3, outcomes
    for message in refused:
        assert "is in use by another firelink daemon: one daemon per schema" in message, message
    assert _query(postgres_server.dsn, schema_name, f"SELECT version FROM {VERSION_TABLE}") == [
        (2,)
    ]
    assert _query(postgres_server.dsn, schema_name, "SELECT n FROM applied") == [(1,)]


def test_an_existing_schema_gets_only_the_missing_step(
    postgres_server, schema_name, tmp_path, caplog
) -> None:
    async def scenario() -> None:
        old = _storage(PostgresStorage, postgres_server.dsn, schema_name, tmp_path)
        await old.open()
        await old.create_run(_run("kept"))
        await old.close()
        new = _storage(_WithASlowStep, postgres_server.dsn, schema_name, tmp_path)
        with caplog.at_level(logging.INFO):
            await new.open()
        try:
            assert (await new.get_run("kept")) is not None
        finally:
            await new.close()

    asyncio.run(scenario())
    assert "schema migrated from version 1 to 2" in caplog.text
    assert _query(postgres_server.dsn, schema_name, "SELECT n FROM applied") == [(1,)]


def test_a_schema_from_a_newer_version_is_refused_and_left_alone(
    postgres_server, schema_name, tmp_path
) -> None:
    async def scenario() -> None:
        newer = _storage(_WithASlowStep, postgres_server.dsn, schema_name, tmp_path)
        await newer.open()
        await newer.create_run(_run("r1"))
        await newer.close()
        for open_it in ("open", "open_readonly"):
            older = _storage(PostgresStorage, postgres_server.dsn, schema_name, tmp_path)
            with pytest.raises(StorageError) as caught:
                await getattr(older, open_it)()
            message = str(caught.value)
            assert "schema version 2, written by a newer firelink-postgres" in message, message
            assert "knows versions up to 1" in message and "Upgrade firelink-postgres" in message
            assert f"schema {schema_name}" in message and "127.0.0.1" in message
            await older.close()

    asyncio.run(scenario())
    assert _query(postgres_server.dsn, schema_name, f"SELECT version FROM {VERSION_TABLE}") == [
        (2,)
    ]
    assert _query(postgres_server.dsn, schema_name, "SELECT id FROM runs") == [("r1",)]


def test_a_reader_never_migrates(postgres_server, schema_name, tmp_path) -> None:
    async def scenario() -> None:
        daemon = _storage(PostgresStorage, postgres_server.dsn, schema_name, tmp_path)
        await daemon.open()
        await daemon.close()
        reader = _storage(_WithASlowStep, postgres_server.dsn, schema_name, tmp_path)
        with pytest.raises(StorageError, match="needs migrating to 2; start the daemon once"):
            await reader.open_readonly()
        await reader.close()

    asyncio.run(scenario())
    assert _query(postgres_server.dsn, schema_name, f"SELECT version FROM {VERSION_TABLE}") == [
        (1,)
    ]


@pytest.mark.parametrize(
    "dsn",
    [
        "host=127.0.0.1 port={port} user=firelink password=Sup3r-s3cret dbname=postgres",
        "postgresql://firelink:Sup3r-s3cret@127.0.0.1:{port}/postgres",
    ],
)
def test_the_password_is_never_shown(dsn: str, tmp_path, caplog) -> None:
    dsn = dsn.format(port=free_port())  # nothing listens there
    storage = PostgresStorage({"dsn": dsn, "connect_timeout": "2s"}, BasicStorageContext(tmp_path))
    with caplog.at_level(logging.DEBUG), pytest.raises(StorageError) as caught:
        asyncio.run(storage.open())
    message = str(caught.value)
    assert message.startswith("cannot connect to postgresql://firelink@127.0.0.1:"), message
    assert "Sup3r-s3cret" not in message and "Sup3r-s3cret" not in caplog.text
    assert "Sup3r-s3cret" not in repr(caught.value)


def test_a_dsn_that_is_not_one_is_a_problem_that_does_not_echo_it() -> None:
    problems = PostgresStorage.check({"dsn": "host=db password=Sup3r-s3cret oops"})
    assert [p.path for p in problems] == [("dsn",)]
    assert "Sup3r-s3cret" not in problems[0].message
    assert PostgresStorage.check({"dsn": "${FIRELINK_DSN}"}) == []
    assert PostgresStorage.check({"dsn": "postgresql://u:p@db/firelink"}) == []


def test_an_idle_storage_sends_nothing(postgres_server, schema_name, tmp_path) -> None:
    """After its work, an open storage keeps its connection idle: no query, no reconnect."""

    def sessions() -> list[tuple[Any, ...]]:
        with psycopg.connect(
            postgres_server.dsn, autocommit=True, application_name="observer"
        ) as conn:
            return conn.execute(
                "SELECT pid, backend_start, state, state_change FROM pg_stat_activity"
                " WHERE application_name = 'firelink' ORDER BY pid"
            ).fetchall()

    async def scenario() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], int, int]:
        storage = _storage(PostgresStorage, postgres_server.dsn, schema_name, tmp_path)
        await storage.open()
        try:
            await storage.create_run(_run("r1"))
            assert storage._pool is not None
            requests = storage._pool.get_stats().get("requests_num", 0)
            before = await asyncio.to_thread(sessions)
            # Observing that nothing happens takes the time it is observed for.
            await asyncio.sleep(3)
            after = await asyncio.to_thread(sessions)
            return before, after, requests, storage._pool.get_stats().get("requests_num", 0)
        finally:
            await storage.close()

    started = time.monotonic()
    before, after, requests_before, requests_after = asyncio.run(scenario())
    assert time.monotonic() - started >= 3
    assert before, "the storage holds no connection"
    assert all(state == "idle" for _, _, state, _ in after)
    assert after == before  # same sessions, and none changed state: nothing was sent
    assert requests_after == requests_before


def _run(run_id: str) -> RunRecord:
    return RunRecord(id=run_id, job="jobA", created_at=1_700_000_000.0)
