"""Dispatch decisions: the run an event becomes (its fields, a waiting run), the overlap it is
admitted under, and a run skipped by ``overlap: skip``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..abc import ScheduleTrigger, Trigger
from ..events import TriggerEvent
from ..model import JobSpec, Overlap
from ..records import RunRecord, RunState
from .ids import new_id
from .slots import job_limit

__all__ = [
    "BACKFILL", "NO_DOWNSTREAM", "RETRY_OF", "base_run", "carried_options", "default_overlap", "skipped_by_overlap",
    "waiting_run", "with_overlap",
]

BACKFILL = "backfill"
"""Key in an event's and its run's ``options``: the id of the backfill that made it."""
NO_DOWNSTREAM = "no_downstream"
"""Key in an event's and its run's ``options``: the run's finish starts no automatic downstream run."""
RETRY_OF = "retry_of"
"""Key in an event's and its run's ``options``: the run it retries (also its ``parent_run``)."""
_CARRIED = (BACKFILL, NO_DOWNSTREAM, RETRY_OF, "params")


def carried_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options of an event its run keeps (backfill id, no downstream, retried run, parameters)."""
    return {key: options[key] for key in _CARRIED if options.get(key) is not None}


def base_run(event: TriggerEvent, job: JobSpec, now: float) -> dict[str, Any]:
    """The fields of the run an event becomes (its state, reason and options are the caller's)."""
    return {
        "id": event.run_id or new_id(),
        "job": job.name,
        "trigger": event.trigger,
        "trigger_key": event.trigger_key,
        "event_id": event.id,
        "payload": dict(event.payload),
        "env": dict(event.env),
        "created_at": now,
        "scheduled_for": event.scheduled_for,
        "parent_run": event.options.get(RETRY_OF),
    }


def default_overlap(event: TriggerEvent, classes: Mapping[str, type[Trigger]]) -> Overlap:
    """Unset ``overlap``: a schedule's fire is skipped while the job is busy (the next fire
    comes anyway); any other event (a file, an object, a request) waits for a slot,
    so none is dropped. ``allow`` keeps the job's ``max_instances`` as its limit."""
    cls = classes.get(event.trigger)
    return "skip" if isinstance(cls, type) and issubclass(cls, ScheduleTrigger) else "allow"


def with_overlap(job: JobSpec, event: TriggerEvent, classes: Mapping[str, type[Trigger]]) -> JobSpec:
    """The job as the event's run is admitted: its ``overlap``, or the default for the event."""
    overlap = job.overlap or default_overlap(event, classes)
    if overlap == "skip" and (event.payload.get("catchup") or event.options.get(BACKFILL) or event.options.get(RETRY_OF)):
        # Fires caught up together after downtime, or a backfill's, would skip each other: they
        # queue; a retry asked for by hand is never skipped either.
        overlap = "queue"
    return job if overlap == job.overlap else dataclasses.replace(job, overlap=overlap)


def waiting_run(base: Mapping[str, Any], job: JobSpec, since: float | None, flag: Mapping[str, Any]) -> RunRecord:
    """The run of a job with ``depends_on`` and triggers of its own: it waits for its
    condition over upstream runs finished after ``since``."""
    return RunRecord(
        **base,
        state=RunState.WAITING,
        reason="waiting for " + ", ".join(job.depends_on.jobs if job.depends_on else ()),
        options={"since": since, **flag},
    )


def skipped_by_overlap(job: JobSpec, run: RunRecord, active: int) -> bool:
    """With ``overlap: skip`` and ``active`` runs of the job at its limit: mark ``run``
    skipped (finished as it was created) and say so."""
    if job.overlap != "skip" or active < job_limit(job):
        return False
    run.state = RunState.SKIPPED
    run.finished_at = run.created_at
    run.reason = f"overlap: {active} run(s) of the job still active"
    return True
