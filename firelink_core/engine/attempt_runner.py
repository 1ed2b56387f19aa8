"""A run handed a slot, through its executor: the claim, each attempt (its start, the
executor's ``run``, or ``recover`` after a restart), and the attempt's end recorded: a
retry put on the timer, or the run's end handed to the engine's ``terminal``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from ..abc import AttemptResult, Clock, Storage
from ..events import RunEvent, RunRetrying, RunStarted
from ..model import JobSpec
from ..records import AttemptRecord, RunRecord, RunState
from .attempts import (
    START_WRITE_DELAY,
    STOPPED,
    LogFolders,
    attempt_outcome,
    attempt_request,
    begin_attempt,
)
from .cancels import CANCELLED, Cancels
from .components import Executors
from .conditions import Conditions
from .contexts import Reporter
from .outages import Outages
from .requests import Secrets
from .slots import Slots
from .timer import RETRY, Timer

__all__ = ["AttemptRunner"]

log = logging.getLogger("firelink.engine")


class AttemptRunner:
    """Runs the attempts of the runs the engine hands it; each answer says whether the
    job's slot is free again (False while the run waits for its retry).

    ``job_of`` answers a job by name (a job removed by a reload included), ``run_event``
    sends a run event, ``terminal`` does everything that follows a run's end, ``spawn``
    runs a write in the background; for a run recovered after a restart, ``release`` gives
    its job's slot back and ``interrupt`` ends it as interrupted, replaced per ``recovery``."""

    def __init__(
        self,
        *,
        storage: Storage,
        clock: Clock,
        owner: str,
        executors: Executors,
        log_folders: LogFolders,
        secrets: Secrets,
        conditions: Conditions,
        slots: Slots,
        outages: Outages,
        cancels: Cancels,
        timer: Timer,
        job_of: Callable[[str], JobSpec | None],
        run_event: Callable[[RunEvent], None],
        terminal: Callable[[RunRecord, AttemptRecord | None], None],
        spawn: Callable[[Coroutine[Any, Any, Any]], Any],
        release: Callable[[str], None],
        interrupt: Callable[[JobSpec, RunRecord, AttemptRecord], Awaitable[None]],
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._owner = owner
        self._executors = executors
        self._log_folders = log_folders
        self._secrets = secrets
        self._conditions = conditions
        self._slots = slots
        self._outages = outages
        self._cancels = cancels
        self._timer = timer
        self._job_of = job_of
        self._run_event = run_event
        self._terminal = terminal
        self._spawn = spawn
        self._release = release
        self._interrupt = interrupt

    async def execute(self, queued: RunRecord) -> bool:
        """Claim a queued (or retrying) run and run its attempt."""
        job = self._job_of(queued.job)
        try:
            run = await self._storage.claim_run(
                queued.id, self._owner, from_states=(RunState.QUEUED, RunState.RETRYING)
            )
        except Exception as exc:  # noqa: BLE001 - still queued in storage: it keeps its slot and is claimed later
            self._outages.retry_later(RETRY, queued.id, queued, exc, queued.trigger_key)
            return False
        if self._outages:
            self._outages.went_through(RETRY, queued.id, queued.trigger_key)
        if run is None or job is None:
            return True
        lost = self._secrets.lost(run)
        if lost:
            await self._end_failed(run, lost)
            return True
        try:
            return await self._attempt(job, run)
        except Exception as exc:  # noqa: BLE001 - a claimed run must end, never stay running
            await self._failed_in_engine(run, "run the attempt", exc)
            return True

    async def recover(self, job: JobSpec, run: RunRecord, attempt: AttemptRecord) -> bool:
        """Let the executor reattach to (or report) an attempt the previous daemon left
        running. Any failure ends the run as failed."""
        released = False
        try:
            executor = self._executors[job.executor.type]
            log_path = (
                Path(attempt.log_path)
                if attempt.log_path
                else self._log_folders.path(job.name, run.id, attempt.number)
            )
            reporter = Reporter(self._storage, attempt, log_path, job.log.max_bytes, stored=True)
            request = attempt_request(job, run, attempt.number, log_path)
            call = executor.recover(request, attempt, reporter, reattach=job.recovery == "reattach")
            result = await self._call_executor(job, reporter, call, recovering=True)
            if result is None:
                self._release(job.name)  # the replacement run may take the slot
                released = True
                await self._interrupt(job, run, attempt)
                return False
            log.info("run %s of job %s: recovered its attempt after a restart", run.id, job.name)
            return await self._attempt_done(job, reporter, result)
        except Exception as exc:  # noqa: BLE001 - a recovered run must end, never stay running
            await self._failed_in_engine(run, "recover the attempt", exc)
            return not released

    async def _failed_in_engine(self, run: RunRecord, what: str, exc: Exception) -> None:
        """End a run the engine failed after claiming it (or recovering it): failed, with the reason."""
        log.error("run %s of job %s failed in the engine", run.id, run.job, exc_info=exc)
        await self._end_failed(run, f"the engine could not {what}: {type(exc).__name__}: {exc}")

    async def _end_failed(self, run: RunRecord, reason: str) -> None:
        now = self._clock.now()
        run = await self._outages.until_stored(
            f"end of run {run.id}",
            lambda: self._storage.update_run(
                run.id, state=RunState.FAILED, finished_at=now, reason=reason
            ),
        )
        self._terminal(run, None)

    async def _call_executor(
        self,
        job: JobSpec,
        reporter: Reporter,
        call: Awaitable[AttemptResult | None],
        *,
        recovering: bool = False,
    ) -> AttemptResult | None:
        """Await an executor's ``run`` or ``recover``: shutdown records the attempt as
        interrupted; an executor's exception fails the attempt (or, recovering, gives the
        run up as interrupted) instead of stopping the daemon."""
        try:
            return await call
        except asyncio.CancelledError:
            if self._cancels.is_task(reporter.attempt.run_id):
                await self._record_interrupted(reporter, CANCELLED, RunState.CANCELLED)
            else:
                await self._record_interrupted(reporter, STOPPED)
            raise
        except Exception as exc:  # noqa: BLE001 - an executor bug fails the attempt, not the daemon
            log.exception(
                "executor %s failed on run %s", job.executor.type, reporter.attempt.run_id
            )
            return (
                None
                if recovering
                else AttemptResult(
                    error=f"executor {job.executor.type} failed: {type(exc).__name__}: {exc}"
                )
            )
        finally:
            reporter.close()

    async def _attempt(self, job: JobSpec, run: RunRecord) -> bool:
        """Run one attempt."""
        now = self._clock.now()
        log_path = self._log_folders.path(job.name, run.id, run.attempts + 1)
        run, reporter = begin_attempt(self._storage, job, run, log_path, now)
        self._conditions.note_started(job.name, now)
        self._slots.attempt_began(job.name)
        self._run_event(RunStarted(run=run, attempt=reporter.attempt))
        timer = asyncio.get_running_loop().call_later(
            START_WRITE_DELAY, self._write_start, reporter
        )
        try:
            request = attempt_request(job, run, run.attempts, log_path, self._secrets.get(run.id))
            executor = self._executors[job.executor.type]
            result = await self._call_executor(job, reporter, executor.run(request, reporter))
        finally:
            timer.cancel()
            self._slots.attempt_ended(job.name)
        assert result is not None
        return await self._attempt_done(job, reporter, result)

    def _write_start(self, reporter: Reporter) -> None:
        write = reporter.write_start()
        if write is not None:
            self._spawn(write)

    async def _record_interrupted(
        self, reporter: Reporter, why: str, state: RunState = RunState.INTERRUPTED
    ) -> None:
        now = self._clock.now()
        attempt, run = await reporter.end(
            {"state": state, "finished_at": now, "reason": why}, finished_at=now, error=why
        )
        self._terminal(run, attempt)

    async def _attempt_done(self, job: JobSpec, reporter: Reporter, result: AttemptResult) -> bool:
        """Record the attempt's result."""
        outcome = attempt_outcome(job, reporter.attempt.number, result, self._clock.now())
        attempt, run = await self._outages.until_stored(
            f"end of run {reporter.attempt.run_id}",
            lambda: reporter.end(outcome.run_changes, **outcome.attempt_changes),
        )
        if outcome.retry_delay is None:
            self._terminal(run, attempt)
            return True
        self._run_event(RunRetrying(run=run, attempt=attempt, delay=outcome.retry_delay))
        self._timer.push(outcome.run_changes["next_attempt_at"], RETRY, run.id, run)
        return False
