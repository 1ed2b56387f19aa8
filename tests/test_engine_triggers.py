"""What the engine gives plugin triggers: emit (stored first, deduplicated, checked), checkpoints, health, lifecycle."""

from __future__ import annotations

import asyncio
import dataclasses
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import pytest

from firelink_core.abc import Trigger
from firelink_core.builtin import subprocess  # noqa: F401 - the built-ins these tests run: a broken one fails loudly
from firelink_core.records import RunState
from firelink_core.testing import async_wait_for, plugins_with, run_engine


class ProbeTrigger(Trigger):
    """A plugin-style trigger that exposes its context so the test can act as its source."""

    type_name = "probe_test"
    description = "Test trigger driven by the test itself."
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"label": {"type": "string", "description": "A label.", "default": ""}},
    }
    instances: ClassVar[list[ProbeTrigger]] = []

    def __init__(self, spec: Any, context: Any) -> None:
        super().__init__(spec, context)
        self.started = 0
        self.stopped = 0
        ProbeTrigger.instances.append(self)

    async def start(self) -> None:
        self.started += 1
        self.context.set_health("ok")

    async def stop(self) -> None:
        self.stopped += 1


CONFIG = textwrap.dedent("""
    jobs:
      - name: fed
        trigger: probe_test
        label: x
        command: ["sh", "-c", "echo $FIRELINK_PROBE_FILE; echo $FIRELINK_EVENT"]
        overlap: queue
""")


@pytest.fixture(autouse=True)
def _fresh_instances() -> None:
    ProbeTrigger.instances.clear()


def test_emit_stores_then_runs_with_event_env_and_payload(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with run_engine(CONFIG, tmp_path, plugins=plugins_with(ProbeTrigger)) as h:
            (trigger,) = ProbeTrigger.instances
            assert trigger.started == 1
            event = await trigger.context.emit({"file": "a.csv"}, {"FIRELINK_PROBE_FILE": "a.csv"})
            assert event is not None and event.trigger_key == "fed#0" and event.trigger == "probe_test"
            (run,) = await h.wait_runs("fed", 1)
            assert run.event_id == event.id and run.state is RunState.SUCCESS
            assert run.env == {"FIRELINK_PROBE_FILE": "a.csv"} and run.payload == {"file": "a.csv"}
            assert h.log_text(run).splitlines() == ["a.csv", '{"file": "a.csv"}']
        assert trigger.stopped == 1  # the engine stopped it on shutdown

    asyncio.run(scenario())


def test_emit_deduplicates_and_rejects_bad_values(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with run_engine(CONFIG, tmp_path, plugins=plugins_with(ProbeTrigger)) as h:
            context = ProbeTrigger.instances[0].context
            assert await context.emit({}, dedupe_key="obj-1") is not None
            assert await context.emit({}, dedupe_key="obj-1") is None
            with pytest.raises(TypeError, match="fed#0: event payload is not JSON-serialisable"):
                await context.emit({"when": object()})
            with pytest.raises(TypeError, match="env value of N must be a string"):
                await context.emit({}, {"N": 1})  # type: ignore[dict-item]
            await h.wait_runs("fed", 1)
            await h.settle()
            assert len(await h.runs("fed")) == 1

    asyncio.run(scenario())


def test_checkpoints_persist_across_restarts(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with run_engine(CONFIG, tmp_path, plugins=plugins_with(ProbeTrigger)):
            context = ProbeTrigger.instances[0].context
            assert await context.get_checkpoint() is None
            await context.set_checkpoint({"after": "key-17"})
            await context.set_checkpoint(3, key="count")
        async with run_engine(CONFIG, tmp_path, plugins=plugins_with(ProbeTrigger)):
            context = ProbeTrigger.instances[-1].context
            assert await context.get_checkpoint() == {"after": "key-17"}
            assert await context.get_checkpoint("count") == 3

    asyncio.run(scenario())


def test_health_shows_in_status(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with run_engine(CONFIG, tmp_path, plugins=plugins_with(ProbeTrigger)) as h:
            context = ProbeTrigger.instances[0].context
            (status,) = h.engine.status()
            assert status.health["fed#0"].state == "ok" and status.triggers == ["probe_test"]
            context.set_health("degraded", "bucket unreachable")
            (status,) = h.engine.status()
            assert status.health["fed#0"].state == "degraded"
            assert status.health["fed#0"].message == "bucket unreachable"

    asyncio.run(scenario())


def test_emit_after_stop_is_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with run_engine(CONFIG, tmp_path, plugins=plugins_with(ProbeTrigger)):
            context = ProbeTrigger.instances[0].context
        assert await context.emit({"late": True}) is None

    asyncio.run(scenario())


def test_trigger_failing_to_start_is_degraded_not_fatal(tmp_path: Path) -> None:
    class BrokenTrigger(ProbeTrigger):
        type_name = "broken_test"

        async def start(self) -> None:
            raise ConnectionError("no route to bucket")

    config = textwrap.dedent("""
        jobs:
          - {name: broken, trigger: broken_test, command: ["true"]}
          - {name: fine, trigger: manual, command: ["true"]}
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path, plugins=plugins_with(BrokenTrigger)) as h:
            status = {s.name: s for s in h.engine.status()}
            health = status["broken"].health["broken#0"]
            assert health.state == "degraded" and "no route to bucket" in health.message
            assert (await h.run("fine")).state is RunState.SUCCESS

    asyncio.run(scenario())


def test_events_of_a_removed_job_are_dropped_at_restart(tmp_path: Path) -> None:
    other = textwrap.dedent("""
        jobs:
          - {name: other, trigger: manual, command: ["true"]}
    """)

    async def scenario() -> None:
        async with run_engine(CONFIG, tmp_path, plugins=plugins_with(ProbeTrigger)) as h:
            h.engine._stopping = True  # the dispatcher stops taking events; they stay pending
            await ProbeTrigger.instances[0].context.emit({"n": 1})
            assert len(await h.storage.pending_events()) == 1
        async with run_engine(other, tmp_path, plugins=plugins_with(ProbeTrigger)) as h:
            await async_wait_for(lambda: _no_pending(h))
            assert await h.runs() == []

    asyncio.run(scenario())


async def _no_pending(h: Any) -> bool:
    return await h.storage.pending_events() == []


def test_schedule_that_cannot_compute_is_degraded_not_fatal(tmp_path: Path) -> None:
    from datetime import datetime

    from firelink_core.abc import ScheduleTrigger

    class BrokenSchedule(ScheduleTrigger):
        type_name = "broken_schedule_test"

        def next_fire(self, after: datetime) -> datetime | None:
            raise ValueError("bad expression")

    config = textwrap.dedent("""
        jobs:
          - {name: sched, trigger: broken_schedule_test, command: ["true"]}
          - {name: fine, trigger: manual, command: ["true"]}
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path, plugins=plugins_with(BrokenSchedule)) as h:
            status = {s.name: s for s in h.engine.status()}
            health = status["sched"].health["sched#0"]
            assert health.state == "degraded" and "bad expression" in health.message
            assert status["sched"].next_due is None
            assert (await h.run("fine")).state is RunState.SUCCESS

    asyncio.run(scenario())


def test_failed_start_stops_the_triggers_it_started(tmp_path: Path) -> None:
    from firelink_core.config import parse_config
    from firelink_core.engine import Engine, EngineError

    config = textwrap.dedent("""
        jobs:
          - {name: fed, trigger: probe_test, command: ["true"]}
          - {name: other, trigger: manual, command: ["true"]}
    """)
    plugins = plugins_with(ProbeTrigger)
    parsed, _ = parse_config(config, str(tmp_path / "firelink.yaml"), plugins=plugins, state_dir=tmp_path)
    # the second job's trigger type disappears between validation and start
    broken = dataclasses.replace(parsed.jobs[1].triggers[0], type="vanished")
    jobs = (parsed.jobs[0], dataclasses.replace(parsed.jobs[1], triggers=(broken,)))

    async def scenario() -> None:
        engine = Engine(dataclasses.replace(parsed, jobs=jobs), plugins)
        with pytest.raises(EngineError, match="job 'other': no plugin provides trigger type 'vanished'"):
            await engine.start()
        (probe,) = ProbeTrigger.instances
        assert probe.started == 1 and probe.stopped == 1

    asyncio.run(scenario())
