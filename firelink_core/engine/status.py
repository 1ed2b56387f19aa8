"""What ``firelink status`` reports: per-job status and the latest outcome of each job."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from ..abc import TriggerHealth
from ..model import JobSpec
from ..records import PauseRecord, RunRecord, RunState

if TYPE_CHECKING:
    from .components import Triggers
    from .conditions import Conditions
    from .slots import Slots
    from .timer import Timer

__all__ = ["JobOutcomes", "JobStatus", "job_status"]


@dataclass
class JobStatus:
    """What ``firelink status`` shows for one job."""

    name: str
    triggers: list[str]
    """Readable trigger descriptions (``cron 0 18 * * *``, ``watch s3://b/p``, ``manual``)."""
    state: str
    """``idle``, ``running``, ``waiting``, ``failing``, ``paused`` or ``disabled``."""
    last_run: RunRecord | None
    next_due: datetime | None
    health: dict[str, TriggerHealth] = field(default_factory=dict)
    """Per trigger key."""
    running: int = 0
    waiting: int = 0
    paused: PauseRecord | None = None
    """Set while the job is paused (``firelink pause``, or its circuit breaker): why and since when."""
    timezone: str = "UTC"
    """The job's time zone: its schedules' times are wall-clock times there."""
    description: str | None = None
    """The job's ``description:`` from the config."""
    waiting_on: list[str] = field(default_factory=list)
    """With state ``waiting``: the upstream jobs it waits for."""
    waiting_needs: str | None = None
    """What it waits for them to do: ``success``, ``finish``, or the runs of a ``request``."""
    waiting_since: float | None = None
    """Since when (epoch seconds) they have not done it; ``None``: ever."""


class JobOutcomes:
    """Each job's latest finished run, and which jobs are failing (their latest run failed)."""

    def __init__(self) -> None:
        self.last_run: dict[str, RunRecord] = {}
        self.failing: set[str] = set()

    def finished(self, run: RunRecord) -> bool:
        """Note a run that just finished; return whether it ends a failing streak."""
        self.last_run[run.job] = run
        if run.state is RunState.SUCCESS:
            if run.job in self.failing:
                self.failing.discard(run.job)
                return True
        elif run.state in (RunState.FAILED, RunState.TIMED_OUT):
            self.failing.add(run.job)
        return False

    def loaded(self, run: RunRecord) -> bool:
        """Note a finished run read from storage (oldest first); False if a run finished
        since start is newer, so the stored one is ignored."""
        latest = self.last_run.get(run.job)
        if latest is not None and run.created_at <= latest.created_at:
            return False
        self.finished(run)
        return True


def job_status(
    job: JobSpec, *, triggers: Triggers, timer: Timer, slots: Slots, conditions: Conditions, outcomes: JobOutcomes,
    pause: PauseRecord | None = None,
) -> JobStatus:
    """What the parts know about one job, for ``firelink status``."""
    health, next_due = triggers.health_and_next_due(job, timer)
    running = slots.executing(job.name)
    waiting = conditions.waiting_count(job.name)
    waits = conditions.waiting_on(job) if job.enabled and not running else None
    if not job.enabled:
        state = "disabled"
    elif running:
        state = "running"
    elif pause is not None:
        state = "paused"
    elif waiting:
        state = "waiting"
    elif job.name in outcomes.failing:
        state = "failing"
    elif waits is not None:
        state = "waiting"  # a job without triggers whose upstream has not done its part yet
    else:
        state = "idle"
    return JobStatus(
        name=job.name,
        triggers=job.trigger_texts(),
        state=state,
        last_run=outcomes.last_run.get(job.name),
        next_due=next_due,
        health=health,
        running=running,
        waiting=waiting,
        paused=pause,
        timezone=job.timezone,
        description=job.description,
        waiting_on=list(waits.jobs) if waits and state == "waiting" else [],
        waiting_needs=waits.needs if waits and state == "waiting" else None,
        waiting_since=waits.since if waits and state == "waiting" else None,
    )
