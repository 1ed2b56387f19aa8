"""The engine: coordinates triggers, the event queue, slots, executors, storage and the
parts in this package, which own their state and never call back into it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import socket
from collections import deque
from collections.abc import Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Any

from .._clock import SystemClock
from ..abc import (
    AttemptResult,
    Clock,
    ScheduleTrigger,
    Storage,
    StorageConflict,
    Trigger,
)
from ..durations import format_duration
from ..events import (
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
from ..logs import attempt_log_path
from ..model import Config, JobSpec, Overlap, TriggerSpec
from ..plugins import Plugins
from ..records import AttemptRecord, RunRecord, RunState
from . import retention
from .attempts import START_WRITE_DELAY, STOPPED, attempt_outcome, attempt_request
from .components import Executors, Triggers
from .conditions import DONE_STATES, Conditions, build_dag
from .contexts import EngineStorageContext, Reporter
from .errors import EngineError
from .ids import new_id
from .notifications import Notifications
from .recovery import CRASHED, Recovery, replacement_run
from .requests import REQUESTED, request_spec, requested_option
from .retention import Retention
from .slots import DEFAULT_MAX_PARALLEL, Slots, job_limit
from .status import JobOutcomes, JobStatus, ReloadResult, job_status
from .timer import RETRY, SCHEDULE, WAIT_TIMEOUT, Timer, fire_event, utc

__all__ = ["Engine"]

log = logging.getLogger("firelink.engine")

TIMER_BATCH = 64
"""Due timers handled before the dispatcher turns their events into runs: thousands of
schedules due at once start running while the rest are still being fired."""

_EVENT_OF_STATE: dict[RunState, type[RunEvent]] = {
    RunState.SUCCESS: RunSucceeded,
    RunState.FAILED: RunFailed,
    RunState.TIMED_OUT: RunTimedOut,
    RunState.SKIPPED: RunSkipped,
    RunState.UPSTREAM_FAILED: RunUpstreamFailed,
    RunState.INTERRUPTED: RunInterrupted,
}


class Engine:
    """Drives one config: triggers -> event queue -> dispatch -> slots -> executors, state in storage.

    Usage::

        plugins = make_plugins(config_plugins=config.plugins)
        engine = Engine(config, plugins)
        await engine.start()
        run_id = await engine.trigger("jobA")
        run = await engine.wait_run(run_id, timeout=30)
        await engine.stop(grace=30)
    """

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
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{new_id()[:12]}"
        self.started_at = None
        self._storage = storage
        self._jobs: dict[str, JobSpec] = {job.name: job for job in config.jobs}
        self._retired: dict[str, JobSpec] = {}
        # the parts, each owning its state
        self._timer = Timer(self.clock)
        self._slots = Slots(config.max_parallel)
        self._conditions = Conditions(build_dag(self._jobs))
        self._notifications = Notifications(plugins)
        self._retention = Retention()
        self._outcomes = JobOutcomes()
        self._executors = Executors(plugins)
        self._triggers = Triggers(plugins)
        self._to_plan: list[tuple[JobSpec, TriggerSpec, type[Trigger]]] = []
        # coordination
        self._events: deque[TriggerEvent] = deque()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._waiters: dict[str, asyncio.Future[RunRecord]] = {}
        self._dag_lock = asyncio.Lock()
        self._log_dirs: set[str] = set()
        self._bg: set[asyncio.Task[Any]] = set()
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
            self._storage = cls(dict(self.config.storage.options), EngineStorageContext(self.config))
        return self._storage

    @property
    def wakeups(self) -> int:
        """How many times the timer loop woke up (for the idle benchmark)."""
        return self._timer.wakeups

    @property
    def sleeping_until(self) -> float | None:
        """While the timer sleeps: the wall time it will wake at (None while busy)."""
        return self._timer.sleeping_until

    @property
    def notifier_failures(self) -> int:
        return self._notifications.failures

    @property
    def notify_timeout(self) -> float:
        """The deadline of one notifier delivery."""
        return self._notifications.timeout

    @notify_timeout.setter
    def notify_timeout(self, seconds: float) -> None:
        self._notifications.timeout = seconds

    def _job(self, name: str) -> JobSpec | None:
        return self._jobs.get(name) or self._retired.get(name)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg_done)
        return task

    def _bg_done(self, task: asyncio.Task[Any]) -> None:
        self._bg.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("engine task failed", exc_info=task.exception())

    def _run_event(self, event: RunEvent) -> None:
        self._notifications.send(event, self._job(event.run.job))

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Open storage, recover after a crash, start executors, triggers, the timer and dispatcher."""
        self.started_at = self.clock.now()
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
            for key in self._triggers.keys():
                await self._stop_trigger(key)
            for task in list(self._bg) + list(self._tasks.values()):
                task.cancel()
            await asyncio.gather(*self._bg, *self._tasks.values(), return_exceptions=True)
            await self._close_components()
            raise
        self._loop_task = asyncio.get_running_loop().create_task(self._loop(), name="firelink-engine")
        self._timer.wake.set()

    async def _start_components(self, jobs: Iterable[JobSpec]) -> None:
        await self._executors.start(jobs, self.config)
        await self._notifications.start(self.config.notifiers, self.config)

    async def _close_components(self) -> None:
        await self._executors.stop()
        await self._notifications.stop()
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
        for key in self._triggers.keys():
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
        await self._notifications.drain()
        await self._close_components()

    async def _start_triggers(self, job: JobSpec, *, defer_schedules: bool = False) -> None:
        if not job.enabled:
            return
        for spec, cls in self._triggers.classes(job):
            if defer_schedules and issubclass(cls, ScheduleTrigger):
                self._to_plan.append((job, spec, cls))
                continue
            await self._start_trigger(job, spec, cls)

    async def _start_trigger(
        self, job: JobSpec, spec: TriggerSpec, cls: type[Trigger], *, plan_from: float | None = None
    ) -> None:
        trigger = self._triggers.create(
            job, spec, cls, emit=self._emit, storage=self.storage, clock=self.clock, config=self.config
        )
        if isinstance(trigger, ScheduleTrigger):
            # Planned before it starts: missed fires are emitted before new ones.
            self._timer.add_schedule(spec.key, trigger)
            await self._plan_schedule(spec.key, plan_from=plan_from)
        await self._triggers.start(spec.key)

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
        self._timer.remove_schedule(key)
        await self._triggers.stop(key)

    # ------------------------------------------------------------------ trigger -> event queue
    async def _emit(
        self,
        spec: TriggerSpec,
        payload: Mapping[str, Any] | None,
        env: Mapping[str, str] | None,
        *,
        dedupe_key: str | None = None,
        scheduled_for: float | None = None,
        requested: bool = False,
        run_id: str | None = None,
        options: Mapping[str, Any] | None = None,
        key: str | None = None,
        last_fire: float | None = None,
    ) -> TriggerEvent | None:
        """Store and queue an event; ``last_fire``: also record the schedule's last fire time
        (in the same transaction where the storage can); ``requested``: made on request."""
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
        event_options = dict(options or {})
        if requested:
            event_options[REQUESTED] = True
        event = TriggerEvent(
            id=new_id(),
            job=spec.job,
            trigger=spec.type,
            trigger_key=key or spec.key,
            payload=payload,
            env=env,
            created_at=self.clock.now(),
            scheduled_for=scheduled_for,
            dedupe_key=dedupe_key,
            run_id=run_id,
            options=event_options,
        )
        if last_fire is not None:
            added = await self.storage.add_fire(event, last_fire)
        else:
            added = await self.storage.add_event(event)
        if not added:
            return None
        self._events.append(event)
        self._timer.wake.set()
        return event

    async def trigger(
        self, job: str, env: Mapping[str, str] | None = None, *, with_upstream: bool = False
    ) -> str:
        """Enqueue a run of ``job`` started by hand and return the id its run will have (KeyError if unknown)."""
        spec_job = self._jobs.get(job)
        if spec_job is None:
            raise KeyError(job)
        spec, key, cls = request_spec(spec_job, self._triggers.requests.get(job), self.plugins.triggers())
        run_id = new_id()
        options = {"with_upstream": True} if with_upstream else {}
        payload = cls.request_payload(with_upstream=with_upstream)
        await self._emit(spec, payload, env, run_id=run_id, options=options, key=key, requested=True)
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
                await self._timer.sleep(5.0)

    async def _run_loop(self) -> None:
        timer = self._timer
        timer.reset_clock_reference()
        while not self._stopping:
            timer.wake.clear()
            dispatched = 0
            while self._events and not self._stopping:
                await self._dispatch(self._events.popleft())
                dispatched += 1
                if dispatched % 64 == 0:
                    # Storage calls may complete without yielding: let started runs progress.
                    await asyncio.sleep(0)
            fired = 0
            for kind, key, data in timer.due(self.clock.now(), TIMER_BATCH):
                if self._stopping:
                    break
                await self._timer_step(kind, key, data)
                fired += 1
            if self._events or timer.wake.is_set() or fired == TIMER_BATCH:
                continue
            if await timer.sleep_until_due():
                for key in timer.schedule_keys():
                    await self._plan_schedule(key)

    async def _timer_step(self, kind: str, key: str, data: Any) -> None:
        try:
            if kind == SCHEDULE:
                await self._fire_schedule(key, data)
            elif kind == RETRY:
                if not self._stopping:
                    self._slots.retry(data)
                    self._pump()
            elif kind == WAIT_TIMEOUT:
                await self._wait_timed_out(key)
        except Exception:  # noqa: BLE001 - the timer must survive a failing step
            log.exception("timer step %s %s failed", kind, key)

    # ------------------------------------------------------------------ schedules -> event queue
    async def _plan_schedule(self, key: str, *, plan_from: float | None = None) -> None:
        """(Re)plan one schedule from its stored last fire, emitting missed fires per ``catchup``."""
        if not self._timer.is_schedule(key):
            return
        last = await self.storage.get_last_fire(key)
        catch_up = self._timer.catch_up(key, last, self.clock.now(), plan_from=plan_from)
        for due in catch_up.fire:
            await self._emit_fire(catch_up.trigger, due, catchup=True)
        if catch_up.last_fire is not None:
            await self.storage.set_last_fire(key, catch_up.last_fire)

    async def _fire_schedule(self, key: str, data: tuple[int, float]) -> None:
        current = self._timer.fire(key, data)
        if current is None:
            return
        trigger, due = current
        await self._emit_fire(trigger, due, last_fire=True)
        self._timer.plan_next(key, utc(due))

    async def _emit_fire(
        self, trigger: ScheduleTrigger, due: float, *, catchup: bool = False, last_fire: bool = False
    ) -> None:
        payload, env, dedupe_key = fire_event(trigger, due, catchup=catchup)
        await self._emit(
            trigger.spec, payload, env, dedupe_key=dedupe_key, scheduled_for=due,
            last_fire=due if last_fire else None,
        )

    # ------------------------------------------------------------------ event queue -> dispatch
    async def _dispatch(self, event: TriggerEvent) -> None:
        try:
            await self._dispatch_one(event)
        except StorageConflict as exc:
            log.info("event %s already dispatched: %s", event.id, exc)
        except Exception:  # noqa: BLE001 - one bad event must not stop the queue
            log.exception("cannot dispatch event %s of job %s", event.id, event.job)

    def _base_run(self, event: TriggerEvent, job: JobSpec) -> dict[str, Any]:
        return {
            "id": event.run_id or new_id(),
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
        flag = requested_option(event.options)
        if job.depends_on and event.options.get("with_upstream"):
            await self._dispatch_request(job, base, event, flag)
        elif job.depends_on and job.triggers:
            run = RunRecord(
                **base,
                state=RunState.WAITING,
                reason="waiting for " + ", ".join(job.depends_on.jobs),
                options={"since": self._conditions.since(job.name), **flag},
            )
            await self.storage.create_run(run, consume_event=event.id)
            self._conditions.note_created(run)
            self._hold_waiting(job, run)
            self._run_event(RunWaiting(run=run))
            await self._evaluate_waiting(run)
        else:
            overlap = job.overlap or self._default_overlap(event)
            if overlap == "skip" and event.payload.get("catchup"):
                # Fires caught up together after downtime would skip each other: they queue.
                overlap = "queue"
            if overlap != job.overlap:
                job = dataclasses.replace(job, overlap=overlap)
            await self._admit(job, RunRecord(**base, options=flag), consume_event=event.id)

    def _default_overlap(self, event: TriggerEvent) -> Overlap:
        """Unset ``overlap``: a schedule's fire is skipped while the job is busy (the next fire
        comes anyway); any other event (a file, an object, a request) waits for a slot,
        so none is dropped. ``allow`` keeps the job's ``max_instances`` as its limit."""
        cls = self.plugins.triggers().get(event.trigger)
        return "skip" if isinstance(cls, type) and issubclass(cls, ScheduleTrigger) else "allow"

    async def _dispatch_request(
        self, job: JobSpec, base: dict[str, Any], event: TriggerEvent, options: Mapping[str, Any]
    ) -> None:
        """A 'with upstream' request: one run per job of the upstream subgraph, then the job."""
        created: list[RunRecord] = []
        for run in self._conditions.request_runs(job.name, base, options):
            try:
                await self.storage.create_run(run, consume_event=event.id if run.job == job.name else None)
            except StorageConflict:
                if run.job == job.name:
                    raise
                continue  # made before a crash: the re-dispatched event reuses it
            self._conditions.note_created(run)
            created.append(run)
        for run in created:
            member = self._jobs[run.job]
            if run.state is RunState.WAITING:
                self._hold_waiting(member, run)
                self._run_event(RunWaiting(run=run))
            else:
                self._run_event(RunQueued(run=run))
                self._enqueue(member, run)

    # ------------------------------------------------------------------ dispatch -> slots
    async def _admit(self, job: JobSpec, run: RunRecord, *, consume_event: str | None = None) -> RunRecord:
        """Store a new run: skipped on overlap, otherwise queued behind the job's slots."""
        active = self._slots.active(job.name)
        if job.overlap == "skip" and active >= job_limit(job):
            run.state = RunState.SKIPPED
            run.finished_at = run.created_at
            run.reason = f"overlap: {active} run(s) of the job still active"
            await self.storage.create_run(run, consume_event=consume_event)
            self._conditions.note_created(run)
            self._terminal(run, None)
            return run
        run.state = RunState.QUEUED
        await self.storage.create_run(run, consume_event=consume_event)
        self._conditions.note_created(run)
        self._run_event(RunQueued(run=run))
        self._enqueue(job, run)
        return run

    def _enqueue(self, job: JobSpec, run: RunRecord) -> None:
        self._slots.admit(job, run)
        self._pump()

    def _release(self, name: str) -> None:
        self._slots.release(name, self._job(name))
        self._pump()

    def _pump(self) -> None:
        """Start a task for each run the slots hand out."""
        if self._stopping:
            return
        loop = asyncio.get_running_loop()
        while (run := self._slots.take()) is not None:
            self._tasks[run.id] = loop.create_task(self._execute(run))

    # ------------------------------------------------------------------ slots -> attempt (executor) -> storage
    def _log_path(self, job: str, run_id: str, number: int) -> Path:
        path = attempt_log_path(self.config.state_dir, job, run_id, number)
        folder = str(path.parent)
        if folder not in self._log_dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._log_dirs.add(folder)
        return path

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
            self._slots.done()
            self._tasks.pop(queued.id, None)
            if holds_slot:
                self._release(name)
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
        self._conditions.note_started(job.name, now)
        self._slots.attempt_began(job.name)
        self._run_event(RunStarted(run=run, attempt=attempt))
        # The run row learns its start (attempt number, log) with its outcome, or after
        # START_WRITE_DELAY if still running: one write fewer for the many short runs.
        reporter = Reporter(self.storage, attempt, log_path, job.log.max_bytes, stored=False, run_changes=changes)
        timer = asyncio.get_running_loop().call_later(START_WRITE_DELAY, self._write_start, reporter)
        try:
            try:
                result = await executor.run(attempt_request(job, run, number, log_path), reporter)
            except asyncio.CancelledError:
                await self._record_interrupted(reporter, STOPPED)
                raise
            except Exception as exc:  # noqa: BLE001 - an executor bug fails the attempt, not the daemon
                log.exception("executor %s failed on run %s", job.executor.type, run.id)
                result = AttemptResult(error=f"executor {job.executor.type} failed: {type(exc).__name__}: {exc}")
        finally:
            timer.cancel()
            reporter.close()
            self._slots.attempt_ended(job.name)
        return await self._attempt_done(job, reporter, result)

    def _write_start(self, reporter: Reporter) -> None:
        write = reporter.write_start()
        if write is not None:
            self._spawn(write)

    async def _record_interrupted(self, reporter: Reporter, why: str) -> None:
        now = self.clock.now()
        attempt, run = await reporter.end(
            {"state": RunState.INTERRUPTED, "finished_at": now, "reason": why}, finished_at=now, error=why
        )
        self._terminal(run, attempt)

    async def _attempt_done(self, job: JobSpec, reporter: Reporter, result: AttemptResult) -> bool:
        """Record the attempt's result; return whether the job slot is free again (False while retrying)."""
        outcome = attempt_outcome(job, reporter.attempt.number, result, self.clock.now())
        attempt, run = await reporter.end(outcome.run_changes, **outcome.attempt_changes)
        if outcome.retry_delay is None:
            self._terminal(run, attempt)
            return True
        self._run_event(RunRetrying(run=run, attempt=attempt, delay=outcome.retry_delay))
        self._timer.push(outcome.run_changes["next_attempt_at"], RETRY, run.id, run)
        return False

    # ------------------------------------------------------------------ storage -> terminal -> conditions
    def _terminal(self, run: RunRecord, attempt: AttemptRecord | None) -> None:
        """Everything that follows a run reaching a terminal state (its slot is released by the caller)."""
        job = self._job(run.job)
        recovered = self._outcomes.finished(run)
        followers = self._conditions.finished(run)
        cls = _EVENT_OF_STATE.get(run.state)
        if cls is not None:
            self._run_event(cls(run=run, attempt=attempt, detail=run.reason))
        if recovered:
            self._run_event(RunRecovered(run=run, attempt=attempt))
        future = self._waiters.pop(run.id, None)
        if future is not None and not future.done():
            future.set_result(run)
        if followers is not None:
            self._spawn(self._follow_up(run, followers))
        if job is not None and run.state in DONE_STATES:
            now = self.clock.now()
            if self._retention.due(job, now, self.started_at):
                self._spawn(retention.prune(self.storage, job, now))

    async def _finish_waiting(self, run: RunRecord, state: RunState, reason: str) -> None:
        now = self.clock.now()
        run = await self.storage.update_run(run.id, state=state, finished_at=now, reason=reason)
        self._terminal(run, None)

    def _hold_waiting(self, job: JobSpec, run: RunRecord) -> None:
        if self._conditions.add_waiting(run) and job.wait_timeout is not None:
            self._timer.push(run.created_at + job.wait_timeout, WAIT_TIMEOUT, run.id, run.job)

    async def _follow_up(self, finished: RunRecord, followers: set[str]) -> None:
        """What an upstream finish moves: waiting runs decided again, automatic runs started."""
        async with self._dag_lock:
            if self._stopping:
                return
            for item in self._conditions.follow_ups(finished, followers, self._jobs):
                if isinstance(item, JobSpec):
                    await self._auto_run(item, finished)
                else:
                    await self._evaluate_waiting(item)

    async def _upstream_states(self, run: RunRecord) -> dict[str, RunState] | None:
        """The states of a request run's upstream runs by job, None while one is unfinished."""
        states: dict[str, RunState] = {}
        for run_id in run.options["after_runs"]:
            upstream = await self.storage.get_run(run_id)
            if upstream is None:
                states[run_id] = RunState.CANCELLED
            elif not upstream.finished:
                return None
            else:
                states[upstream.job] = upstream.state
        return states

    async def _evaluate_waiting(self, run: RunRecord) -> None:
        job = self._jobs.get(run.job)
        if job is None or not self._conditions.is_waiting(run):
            return
        upstream = await self._upstream_states(run) if "after_runs" in run.options else None
        verdict, reason = self._conditions.decide_waiting(job, run, upstream)
        if verdict == "wait":
            return
        self._conditions.unwait(run)
        if verdict == "run":
            run = await self.storage.update_run(run.id, state=RunState.QUEUED, reason=reason)
            self._run_event(RunQueued(run=run, detail=reason))
            self._enqueue(job, run)
        elif verdict == "upstream_failed":
            await self._finish_waiting(run, RunState.UPSTREAM_FAILED, reason)
        else:
            await self._finish_waiting(run, RunState.SKIPPED, reason)

    async def _auto_run(self, job: JobSpec, finished: RunRecord) -> None:
        run = self._conditions.auto_run(job, finished, self.clock.now())
        if run is None:
            return
        if run.state is RunState.UPSTREAM_FAILED:
            await self.storage.create_run(run)
            self._conditions.note_created(run)
            self._terminal(run, None)
        else:
            await self._admit(job, run)

    async def _wait_timed_out(self, run_id: str) -> None:
        run = self._conditions.find_waiting(run_id)
        if run is None:
            return
        job = self._job(run.job)
        limit = format_duration(job.wait_timeout or 0) if job else "?"
        async with self._dag_lock:
            if self._conditions.is_waiting(run):
                self._conditions.unwait(run)
                await self._finish_waiting(run, RunState.SKIPPED, f"wait_timeout: upstream not ready within {limit}")

    # ------------------------------------------------------------------ recovery
    async def _load_history(self) -> None:
        """Recent finished runs per job: for dependency conditions before anything runs, for
        ``status`` of the other jobs in the background (a 10,000-job start stays quick)."""
        recovery = Recovery(self.storage)
        if not await recovery.has_history():
            return  # a new state directory
        dag = self._conditions.dag
        linked = [name for name in self._jobs if dag.upstream.get(name) or dag.downstream.get(name)]
        for name in linked:
            await self._load_job_history(recovery, name)
        rest = [name for name in self._jobs if name not in set(linked)]
        if rest:
            self._spawn(self._load_rest(recovery, rest))

    async def _load_rest(self, recovery: Recovery, names: list[str]) -> None:
        for i, name in enumerate(names):
            if self._stopping:
                return
            if name not in self._outcomes.last_run:
                await self._load_job_history(recovery, name)
            if i % 100 == 99:
                await asyncio.sleep(0)  # keep the daemon responsive while loading

    async def _load_job_history(self, recovery: Recovery, name: str) -> None:
        for run in await recovery.history(name):
            if self._outcomes.loaded(run):
                self._conditions.note_loaded(run)

    async def _recover(self) -> None:
        """Take over what the previous daemon left: running runs (reattached, retried or
        interrupted per ``recovery``), retrying, queued and waiting runs."""
        left = await Recovery(self.storage).leftovers()
        for run, attempt in left.running:
            await self._recover_running(run, attempt)
        for run in left.retrying:
            self._conditions.note_created(run)
            self._slots.hold(run.job)
            self._timer.push(run.next_attempt_at or self.clock.now(), RETRY, run.id, run)
        for run in left.queued:
            job = self._job(run.job)
            self._conditions.note_created(run)
            if job is None:
                await self._finish_waiting(run, RunState.CANCELLED, "job removed from the config")
            else:
                self._enqueue(job, run)
        for run in left.waiting:
            job = self._jobs.get(run.job)
            self._conditions.note_created(run)
            if job is None:
                await self._finish_waiting(run, RunState.SKIPPED, "job removed from the config")
                continue
            self._hold_waiting(job, run)
        for run in left.waiting:
            await self._evaluate_waiting(run)

    async def _recover_running(self, run: RunRecord, attempt: AttemptRecord | None) -> None:
        job = self._jobs.get(run.job)
        self._conditions.note_created(run)
        if job is None or attempt is None or job.executor.type not in self._executors:
            await self._interrupt_crashed(job, run, attempt)
            return
        self._slots.started(run)
        self._tasks[run.id] = asyncio.get_running_loop().create_task(self._recover_task(job, run, attempt))

    async def _recover_task(self, job: JobSpec, run: RunRecord, attempt: AttemptRecord) -> None:
        executor = self._executors[job.executor.type]
        log_path = Path(attempt.log_path) if attempt.log_path else self._log_path(job.name, run.id, attempt.number)
        reporter = Reporter(self.storage, attempt, log_path, job.log.max_bytes, stored=True)
        holds_slot = True
        try:
            try:
                result = await executor.recover(
                    attempt_request(job, run, attempt.number, log_path),
                    attempt,
                    reporter,
                    reattach=job.recovery == "reattach",
                )
            except asyncio.CancelledError:
                await self._record_interrupted(reporter, STOPPED)
                raise
            except Exception:  # noqa: BLE001
                log.exception("executor %s failed to recover run %s", job.executor.type, run.id)
                result = None
            finally:
                reporter.close()
            if result is None:
                self._release(job.name)
                holds_slot = False
                await self._interrupt_crashed(job, run, attempt)
            else:
                log.info("run %s of job %s: recovered its attempt after a restart", run.id, job.name)
                holds_slot = await self._attempt_done(job, reporter, result)
        except Exception:  # noqa: BLE001
            log.exception("recovery of run %s failed", run.id)
        finally:
            self._slots.done()
            self._tasks.pop(run.id, None)
            if holds_slot:
                self._release(job.name)
            else:
                self._pump()

    async def _interrupt_crashed(self, job: JobSpec | None, run: RunRecord, attempt: AttemptRecord | None) -> None:
        """A run the previous daemon left running: mark it interrupted, queue a new one per ``recovery``."""
        if job is not None and job.recovery in ("retry", "reattach"):
            # The new run is stored first (with a derived id) so a crash here retries it exactly once.
            with contextlib.suppress(StorageConflict):
                await self._admit(dataclasses.replace(job, overlap="queue"), replacement_run(run, self.clock.now()))
        now = self.clock.now()
        if attempt is not None and attempt.finished_at is None:
            await self.storage.update_attempt(run.id, attempt.number, finished_at=now, error=CRASHED)
        run = await self.storage.update_run(run.id, state=RunState.INTERRUPTED, finished_at=now, reason=CRASHED)
        self._terminal(run, attempt)

    # ------------------------------------------------------------------ reload and status
    async def reload(self, config: Config) -> ReloadResult:
        """Switch to a new (already validated) config without disturbing running runs."""
        new_jobs = {job.name: job for job in config.jobs}
        result = ReloadResult(
            added=sorted(set(new_jobs) - set(self._jobs)),
            removed=sorted(set(self._jobs) - set(new_jobs)),
            changed=sorted(n for n in set(new_jobs) & set(self._jobs) if new_jobs[n] != self._jobs[n]),
        )
        for name in result.removed + result.changed:
            for spec in self._jobs[name].triggers:
                await self._stop_trigger(spec.key)
            self._triggers.forget_job(name)
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
        self._conditions.dag = build_dag(new_jobs)
        self._slots.max_parallel = config.max_parallel or DEFAULT_MAX_PARALLEL
        await self._notifications.stop_changed(old_notifiers, config.notifiers)
        await self._start_components(new_jobs[n] for n in result.added + result.changed)
        for name in result.added + result.changed:
            await self._start_triggers(new_jobs[name])
        for name in result.removed:
            for run in self._conditions.drop_job(name):
                await self._finish_waiting(run, RunState.SKIPPED, "job removed from the config")
        self._pump()
        self._timer.wake.set()
        if any(result.__dict__.values()):
            log.info("reloaded: added %s, removed %s, changed %s", result.added, result.removed, result.changed)
        return result

    def status(self) -> list[JobStatus]:
        """One entry per configured job."""
        out = []
        for job in self._jobs.values():
            health, next_due = self._triggers.health_and_next_due(job, self._timer)
            out.append(
                job_status(
                    job,
                    health=health,
                    next_due=next_due,
                    running=self._slots.executing(job.name),
                    waiting=self._conditions.waiting_count(job.name),
                    outcomes=self._outcomes,
                )
            )
        return out

    def log_path(self, run: RunRecord) -> str | None:
        return run.log_path

    def queue_depth(self) -> int:
        """Events not yet dispatched plus runs waiting for an executor slot (for metrics)."""
        return len(self._events) + self._slots.waiting()

    def last_success(self, job: str) -> float | None:
        """When the job's latest successful run finished (epoch seconds), if known."""
        return self._conditions.last_success(job)

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until every queued event is dispatched and every follow-up (dependency
        evaluation, retention) is done; runs may still be going. For tests and tools."""

        async def settle() -> None:
            while self._events or self._bg or self._timer.wake.is_set() or self._timer.sleeping_until is None:
                if self._bg:
                    await asyncio.gather(*list(self._bg), return_exceptions=True)
                else:
                    await asyncio.sleep(0.005)

        await asyncio.wait_for(settle(), timeout)
