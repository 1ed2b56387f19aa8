"""A recording TriggerContext and a fake clock, for testing triggers without an engine."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from .._clock import SystemClock
from ..params import PARAMS, event_params
from ..plugin_api import Clock, JobSpec, TriggerContext, TriggerEvent, TriggerHealth, TriggerSpec

__all__ = ["EventRecorder", "FakeClock"]


class FakeClock(Clock):
    """A clock that moves only when told to (``advance``/``set``); sleepers wake as it passes."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._mono = 0.0
        self._changed = asyncio.Condition()

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        target = self._mono + max(0.0, seconds)
        async with self._changed:
            await self._changed.wait_for(lambda: self._mono >= target)

    async def advance(self, seconds: float) -> None:
        """Move both wall and monotonic time forward, waking sleepers that are due."""
        self._now += seconds
        self._mono += seconds
        async with self._changed:
            self._changed.notify_all()
        await asyncio.sleep(0)

    async def jump_wall(self, seconds: float) -> None:
        """Step the wall clock only (an NTP step or a suspend), as the engine must notice."""
        self._now += seconds
        async with self._changed:
            self._changed.notify_all()
        await asyncio.sleep(0)


class EventRecorder(TriggerContext):
    """A TriggerContext that records emitted events and keeps checkpoints in memory.

    Use it to unit-test a trigger: ``rec = EventRecorder(job_name, trigger_type, options)``,
    ``trigger = MyTrigger(rec.spec, rec)``, then ``await rec.wait_events(1)``.
    """

    def __init__(
        self,
        job: str = "job",
        trigger_type: str = "test",
        options: Mapping[str, Any] | None = None,
        *,
        state_dir: Path | None = None,
        clock: Clock | None = None,
        checkpoints: dict[str, Any] | None = None,
    ) -> None:
        self.spec = TriggerSpec(type=trigger_type, options=dict(options or {}), job=job, index=0)
        self.job = JobSpec(name=job, triggers=(self.spec,))
        self.logger = logging.getLogger(f"firelink.test.{job}")
        self.clock = clock or SystemClock()
        self.state_dir = state_dir or Path(".")
        self.config_dir: Path | None = None
        self.events: list[TriggerEvent] = []
        self.checkpoints: dict[str, Any] = checkpoints if checkpoints is not None else {}
        self.health = TriggerHealth()
        self.health_history: list[TriggerHealth] = []
        self._dedupe: set[str] = set()
        self._new_event = asyncio.Event()

    async def emit(
        self,
        payload: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        *,
        dedupe_key: str | None = None,
        scheduled_for: float | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> TriggerEvent | None:
        options = {PARAMS: event_params(self.job, params)} if params is not None else {}
        if dedupe_key is not None:
            if dedupe_key in self._dedupe:
                return None
            self._dedupe.add(dedupe_key)
        json.dumps(payload or {})  # payloads must be JSON-serialisable, as real storage needs
        for key, value in (env or {}).items():
            if not isinstance(value, str):
                raise TypeError(f"env value for {key} must be a string, got {type(value).__name__}")
        event = TriggerEvent(
            id=uuid.uuid4().hex,
            job=self.spec.job,
            trigger=self.spec.type,
            trigger_key=self.spec.key,
            payload=dict(payload or {}),
            env=dict(env or {}),
            created_at=self.clock.now(),
            scheduled_for=scheduled_for,
            dedupe_key=dedupe_key,
            options=options,
        )
        self.events.append(event)
        self._new_event.set()
        return event

    async def get_checkpoint(self, key: str = "cursor") -> Any | None:
        value = self.checkpoints.get(key)
        return None if value is None else json.loads(value)

    async def set_checkpoint(self, value: Any, key: str = "cursor") -> None:
        self.checkpoints[key] = json.dumps(value)

    def set_health(self, state: Literal["ok", "degraded"], message: str | None = None) -> None:
        self.health = TriggerHealth(state=state, message=message, since=self.clock.now())
        self.health_history.append(self.health)

    async def wait_events(self, count: int, timeout: float = 10.0) -> list[TriggerEvent]:
        """Wait until at least ``count`` events were emitted; fail at the deadline."""
        deadline = time.monotonic() + timeout
        while len(self.events) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"expected {count} events within {timeout}s, got {len(self.events)}")
            self._new_event.clear()
            try:
                await asyncio.wait_for(self._new_event.wait(), remaining)
            except asyncio.TimeoutError:
                pass
        return list(self.events)
