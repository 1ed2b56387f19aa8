"""Backfills: one run per schedule instant of a past range, each carrying its instant as a
normal scheduled run does, never a second run of an instant that already has one (unless
asked), fed to the event queue at most ``max_parallel`` at a time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..abc import ScheduleTrigger, Storage
from ..model import Config, JobSpec
from ..plugins import Plugins
from ..records import RunRecord, RunState
from .dispatch import BACKFILL, NO_DOWNSTREAM
from .ids import new_id
from .preview import Fire, fires_between, schedule_triggers
from .timer import fire_event

__all__ = ["BackfillError", "BackfillPlan", "Backfills", "backfill_event", "feed", "plan_backfill"]

log = logging.getLogger("firelink.engine")

NOT_A_RUN = frozenset({RunState.SKIPPED, RunState.CANCELLED})
"""Runs of an instant that did no work: a backfill runs such an instant again."""


class BackfillError(ValueError):
    """A backfill that cannot be made, in words (a bad range, a job without a schedule)."""


@dataclass
class BackfillPlan:
    """What a backfill of one job over ``[start, end)`` runs and what it leaves alone."""

    id: str
    job: str
    start: datetime
    end: datetime
    to_run: list[Fire] = field(default_factory=list)
    existing: list[tuple[Fire, RunRecord]] = field(default_factory=list)
    """Instants that already have a run (left alone without ``rerun``)."""
    run_ids: dict[float, str] = field(default_factory=dict)
    """The run id each instant's run gets, by its epoch seconds."""

    def as_dict(
        self, *, dry_run: bool, rerun: bool, downstream: bool, max_parallel: int | None
    ) -> dict[str, Any]:
        return {
            "backfill": self.id,
            "job": self.job,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "dry_run": dry_run,
            "rerun": rerun,
            "downstream": downstream,
            "max_parallel": max_parallel,
            "runs": [
                {
                    **fire.as_dict(),
                    "run_id": None if dry_run else self.run_ids.get(fire.at.timestamp()),
                }
                for fire in self.to_run
            ],
            "existing": [
                {**fire.as_dict(), "run_id": run.id, "state": run.state.value}
                for fire, run in self.existing
            ],
        }


async def plan_backfill(
    storage: Storage,
    job: JobSpec,
    triggers: Sequence[ScheduleTrigger],
    start: datetime,
    end: datetime,
    *,
    rerun: bool,
) -> BackfillPlan:
    """The instants of ``[start, end)`` and which of them already have a run (one indexed
    storage query over the range). ``BackfillError`` for a bad range or no schedule."""
    if not triggers:
        raise BackfillError(
            f"job {job.name!r} has no schedule trigger (cron, interval ...): nothing to backfill"
        )
    if end <= start:
        raise BackfillError(
            f"empty range: --to ({end.isoformat()}) must be after --from ({start.isoformat()})"
        )
    try:
        fires = fires_between(job, list(triggers), start, end)
    except ValueError as exc:
        raise BackfillError(str(exc)) from None
    plan = BackfillPlan(id=new_id(), job=job.name, start=start, end=end)
    stored = await storage.list_scheduled_runs(job.name, start.timestamp(), end.timestamp())
    have: dict[float, RunRecord] = {}
    for run in stored:
        if run.state not in NOT_A_RUN and run.scheduled_for is not None:
            have.setdefault(run.scheduled_for, run)
    for fire in fires:
        run = have.get(fire.at.timestamp())
        if run is not None:
            plan.existing.append((fire, run))
            if not rerun:
                continue
        plan.to_run.append(fire)
        plan.run_ids[fire.at.timestamp()] = new_id()
    return plan


def backfill_event(
    plan: BackfillPlan, fire: Fire, trigger: ScheduleTrigger, *, downstream: bool
) -> tuple[dict[str, Any], Mapping[str, str], dict[str, Any], str]:
    """The payload, env, options and dedupe key of one instant's event: the trigger's own
    event for that instant (``FIRELINK_SCHEDULED_FOR`` ... as a scheduled run gets)."""
    due = fire.at.timestamp()
    payload, env, _key = fire_event(trigger, due)
    payload[BACKFILL] = plan.id
    options: dict[str, Any] = {BACKFILL: plan.id}
    if not downstream:
        options[NO_DOWNSTREAM] = True
    return payload, env, options, f"backfill:{plan.id}:{due!r}"


async def feed(
    plan: BackfillPlan,
    emit_one: Callable[[Fire], Awaitable[None]],
    wait_run: Callable[[str], Awaitable[Any]],
    max_parallel: int | None,
    stopping: Callable[[], bool],
) -> None:
    """Emit each instant's event, oldest first; with ``max_parallel``, emit the next one only
    when fewer than that many of the backfill's runs are unfinished."""
    limit = asyncio.Semaphore(max_parallel) if max_parallel else None
    waits: set[asyncio.Task[None]] = set()

    async def release_when_done(run_id: str) -> None:
        try:
            await wait_run(run_id)
        except Exception:  # noqa: BLE001 - the run's end is recorded elsewhere; free the place
            log.debug("backfill %s: waiting for run %s failed", plan.id, run_id, exc_info=True)
        finally:
            assert limit is not None
            limit.release()

    try:
        for fire in plan.to_run:
            if stopping():
                log.info(
                    "backfill %s of %s stopped with the daemon: run it again to finish it",
                    plan.id,
                    plan.job,
                )
                return
            if limit is not None:
                await limit.acquire()
            await emit_one(fire)
            if limit is not None:
                task = asyncio.get_running_loop().create_task(
                    release_when_done(plan.run_ids[fire.at.timestamp()])
                )
                waits.add(task)
                task.add_done_callback(waits.discard)
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)
    finally:
        for task in waits:
            task.cancel()


class Backfills:
    """``Engine.backfill``: plans a backfill and feeds its runs to the event queue.

    ``emit`` is the engine's entry to its event queue, ``wait_run`` waits for a run's end,
    ``spawn`` runs a feed in the background and ``stopping`` says the engine is stopping."""

    def __init__(
        self,
        *,
        storage: Storage,
        plugins: Plugins,
        emit: Callable[..., Awaitable[Any]],
        wait_run: Callable[[str], Awaitable[Any]],
        spawn: Callable[[Coroutine[Any, Any, Any]], Any],
        stopping: Callable[[], bool],
    ) -> None:
        self._storage = storage
        self._plugins = plugins
        self._emit = emit
        self._wait_run = wait_run
        self._spawn = spawn
        self._stopping = stopping

    async def backfill(
        self,
        job: JobSpec,
        config: Config,
        start: datetime,
        end: datetime,
        *,
        max_parallel: int | None,
        dry_run: bool,
        rerun: bool,
        downstream: bool,
    ) -> dict[str, Any]:
        """One run of ``job`` per schedule instant in ``[start, end)`` without a run yet (every
        instant with ``rerun``); return the plan. With ``max_parallel``, the runs are fed in
        the background, that many unfinished at a time."""
        triggers = schedule_triggers(job, self._plugins, config)
        plan = await plan_backfill(self._storage, job, triggers, start, end, rerun=rerun)
        answer = plan.as_dict(
            dry_run=dry_run, rerun=rerun, downstream=downstream, max_parallel=max_parallel
        )
        if dry_run or not plan.to_run:
            return answer
        by_key = {trigger.spec.key: trigger for trigger in triggers}

        async def emit_one(fire: Fire) -> None:
            trigger = by_key[fire.trigger]
            payload, env, options, dedupe_key = backfill_event(
                plan, fire, trigger, downstream=downstream
            )
            due = fire.at.timestamp()
            await self._emit(
                trigger.spec,
                payload,
                env,
                dedupe_key=dedupe_key,
                scheduled_for=due,
                run_id=plan.run_ids[due],
                options=options,
            )

        log.info(
            "backfill %s of %s: %d run(s) from %s to %s",
            plan.id,
            job.name,
            len(plan.to_run),
            start.isoformat(),
            end.isoformat(),
        )
        work = feed(plan, emit_one, self._wait_run, max_parallel, self._stopping)
        if max_parallel:
            self._spawn(work)
        else:
            await work
        return answer
