"""Every hot steady-state query of the postgres storage is answered through an index: its
plan (``EXPLAIN``), on a schema holding a realistic history that was ``ANALYZE``d, scans no
table sequentially. The statements are the storage's own (``firelink_postgres._queries``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from firelink_postgres import PostgresStorage
from firelink_postgres import _queries as q
from firelink_postgres._schema import EVENT_COLUMNS, RUN_COLUMNS
from firelink_postgres.storage import _like_prefix

from firelink_core.testing import BasicStorageContext

pytestmark = pytest.mark.postgres

JOBS = 50
RUNS_PER_JOB = 400
PENDING_EVENTS = 3000
DECISIONS_PER_JOB = 100
T0 = 1_700_000_000.0


def _run_row(job: int, n: int) -> tuple[Any, ...]:
    at = T0 + n * 60 + job
    active = n >= RUNS_PER_JOB - 2  # the newest two of each job are queued or running
    state = (
        ("queued" if n % 2 else "running") if active else ("failed" if n % 7 == 0 else "success")
    )
    values = {
        "id": f"{job:02d}{n:04d}{'0' * 10}",
        "job": f"job{job}",
        "state": state,
        "trigger": "cron",
        "trigger_key": f"job{job}#0",
        "event_id": None,
        "payload": "{}",
        "env": "{}",
        "created_at": at,
        "scheduled_for": at,
        "started_at": None if state == "queued" else at,
        "finished_at": None if active else at + 5,
        "attempts": 1,
        "next_attempt_at": None,
        "exit_code": None,
        "signal": None,
        "error": None,
        "reason": None,
        "log_path": None,
        "owner": None,
        "parent_run": None,
        "options": "{}",
    }
    return tuple(values[name] for name in RUN_COLUMNS)


def _event_row(n: int) -> tuple[Any, ...]:
    values = {
        "id": f"e{n:06d}",
        "job": f"job{n % JOBS}",
        "trigger": "watch",
        "trigger_key": f"job{n % JOBS}#0",
        "payload": "{}",
        "env": "{}",
        "created_at": T0 + n,
        "scheduled_for": None,
        "dedupe_key": None,
        "run_id": None,
        "options": "{}",
    }
    return tuple(values[name] for name in EVENT_COLUMNS)


async def _fill(dsn: str, schema: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SELECT set_config('search_path', quote_ident(%s), false)", (schema,))
        async with conn.cursor() as cur:
            async with cur.copy(f"COPY runs ({', '.join(RUN_COLUMNS)}) FROM STDIN") as copy:
                for job in range(JOBS):
                    for n in range(RUNS_PER_JOB):
                        await copy.write_row(_run_row(job, n))
            async with cur.copy(f"COPY events ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy:
                for n in range(PENDING_EVENTS):
                    await copy.write_row(_event_row(n))
            async with cur.copy('COPY decisions (job, "at", outcome) FROM STDIN') as copy:
                for job in range(JOBS):
                    for n in range(DECISIONS_PER_JOB):
                        await copy.write_row((f"job{job}", T0 + n, "ran"))
        await conn.execute("ANALYZE")


@pytest.fixture(scope="module")
def filled(postgres_server) -> Iterator[tuple[str, str]]:
    schema = "plans"
    storage = PostgresStorage(
        {"dsn": postgres_server.dsn, "schema": schema}, BasicStorageContext("/nonexistent")
    )

    async def prepare() -> None:
        await storage.open()
        await storage.close()
        await _fill(postgres_server.dsn, schema)

    asyncio.run(prepare())
    yield postgres_server.dsn, schema


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _plan(dsn: str, schema: str, query: str, params: tuple[Any, ...]) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT set_config('search_path', quote_ident(%s), false)", (schema,))
        row = conn.execute(f"EXPLAIN (FORMAT JSON) {query}", params).fetchone()  # type: ignore[arg-type]
    assert row is not None
    data = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    return data[0]["Plan"]


HOT_QUERIES = {
    # name: (statement, parameters, the index that must answer it)
    "pending events (a batch of the backlog)": (q.PENDING_EVENTS, (100,), "events_by_created"),
    "claim a run": (
        q.CLAIM_RUN,
        ("running", "me", "1203990000000000", ["queued", "retrying"]),
        "runs_id_key",
    ),
    "get a run": (q.GET_RUN, ("1203990000000000",), "runs_id_key"),
    "runs of a job (status, history)": (q.RUNS_OF_JOB, ("job7", 20), "runs_by_job_created"),
    "finished runs of a job (history at start)": (
        q.RUNS_OF_JOB_IN_STATES,
        ("job7", ["cancelled", "failed", "interrupted", "success"], 20),
        None,
    ),
    "active runs of a job": (q.RUNS_OF_JOB_IN_STATES, ("job7", ["queued", "running"], None), None),
    "running runs (recovery)": (q.RUNS_IN_STATES, (["running"], None), "runs_by_state"),
    "list_scheduled_runs (backfill)": (
        q.SCHEDULED_RUNS,
        ("job7", T0 + 60 * 100, T0 + 60 * 110),
        "runs_by_job_scheduled",
    ),
    "decisions of a job (explain)": (q.DECISIONS_OF_JOB, ("job7", 50), "decisions_job_seq"),
    "prune decisions of a job": (q.PRUNE_DECISIONS, ("job7", "job7", 50), "decisions_job_seq"),
    "find_runs_by_prefix (a short run id)": (
        q.RUNS_BY_PREFIX,
        (_like_prefix("1203"), 10),
        "runs_id_key",
    ),
}


@pytest.mark.parametrize("name", list(HOT_QUERIES))
def test_hot_query_uses_an_index(filled: tuple[str, str], name: str) -> None:
    dsn, schema = filled
    query, params, index = HOT_QUERIES[name]
    nodes = list(_nodes(_plan(dsn, schema, query, params)))
    scans = [(n["Node Type"], n.get("Relation Name"), n.get("Index Name")) for n in nodes]
    assert not [s for s in scans if s[0] == "Seq Scan"], f"{name}: sequential scan in {scans}"
    used = {s[2] for s in scans if s[2]}
    assert used, f"{name}: no index in {scans}"
    if index is not None:
        assert index in used, f"{name}: expected {index}, plan {scans}"
