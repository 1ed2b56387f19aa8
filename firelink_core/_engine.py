"""The engine: one event queue, one timer heap, the dispatcher, the DAG runner, retries and recovery."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import json
import logging
import os
import random
import socket
import uuid
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from ._childwatch import install_pidfd_child_watcher
from ._clock import SystemClock
from ._dag import Dag
from .abc import (
    AttemptReporter,
    AttemptRequest,
    AttemptResult,
    Clock,
    Executor,
    ExecutorContext,
    Notifier,
    NotifierContext,
    ScheduleTrigger,
    Storage,
    StorageConflict,
    StorageContext,
    Trigger,
    TriggerContext,
    TriggerHealth,
)
from .durations import format_duration
from .events import (
    RunEvent,
    RunFailed,
    RunInterrupted,
    RunQueued,
    RunRecovered,
    RunRetrying,
    RunSkipped,
    RunStarted,
    RunSucceeded,
    RunTimedOut,
    RunUpstreamFailed,
    RunWaiting,
    TriggerEvent,
)
from .logs import CappedLogWriter, attempt_log_path, log_tail_lines
from .model import Config, JobSpec, Overlap, Retries, TriggerSpec
from .plugins import Plugins
from .records import TERMINAL_STATES, AttemptRecord, RunRecord, RunState

__all__ = ["Engine", "EngineError", "JobStatus", "ReloadResult"]

log = logging.getLogger("firelink.engine")

MAX_SLEEP = 3900.0
"""The longest single sleep of the timer (65 minutes). The event loop sleeps on the
monotonic clock, which stands still during a suspend and ignores wall-clock steps; waking
at least this often bounds how late a schedule can fire after either, while an idle
daemon with nothing due within the hour still sleeps through the whole hour."""
JUMP_TOLERANCE = 2.0
"""Wall-clock progress differing from monotonic progress by more than this (seconds) is a
clock step or a suspend: schedules are recomputed from the wall clock."""
NOTIFY_TIMEOUT = 30.0
"""The deadline of one notifier delivery."""
PRUNE_INTERVAL = 60.0
"""Retention runs at most once per this many seconds per job (the first time a minute after start)."""
CATCHUP_SCAN_LIMIT = 100_000
"""Missed fires examined per schedule after downtime (``catchup: all`` keeps the newest 1000)."""
CATCHUP_ALL_LIMIT = 1000
DEFAULT_MAX_PARALLEL = 64
TIMER_BATCH = 64
START_WRITE_DELAY = 1.0
"""A run still going after this many seconds has its start (attempt, log path) written."""
"""Due timers handled before the dispatcher turns their events into runs: thousands of
schedules due at once start running while the rest are still being fired."""

FAILED_STATES = frozenset({RunState.FAILED, RunState.TIMED_OUT, RunState.UPSTREAM_FAILED})
"""What counts as a failure of an upstream for conditions."""
DONE_STATES = frozenset(TERMINAL_STATES - {RunState.SKIPPED, RunState.CANCELLED})
"""What counts as 'finished' for conditions: skipped and cancelled runs did no work."""

_EVENT_OF_STATE: dict[RunState, type[RunEvent]] = {
    RunState.SUCCESS: RunSucceeded,
    RunState.FAILED: RunFailed,
    RunState.TIMED_OUT: RunTimedOut,
    RunState.SKIPPED: RunSkipped,
    RunState.UPSTREAM_FAILED: RunUpstreamFailed,
    RunState.INTERRUPTED: RunInterrupted,
}


class EngineError(Exception):
    """The engine cannot start with this config and these plugins (a missing component type)."""


@dataclass
class JobStatus:
    """What ``firelink status`` shows for one job."""

    name: str
    triggers: list[str]
    """Readable trigger descriptions (``cron 0 18 * * *``, ``watch s3://b/p``, ``manual``)."""
    state: str
    """``idle``, ``running``, ``waiting``, ``failing`` or ``disabled``."""
    last_run: RunRecord | None
    next_due: datetime | None
    health: dict[str, TriggerHealth] = field(default_factory=dict)
    """Per trigger key."""
    running: int = 0
    waiting: int = 0


@dataclass
class ReloadResult:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


@dataclass
class _History:
    """When an upstream job last finished, per outcome (epoch seconds), for conditions."""

    success: float | None = None
    done: float | None = None
    failed: float | None = None
    latest_state: RunState | None = None

    def note(self, run: RunRecord) -> None:
        at = run.finished_at
        if at is None or run.state not in DONE_STATES:
            return
        if self.done is None or at >= self.done:
            self.done = at
            self.latest_state = run.state
        if run.state is RunState.SUCCESS and (self.success is None or at > self.success):
            self.success = at
        if run.state in FAILED_STATES and (self.failed is None or at > self.failed):
            self.failed = at


@dataclass
class _Schedule:
    trigger: ScheduleTrigger
    generation: int
    next_due: datetime | None = None


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def _new_id() -> str:
    """``uuid.uuid4().hex`` without building a ``UUID`` (one per event and per run)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


def _derived_id(base: str, what: str) -> str:
    """A run id derived from another, so redoing a step after a crash finds the same run."""
    return uuid.uuid5(uuid.UUID(hex=base) if len(base) == 32 else uuid.NAMESPACE_OID, f"{base}/{what}").hex


# --------------------------------------------------------------------------- contexts


class _TriggerContext(TriggerContext):
    def __init__(self, engine: Engine, job: JobSpec, spec: TriggerSpec) -> None:
        self._engine = engine
        self.job = job
        self.spec = spec
        self.logger = logging.getLogger(f"firelink.trigger.{spec.type}")
        self.clock = engine.clock
        self.state_dir = engine.config.state_dir
        self.config_dir = engine.config.path.parent if engine.config.path else None
        self.health = TriggerHealth(state="starting", since=engine.clock.now())
        self.closed = False

    async def emit(
        self,
        payload: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        *,
        dedupe_key: str | None = None,
        scheduled_for: float | None = None,
    ) -> TriggerEvent | None:
        if self.closed:
            self.logger.debug("trigger %s stopped: event not queued", self.spec.key)
            return None
        return await self._engine._emit(
            self.spec, payload, env, dedupe_key=dedupe_key, scheduled_for=scheduled_for
        )

    async def get_checkpoint(self, key: str = "cursor") -> Any | None:
        return await self._engine.storage.get_checkpoint(self.spec.key, key)

    async def set_checkpoint(self, value: Any, key: str = "cursor") -> None:
        await self._engine.storage.set_checkpoint(self.spec.key, key, value)

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


class _ExecutorContext(ExecutorContext):
    def __init__(self, type_name: str, config: Config) -> None:
        self.logger = logging.getLogger(f"firelink.executor.{type_name}")
        self.state_dir = config.state_dir
        self.config_dir = config.path.parent if config.path else None


class _StorageContext(StorageContext):
    def __init__(self, config: Config) -> None:
        self.logger = logging.getLogger("firelink.storage")
        self.state_dir = config.state_dir


class _NotifierContext(NotifierContext):
    def __init__(self, name: str, config: Config) -> None:
        self.logger = logging.getLogger(f"firelink.notifier.{name}")
        self.state_dir = config.state_dir

    def log_tail(self, run: RunRecord, lines: int = 20) -> str:
        if not run.log_path:
            return ""
        try:
            return log_tail_lines(run.log_path, lines)
        except OSError:
            return ""


class _Reporter(AttemptReporter):
    """Persists the attempt's handle and appends output through the capped writer."""

    def __init__(
        self, storage: Storage, attempt: AttemptRecord, log_path: Path, max_bytes: int, *, stored: bool
    ) -> None:
        self._storage = storage
        self.attempt = attempt
        self.stored = stored
        """Whether the attempt row exists: it is written once the work started (with its
        handle), or at the end for an attempt that never started, to keep writes per run few."""
        self._log_path = log_path
        self._max_bytes = max_bytes
        self._writer: CappedLogWriter | None = None
        self.run_changes: dict[str, Any] | None = None
        """Start fields of the run not written yet (see ``Engine._attempt``)."""

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


# --------------------------------------------------------------------------- engine


class Engine:
    """Drives one config: triggers -> event queue -> dispatcher/DAG runner -> executors, state in storage.

    Usage::

        plugins = make_plugins(config_plugins=config.plugins)
        engine = Engine(config, plugins)
        await engine.start()
        run_id = await engine.trigger("jobA")
        run = await engine.wait_run(run_id, timeout=30)
        await engine.stop(grace=30)
    """

    wakeups: int
    """How many times the timer loop woke up (for the idle benchmark)."""
    started_at: float | None

    def __init__(
        self,
        config: Config,
        plugins: Plugins,
        *,
        storage: Storage | None = None,
        clock: Clock | None = None,
        owner: str | None = None,
    ) -> None:
        self.config = config
        self.plugins = plugins
        self.clock: Clock = clock or SystemClock()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{_new_id()[:12]}"
        self.wakeups = 0
        self.sleeping_until: float | None = None
        """While the timer sleeps: the wall time it will wake at (None while busy)."""
        self.started_at = None
        self.notifier_failures = 0
        self.notify_timeout = NOTIFY_TIMEOUT
        self._storage = storage
        self._jobs: dict[str, JobSpec] = {job.name: job for job in config.jobs}
        self._retired: dict[str, JobSpec] = {}
        self._dag = self._build_dag(self._jobs)
        self._executors: dict[str, Executor] = {}
        self._notifiers: dict[str, Notifier] = {}
        self._triggers: dict[str, tuple[Trigger, _TriggerContext]] = {}
        self._manual_keys: dict[str, str] = {}
        self._schedules: dict[str, _Schedule] = {}
        self._to_plan: list[tuple[JobSpec, TriggerSpec, type[Trigger]]] = []
        self._generation = 0
        # the timer: (when, seq, kind, key, data)
        self._heap: list[tuple[float, int, str, str, Any]] = []
        self._seq = 0
        self._events: deque[TriggerEvent] = deque()
        self._wake = asyncio.Event()
        # concurrency
        self._slots: dict[str, int] = defaultdict(int)
        self._blocked: dict[str, deque[RunRecord]] = defaultdict(deque)
        self._ready: deque[RunRecord] = deque()
        self._running = 0
        self._job_running: dict[str, int] = defaultdict(int)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # dependencies
        self._hist: dict[str, _History] = defaultdict(_History)
        self._failed_latest: set[str] = set()
        """Jobs whose latest finished run failed (the only candidates for upstream_failed)."""
        self._failed_ever: set[str] = set()
        self._ref: dict[str, float] = {}
        self._waiting: dict[str, dict[str, RunRecord]] = defaultdict(dict)
        self._after: dict[str, set[str]] = defaultdict(set)
        self._dag_lock = asyncio.Lock()
        # status and bookkeeping
        self._last_run: dict[str, RunRecord] = {}
        self._failing: set[str] = set()
        self._waiters: dict[str, asyncio.Future[RunRecord]] = {}
        self._last_prune: dict[str, float] = {}
        self._finished_since_prune: dict[str, int] = {}
        self._log_dirs: set[str] = set()
        self._bg: set[asyncio.Task[Any]] = set()
        self._notify_tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stop_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ basics
    @property
    def storage(self) -> Storage:
        if self._storage is None:
            cls = self.plugins.storages().get(self.config.storage.type)
            if cls is None:
                raise EngineError(f"no plugin provides storage type {self.config.storage.type!r}")
            self._storage = cls(dict(self.config.storage.options), _StorageContext(self.config))
        return self._storage

    @property
    def max_parallel(self) -> int:
        return self.config.max_parallel or DEFAULT_MAX_PARALLEL

    @staticmethod
    def _build_dag(jobs: Mapping[str, JobSpec]) -> Dag:
        return Dag({name: (job.depends_on.jobs if job.depends_on else ()) for name, job in jobs.items()})

    def _job(self, name: str) -> JobSpec | None:
        return self._jobs.get(name) or self._retired.get(name)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg_done)
        return task

    def _bg_done(self, task: asyncio.Task[Any]) -> None:
        self._bg.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("engine task failed", exc_info=task.exception())

    def _push(self, when: float, kind: str, key: str, data: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, kind, key, data))
        self._wake.set()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Open storage, recover after a crash, start executors, triggers, the timer and dispatcher."""
        self.started_at = self.clock.now()
        install_pidfd_child_watcher()
        await self.storage.open()
        try:
            await self._start_components(self._jobs.values())
            await self._load_history()
            await self._recover()
            for event in await self.storage.pending_events():
                self._events.append(event)
            for job in self._jobs.values():
                await self._start_triggers(job, defer_schedules=True)
            if self._to_plan:
                self._spawn(self._plan_deferred())
        except BaseException:
            self._stopping = True
            for key in list(self._triggers):
                await self._stop_trigger(key)
            for task in list(self._bg) + list(self._tasks.values()):
                task.cancel()
            await asyncio.gather(*self._bg, *self._tasks.values(), return_exceptions=True)
            await self._close_components()
            raise
        self._loop_task = asyncio.get_running_loop().create_task(self._loop(), name="firelink-engine")
        self._wake.set()

    async def _start_components(self, jobs: Any) -> None:
        executors = self.plugins.executors()
        for job in jobs:
            kind = job.executor.type
            if kind in self._executors:
                continue
            cls = executors.get(kind)
            if cls is None:
                raise EngineError(f"job {job.name!r}: no plugin provides executor type {kind!r}")
            executor = cls(_ExecutorContext(kind, self.config))
            await executor.start()
            self._executors[kind] = executor
        notifier_classes = self.plugins.notifiers()
        for name, spec in self.config.notifiers.items():
            if name in self._notifiers:
                continue
            ncls = notifier_classes.get(spec.type)
            if ncls is None:
                raise EngineError(f"notifier {name!r}: no plugin provides notifier type {spec.type!r}")
            notifier = ncls(name, dict(spec.options), _NotifierContext(name, self.config))
            await notifier.start()
            self._notifiers[name] = notifier

    async def _close_components(self) -> None:
        for executor in self._executors.values():
            try:
                await executor.stop()
            except Exception:  # noqa: BLE001 - shutdown goes on
                log.exception("executor %s failed to stop", executor.type_name)
        for notifier in self._notifiers.values():
            try:
                await notifier.stop()
            except Exception:  # noqa: BLE001
                log.exception("notifier %s failed to stop", notifier.name)
        await self.storage.close()

    async def stop(self, grace: float = 30.0) -> None:
        """Stop triggers, start no new runs, give running ones ``grace`` seconds, then terminate
        them and record them as interrupted; close storage."""
        if self._stop_task is not None:
            if grace <= 0:
                for task in list(self._tasks.values()):
                    task.cancel()
            await asyncio.shield(self._stop_task)
            return
        self._stop_task = asyncio.get_running_loop().create_task(self._stop(grace))
        await asyncio.shield(self._stop_task)

    async def _stop(self, grace: float) -> None:
        self._stopping = True
        for key in list(self._triggers):
            await self._stop_trigger(key)
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        tasks = list(self._tasks.values())
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=max(grace, 0.0))
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._bg:
            await asyncio.gather(*list(self._bg), return_exceptions=True)
        if self._notify_tasks:
            await asyncio.wait(list(self._notify_tasks), timeout=min(self.notify_timeout, 5.0))
            for task in self._notify_tasks:
                task.cancel()
        await self._close_components()

    async def _start_triggers(self, job: JobSpec, *, defer_schedules: bool = False) -> None:
        if not job.enabled:
            return
        for spec in job.triggers:
            cls = self.plugins.trigger_class(spec.type, spec.options.get("source"))
            if cls is None:
                raise EngineError(f"job {job.name!r}: no plugin provides trigger type {spec.type!r}")
            if defer_schedules and issubclass(cls, ScheduleTrigger):
                self._to_plan.append((job, spec, cls))
                continue
            await self._start_trigger(job, spec, cls)

    async def _start_trigger(
        self, job: JobSpec, spec: TriggerSpec, cls: type[Trigger], *, plan_from: float | None = None
    ) -> None:
        context = _TriggerContext(self, job, spec)
        try:
            trigger = cls(spec, context)
        except Exception as exc:  # noqa: BLE001 - reported as a located error
            raise EngineError(f"job {job.name!r}: trigger {spec.type!r} cannot be created: {exc}") from None
        self._triggers[spec.key] = (trigger, context)
        if spec.type == "manual":
            self._manual_keys.setdefault(job.name, spec.key)
        if isinstance(trigger, ScheduleTrigger):
            self._generation += 1
            self._schedules[spec.key] = _Schedule(trigger, self._generation)
            await self._catch_up(spec.key, plan_from=plan_from)
        try:
            await trigger.start()
        except Exception as exc:  # noqa: BLE001 - one broken trigger must not stop the daemon
            log.exception("trigger %s failed to start", spec.key)
            context.set_health("degraded", f"failed to start: {exc}")
            return
        if isinstance(trigger, ScheduleTrigger) and context.health.state == "starting":
            context.set_health("ok")

    async def _plan_deferred(self) -> None:
        """Create and plan the schedules of a starting engine in the background.

        Computing thousands of cron schedules takes seconds; meanwhile the daemon already
        answers ``status``. Schedules plan from the start time, so nothing due in between
        is missed.
        """
        items, self._to_plan = self._to_plan, []
        for i, (job, spec, cls) in enumerate(items):
            if self._stopping:
                return
            try:
                await self._start_trigger(job, spec, cls, plan_from=self.started_at)
            except EngineError as exc:
                log.error("%s", exc)
            if i % 50 == 49:
                await asyncio.sleep(0)

    async def _stop_trigger(self, key: str) -> None:
        entry = self._triggers.pop(key, None)
        self._schedules.pop(key, None)
        if entry is None:
            return
        trigger, context = entry
        context.mark_stopped()
        try:
            await trigger.stop()
        except Exception:  # noqa: BLE001
            log.exception("trigger %s failed to stop", key)

    # ------------------------------------------------------------------ the event queue
    async def _emit(
        self,
        spec: TriggerSpec,
        payload: Mapping[str, Any] | None,
        env: Mapping[str, str] | None,
        *,
        dedupe_key: str | None = None,
        scheduled_for: float | None = None,
        run_id: str | None = None,
        options: Mapping[str, Any] | None = None,
        key: str | None = None,
        last_fire: float | None = None,
    ) -> TriggerEvent | None:
        """Store and queue an event; ``last_fire``: also record the schedule's last fire time
        (in the same transaction where the storage can)."""
        payload = dict(payload or {})
        env = dict(env or {})
        try:
            json.dumps(payload)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"trigger {spec.key}: event payload is not JSON-serialisable: {exc}") from None
        for name, value in env.items():
            if not isinstance(value, str):
                raise TypeError(
                    f"trigger {spec.key}: env value of {name} must be a string, got {type(value).__name__}"
                )
        event = TriggerEvent(
            id=_new_id(),
            job=spec.job,
            trigger=spec.type,
            trigger_key=key or spec.key,
            payload=payload,
            env=env,
            created_at=self.clock.now(),
            scheduled_for=scheduled_for,
            dedupe_key=dedupe_key,
            run_id=run_id,
            options=dict(options or {}),
        )
        if last_fire is not None:
            added = await self.storage.add_fire(event, last_fire)
        else:
            added = await self.storage.add_event(event)
        if not added:
            return None
        self._events.append(event)
        self._wake.set()
        return event

    async def trigger(
        self, job: str, env: Mapping[str, str] | None = None, *, with_upstream: bool = False
    ) -> str:
        """Enqueue a manual event for ``job`` and return the id its run will have (KeyError if unknown)."""
        spec_job = self._jobs.get(job)
        if spec_job is None:
            raise KeyError(job)
        key = self._manual_keys.get(job)
        spec = next((s for s in spec_job.triggers if s.key == key), None) if key else None
        if spec is None:
            # A job without a manual trigger can still be run by hand, under its own key.
            spec = TriggerSpec(type="manual", options={}, job=job, index=0)
            key = f"{job}#manual"
        run_id = _new_id()
        options = {"with_upstream": True} if with_upstream else {}
        payload = {"manual": True, "with_upstream": with_upstream}
        await self._emit(spec, payload, env, run_id=run_id, options=options, key=key)
        return run_id

    async def wait_run(self, run_id: str, timeout: float | None = None) -> RunRecord:
        """Wait until the run reaches a terminal state; return it (TimeoutError at the deadline)."""
        future = self._waiters.get(run_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._waiters[run_id] = future
        run = await self.storage.get_run(run_id)
        if run is not None and run.finished:
            if not future.done():
                self._waiters.pop(run_id, None)
            return run
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"run {run_id} did not finish within {timeout}s") from None

    # ------------------------------------------------------------------ the loop
    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await self._run_loop()
            except Exception:  # noqa: BLE001 - e.g. storage unavailable: log, pause, go on
                log.exception("engine loop failed; retrying in 5s")
                await self._sleep(5.0)

    async def _run_loop(self) -> None:
        last_wall, last_mono = self.clock.now(), self.clock.monotonic()
        while not self._stopping:
            self._wake.clear()
            dispatched = 0
            while self._events and not self._stopping:
                await self._dispatch(self._events.popleft())
                dispatched += 1
                if dispatched % 64 == 0:
                    # Storage calls may complete without yielding: let started runs progress.
                    await asyncio.sleep(0)
            now = self.clock.now()
            fired = 0
            while self._heap and self._heap[0][0] <= now and not self._stopping and fired < TIMER_BATCH:
                _when, _seq, kind, key, data = heapq.heappop(self._heap)
                await self._timer_fired(kind, key, data)
                fired += 1
            if self._events or self._wake.is_set() or fired == TIMER_BATCH:
                continue
            delay = MAX_SLEEP
            if self._heap:
                delay = min(max(self._heap[0][0] - self.clock.now(), 0.0), MAX_SLEEP)
            self.sleeping_until = self.clock.now() + delay
            try:
                await self._sleep(delay)
            finally:
                self.sleeping_until = None
            self.wakeups += 1
            wall, mono = self.clock.now(), self.clock.monotonic()
            if abs((wall - last_wall) - (mono - last_mono)) > JUMP_TOLERANCE:
                log.warning(
                    "wall clock moved %+.0fs against the monotonic clock: recomputing schedules",
                    (wall - last_wall) - (mono - last_mono),
                )
                for key in list(self._schedules):
                    await self._catch_up(key)
            last_wall, last_mono = wall, mono

    async def _sleep(self, delay: float) -> None:
        if isinstance(self.clock, SystemClock):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            return
        sleeper = asyncio.ensure_future(self.clock.sleep(delay))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()

    async def _timer_fired(self, kind: str, key: str, data: Any) -> None:
        try:
            if kind == "schedule":
                await self._fire_schedule(key, data)
            elif kind == "retry":
                self._retry_due(data)
            elif kind == "wait_timeout":
                await self._wait_timed_out(key)
        except Exception:  # noqa: BLE001 - the timer must survive a failing step
            log.exception("timer step %s %s failed", kind, key)

    # ------------------------------------------------------------------ schedules
    def _schedule_next(self, key: str, after: datetime) -> None:
        sched = self._schedules.get(key)
        if sched is None:
            return
        try:
            nxt = sched.trigger.next_fire(after)
            jitter = max(sched.trigger.jitter_for(nxt), 0.0) if nxt is not None else 0.0
        except Exception as exc:  # noqa: BLE001 - a plugin's schedule bug stops that schedule only
            log.exception("schedule %s cannot compute its next fire", key)
            sched.trigger.context.set_health("degraded", f"cannot compute the next fire: {exc}")
            sched.next_due = None
            return
        sched.next_due = nxt
        if nxt is None:
            return
        due = nxt.timestamp()
        self._push(due + jitter, "schedule", key, (sched.generation, due))

    async def _fire_schedule(self, key: str, data: tuple[int, float]) -> None:
        generation, due = data
        sched = self._schedules.get(key)
        if sched is None or sched.generation != generation:
            return
        await self._emit_fire(key, sched.trigger, due, last_fire=True)
        self._schedule_next(key, _utc(due))

    async def _emit_fire(
        self, key: str, trigger: ScheduleTrigger, due: float, *, catchup: bool = False, last_fire: bool = False
    ) -> None:
        payload, env = trigger.event_for(_utc(due))
        payload = dict(payload)
        if catchup:
            payload["catchup"] = True
        # The dedupe key makes a fire stored just before a crash not fire again on restart.
        await self._emit(
            trigger.spec, payload, env, dedupe_key=f"fire:{due!r}", scheduled_for=due,
            last_fire=due if last_fire else None,
        )

    async def _catch_up(self, key: str, *, plan_from: float | None = None) -> None:
        """(Re)plan one schedule from the wall clock, firing what was missed per ``catchup``.

        ``plan_from``: for a schedule never fired, plan from this time instead of now."""
        sched = self._schedules.get(key)
        if sched is None:
            return
        self._generation += 1
        sched.generation = self._generation
        job = sched.trigger.context.job
        now = self.clock.now()
        last = await self.storage.get_last_fire(key)
        if last is None and sched.next_due is not None:
            # Planned but not fired yet (a clock step before the first fire): the planned
            # fire counts as missed if the clock is past it.
            last = sched.next_due.timestamp() - 1e-3
        if last is None:
            self._schedule_next(key, _utc(now if plan_from is None else min(plan_from, now)))
            return
        start = last
        if job.misfire_grace is not None:
            start = max(last, now - job.misfire_grace)
        missed: deque[float] = deque(maxlen=CATCHUP_ALL_LIMIT if job.catchup == "all" else 1)
        try:
            t = sched.trigger.next_fire(_utc(start))
            scanned = 0
            while t is not None and t.timestamp() <= now and scanned < CATCHUP_SCAN_LIMIT:
                missed.append(t.timestamp())
                t = sched.trigger.next_fire(t)
                scanned += 1
        except Exception:  # noqa: BLE001 - reported by _schedule_next below
            missed.clear()
        if missed:
            if job.catchup != "skip":
                log.info("%s: catching up %d missed fire(s) (catchup: %s)", key, len(missed), job.catchup)
                for due in missed:
                    await self._emit_fire(key, sched.trigger, due, catchup=True)
            await self.storage.set_last_fire(key, missed[-1])
            last = missed[-1]
        self._schedule_next(key, _utc(max(now, last)))

    # ------------------------------------------------------------------ dispatch
    async def _dispatch(self, event: TriggerEvent) -> None:
        try:
            await self._dispatch_one(event)
        except StorageConflict as exc:
            log.info("event %s already dispatched: %s", event.id, exc)
        except Exception:  # noqa: BLE001 - one bad event must not stop the queue
            log.exception("cannot dispatch event %s of job %s", event.id, event.job)

    def _base_run(self, event: TriggerEvent, job: JobSpec) -> dict[str, Any]:
        return {
            "id": event.run_id or _new_id(),
            "job": job.name,
            "trigger": event.trigger,
            "trigger_key": event.trigger_key,
            "event_id": event.id,
            "payload": dict(event.payload),
            "env": dict(event.env),
            "created_at": self.clock.now(),
            "scheduled_for": event.scheduled_for,
        }

    async def _dispatch_one(self, event: TriggerEvent) -> None:
        job = self._jobs.get(event.job)
        if job is None:
            log.warning("dropping event %s: job %r is not in the config any more", event.id, event.job)
            await self.storage.drop_event(event.id)
            return
        base = self._base_run(event, job)
        if job.depends_on and event.options.get("with_upstream"):
            await self._plan_upstream(job, base, event)
        elif job.depends_on and job.triggers:
            since = self._ref.get(job.name)
            run = RunRecord(
                **base,
                state=RunState.WAITING,
                reason="waiting for " + ", ".join(job.depends_on.jobs),
                options={"since": since},
            )
            await self.storage.create_run(run, consume_event=event.id)
            self._note_created(run)
            self._add_waiting(job, run)
            self._run_event(RunWaiting(run=run))
            await self._evaluate_waiting(run)
        else:
            overlap = job.overlap or self._default_overlap(event)
            if overlap == "skip" and event.payload.get("catchup"):
                # Fires caught up together after downtime would skip each other: they queue.
                overlap = "queue"
            if overlap != job.overlap:
                job = dataclasses.replace(job, overlap=overlap)
            await self._admit(job, RunRecord(**base), consume_event=event.id)

    def _default_overlap(self, event: TriggerEvent) -> Overlap:
        """Unset ``overlap``: a schedule's fire is skipped while the job is busy (the next fire
        comes anyway); any other event (a file, an object, a manual request) waits for a slot,
        so none is dropped. ``allow`` keeps the job's ``max_instances`` as its limit."""
        cls = self.plugins.triggers().get(event.trigger)
        return "skip" if isinstance(cls, type) and issubclass(cls, ScheduleTrigger) else "allow"

    def _limit(self, job: JobSpec) -> int:
        return 1 if job.overlap == "queue" else max(job.max_instances, 1)

    async def _admit(self, job: JobSpec, run: RunRecord, *, consume_event: str | None = None) -> RunRecord:
        """Store a new run: skipped on overlap, otherwise queued behind the job's slots."""
        active = self._slots[job.name] + len(self._blocked[job.name])
        if job.overlap == "skip" and active >= self._limit(job):
            run.state = RunState.SKIPPED
            run.finished_at = run.created_at
            run.reason = f"overlap: {active} run(s) of the job still active"
            await self.storage.create_run(run, consume_event=consume_event)
            self._note_created(run)
            self._terminal(run, None)
            return run
        run.state = RunState.QUEUED
        await self.storage.create_run(run, consume_event=consume_event)
        self._note_created(run)
        self._run_event(RunQueued(run=run))
        self._enqueue(job, run)
        return run

    def _note_created(self, run: RunRecord) -> None:
        ref = self._ref.get(run.job)
        if ref is None or run.created_at > ref:
            self._ref[run.job] = run.created_at

    def _enqueue(self, job: JobSpec, run: RunRecord) -> None:
        if self._slots[job.name] < self._limit(job) and not self._blocked[job.name]:
            self._slots[job.name] += 1
            self._ready.append(run)
            self._pump()
        else:
            self._blocked[job.name].append(run)

    def _release_slot(self, name: str) -> None:
        self._slots[name] = max(self._slots[name] - 1, 0)
        job = self._job(name)
        blocked = self._blocked.get(name)
        while blocked and job is not None and self._slots[name] < self._limit(job):
            self._slots[name] += 1
            self._ready.append(blocked.popleft())
        self._pump()

    def _pump(self) -> None:
        while self._ready and self._running < self.max_parallel and not self._stopping:
            run = self._ready.popleft()
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._execute(run))
            self._tasks[run.id] = task

    def _retry_due(self, run: RunRecord) -> None:
        if self._stopping:
            return
        self._ready.append(run)
        self._pump()

    # ------------------------------------------------------------------ attempts
    def _log_path(self, job: str, run_id: str, number: int) -> Path:
        path = attempt_log_path(self.config.state_dir, job, run_id, number)
        folder = str(path.parent)
        if folder not in self._log_dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._log_dirs.add(folder)
        return path

    def _request(self, job: JobSpec, run: RunRecord, number: int, log_path: Path) -> AttemptRequest:
        env = dict(run.env)
        env.update(
            FIRELINK_JOB=job.name,
            FIRELINK_RUN_ID=run.id,
            FIRELINK_ATTEMPT=str(number),
            FIRELINK_TRIGGER=run.trigger or "",
            FIRELINK_EVENT=json.dumps(dict(run.payload), sort_keys=True),
        )
        env.update(job.env)
        if run.payload.get("manual"):
            # `firelink trigger --env` values are per-run overrides of the job's defaults.
            env.update({k: v for k, v in run.env.items() if not k.startswith("FIRELINK_")})
        return AttemptRequest(
            run_id=run.id,
            job=job.name,
            attempt=number,
            command=job.command,
            shell=job.shell,
            env=env,
            cwd=job.cwd,
            timeout=job.timeout,
            kill_grace=job.kill_grace,
            options=dict(job.executor.options),
            log_path=log_path,
            log_max_bytes=job.log.max_bytes,
            labels={"firelink.job": job.name, "firelink.run_id": run.id},
        )

    async def _execute(self, queued: RunRecord) -> None:
        name = queued.job
        holds_slot = True
        try:
            job = self._job(name)
            run = await self.storage.claim_run(queued.id, self.owner, from_states=(RunState.QUEUED, RunState.RETRYING))
            if run is None or job is None:
                return
            holds_slot = await self._attempt(job, run)
        except Exception:  # noqa: BLE001 - a storage failure must not kill the engine
            log.exception("run %s of job %s failed in the engine", queued.id, name)
        finally:
            self._running -= 1
            self._tasks.pop(queued.id, None)
            if holds_slot:
                self._release_slot(name)
            else:
                self._pump()

    async def _attempt(self, job: JobSpec, run: RunRecord) -> bool:
        """Run one attempt; return whether the job slot is free again (False while retrying)."""
        number = run.attempts + 1
        executor = self._executors[job.executor.type]
        log_path = self._log_path(job.name, run.id, number)
        now = self.clock.now()
        attempt = AttemptRecord(
            run_id=run.id, number=number, executor=job.executor.type, started_at=now, log_path=str(log_path)
        )
        changes: dict[str, Any] = {"attempts": number, "log_path": str(log_path), "next_attempt_at": None}
        if run.started_at is None:
            changes["started_at"] = now
        run = dataclasses.replace(run, **changes)
        if self._ref.get(job.name, 0.0) < now:
            self._ref[job.name] = now
        self._job_running[job.name] += 1
        self._run_event(RunStarted(run=run, attempt=attempt))
        reporter = _Reporter(self.storage, attempt, log_path, job.log.max_bytes, stored=False)
        # The run row learns its start (attempt number, log) with its outcome, or after
        # START_WRITE_DELAY if still running: one write fewer for the many short runs.
        reporter.run_changes = changes
        timer = asyncio.get_running_loop().call_later(START_WRITE_DELAY, self._write_start, run.id, reporter)
        try:
            try:
                result = await executor.run(self._request(job, run, number, log_path), reporter)
            except asyncio.CancelledError:
                await self._record_interrupted(run, reporter, "the daemon stopped during the attempt")
                raise
            except Exception as exc:  # noqa: BLE001 - an executor bug fails the attempt, not the daemon
                log.exception("executor %s failed on run %s", job.executor.type, run.id)
                result = AttemptResult(error=f"executor {job.executor.type} failed: {type(exc).__name__}: {exc}")
        finally:
            timer.cancel()
            reporter.close()
            self._job_running[job.name] -= 1
        return await self._attempt_done(job, run, reporter, result)

    def _write_start(self, run_id: str, reporter: _Reporter) -> None:
        changes, reporter.run_changes = reporter.run_changes, None
        if changes:
            self._spawn(self.storage.update_run(run_id, **changes))

    async def _end_attempt(
        self, reporter: _Reporter, run_changes: dict[str, Any], **changes: Any
    ) -> tuple[AttemptRecord, RunRecord]:
        """Record an attempt's end and its run's new fields (with the start fields not yet
        written): one storage call, one transaction where the backend supports it."""
        attempt = dataclasses.replace(reporter.attempt, **changes)
        start, reporter.run_changes = reporter.run_changes or {}, None
        stored, reporter.stored = reporter.stored, True
        run = await self.storage.end_attempt(attempt, changes, {**start, **run_changes}, stored=stored)
        return attempt, run

    async def _record_interrupted(self, run: RunRecord, reporter: _Reporter, why: str) -> None:
        now = self.clock.now()
        attempt, run = await self._end_attempt(
            reporter,
            {"state": RunState.INTERRUPTED, "finished_at": now, "reason": why},
            finished_at=now,
            error=why,
        )
        self._terminal(run, attempt)

    async def _attempt_done(self, job: JobSpec, run: RunRecord, reporter: _Reporter, result: AttemptResult) -> bool:
        now = self.clock.now()
        outcome = dict(exit_code=result.exit_code, signal=result.signal, error=result.error)
        number = reporter.attempt.number
        if result.ok:
            attempt, run = await self._end_attempt(
                reporter,
                {**outcome, "state": RunState.SUCCESS, "finished_at": now, "reason": None},
                finished_at=now, timed_out=result.timed_out, **outcome,
            )
            self._terminal(run, attempt)
            return True
        what = _describe_result(result)
        if _should_retry(job.retries, number, result):
            delay = _retry_delay(job.retries, number)
            at = now + delay
            attempt, run = await self._end_attempt(
                reporter,
                {
                    **outcome,
                    "state": RunState.RETRYING,
                    "next_attempt_at": at,
                    "reason": f"attempt {number} {what}; retrying in {format_duration(delay)}",
                },
                finished_at=now, timed_out=result.timed_out, **outcome,
            )
            self._run_event(RunRetrying(run=run, attempt=attempt, delay=delay))
            self._push(at, "retry", run.id, run)
            return False
        state = RunState.TIMED_OUT if result.timed_out else RunState.FAILED
        attempt, run = await self._end_attempt(
            reporter,
            {**outcome, "state": state, "finished_at": now, "reason": what},
            finished_at=now, timed_out=result.timed_out, **outcome,
        )
        self._terminal(run, attempt)
        return True

    # ------------------------------------------------------------------ finishing
    def _terminal(self, run: RunRecord, attempt: AttemptRecord | None) -> None:
        """Everything that follows a run reaching a terminal state (its slot is released by the caller)."""
        job = self._job(run.job)
        self._last_run[run.job] = run
        self._note_history(run)
        self._waiting.get(run.job, {}).pop(run.id, None)
        cls = _EVENT_OF_STATE.get(run.state)
        if cls is not None:
            self._run_event(cls(run=run, attempt=attempt, detail=run.reason))
        if run.state is RunState.SUCCESS:
            if run.job in self._failing:
                self._failing.discard(run.job)
                self._run_event(RunRecovered(run=run, attempt=attempt))
        elif run.state in (RunState.FAILED, RunState.TIMED_OUT):
            self._failing.add(run.job)
        future = self._waiters.pop(run.id, None)
        if future is not None and not future.done():
            future.set_result(run)
        followers = self._after.pop(run.id, None)
        if followers or (run.state in DONE_STATES and self._dag.downstream.get(run.job)):
            self._spawn(self._after_upstream(run, followers or set()))
        if job is not None and run.state in DONE_STATES:
            self._maybe_prune(job)

    async def _finish_waiting(self, run: RunRecord, state: RunState, reason: str) -> None:
        now = self.clock.now()
        run = await self.storage.update_run(run.id, state=state, finished_at=now, reason=reason)
        self._terminal(run, None)

    # ------------------------------------------------------------------ dependencies
    def _add_waiting(self, job: JobSpec, run: RunRecord) -> None:
        self._waiting[job.name][run.id] = run
        after = run.options.get("after_runs")
        if after:
            for upstream_run in after:
                self._after[upstream_run].add(run.id)
        elif job.wait_timeout is not None:
            self._push(run.created_at + job.wait_timeout, "wait_timeout", run.id, run.job)

    async def _after_upstream(self, finished: RunRecord, followers: set[str]) -> None:
        async with self._dag_lock:
            if self._stopping:
                return
            for run_id in followers:
                for waiting in self._waiting.values():
                    run = waiting.get(run_id)
                    if run is not None:
                        await self._evaluate_waiting(run)
                        break
            if finished.state not in DONE_STATES:
                return
            for name in self._dag.downstream.get(finished.job, ()):
                job = self._jobs.get(name)
                if job is None:
                    continue
                for run in list(self._waiting.get(name, {}).values()):
                    if "after_runs" not in run.options:
                        await self._evaluate_waiting(run)
                # Runs made for a 'with upstream' request feed that request, not automatic runs.
                if not job.triggers and job.enabled and "request" not in finished.options:
                    await self._auto_run(job, finished)

    def _condition(self, job: JobSpec, since: float | None) -> tuple[str, str]:
        """``(decision, reason)``: ``run``, ``wait``, ``upstream_failed`` or ``skip``.

        Runs on every upstream finish: the scans stop at the first unmet upstream, and
        failures are looked up among the (few) jobs known to have failed, so a fan-in of
        thousands of upstreams stays cheap.
        """
        assert job.depends_on is not None
        ups = job.depends_on.jobs
        hist = self._hist

        def after(t: float | None) -> bool:
            return t is not None and (since is None or t > since)

        def among(candidates: set[str]) -> list[str]:
            if len(candidates) < len(ups):
                wanted = self._dag.upstream_set(job.name)
                return sorted(u for u in candidates if u in wanted)
            return [u for u in ups if u in candidates]

        cond = job.depends_on.condition
        if cond == "all_success":
            if all(after(hist[u].success) for u in ups):
                return "run", "all upstream jobs succeeded"
            failed = [u for u in among(self._failed_latest) if after(hist[u].done)]
            if failed:
                return "upstream_failed", "upstream " + ", ".join(failed) + " failed"
            return "wait", ""
        if cond == "all_done":
            return ("run", "all upstream jobs finished") if all(after(hist[u].done) for u in ups) else ("wait", "")
        failed = [u for u in among(self._failed_ever) if after(hist[u].failed)]
        if failed:
            return "run", "upstream " + ", ".join(failed) + " failed"
        if all(after(hist[u].done) for u in ups):
            return "skip", "condition one_failed not met: no upstream job failed"
        return "wait", ""

    def _note_history(self, run: RunRecord) -> None:
        hist = self._hist[run.job]
        hist.note(run)
        if hist.latest_state in FAILED_STATES:
            self._failed_latest.add(run.job)
        else:
            self._failed_latest.discard(run.job)
        if hist.failed is not None:
            self._failed_ever.add(run.job)

    async def _plan_condition(self, job: JobSpec, run: RunRecord) -> tuple[str, str]:
        states: dict[str, RunState] = {}
        for run_id in run.options["after_runs"]:
            upstream = await self.storage.get_run(run_id)
            if upstream is None:
                states[run_id] = RunState.CANCELLED
            elif not upstream.finished:
                return "wait", ""
            else:
                states[upstream.job] = upstream.state
        cond = job.depends_on.condition if job.depends_on else "all_success"
        failed = sorted(name for name, state in states.items() if state is not RunState.SUCCESS)
        if cond == "all_success":
            if failed:
                return "upstream_failed", "upstream " + ", ".join(failed) + " did not succeed"
            return "run", "upstream runs succeeded"
        if cond == "all_done":
            return "run", "upstream runs finished"
        if any(state in FAILED_STATES for state in states.values()):
            return "run", "upstream " + ", ".join(failed) + " failed"
        return "skip", "condition one_failed not met: no upstream run failed"

    async def _evaluate_waiting(self, run: RunRecord) -> None:
        job = self._jobs.get(run.job)
        if job is None or run.id not in self._waiting.get(run.job, {}):
            return
        if "after_runs" in run.options:
            decision, reason = await self._plan_condition(job, run)
        elif job.depends_on is None:
            decision, reason = "run", "no dependencies any more"
        else:
            decision, reason = self._condition(job, run.options.get("since"))
        if decision == "wait":
            return
        self._waiting[run.job].pop(run.id, None)
        if decision == "run":
            run = await self.storage.update_run(run.id, state=RunState.QUEUED, reason=reason)
            self._run_event(RunQueued(run=run, detail=reason))
            self._enqueue(job, run)
        elif decision == "upstream_failed":
            await self._finish_waiting(run, RunState.UPSTREAM_FAILED, reason)
        else:
            await self._finish_waiting(run, RunState.SKIPPED, reason)

    async def _auto_run(self, job: JobSpec, finished: RunRecord) -> None:
        decision, reason = self._condition(job, self._ref.get(job.name))
        if decision not in ("run", "upstream_failed"):
            return
        run = RunRecord(
            id=_new_id(),
            job=job.name,
            trigger="depends_on",
            trigger_key=f"{job.name}#depends_on",
            payload={"upstream_job": finished.job, "upstream_run": finished.id},
            created_at=self.clock.now(),
            reason=reason,
        )
        if decision == "run":
            await self._admit(job, run)
        else:
            run.state = RunState.UPSTREAM_FAILED
            run.finished_at = run.created_at
            await self.storage.create_run(run)
            self._note_created(run)
            self._terminal(run, None)

    async def _wait_timed_out(self, run_id: str) -> None:
        for name, waiting in self._waiting.items():
            run = waiting.get(run_id)
            if run is None:
                continue
            job = self._job(name)
            limit = format_duration(job.wait_timeout or 0) if job else "?"
            async with self._dag_lock:
                if run_id in waiting:
                    waiting.pop(run_id)
                    await self._finish_waiting(run, RunState.SKIPPED, f"wait_timeout: upstream not ready within {limit}")
            return

    async def _plan_upstream(self, job: JobSpec, base: dict[str, Any], event: TriggerEvent) -> None:
        """A 'with upstream' request: one run per job of the upstream subgraph, then the job."""
        root_id = base["id"]
        plan = self._dag.plan(job.name)
        ids = {name: (root_id if name == job.name else _derived_id(root_id, name)) for name, _ups in plan}
        created: list[tuple[JobSpec, RunRecord]] = []
        for name, ups in plan:
            member = self._jobs[name]
            fields = dict(base, id=ids[name], job=name)
            options: dict[str, Any] = {}
            if name != job.name:
                fields.update(event_id=None, env={}, parent_run=root_id, trigger="upstream", trigger_key=None)
                options["request"] = root_id
            after = [ids[u] for u in ups]
            run = RunRecord(**fields, options=options)
            if after:
                run.state = RunState.WAITING
                run.reason = "waiting for upstream runs of this request"
                options["after_runs"] = after
            else:
                run.state = RunState.QUEUED
            try:
                await self.storage.create_run(run, consume_event=event.id if name == job.name else None)
            except StorageConflict:
                if name == job.name:
                    raise
                continue  # made before a crash: the re-dispatched event reuses it
            self._note_created(run)
            created.append((member, run))
        for member, run in created:
            if run.state is RunState.WAITING:
                self._add_waiting(member, run)
                self._run_event(RunWaiting(run=run))
            else:
                self._run_event(RunQueued(run=run))
                self._enqueue(member, run)

    # ------------------------------------------------------------------ recovery
    async def _load_history(self) -> None:
        """Recent finished runs per job: for dependency conditions before anything runs, for
        ``status`` of the other jobs in the background (a 10,000-job start stays quick)."""
        if not await self.storage.list_runs(states=sorted(TERMINAL_STATES), limit=1):
            return  # a new state directory
        linked = [name for name in self._jobs if self._dag.upstream.get(name) or self._dag.downstream.get(name)]
        for name in linked:
            await self._load_job_history(name)
        rest = [name for name in self._jobs if name not in set(linked)]
        if rest:
            self._spawn(self._load_rest(rest))

    async def _load_rest(self, names: list[str]) -> None:
        for i, name in enumerate(names):
            if self._stopping:
                return
            if name not in self._last_run:
                await self._load_job_history(name)
            if i % 100 == 99:
                await asyncio.sleep(0)  # keep the daemon responsive while loading

    async def _load_job_history(self, name: str) -> None:
        runs = await self.storage.list_runs(name, states=sorted(TERMINAL_STATES), limit=20)
        for run in reversed(runs):
            if name in self._last_run and run.created_at <= self._last_run[name].created_at:
                continue  # a run finished since start is newer than what was stored
            self._note_history(run)
            self._note_created(run)
            if run.started_at is not None and run.started_at > self._ref.get(name, 0.0):
                self._ref[name] = run.started_at
            if run.state in (RunState.FAILED, RunState.TIMED_OUT):
                self._failing.add(name)
            elif run.state is RunState.SUCCESS:
                self._failing.discard(name)
            self._last_run[name] = run

    async def _recover(self) -> None:
        for run in await self.storage.list_runs(states=[RunState.RUNNING], limit=None):
            await self._recover_running(run)
        for run in reversed(await self.storage.list_runs(states=[RunState.RETRYING], limit=None)):
            self._note_created(run)
            self._slots[run.job] += 1
            self._push(run.next_attempt_at or self.clock.now(), "retry", run.id, run)
        for run in reversed(await self.storage.list_runs(states=[RunState.QUEUED], limit=None)):
            job = self._job(run.job)
            self._note_created(run)
            if job is None:
                await self._finish_waiting(run, RunState.CANCELLED, "job removed from the config")
            else:
                self._enqueue(job, run)
        waiting = list(reversed(await self.storage.list_runs(states=[RunState.WAITING], limit=None)))
        for run in waiting:
            job = self._jobs.get(run.job)
            self._note_created(run)
            if job is None:
                await self._finish_waiting(run, RunState.SKIPPED, "job removed from the config")
                continue
            self._add_waiting(job, run)
        for run in waiting:
            await self._evaluate_waiting(run)

    async def _recover_running(self, run: RunRecord) -> None:
        job = self._jobs.get(run.job)
        attempts = await self.storage.list_attempts(run.id)
        attempt = attempts[-1] if attempts else None
        self._note_created(run)
        if job is None or attempt is None or job.executor.type not in self._executors:
            await self._interrupt_crashed(job, run, attempt)
            return
        self._slots[job.name] += 1
        self._running += 1
        task = asyncio.get_running_loop().create_task(self._recover_task(job, run, attempt))
        self._tasks[run.id] = task

    async def _recover_task(self, job: JobSpec, run: RunRecord, attempt: AttemptRecord) -> None:
        executor = self._executors[job.executor.type]
        log_path = Path(attempt.log_path) if attempt.log_path else self._log_path(job.name, run.id, attempt.number)
        reporter = _Reporter(self.storage, attempt, log_path, job.log.max_bytes, stored=True)
        holds_slot = True
        try:
            try:
                result = await executor.recover(
                    self._request(job, run, attempt.number, log_path),
                    attempt,
                    reporter,
                    reattach=job.recovery == "reattach",
                )
            except asyncio.CancelledError:
                await self._record_interrupted(run, reporter, "the daemon stopped during the attempt")
                raise
            except Exception:  # noqa: BLE001
                log.exception("executor %s failed to recover run %s", job.executor.type, run.id)
                result = None
            finally:
                reporter.close()
            if result is None:
                self._release_slot(job.name)
                holds_slot = False
                await self._interrupt_crashed(job, run, attempt)
            else:
                log.info("run %s of job %s: recovered its attempt after a restart", run.id, job.name)
                holds_slot = await self._attempt_done(job, run, reporter, result)
        except Exception:  # noqa: BLE001
            log.exception("recovery of run %s failed", run.id)
        finally:
            self._running -= 1
            self._tasks.pop(run.id, None)
            if holds_slot:
                self._release_slot(job.name)
            else:
                self._pump()

    async def _interrupt_crashed(self, job: JobSpec | None, run: RunRecord, attempt: AttemptRecord | None) -> None:
        """A run the previous daemon left running: mark it interrupted, queue a new one per ``recovery``."""
        why = "the daemon stopped unexpectedly during the run"
        retry = job is not None and job.recovery in ("retry", "reattach")
        if retry:
            assert job is not None
            # The new run is stored first (with a derived id) so a crash here retries it exactly once.
            new = RunRecord(
                id=_derived_id(run.id, "recovery"),
                job=run.job,
                trigger=run.trigger,
                trigger_key=run.trigger_key,
                payload=dict(run.payload),
                env=dict(run.env),
                created_at=self.clock.now(),
                scheduled_for=run.scheduled_for,
                parent_run=run.id,
                reason=f"retry of run {run.id}, interrupted by a daemon crash",
                options={"recovery_of": run.id},
            )
            try:
                await self._admit(dataclasses.replace(job, overlap="queue"), new)
            except StorageConflict:
                pass
        now = self.clock.now()
        if attempt is not None and attempt.finished_at is None:
            await self.storage.update_attempt(run.id, attempt.number, finished_at=now, error=why)
        run = await self.storage.update_run(run.id, state=RunState.INTERRUPTED, finished_at=now, reason=why)
        self._terminal(run, attempt)

    # ------------------------------------------------------------------ notifications and retention
    def _run_event(self, event: RunEvent) -> None:
        self.plugins.run_event(event)
        job = self._job(event.run.job)
        if job is None:
            return
        for rule in job.notify:
            if event.kind not in rule.events:
                continue
            notifier = self._notifiers.get(rule.notifier)
            if notifier is None:
                continue
            task = asyncio.get_running_loop().create_task(self._deliver(notifier, event))
            self._notify_tasks.add(task)
            task.add_done_callback(self._notify_tasks.discard)

    async def _deliver(self, notifier: Notifier, event: RunEvent) -> None:
        try:
            await asyncio.wait_for(notifier.notify(event), self.notify_timeout)
        except Exception as exc:  # noqa: BLE001 - a notifier never breaks a run
            self.notifier_failures += 1
            reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else f"{type(exc).__name__}: {exc}"
            log.warning(
                "notifier %s failed on %s of run %s (job %s): %s",
                notifier.name, event.kind, event.run.id, event.run.job, reason,
            )

    def _maybe_prune(self, job: JobSpec) -> None:
        policy = job.log
        if policy.keep_runs is None and policy.keep_days is None:
            return
        now = self.clock.now()
        # The first prune of a job comes a minute after start, not on its first finish:
        # thousands of jobs finishing together after a start must not each pay a prune.
        # A busy job is also pruned every `keep_runs` finishes, so it never holds more than
        # twice its retention however fast it runs.
        finished = self._finished_since_prune[job.name] = self._finished_since_prune.get(job.name, 0) + 1
        last = self._last_prune.get(job.name, self.started_at or now)
        due_by_count = policy.keep_runs is not None and finished >= max(policy.keep_runs, 1)
        if now - last < PRUNE_INTERVAL and not due_by_count:
            return
        self._last_prune[job.name] = now
        self._finished_since_prune[job.name] = 0
        self._spawn(self._prune(job.name, policy.keep_runs, policy.keep_days, now))

    async def _prune(self, name: str, keep_runs: int | None, keep_days: float | None, now: float) -> None:
        older_than = now - keep_days * 86400 if keep_days is not None else None
        paths = await self.storage.prune_runs(name, keep_last=keep_runs, older_than=older_than)
        if paths:
            await asyncio.to_thread(_unlink_all, paths)

    # ------------------------------------------------------------------ reload and status
    async def reload(self, config: Config) -> ReloadResult:
        """Switch to a new (already validated) config without disturbing running runs."""
        new_jobs = {job.name: job for job in config.jobs}
        new_dag = self._build_dag(new_jobs)
        result = ReloadResult(
            added=sorted(set(new_jobs) - set(self._jobs)),
            removed=sorted(set(self._jobs) - set(new_jobs)),
            changed=sorted(n for n in set(new_jobs) & set(self._jobs) if new_jobs[n] != self._jobs[n]),
        )
        for name in result.removed + result.changed:
            for spec in self._jobs[name].triggers:
                await self._stop_trigger(spec.key)
            self._manual_keys.pop(name, None)
        for name in result.removed:
            self._retired[name] = self._jobs[name]
        for name in result.added:
            self._retired.pop(name, None)
        old_notifiers = self.config.notifiers
        for what in ("state_dir", "storage"):
            if getattr(config, what) != getattr(self.config, what):
                log.warning("reload: a change of %s takes effect at the next restart", what)
        config = dataclasses.replace(config, state_dir=self.config.state_dir, storage=self.config.storage)
        self.config = config
        self._jobs = new_jobs
        self._dag = new_dag
        for name, spec in old_notifiers.items():
            if config.notifiers.get(name) != spec and name in self._notifiers:
                notifier = self._notifiers.pop(name)
                with contextlib.suppress(Exception):
                    await notifier.stop()
        await self._start_components(new_jobs[n] for n in result.added + result.changed)
        for name in result.added + result.changed:
            await self._start_triggers(new_jobs[name])
        for name in result.removed:
            for run in list(self._waiting.pop(name, {}).values()):
                await self._finish_waiting(run, RunState.SKIPPED, "job removed from the config")
        self._pump()
        self._wake.set()
        if any(result.__dict__.values()):
            log.info("reloaded: added %s, removed %s, changed %s", result.added, result.removed, result.changed)
        return result

    def status(self) -> list[JobStatus]:
        """One entry per configured job."""
        out = []
        for job in self._jobs.values():
            health: dict[str, TriggerHealth] = {}
            dues: list[datetime] = []
            for spec in job.triggers:
                entry = self._triggers.get(spec.key)
                if entry is None:
                    continue
                trigger, context = entry
                health[spec.key] = context.health
                sched = self._schedules.get(spec.key)
                due = sched.next_due if sched is not None else trigger.next_due()
                if due is not None:
                    dues.append(due)
            running = self._job_running.get(job.name, 0)
            waiting = len(self._waiting.get(job.name, {}))
            if not job.enabled:
                state = "disabled"
            elif running:
                state = "running"
            elif waiting:
                state = "waiting"
            elif job.name in self._failing:
                state = "failing"
            else:
                state = "idle"
            out.append(
                JobStatus(
                    name=job.name,
                    triggers=[spec.describe() for spec in job.triggers],
                    state=state,
                    last_run=self._last_run.get(job.name),
                    next_due=min(dues) if dues else None,
                    health=health,
                    running=running,
                    waiting=waiting,
                )
            )
        return out

    def log_path(self, run: RunRecord) -> str | None:
        return run.log_path

    def queue_depth(self) -> int:
        """Events not yet dispatched plus runs waiting for an executor slot (for metrics)."""
        return len(self._events) + len(self._ready) + sum(len(q) for q in self._blocked.values())

    def last_success(self, job: str) -> float | None:
        """When the job's latest successful run finished (epoch seconds), if known."""
        hist = self._hist.get(job)
        return hist.success if hist is not None else None

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until every queued event is dispatched and every follow-up (dependency
        evaluation, retention) is done; runs may still be going. For tests and tools."""

        async def settle() -> None:
            while self._events or self._bg or self._wake.is_set() or self.sleeping_until is None:
                if self._bg:
                    await asyncio.gather(*list(self._bg), return_exceptions=True)
                else:
                    await asyncio.sleep(0.005)

        await asyncio.wait_for(settle(), timeout)


# --------------------------------------------------------------------------- helpers


def _describe_result(result: AttemptResult) -> str:
    if result.timed_out:
        return "timed out"
    if result.error:
        return f"failed: {result.error}"
    if result.signal is not None:
        return f"killed by signal {result.signal}"
    return f"exited with code {result.exit_code}"


def _should_retry(retries: Retries, number: int, result: AttemptResult) -> bool:
    if number > retries.count:
        return False
    if result.timed_out:
        return retries.on_timeout
    if retries.on_exit_codes is not None:
        return result.exit_code is not None and result.exit_code in retries.on_exit_codes
    return True


def _retry_delay(retries: Retries, number: int) -> float:
    """Delay before retry ``number`` (1 after the first attempt failed)."""
    delay = retries.delay
    if retries.backoff == "exponential":
        delay = retries.delay * 2 ** (number - 1)
    delay = min(delay, retries.max_delay)
    if retries.jitter:
        delay += random.uniform(0, retries.jitter)
    return delay


def _unlink_all(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            Path(path).unlink()
