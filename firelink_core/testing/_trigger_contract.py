"""``TriggerContract``: the behaviour every trigger plugin owes the engine, as a reusable pytest class."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..plugin_api import Trigger
from ._recorder import EventRecorder

__all__ = ["TriggerContract", "TriggerUnderTest"]


@dataclass
class TriggerUnderTest:
    """What a trigger plugin's test supplies to the contract.

    ``fire(trigger)`` causes one event at the source (writes a file, puts an object, calls
    ``trigger.fire()``) and returns when that is done; the contract then waits for the event.
    """

    cls: type[Trigger]
    options: Mapping[str, Any] = field(default_factory=dict)
    fire: Callable[[Trigger], Awaitable[None]] | None = None
    event_timeout: float = 10.0
    quiet_period: float = 1.0
    """How long the contract watches for an event that must NOT come (after ``stop``)."""


class TriggerContract:
    """Subclass it as ``Test<Name>TriggerContract`` and override the ``trigger_under_test`` fixture::

        class TestMyTrigger(TriggerContract):
            @pytest.fixture
            def trigger_under_test(self, tmp_path):
                async def fire(trigger):
                    (tmp_path / "in" / "a.csv").write_text("x")
                return TriggerUnderTest(MyTrigger, {"source": str(tmp_path / "in")}, fire)

    Every contract in ``firelink_core.testing`` asks for one fixture, ``<subject>_under_test``,
    returning a ``<Subject>UnderTest`` that says what the contract cannot guess. Schedule
    triggers (cron, interval) run :class:`ScheduleTriggerContract` instead. Each test runs its
    own event loop (``asyncio.run``), so no async pytest plugin is needed.
    """

    @pytest.fixture
    def trigger_under_test(self, tmp_path: Path) -> TriggerUnderTest:
        raise NotImplementedError("override the trigger_under_test fixture")

    def _make(self, tut: TriggerUnderTest, tmp_path: Path) -> tuple[Trigger, EventRecorder]:
        recorder = EventRecorder("contract-job", tut.cls.type_name, tut.options, state_dir=tmp_path)
        recorder.config_dir = tmp_path
        return tut.cls(recorder.spec, recorder), recorder

    def test_declares_type_and_schema(self, trigger_under_test: TriggerUnderTest) -> None:
        cls = trigger_under_test.cls
        assert isinstance(cls.type_name, str) and cls.type_name
        schema = cls.config_schema
        assert schema.get("type") == "object"
        for name, prop in schema.get("properties", {}).items():
            assert prop.get("description"), f"option {name!r} has no description"

    def test_start_and_stop_are_idempotent(self, trigger_under_test: TriggerUnderTest, tmp_path: Path) -> None:
        async def scenario() -> None:
            trigger, _recorder = self._make(trigger_under_test, tmp_path)
            await trigger.stop()  # stop before start is harmless
            await trigger.start()
            await trigger.stop()
            await trigger.stop()

        asyncio.run(asyncio.wait_for(scenario(), 30))

    def test_emitted_events_are_serialisable(self, trigger_under_test: TriggerUnderTest, tmp_path: Path) -> None:
        if trigger_under_test.fire is None:
            pytest.skip("this trigger has no way to cause an event in tests")

        async def scenario() -> None:
            trigger, recorder = self._make(trigger_under_test, tmp_path)
            await trigger.start()
            try:
                await trigger_under_test.fire(trigger)
                events = await recorder.wait_events(1, trigger_under_test.event_timeout)
            finally:
                await trigger.stop()
            for event in events:
                assert event.job == "contract-job"
                assert event.trigger_key == recorder.spec.key
                json.dumps(dict(event.payload))
                assert all(isinstance(k, str) and isinstance(v, str) for k, v in event.env.items())

        asyncio.run(asyncio.wait_for(scenario(), 60))

    def test_stop_prevents_further_events(self, trigger_under_test: TriggerUnderTest, tmp_path: Path) -> None:
        if trigger_under_test.fire is None:
            pytest.skip("this trigger has no way to cause an event in tests")

        async def scenario() -> None:
            trigger, recorder = self._make(trigger_under_test, tmp_path)
            await trigger.start()
            await trigger.stop()
            await trigger_under_test.fire(trigger)
            with pytest.raises(AssertionError):
                await recorder.wait_events(1, trigger_under_test.quiet_period)
            assert recorder.events == []

        asyncio.run(asyncio.wait_for(scenario(), 60))

    def test_reports_health(self, trigger_under_test: TriggerUnderTest, tmp_path: Path) -> None:
        async def scenario() -> None:
            trigger, recorder = self._make(trigger_under_test, tmp_path)
            await trigger.start()
            try:
                deadline = asyncio.get_running_loop().time() + trigger_under_test.event_timeout
                while recorder.health.state == "starting":
                    assert asyncio.get_running_loop().time() < deadline, "the trigger never reported its health"
                    await asyncio.sleep(0.02)
                assert recorder.health.state in ("ok", "degraded")
            finally:
                await trigger.stop()

        asyncio.run(asyncio.wait_for(scenario(), 60))
