"""A run recovered after a restart that then fails inside the engine ends as failed, with the
reason, as a normal attempt does: never a run left ``running`` until the next start."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from firelink_core.abc import AttemptRecord, AttemptResult, Executor, StorageError
from firelink_core.builtin.sqlite import SqliteStorage
from firelink_core.config import parse_config
from firelink_core.engine import Engine
from firelink_core.plugins import Plugins
from firelink_core.records import RunRecord, RunState
from firelink_core.testing import async_wait_for, plugins_with, run_engine


class RecoverThenBreakExecutor(Executor):
    """A test double: its ``recover`` hands back the bare exit code of the attempt it found,
    not an ``AttemptResult`` (a plugin's bug), so the engine fails on what follows."""

    type_name = "recover_then_break_double"
    config_schema: dict[str, Any] = {"type": "object", "properties": {}}

    async def run(self, request: Any, reporter: Any) -> AttemptResult:
        return AttemptResult(exit_code=0)

    async def recover(self, request: Any, attempt: AttemptRecord, reporter: Any, *, reattach: bool) -> Any:
        return 0


class GiveUpExecutor(Executor):
    """A test double: ``recover`` finds nothing left to reattach to (the default)."""

    type_name = "give_up_double"
    config_schema: dict[str, Any] = {"type": "object", "properties": {}}

    async def run(self, request: Any, reporter: Any) -> AttemptResult:
        return AttemptResult(exit_code=0)


class InterruptWriteFailsStorage(SqliteStorage):
    """SQLite storage whose ``update_attempt`` always fails (a test double): the write that
    marks a crashed attempt interrupted cannot go through."""

    type_name = "sqlite-update-attempt-fails-double"

    async def update_attempt(self, run_id: str, number: int, **changes: Any) -> None:
        raise StorageError("update_attempt: disk full (test double)")


def config_text(executor: str, storage: str = "sqlite") -> str:
    return f"""
storage: {{type: {storage}}}
jobs:
  - name: job
    trigger: manual
    executor: {executor}
    recovery: fail
    command: ["true"]
"""


async def leave_running(text: str, tmp_path: Path, plugins: Plugins) -> str:
    """Store what a daemon killed mid-run leaves: a run ``running`` with a started attempt."""
    config, _ = parse_config(text, str(tmp_path / "firelink.yaml"), plugins=plugins, state_dir=tmp_path)
    config = dataclasses.replace(config, state_dir=tmp_path)
    storage = Engine(config, plugins).storage
    await storage.open()
    try:
        now = 1_000.0
        run = RunRecord(id="run-left-running", job="job", trigger="manual", created_at=now)
        await storage.create_run(run)
        assert await storage.claim_run(run.id, "a-daemon-killed-with-sigkill") is not None
        log_path = str(tmp_path / "logs" / "job" / f"{run.id}.1.log")
        executor = config.jobs[0].executor.type
        await storage.add_attempt(
            AttemptRecord(run_id=run.id, number=1, executor=executor, started_at=now, log_path=log_path, handle={"id": 1})
        )
        await storage.update_run(run.id, attempts=1, started_at=now, log_path=log_path)
    finally:
        await storage.close()
    return run.id


def recover(tmp_path: Path, executor: str, storage: str, *components: Any) -> RunRecord:
    plugins = plugins_with(*components)
    text = config_text(executor, storage)

    async def scenario() -> RunRecord:
        run_id = await leave_running(text, tmp_path, plugins)
        async with run_engine(text, tmp_path, plugins=plugins) as h:
            run = await h.wait_run(run_id, timeout=20)
            await async_wait_for(lambda: h.engine.status()[0].running == 0, 10, message="the job's slot is free")
            return run

    return asyncio.run(scenario())


def test_a_recovered_run_the_engine_then_fails_ends_failed_with_the_reason(tmp_path: Path) -> None:
    run = recover(tmp_path, RecoverThenBreakExecutor.type_name, "sqlite", RecoverThenBreakExecutor)
    assert run.state is RunState.FAILED, run
    assert run.reason is not None and run.reason.startswith("the engine could not recover the attempt: "), run.reason
    assert "AttributeError" in run.reason, run.reason


def test_a_recovered_run_whose_interrupt_storage_fails_ends_failed_with_the_reason(tmp_path: Path) -> None:
    run = recover(tmp_path, GiveUpExecutor.type_name, InterruptWriteFailsStorage.type_name, GiveUpExecutor, InterruptWriteFailsStorage)
    assert run.state is RunState.FAILED, run
    assert run.reason is not None and "the engine could not recover the attempt" in run.reason, run.reason
    assert "disk full (test double)" in run.reason, run.reason
