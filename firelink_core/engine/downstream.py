"""What an upstream finish moves (``depends_on``): waiting runs held, decided again (queued,
skipped, upstream failed) or timed out (``wait_timeout``), and the automatic runs of
downstream jobs made, all under the engine's lock for dependency decisions."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..abc import Clock, Storage
from ..durations import format_duration
from ..events import RunEvent, RunQueued
from ..model import JobSpec
from ..records import AttemptRecord, DecisionRecord, RunRecord, RunState
from .conditions import Conditions
from .decisions import of_run
from .outages import Outages
from .pauses import Pauses, skip_reason
from .requests import upstream_states
from .timer import FOLLOW_UP, WAIT_TIMEOUT, Timer

__all__ = ["Downstream"]


class Downstream:
    """Waiting runs and automatic runs, over ``Conditions`` (which owns what they wait for).

    ``jobs`` answers the configured jobs, ``job_of`` a job by name (a job removed by a
    reload included), ``stopping`` whether the engine is stopping; ``note`` records a
    decision, ``run_event`` sends a run event; ``admit`` stores a new run queued (or skipped
    on overlap), ``enqueue`` queues a stored run for its slot, ``created`` notes a stored run
    and ``terminal`` does everything that follows a run's end."""

    def __init__(
        self,
        *,
        storage: Storage,
        clock: Clock,
        conditions: Conditions,
        timer: Timer,
        outages: Outages,
        pauses: Pauses,
        lock: asyncio.Lock,
        jobs: Callable[[], Mapping[str, JobSpec]],
        job_of: Callable[[str], JobSpec | None],
        stopping: Callable[[], bool],
        note: Callable[[DecisionRecord], None],
        run_event: Callable[[RunEvent], None],
        admit: Callable[[JobSpec, RunRecord], Awaitable[Any]],
        enqueue: Callable[[JobSpec, RunRecord], None],
        created: Callable[[RunRecord], None],
        terminal: Callable[[RunRecord, AttemptRecord | None], None],
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._conditions = conditions
        self._timer = timer
        self._outages = outages
        self._pauses = pauses
        self._lock = lock
        self._jobs = jobs
        self._job_of = job_of
        self._stopping = stopping
        self._note = note
        self._run_event = run_event
        self._admit = admit
        self._enqueue = enqueue
        self._created = created
        self._terminal = terminal

    async def finish(self, run: RunRecord, state: RunState, reason: str) -> None:
        """End a waiting run (skipped, upstream failed) without running it."""
        now = self._clock.now()
        run = await self._storage.update_run(run.id, state=state, finished_at=now, reason=reason)
        self._note(of_run(run, now))
        self._terminal(run, None)

    def hold(self, job: JobSpec, run: RunRecord) -> None:
        """A stored waiting run waits for its upstream (until ``wait_timeout``, if set)."""
        if self._conditions.add_waiting(run) and job.wait_timeout is not None:
            self._timer.push(run.created_at + job.wait_timeout, WAIT_TIMEOUT, run.id, run.job)

    async def follow_up(self, finished: RunRecord, followers: set[str]) -> None:
        """What an upstream finish moves: waiting runs decided again, automatic runs started."""
        async with self._lock:
            if self._stopping():
                return
            try:
                for item in self._conditions.follow_ups(finished, followers, self._jobs()):
                    if isinstance(item, JobSpec):
                        await self._auto_run(item, finished)
                    else:
                        await self.evaluate(item)
            except Exception as exc:  # noqa: BLE001 - done again later: what went through is not redone
                self._outages.retry_later(FOLLOW_UP, finished.id, (finished, followers), exc, None)
            else:
                if self._outages:
                    self._outages.went_through(FOLLOW_UP, finished.id, None)

    async def evaluate(self, run: RunRecord) -> None:
        """Decide a waiting run again: it waits on, is queued, or ends without running."""
        job = self._jobs().get(run.job)
        if job is None or not self._conditions.is_waiting(run):
            return
        upstream = (
            await upstream_states(self._storage, run) if "after_runs" in run.options else None
        )
        verdict, reason = self._conditions.decide_waiting(job, run, upstream)
        if verdict == "wait":
            return
        self._conditions.unwait(run)
        try:
            if verdict == "run":
                run = await self._storage.update_run(run.id, state=RunState.QUEUED, reason=reason)
                self._note(of_run(run, self._clock.now()))
                self._run_event(RunQueued(run=run, detail=reason))
                self._enqueue(job, run)
            elif verdict == "upstream_failed":
                await self.finish(run, RunState.UPSTREAM_FAILED, reason)
            else:
                await self.finish(run, RunState.SKIPPED, reason)
        except Exception:
            # still waiting in storage: decided again on the retry
            self._conditions.add_waiting(run)
            raise

    async def _auto_run(self, job: JobSpec, finished: RunRecord) -> None:
        run = self._conditions.auto_run(job, finished, self._clock.now())
        if run is None:
            return
        pause = self._pauses.get(job.name)
        if pause is not None:
            # Not made: the next upstream finish after the resume decides again.
            self._note(
                dataclasses.replace(
                    of_run(run, self._clock.now()),
                    outcome="skipped",
                    reason=skip_reason(pause),
                    run_id=None,
                )
            )
            return
        if run.state is RunState.UPSTREAM_FAILED:
            await self._storage.create_run(run)
            self._created(run)
            self._terminal(run, None)
        else:
            await self._admit(job, run)

    async def timed_out(self, run_id: str) -> None:
        """A waiting run's ``wait_timeout`` is due: skipped if it still waits."""
        run = self._conditions.find_waiting(run_id)
        if run is None:
            return
        job = self._job_of(run.job)
        limit = format_duration(job.wait_timeout or 0) if job else "?"
        async with self._lock:
            if self._conditions.is_waiting(run):
                self._conditions.unwait(run)
                try:
                    await self.finish(
                        run, RunState.SKIPPED, f"wait_timeout: upstream not ready within {limit}"
                    )
                except Exception:
                    # still waiting in storage: the timer step comes again
                    self._conditions.add_waiting(run)
                    raise
