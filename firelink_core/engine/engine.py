"""The engine: coordinates triggers, the event queue, slots, executors, storage and the
parts in this package, which own their state and never call back into it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
from collections.abc import Awaitable, Coroutine, Iterable, Mapping
from datetime import datetime
from typing import Any

from .._clock import SystemClock
from ..abc import (
    Clock,
    ScheduleTrigger,
    Storage,
    StorageConflict,
    Trigger,
)
from ..events import (
    RunEvent,
    RunQueued,
    RunRecovered,
    RunWaiting,
    TriggerEvent,
)
from ..model import Config, JobSpec, TriggerSpec
from ..params import PARAMS, default_params, stored_params
from ..plugins import Plugins
from ..records import AttemptRecord, PauseRecord, RunRecord, RunState
from . import retention
from .attempt_runner import AttemptRunner
from .attempts import LogFolders
from .backfill import Backfills
from .breaker import Breaker
from .cancels import Canceller, Cancels
from .components import Executors, Triggers, make_storage
from .conditions import DONE_STATES, Conditions, build_dag
from .decision_log import DecisionLog
from .decisions import explain_answer, of_run
from .dispatch import (
    RETRY_OF,
    base_run,
    carried_options,
    skipped_by_overlap,
    waiting_run,
    with_overlap,
)
from .downstream import Downstream
from .errors import EngineError
from .ids import new_id
from .notifications import Notifications, terminal_event
from .outages import Outages
from .pause_control import PauseControl
from .pauses import Pauses, is_forced
from .queue import EventQueue
from .recovery import CRASHED, Recovery, replacement_run, take_over
from .reload import ReloadResult, carry_over, diff_jobs, diff_notifiers
from .requests import Secrets, request_run, requested_option
from .retention import Retention
from .retry import retry_run
from .schedules import Schedules
from .slots import DEFAULT_MAX_PARALLEL, Slots
from .status import JobOutcomes, JobStatus, job_status
from .timer import DISPATCH, FOLLOW_UP, REPLAN, RETRY, SCHEDULE, WAIT_TIMEOUT, Timer
from .waiters import RunWaiters

__all__ = ["Engine"]

log = logging.getLogger("firelink.engine")


TIMER_BATCH = 64
"""Due timers handled before the dispatcher turns their events into runs: thousands of
schedules due at once start running while the rest are still being fired."""

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
    _schedules: Schedules
    _pausing: PauseControl
    _canceller: Canceller
    _backfills: Backfills
    _runner: AttemptRunner
    _downstream: Downstream
    """Made by ``start()``, once storage is open."""

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
        self._outages = Outages(self._timer, self._triggers, lambda: self._stopping)
        self._to_plan: list[tuple[JobSpec, TriggerSpec, type[Trigger]]] = []
        # coordination
        self._events = EventQueue(self.clock)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._waiters = RunWaiters()
        self._secrets = Secrets()
        self._pauses = Pauses()
        self._breaker = Breaker()
        self._journal = DecisionLog(lambda: self.storage, lambda: self._stop_task is not None)
        self._cancels = Cancels()
        self._dag_lock = asyncio.Lock()
        self._log_folders = LogFolders(config.state_dir)
        self._bg: set[asyncio.Task[Any]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stop_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ basics
    @property
    def storage(self) -> Storage:
        if self._storage is None:
            self._storage = make_storage(self.plugins, self.config)
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
    def storage_errors(self) -> int:
        """Engine steps storage failed since start (each is retried)."""
        return self._outages.errors

    @property
    def storage_retries_pending(self) -> int:
        """Steps waiting to be retried because storage failed them (0 when storage is fine)."""
        return len(self._outages)

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
        self._schedules = Schedules(self._timer, self.storage, self._emit, skipping=self._pauses.skipping,
                                    note=self._journal.note)
        self._start_parts()
        try:
            await self._pausing.load(self._jobs.values())
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

    def _start_parts(self) -> None:
        """The parts that are handed the open storage: attempts, downstream runs, the operations by hand."""
        self._runner = AttemptRunner(
            storage=self.storage, clock=self.clock, owner=self.owner, executors=self._executors,
            log_folders=self._log_folders, secrets=self._secrets, conditions=self._conditions, slots=self._slots,
            outages=self._outages, cancels=self._cancels, timer=self._timer, job_of=self._job,
            run_event=self._run_event, terminal=self._terminal, spawn=self._spawn, release=self._release,
            interrupt=self._interrupt_crashed,
        )
        self._downstream = Downstream(
            storage=self.storage, clock=self.clock, conditions=self._conditions, timer=self._timer,
            outages=self._outages, pauses=self._pauses, lock=self._dag_lock, jobs=lambda: self._jobs, job_of=self._job,
            stopping=lambda: self._stopping, note=self._journal.note, run_event=self._run_event, admit=self._admit,
            enqueue=self._enqueue, created=self._created, terminal=self._terminal,
        )
        self._pausing = PauseControl(
            storage=self.storage, clock=self.clock, pauses=self._pauses, breaker=self._breaker,
            schedules=self._schedules, trigger_classes=self.plugins.triggers, note=self._journal.note,
            run_event=self._run_event, release=self._events.append, wake=self._timer.wake.set,
            started_at=self.started_at or 0.0,
        )
        self._canceller = Canceller(
            storage=self.storage, clock=self.clock, cancels=self._cancels, tasks=self._tasks,
            dag_lock=self._dag_lock, conditions=self._conditions, slots=self._slots,
            release=self._release, terminal=self._terminal,
        )
        self._backfills = Backfills(storage=self.storage, plugins=self.plugins, emit=self._emit,
                                    wait_run=self.wait_run, spawn=self._spawn, stopping=lambda: self._stopping)

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
        await self._journal.flush(wait=False)
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
            await self._plan(spec.key, plan_from=plan_from)
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
        (in the same transaction where the storage can); ``requested``: made on request, so
        its env values are per-run overrides, kept in memory with the run and stored masked."""
        if requested and env:
            run_id = run_id or new_id()
            env = self._secrets.keep(run_id, env)
        try:
            event = self._events.build(
                spec, payload, env, dedupe_key=dedupe_key, scheduled_for=scheduled_for, requested=requested,
                run_id=run_id, options=options, key=key,
            )
            stored = await self._events.put(self.storage, event, last_fire=last_fire)
        except BaseException:
            self._secrets.forget(run_id)
            raise
        if not stored:
            self._secrets.forget(run_id)  # a duplicate: no run will use the values
            return None
        self._timer.wake.set()
        return event

    async def trigger(
        self, job: str, env: Mapping[str, str] | None = None, *, with_upstream: bool = False, force: bool = False,
        params: Mapping[str, str] | None = None,
    ) -> str:
        """Enqueue a run of ``job`` started by hand and return the id its run will have (KeyError if
        unknown; ``JobPaused`` for a paused job unless ``force``; ``ParamError`` naming a
        parameter of ``params`` (text by name) that is unknown, invalid or missing)."""
        spec_job = self._jobs.get(job)
        if spec_job is None:
            raise KeyError(job)
        return await request_run(
            spec_job, env, pause=self._pauses.get(job), started=self._triggers.requests.get(job),
            classes=self.plugins.triggers(), emit=self._emit, with_upstream=with_upstream, force=force, params=params,
        )

    async def backfill(
        self, job: str, start: datetime, end: datetime, *, max_parallel: int | None = None, dry_run: bool = False,
        rerun: bool = False, downstream: bool = True,
    ) -> dict[str, Any]:
        """One run of ``job`` per schedule instant in ``[start, end)`` that has no run yet (every
        instant with ``rerun``); return the plan (runs made, instants left alone). With
        ``max_parallel``, the runs are fed in the background, that many unfinished at a time.
        KeyError for an unknown job; ``BackfillError``/``EngineError`` say why it cannot be made."""
        spec_job = self._jobs.get(job)
        if spec_job is None:
            raise KeyError(job)
        return await self._backfills.backfill(spec_job, self.config, start, end, max_parallel=max_parallel,
                                              dry_run=dry_run, rerun=rerun, downstream=downstream)

    async def retry(self, run_id: str, *, from_failed: bool = False) -> dict[str, Any]:
        """A new run of the run's job with the same event data and parameters, its
        ``parent_run`` the old run; ``from_failed``: of the run in its dependency chain that
        failed (its downstream jobs then follow through the DAG). LookupError for an unknown
        run, KeyError for a job no longer configured, ``RetryError`` for a run that cannot be."""
        return await retry_run(self.storage, self._emit, run_id, from_failed=from_failed,
                               configured=self._jobs.__contains__)

    async def wait_run(self, run_id: str, timeout: float | None = None) -> RunRecord:
        """Wait until the run reaches a terminal state; return it (TimeoutError at the deadline)."""
        return await self._waiters.wait(run_id, self.storage, timeout)

    async def cancel(self, run_id: str) -> RunRecord:
        """Cancel a run by hand and return it as it ended (``cancelled``, or its own end if
        it ended first). A queued, waiting or retrying run ends at once; a running one gets
        its job's stop signal and ``kill_grace`` from the executor. ``KeyError`` for an
        unknown run, ``EngineError`` for a run that already ended."""
        return await self._canceller.cancel(run_id)

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
                    await self._plan(key)

    async def _timer_step(self, kind: str, key: str, data: Any) -> None:
        try:
            if kind == SCHEDULE:
                late = bool(self._outages) and f"{SCHEDULE}:{key}" in self._outages
                await self._schedules.fire(key, data, retried=late)
                if late:
                    self._outages.went_through(SCHEDULE, key, key)
                    await self._plan(key)  # fires missed meanwhile follow `catchup`
            elif kind == REPLAN:
                await self._plan(key)
            elif kind == DISPATCH:
                await self._dispatch(data)
            elif kind == FOLLOW_UP:
                await self._downstream.follow_up(*data)
            elif kind == RETRY:
                if self._cancels.take_retry(key):
                    pass  # cancelled while retrying: its slot was given back then
                elif not self._stopping:
                    self._slots.retry(data)
                    self._pump()
            elif kind == WAIT_TIMEOUT:
                await self._downstream.timed_out(key)
        except Exception as exc:  # noqa: BLE001 - the timer must survive a failing step: it comes again
            self._outages.retry_later(kind, key, data, exc, key if kind == SCHEDULE else None)

    async def _plan(self, key: str, *, plan_from: float | None = None) -> None:
        """(Re)plan a schedule; if storage fails it, plan it again later (with catch-up)."""
        try:
            await self._schedules.plan(key, plan_from=plan_from)
        except Exception as exc:  # noqa: BLE001 - retried: a schedule is never left unplanned
            self._outages.retry_later(REPLAN, key, None, exc, key)
        else:
            if self._outages:
                self._outages.went_through(REPLAN, key, key)

    # ------------------------------------------------------------------ event queue -> dispatch
    async def _dispatch(self, event: TriggerEvent) -> None:
        try:
            await self._dispatch_one(event)
        except StorageConflict as exc:
            log.info("event %s already dispatched: %s", event.id, exc)
        except Exception as exc:  # noqa: BLE001 - retried later; one bad event must not stop the queue
            self._outages.retry_later(DISPATCH, event.id, event, exc, event.trigger_key)
        else:
            if self._outages:
                self._outages.went_through(DISPATCH, event.id, event.trigger_key)

    async def _dispatch_one(self, event: TriggerEvent) -> None:
        job = self._jobs.get(event.job)
        if job is None:
            log.warning("dropping event %s: job %r is not in the config any more", event.id, event.job)
            await self.storage.drop_event(event.id)
            self._secrets.forget(event.run_id)
            return
        if job.name in self._pauses and not is_forced(event.options):
            await self._pausing.paused_event(event)
            return
        base = base_run(event, job, self.clock.now())
        flag = {**requested_option(event.options), **carried_options(event.options)}
        if job.params and PARAMS not in flag:
            flag[PARAMS] = stored_params(job, default_params(job))  # runs that fire on their own
        if job.depends_on and event.options.get("with_upstream"):
            await self._dispatch_request(job, base, event, flag)
        elif job.depends_on and job.triggers and RETRY_OF not in event.options:
            run = waiting_run(base, job, self._conditions.since(job.name), flag)
            await self.storage.create_run(run, consume_event=event.id)
            self._created(run)
            self._downstream.hold(job, run)
            self._run_event(RunWaiting(run=run))
            await self._downstream.evaluate(run)
        else:
            job = with_overlap(job, event, self.plugins.triggers())
            await self._admit(job, RunRecord(**base, options=flag), consume_event=event.id)

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
            self._created(run)
            created.append(run)
        for run in created:
            member = self._jobs[run.job]
            if run.state is RunState.WAITING:
                self._downstream.hold(member, run)
                self._run_event(RunWaiting(run=run))
            else:
                self._run_event(RunQueued(run=run))
                self._enqueue(member, run)

    # ------------------------------------------------------------------ dispatch -> slots
    async def _admit(self, job: JobSpec, run: RunRecord, *, consume_event: str | None = None) -> RunRecord:
        """Store a new run: skipped on overlap, otherwise queued behind the job's slots."""
        if skipped_by_overlap(job, run, self._slots.active(job.name)):
            await self.storage.create_run(run, consume_event=consume_event)
            self._created(run)
            self._terminal(run, None)
            return run
        run.state = RunState.QUEUED
        await self.storage.create_run(run, consume_event=consume_event)
        self._created(run)
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
            self._tasks[run.id] = loop.create_task(self._slot_task(run.id, run.job, self._runner.execute(run)))

    # ------------------------------------------------------------------ slots -> attempt (executor) -> storage
    async def _slot_task(self, run_id: str, name: str, body: Awaitable[bool]) -> None:
        """Run one task handed a slot (an attempt or a recovery): ``body`` says whether the
        job slot is free again (False while retrying); the executor place is freed in any case."""
        holds_slot = True
        try:
            holds_slot = await body
        except Exception:  # noqa: BLE001 - a storage failure must not kill the engine
            log.exception("run %s of job %s failed in the engine", run_id, name)
        finally:
            self._slots.done()
            self._tasks.pop(run_id, None)
            if holds_slot:
                self._release(name)
            else:
                self._pump()

    # ------------------------------------------------------------------ storage -> terminal -> conditions
    def _terminal(self, run: RunRecord, attempt: AttemptRecord | None) -> None:
        """Everything that follows a run reaching a terminal state (its slot is released by the caller)."""
        job = self._job(run.job)
        recovered = self._outcomes.finished(run)
        followers = self._conditions.finished(run)
        event = terminal_event(run, attempt)
        if event is not None:
            self._run_event(event)
        if recovered:
            self._run_event(RunRecovered(run=run, attempt=attempt))
        self._waiters.finished(run)
        self._secrets.forget(run.id)
        counted = self._breaker.finished(job, run)
        if counted is not None:
            self._spawn(self._pausing.count_failures(job, run, *counted))
        if followers is not None:
            self._spawn(self._downstream.follow_up(run, followers))
        if job is not None and run.state in DONE_STATES:
            now = self.clock.now()
            if self._retention.due(job, now, self.started_at):
                self._spawn(retention.prune(self.storage, job, now))

    # ------------------------------------------------------------------ recovery
    async def _load_history(self) -> None:
        """Recent finished runs per job: for dependency conditions before anything runs, for
        ``status`` of the other jobs in the background (a 10,000-job start stays quick)."""
        recovery = Recovery(self.storage)
        rest = await recovery.load_linked_history(self._jobs, self._outcomes, self._conditions)
        if rest:
            self._spawn(recovery.load_history_slowly(rest, self._outcomes, self._conditions, lambda: self._stopping))

    async def _recover(self) -> None:
        """Take over what the previous daemon left: running runs (reattached, retried or
        interrupted per ``recovery``), retrying, queued and waiting runs."""
        left = await Recovery(self.storage).leftovers()
        plan = take_over(
            left, self._jobs, self._retired, lambda job: job.executor.type in self._executors,
            conditions=self._conditions, slots=self._slots, timer=self._timer, now=self.clock.now(),
        )
        loop = asyncio.get_running_loop()
        for job, run, attempt in plan.recover:
            self._slots.started(run)
            self._tasks[run.id] = loop.create_task(self._slot_task(run.id, job.name, self._runner.recover(job, run, attempt)))
        for maybe_job, run, maybe_attempt in plan.interrupt:
            await self._interrupt_crashed(maybe_job, run, maybe_attempt)
        for job, run in plan.enqueue:
            self._enqueue(job, run)
        for run, state, reason in plan.finish:
            await self._downstream.finish(run, state, reason)
        for job, run in plan.hold:
            self._downstream.hold(job, run)
        for _job, run in plan.hold:
            await self._downstream.evaluate(run)

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

    # ------------------------------------------------------------------ pause, resume, explain
    async def pause(self, jobs: Iterable[str], reason: str | None = None) -> list[tuple[PauseRecord, bool]]:
        """Pause jobs: their schedule fires are skipped (each skip recorded), their other events
        wait for ``resume``. Stored, so a restart or a reload keeps it. Returns each job's pause
        and whether this call made it (a paused job keeps its pause). KeyError for an unknown
        job, before anything is paused."""
        return await self._pausing.pause(self._known(jobs), reason)

    async def resume(self, jobs: Iterable[str], *, catch_up: bool = False) -> list[dict[str, Any]]:
        """Resume paused jobs: the events held meanwhile are dispatched, the failure count of
        the circuit breaker is reset; ``catch_up``: the fires skipped during the pause are
        caught up per the job's ``catchup``, else schedules go on from now. KeyError for an
        unknown job, before anything is resumed."""
        return await self._pausing.resume([self._jobs[name] for name in self._known(jobs)], catch_up=catch_up)

    def paused_jobs(self) -> list[str]:
        """The names of the paused jobs."""
        return [name for name in self._jobs if name in self._pauses]

    async def explain(self, job: str, limit: int = 20) -> dict[str, Any]:
        """The job's newest ``limit`` decisions (newest first), its next due time and what it
        waits for now (KeyError for an unknown job)."""
        spec = self._jobs.get(job)
        if spec is None:
            raise KeyError(job)
        decisions = await self._journal.read(job, limit)
        status = self._job_status(spec)
        upstream = spec.depends_on.jobs if spec.depends_on else ()
        return explain_answer(decisions, status, self._pauses.get(job), self._pauses.held(job), self.clock.now(),
                              upstream)

    def _known(self, jobs: Iterable[str]) -> list[str]:
        names = list(dict.fromkeys(jobs))
        for name in names:
            if name not in self._jobs:
                raise KeyError(name)
        return names

    def _created(self, run: RunRecord) -> None:
        """A run was stored: conditions note it, and it is recorded as the decision it stands for."""
        self._conditions.note_created(run)
        self._journal.note(of_run(run, self.clock.now()))

    # ------------------------------------------------------------------ reload and status
    async def reload(self, config: Config) -> ReloadResult:
        """Switch to a new (already validated) config without disturbing running runs."""
        new_jobs = {job.name: job for job in config.jobs}
        result = diff_notifiers(self.config.notifiers, config.notifiers, diff_jobs(self._jobs, new_jobs))
        for name in result.removed + result.changed:
            for spec in self._jobs[name].triggers:
                await self._stop_trigger(spec.key)
            self._triggers.forget_job(name)
        for name in result.removed:
            self._retired[name] = self._jobs[name]
            for event in self._pauses.release(name):
                self._events.append(event)  # dropped by dispatch: the job is gone
        for name in result.added:
            self._retired.pop(name, None)
        old_notifiers = self.config.notifiers
        self.config = config = carry_over(config, self.config)
        self._jobs = new_jobs
        self._conditions.dag = build_dag(new_jobs)
        self._slots.max_parallel = config.max_parallel or DEFAULT_MAX_PARALLEL
        await self._notifications.stop_changed(old_notifiers, config.notifiers)
        await self._start_components(new_jobs[n] for n in result.added + result.changed)
        for name in result.added + result.changed:
            await self._start_triggers(new_jobs[name])
        for name in result.removed:
            for run in self._conditions.drop_job(name):
                await self._downstream.finish(run, RunState.SKIPPED, "job removed from the config")
        self._pump()
        self._timer.wake.set()
        if any(result.__dict__.values()):
            log.info("reloaded: added %s, removed %s, changed %s", result.added, result.removed, result.changed)
        return result

    def status(self) -> list[JobStatus]:
        """One entry per configured job."""
        return [self._job_status(job) for job in self._jobs.values()]

    def job_status(self, name: str) -> JobStatus:
        """One job's entry of :meth:`status` (``KeyError`` for an unknown job): a page of a
        long job list asks for the jobs it shows, not for all of them."""
        return self._job_status(self._jobs[name])

    def _job_status(self, job: JobSpec) -> JobStatus:
        return job_status(job, triggers=self._triggers, timer=self._timer, slots=self._slots,
                          conditions=self._conditions, outcomes=self._outcomes, pause=self._pauses.get(job.name))

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
                pending = [task for task in self._bg if not task.done()]
                if pending:
                    await asyncio.gather(*pending, return_exceptions=True)
                else:
                    # Done tasks leave _bg in a callback: yield so it runs (from 3.12,
                    # gathering finished tasks completes without yielding: a busy loop).
                    await asyncio.sleep(0.005)

        await asyncio.wait_for(settle(), timeout)
