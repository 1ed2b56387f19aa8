"""Slots: which runs may start now, per job (``max_instances``, ``overlap``) and overall
(``max_parallel``). Plain data: no I/O, no tasks; the engine starts what it hands out."""

from __future__ import annotations

from collections import defaultdict, deque

from ..model import JobSpec
from ..records import RunRecord

__all__ = ["DEFAULT_MAX_PARALLEL", "Slots", "job_limit"]

DEFAULT_MAX_PARALLEL = 64


def job_limit(job: JobSpec) -> int:
    """How many runs of ``job`` may hold a slot at once."""
    return 1 if job.overlap == "queue" else max(job.max_instances, 1)


class Slots:
    """A run holds its job's slot from admission until it finished (through its retries),
    and an executor place while an attempt is under way.

    Runs admitted beyond their job's limit wait in the job's line (``blocked``); runs
    holding a slot wait in ``ready`` for an executor place (``max_parallel``)."""

    def __init__(self, max_parallel: int | None = None) -> None:
        self.max_parallel = max_parallel or DEFAULT_MAX_PARALLEL
        self.running = 0
        """Attempts (or recoveries) under way, all jobs together."""
        self._held: dict[str, int] = defaultdict(int)
        self._blocked: dict[str, deque[RunRecord]] = defaultdict(deque)
        self._ready: deque[RunRecord] = deque()
        self._executing: dict[str, int] = defaultdict(int)

    def active(self, name: str) -> int:
        """Runs of the job holding a slot or waiting for one (what ``overlap: skip`` counts)."""
        return self._held[name] + len(self._blocked[name])

    def admit(self, job: JobSpec, run: RunRecord) -> None:
        """Give the run a slot of its job (ready to start) or put it in the job's line."""
        name = job.name
        if self._held[name] < job_limit(job) and not self._blocked[name]:
            self._held[name] += 1
            self._ready.append(run)
        else:
            self._blocked[name].append(run)

    def hold(self, name: str) -> None:
        """Count a slot held by a run recovered after a restart (retrying or still running)."""
        self._held[name] += 1

    def release(self, name: str, job: JobSpec | None) -> None:
        """A run of ``name`` gave its slot back: runs in the job's line move up to its limit
        (none while ``job``, the job as configured now, is unknown)."""
        held = self._held
        held[name] = max(held[name] - 1, 0)
        blocked = self._blocked.get(name)
        while blocked and job is not None and held[name] < job_limit(job):
            held[name] += 1
            self._ready.append(blocked.popleft())

    def remove(self, run_id: str, name: str) -> bool | None:
        """Take a queued run of job ``name`` out (it was cancelled): ``True`` if it held a slot
        (ready for an executor place: the caller releases the slot), ``False`` if it waited in
        the job's line, ``None`` if it is in neither."""
        for queue, held in ((self._ready, True), (self._blocked.get(name), False)):
            if queue is None:
                continue
            for run in queue:
                if run.id == run_id:
                    queue.remove(run)
                    return held
        return None

    def retry(self, run: RunRecord) -> None:
        """A run that kept its slot through a retry delay is ready for its next attempt."""
        self._ready.append(run)

    def take(self) -> RunRecord | None:
        """The next ready run if an executor place is free (it counts as running until ``done``)."""
        if self._ready and self.running < self.max_parallel:
            self.running += 1
            return self._ready.popleft()
        return None

    def started(self, run: RunRecord) -> None:
        """Count a recovered run, started outside ``take``, as running."""
        self._held[run.job] += 1
        self.running += 1

    def done(self) -> None:
        """An attempt (or recovery) handed out by ``take`` or ``started`` ended."""
        self.running -= 1

    def attempt_began(self, name: str) -> None:
        self._executing[name] += 1

    def attempt_ended(self, name: str) -> None:
        self._executing[name] -= 1

    def executing(self, name: str) -> int:
        """Attempts of the job under way now (``firelink status``: running)."""
        return self._executing.get(name, 0)

    def waiting(self) -> int:
        """Runs waiting for a slot or an executor place (for ``queue_depth``)."""
        return len(self._ready) + sum(len(q) for q in self._blocked.values())
