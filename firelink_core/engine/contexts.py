"""What the engine hands to components: trigger, executor, storage and notifier contexts, and the attempt reporter."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

from ..abc import (
    AttemptReporter,
    Clock,
    ExecutorContext,
    NotifierContext,
    Storage,
    StorageContext,
    TriggerContext,
    TriggerHealth,
)
from ..events import TriggerEvent
from ..logs import CappedLogWriter
from ..model import Config, JobSpec, TriggerSpec
from ..params import PARAMS, event_params
from ..records import AttemptRecord, RunRecord

__all__ = [
    "EmitEvent",
    "EngineExecutorContext",
    "EngineNotifierContext",
    "EngineStorageContext",
    "EngineTriggerContext",
    "Reporter",
]

log = logging.getLogger("firelink.engine")


class EmitEvent(Protocol):
    """The engine's entry to its event queue: store ``spec``'s event durably, then queue it
    (``last_fire``: a schedule's fire, stored with its last-fire time)."""

    async def __call__(
        self,
        spec: TriggerSpec,
        payload: Mapping[str, Any] | None,
        env: Mapping[str, str] | None,
        *,
        dedupe_key: str | None = None,
        scheduled_for: float | None = None,
        requested: bool = False,
        last_fire: float | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> TriggerEvent | None: ...


class EngineTriggerContext(TriggerContext):
    """One trigger's view of the engine: the event queue, its checkpoints, its health."""

    def __init__(
        self,
        job: JobSpec,
        spec: TriggerSpec,
        *,
        emit: EmitEvent,
        storage: Storage,
        clock: Clock,
        config: Config,
        on_request: bool = False,
    ) -> None:
        self.job = job
        self.spec = spec
        self.logger = logging.getLogger(f"firelink.trigger.{spec.type}")
        self.clock = clock
        self.state_dir = config.state_dir
        self.config_dir = config.path.parent if config.path else None
        self.health = TriggerHealth(state="starting", since=clock.now())
        self.closed = False
        self._emit = emit
        self._storage = storage
        self._on_request = on_request
        """The trigger's class stands for runs started by hand: its events are requests."""

    async def emit(
        self,
        payload: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        *,
        dedupe_key: str | None = None,
        scheduled_for: float | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> TriggerEvent | None:
        options = None
        if params is not None:
            options = {PARAMS: event_params(self.job, params)}  # ParamError before anything is stored
        if self.closed:
            self.logger.debug("trigger %s stopped: event not queued", self.spec.key)
            return None
        return await self._emit(
            self.spec, payload, env, dedupe_key=dedupe_key, scheduled_for=scheduled_for, requested=self._on_request,
            options=options,
        )

    async def get_checkpoint(self, key: str = "cursor") -> Any | None:
        return await self._storage.get_checkpoint(self.spec.key, key)

    async def set_checkpoint(self, value: Any, key: str = "cursor") -> None:
        await self._storage.set_checkpoint(self.spec.key, key, value)

    def set_health(self, state: Literal["ok", "degraded"], message: str | None = None) -> None:
        if (state, message) == (self.health.state, self.health.message):
            return
        if state == "degraded":
            log.warning("trigger %s degraded: %s", self.spec.key, message or "(no detail)")
        elif self.health.state == "degraded":
            log.info("trigger %s healthy again", self.spec.key)
        self.health = TriggerHealth(state=state, message=message, since=self.clock.now())

    def mark_stopped(self) -> None:
        self.closed = True
        self.health = TriggerHealth(state="stopped", since=self.clock.now())


class EngineExecutorContext(ExecutorContext):
    def __init__(self, type_name: str, config: Config) -> None:
        self.logger = logging.getLogger(f"firelink.executor.{type_name}")
        self.state_dir = config.state_dir
        self.config_dir = config.path.parent if config.path else None


class EngineStorageContext(StorageContext):
    def __init__(self, config: Config) -> None:
        self.logger = logging.getLogger("firelink.storage")
        self.state_dir = config.state_dir


class EngineNotifierContext(NotifierContext):
    def __init__(self, name: str, config: Config) -> None:
        self.logger = logging.getLogger(f"firelink.notifier.{name}")
        self.state_dir = config.state_dir


class Reporter(AttemptReporter):
    """One attempt's link to storage and its log: the executor's handle, its output through
    the capped writer, and the attempt's end written with its run's outcome."""

    def __init__(
        self,
        storage: Storage,
        attempt: AttemptRecord,
        log_path: Path,
        max_bytes: int,
        *,
        stored: bool,
        run_changes: dict[str, Any] | None = None,
    ) -> None:
        self._storage = storage
        self.attempt = attempt
        self.stored = stored
        """Whether the attempt row exists: it is written once the work started (with its
        handle), or at the end for an attempt that never started, to keep writes per run few."""
        self._log_path = log_path
        self._max_bytes = max_bytes
        self._writer: CappedLogWriter | None = None
        self._run_changes = run_changes
        """Start fields of the run (attempt number, log path) not written yet: they go with
        the outcome, or earlier through ``write_start`` for a run still going."""

    async def started(self, handle: Mapping[str, Any]) -> None:
        self.attempt = dataclasses.replace(self.attempt, handle=dict(handle))
        if self.stored:
            await self._storage.update_attempt(self.attempt.run_id, self.attempt.number, handle=dict(handle))
        else:
            self.stored = True
            await self._storage.add_attempt(self.attempt)

    async def log(self, data: bytes) -> None:
        if self._writer is None:
            self._writer = CappedLogWriter(self._log_path, self._max_bytes)
        if self._writer.will_trim(len(data)):
            await asyncio.to_thread(self._writer.write, data)
        else:
            self._writer.write(data)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def write_start(self) -> Coroutine[Any, Any, RunRecord] | None:
        """The write of the run's start fields, if still pending (for the caller to run)."""
        changes, self._run_changes = self._run_changes, None
        return self._storage.update_run(self.attempt.run_id, **changes) if changes else None

    async def end(self, run_changes: dict[str, Any], **changes: Any) -> tuple[AttemptRecord, RunRecord]:
        """Record the attempt's end and its run's new fields (with the start fields not yet
        written): one storage call, one transaction where the backend supports it; safe to
        call again after it raised."""
        attempt = dataclasses.replace(self.attempt, **changes)
        start = self._run_changes or {}
        run = await self._storage.end_attempt(attempt, changes, {**start, **run_changes}, stored=self.stored)
        # Only once written: a failed write can be retried as it was.
        self._run_changes, self.stored = None, True
        return attempt, run
