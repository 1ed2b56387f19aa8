"""Env values in the events of an ``on_request`` trigger class are a request's overrides:
they reach the run's process, are stored masked, and a restart that lost them fails the
run naming the keys (as ``firelink trigger --env`` values)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from firelink_core.abc import Trigger
from firelink_core.builtin import subprocess  # noqa: F401 - the built-ins these tests run: a broken one fails loudly
from firelink_core.records import RunState
from firelink_core.testing import async_wait_for, plugins_with, run_engine

PY = sys.executable
SECRET = "hunter2-from-the-request"


class RequestDoorTrigger(Trigger):
    """A trigger class standing for runs started by hand (``on_request``), whose events the
    test emits through its context."""

    type_name = "request_door_test"
    description = "Test trigger whose events are requests."
    config_schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}}
    on_request = True
    instances: ClassVar[list[RequestDoorTrigger]] = []

    def __init__(self, spec: Any, context: Any) -> None:
        super().__init__(spec, context)
        RequestDoorTrigger.instances.append(self)

    async def start(self) -> None:
        self.context.set_health("ok")

    async def stop(self) -> None:
        pass


CONFIG = f"""
jobs:
  - name: deploy
    trigger: request_door_test
    overlap: queue
    env: {{DB_PASSWORD: the-job-default}}
    command: ["{PY}", "-c", "import os, sys, time; print('pw=' + os.environ['DB_PASSWORD']); time.sleep(float(os.environ.get('HOLD', '0')))"]
"""


@pytest.fixture(autouse=True)
def _fresh_instances() -> None:
    RequestDoorTrigger.instances.clear()


def stored_bytes(tmp_path: Path) -> bytes:
    """The database with its WAL and shared-memory files, as they are on disk."""
    files = sorted(tmp_path.glob("firelink.db*"))
    assert files, "the database is in the state directory"
    return b"".join(path.read_bytes() for path in files)


def test_an_on_request_triggers_event_env_reaches_the_process_only(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with run_engine(CONFIG, tmp_path, plugins=plugins_with(RequestDoorTrigger)) as h:
            event = await RequestDoorTrigger.instances[0].context.emit({"by": "test"}, {"DB_PASSWORD": SECRET})
            assert event is not None and event.env == {"DB_PASSWORD": "***"}, event
            run = await h.wait_run(event.run_id or "", timeout=20)
            assert run.state is RunState.SUCCESS, run
            assert run.env == {"DB_PASSWORD": "***"}, run
            assert f"pw={SECRET}" in h.log_text(run)  # the request overrides the job's env
            assert SECRET.encode() not in stored_bytes(tmp_path)

    asyncio.run(scenario())


def test_a_restart_that_lost_an_on_request_events_env_fails_the_run_naming_the_keys(tmp_path: Path) -> None:
    plugins = plugins_with(RequestDoorTrigger)

    async def scenario() -> str:
        async with run_engine(CONFIG, tmp_path, plugins=plugins, grace=0) as h:
            context = RequestDoorTrigger.instances[0].context
            first = await context.emit(None, {"HOLD": "60"})
            assert first is not None
            await async_wait_for(lambda: h.engine.status()[0].running == 1, 20, message="the first run runs")
            second = await context.emit(None, {"DB_PASSWORD": SECRET})
            assert second is not None and second.run_id
            await h.settle()
            queued = await h.storage.get_run(second.run_id)
            assert queued is not None and queued.state is RunState.QUEUED, queued
        # The daemon stopped with the second run queued: its value lived in memory only.
        async with run_engine(CONFIG, tmp_path, plugins=plugins) as h:
            run = await h.wait_run(second.run_id, timeout=20)
        assert run.state is RunState.FAILED, run
        assert run.reason is not None and "DB_PASSWORD" in run.reason and "lost in a restart" in run.reason, run
        assert SECRET.encode() not in stored_bytes(tmp_path)
        return run.id

    asyncio.run(scenario())
