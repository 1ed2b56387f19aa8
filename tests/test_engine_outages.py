"""Steps storage fails are retried until they go through: a dispatch, a claim, the end of a
run. The storage is the real SQLite one with a test double's switch that fails the named
calls while an outage is on."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from firelink_core.abc import StorageError
from firelink_core.builtin.sqlite import SqliteStorage
from firelink_core.records import RunState
from firelink_core.testing import async_wait_for, plugins_with, run_engine

PY = sys.executable


class OutageStorageDouble(SqliteStorage):
    """SQLite storage whose ``failing`` calls raise while ``outage`` is set (a test double)."""

    type_name = "sqlite-outage-double"
    outage = False
    failing: frozenset[str] = frozenset()
    failures = 0

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        cls = type(self)
        if name in cls.failing and cls.outage:

            async def fail(*args: Any, **kwargs: Any) -> None:
                cls.failures += 1
                raise StorageError(f"{name}: disk full (test double)")

            return fail
        return attr


CONFIG = f"""
storage: {{type: sqlite-outage-double}}
jobs:
  - name: job
    trigger: manual
    command: ["{PY}", "-c", "pass"]
"""


def _run(tmp_path: Path, failing: set[str]) -> None:
    OutageStorageDouble.failing = frozenset(failing)
    OutageStorageDouble.outage = False
    OutageStorageDouble.failures = 0

    async def scenario() -> None:
        async with run_engine(CONFIG, tmp_path, plugins=plugins_with(OutageStorageDouble)) as h:
            OutageStorageDouble.outage = True
            run_id = await h.trigger("job")
            await async_wait_for(lambda: OutageStorageDouble.failures >= 2, 20, message="the step fails twice")
            assert h.engine.storage_retries_pending >= 1 and h.engine.storage_errors >= 2
            OutageStorageDouble.outage = False
            run = await h.wait_run(run_id, timeout=30)
            assert run.state is RunState.SUCCESS, run
            await async_wait_for(lambda: h.engine.storage_retries_pending == 0, 10, message="the outage is over")

    asyncio.run(scenario())


def test_a_dispatch_storage_failed_is_retried(tmp_path: Path) -> None:
    _run(tmp_path, {"create_run"})


def test_a_claim_storage_failed_is_retried(tmp_path: Path) -> None:
    _run(tmp_path, {"claim_run"})


def test_the_end_of_a_run_storage_failed_is_retried(tmp_path: Path) -> None:
    _run(tmp_path, {"end_attempt"})
