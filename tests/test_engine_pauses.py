"""Pauses and the circuit breaker through the engine's API, on a real SQLite file and real
subprocesses: counts and pauses kept across a restart, ``trigger`` refused unless forced."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from firelink_core.engine.breaker import CHECKPOINT_NAMESPACE
from firelink_core.engine.errors import JobPaused
from firelink_core.events import RunEvent
from firelink_core.plugin_api import hookimpl
from firelink_core.plugins import PluginInfo
from firelink_core.records import RunState
from firelink_core.testing import plugins_with, run_engine

CONFIG = """
jobs:
  - name: flaky
    trigger: manual
    command: ["sh", "-c", "exit $FAIL"]
    pause_after_failures: 3
  - name: steady
    trigger: manual
    command: ["true"]
"""


class Tripped:
    """Records the ``tripped`` run events the hook sees."""

    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    @hookimpl
    def firelink_run_event(self, event: RunEvent) -> None:
        if event.kind == "tripped":
            self.events.append(event)


def _plugins(recorder: Tripped) -> Any:
    plugins = plugins_with()
    plugins.register_module(
        recorder,
        PluginInfo(
            name="tripped", distribution=None, version=None, source="option", module="tripped"
        ),
    )
    return plugins


def _state(h: Any, job: str) -> Any:
    return next(s for s in h.engine.status() if s.name == job)


def test_breaker_counts_consecutive_failures_across_a_restart_and_resume_resets_it(
    tmp_path: Path,
) -> None:
    recorder = Tripped()

    async def scenario() -> None:
        async with run_engine(CONFIG, tmp_path, plugins=_plugins(recorder)) as h:
            assert (await h.run("flaky", {"FAIL": "1"})).state is RunState.FAILED
            assert (
                await h.run("flaky", {"FAIL": "0"})
            ).state is RunState.SUCCESS  # resets the count
            for _ in range(2):
                assert (await h.run("flaky", {"FAIL": "1"})).state is RunState.FAILED
            await h.settle()
            assert await h.storage.get_checkpoint(CHECKPOINT_NAMESPACE, "flaky") == 2
            assert _state(h, "flaky").paused is None
        # the count is stored: the third failure after a restart opens the breaker
        async with run_engine(CONFIG, tmp_path, plugins=_plugins(recorder)) as h:
            last = await h.run("flaky", {"FAIL": "1"})
            await h.settle()
            status = _state(h, "flaky")
            assert status.state == "paused" and status.paused is not None
            assert (status.paused.reason, status.paused.by) == ("3 consecutive failures", "breaker")
            assert [(e.run.id, e.run.state) for e in recorder.events] == [
                (last.id, RunState.FAILED)
            ]
            assert "3 consecutive failures" in (recorder.events[0].run.reason or "")
            with pytest.raises(JobPaused, match="paused by its circuit breaker"):
                await h.engine.trigger("flaky", {"FAIL": "1"})
            forced = await h.engine.trigger("flaky", {"FAIL": "1"}, force=True)
            assert (await h.wait_run(forced)).state is RunState.FAILED
            await h.settle()
            assert len(recorder.events) == 1  # paused already: no second trip
            assert _state(h, "steady").paused is None
        async with run_engine(CONFIG, tmp_path, plugins=_plugins(recorder)) as h:
            assert _state(h, "flaky").paused is not None  # the pause is stored too
            resumed = await h.engine.resume(["flaky"])
            assert resumed[0]["resumed"] is True and resumed[0]["by"] == "breaker"
            assert await h.storage.get_checkpoint(CHECKPOINT_NAMESPACE, "flaky") == 0
            assert await h.storage.list_pauses() == []
            for _ in range(2):
                await h.run("flaky", {"FAIL": "1"})
            await h.settle()
            assert _state(h, "flaky").paused is None  # two failures after the reset: still closed

    asyncio.run(scenario())


def test_pause_and_resume_check_every_name_first_and_keep_a_first_pause(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with run_engine(CONFIG, tmp_path) as h:
            with pytest.raises(KeyError):
                await h.engine.pause(["steady", "nope"], "x")
            assert await h.storage.list_pauses() == []
            [(first, changed)] = await h.engine.pause(["steady"], "window")
            assert changed and first.reason == "window" and first.by == "user"
            [(again, changed)] = await h.engine.pause(["steady"], "other reason")
            assert not changed and again == first
            with pytest.raises(JobPaused, match="paused \\(window\\)"):
                await h.engine.trigger("steady")
            assert h.engine.paused_jobs() == ["steady"]
            answer = await h.engine.explain("steady")
            assert answer["paused"] == first and "paused for" in answer["waiting_for"]
            assert [d.outcome for d in answer["decisions"]] == ["paused"]
            assert (await h.engine.resume(["flaky"]))[0]["resumed"] is False
            assert (await h.engine.resume(["steady"]))[0]["resumed"] is True
            assert (await h.run("steady")).state is RunState.SUCCESS
            outcomes = [d.outcome for d in (await h.engine.explain("steady"))["decisions"]]
            assert outcomes == ["ran", "resumed", "paused"]

    asyncio.run(scenario())


def test_job_status_answers_one_job_as_status_does(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with run_engine(CONFIG, tmp_path) as h:
            assert (await h.run("flaky", {"FAIL": "1"})).state is RunState.FAILED
            await h.engine.pause(["steady"], "window")
            for name in ("flaky", "steady"):
                assert h.engine.job_status(name) == _state(h, name)
            assert h.engine.job_status("flaky").state == "failing"
            assert h.engine.job_status("steady").paused is not None
            with pytest.raises(KeyError):
                h.engine.job_status("nope")

    asyncio.run(scenario())
