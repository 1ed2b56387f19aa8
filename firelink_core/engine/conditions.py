"""Dependencies: upstream history, waiting runs, and the ``depends_on`` decisions that turn
a finished run into queued, skipped or upstream-failed runs downstream."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .._dag import Dag
from ..model import JobSpec
from ..records import TERMINAL_STATES, RunRecord, RunState
from .ids import derived_id, new_id

__all__ = ["DONE_STATES", "FAILED_STATES", "Conditions", "Decision", "WaitingOn", "build_dag"]

FAILED_STATES = frozenset({RunState.FAILED, RunState.TIMED_OUT, RunState.UPSTREAM_FAILED})
"""What counts as a failure of an upstream for conditions."""
DONE_STATES = frozenset(TERMINAL_STATES - {RunState.SKIPPED, RunState.CANCELLED})
"""What counts as 'finished' for conditions: skipped and cancelled runs did no work."""

Verdict = Literal["run", "wait", "upstream_failed", "skip"]
Decision = tuple[Verdict, str]
"""``(verdict, reason)``: run it, keep waiting, or finish it as upstream-failed or skipped."""

AUTO_TRIGGER = "depends_on"
"""The trigger label of runs the engine starts because their upstream jobs finished."""


@dataclass(frozen=True)
class WaitingOn:
    """What a job waits for (``firelink status``): upstream ``jobs`` that have not had a
    ``needs`` (``success``, ``finish``, or the runs of a ``request``) since ``since``."""

    jobs: list[str]
    since: float | None
    needs: str


def build_dag(jobs: Mapping[str, JobSpec]) -> Dag:
    return Dag({name: (job.depends_on.jobs if job.depends_on else ()) for name, job in jobs.items()})


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


class Conditions:
    """What each job's upstream did, the runs waiting on it, and what a finish decides.

    A job's *reference time* is when its latest run was created or started: a condition
    counts only upstream finishes after it, so one upstream success starts one run."""

    def __init__(self, dag: Dag) -> None:
        self.dag = dag
        self._hist: dict[str, _History] = defaultdict(_History)
        self._failed_latest: set[str] = set()
        """Jobs whose latest finished run failed (the only candidates for upstream_failed)."""
        self._failed_ever: set[str] = set()
        self._ref: dict[str, float] = {}
        self._waiting: dict[str, dict[str, RunRecord]] = defaultdict(dict)
        self._after: dict[str, set[str]] = defaultdict(set)
        """Upstream run id -> runs of a 'with upstream' request waiting for it."""

    # ------------------------------------------------------------------ history
    def note_created(self, run: RunRecord) -> None:
        ref = self._ref.get(run.job)
        if ref is None or run.created_at > ref:
            self._ref[run.job] = run.created_at

    def note_started(self, name: str, at: float) -> None:
        if self._ref.get(name, 0.0) < at:
            self._ref[name] = at

    def note_finished(self, run: RunRecord) -> None:
        hist = self._hist[run.job]
        hist.note(run)
        if hist.latest_state in FAILED_STATES:
            self._failed_latest.add(run.job)
        else:
            self._failed_latest.discard(run.job)
        if hist.failed is not None:
            self._failed_ever.add(run.job)

    def note_loaded(self, run: RunRecord) -> None:
        """A finished run read from storage at start."""
        self.note_finished(run)
        self.note_created(run)
        if run.started_at is not None:
            self.note_started(run.job, run.started_at)

    def since(self, name: str) -> float | None:
        """The job's reference time (see the class), if it ever ran."""
        return self._ref.get(name)

    def last_success(self, name: str) -> float | None:
        hist = self._hist.get(name)
        return hist.success if hist is not None else None

    # ------------------------------------------------------------------ waiting runs
    def add_waiting(self, run: RunRecord) -> bool:
        """Hold a waiting run; return whether its job's ``wait_timeout`` applies (runs of a
        'with upstream' request wait for their request's upstream runs instead)."""
        self._waiting[run.job][run.id] = run
        after = run.options.get("after_runs")
        if after:
            for upstream_run in after:
                self._after[upstream_run].add(run.id)
            return False
        return True

    def is_waiting(self, run: RunRecord) -> bool:
        return run.id in self._waiting.get(run.job, {})

    def unwait(self, run: RunRecord) -> None:
        self._waiting[run.job].pop(run.id, None)

    def waiting_count(self, name: str) -> int:
        return len(self._waiting.get(name, {}))

    def find_waiting(self, run_id: str) -> RunRecord | None:
        for waiting in self._waiting.values():
            run = waiting.get(run_id)
            if run is not None:
                return run
        return None

    def waiting_on(self, job: JobSpec) -> WaitingOn | None:
        """For ``firelink status``: the upstream jobs ``job`` waits on, or None. A job waits
        when it holds a waiting run (its oldest one is described), or when it has no
        triggers of its own and its condition is not met since its reference time."""
        if job.depends_on is None:
            return None
        runs = list(self._waiting.get(job.name, {}).values())
        if runs:
            run = min(runs, key=lambda r: r.created_at)
            if "after_runs" in run.options:
                return WaitingOn(sorted(self.dag.upstream_set(job.name)), None, "request")
            since = run.options.get("since")
        elif not job.triggers and job.enabled:
            since = self._ref.get(job.name)
        else:
            return None
        empty = _History()

        def after(t: float | None) -> bool:
            return t is not None and (since is None or t > since)

        cond = job.depends_on.condition
        missing = [
            u for u in job.depends_on.jobs
            if not after(getattr(self._hist.get(u, empty), "success" if cond == "all_success" else "done"))
        ]
        if not missing and not runs:
            return None
        return WaitingOn(missing, since, "success" if cond == "all_success" else "finish")

    def drop_job(self, name: str) -> list[RunRecord]:
        """Stop holding the job's waiting runs (the job left the config); return them."""
        return list(self._waiting.pop(name, {}).values())

    # ------------------------------------------------------------------ after a finish
    def finished(self, run: RunRecord) -> set[str] | None:
        """A run reached a terminal state: the waiting runs of its request to evaluate again,
        or None when nothing downstream can move (see ``follow_ups``)."""
        self.note_finished(run)
        self._waiting.get(run.job, {}).pop(run.id, None)
        followers = self._after.pop(run.id, None)
        if followers or (run.state in DONE_STATES and self.dag.downstream.get(run.job)):
            return followers or set()
        return None

    def follow_ups(
        self, finished: RunRecord, followers: set[str], jobs: Mapping[str, JobSpec]
    ) -> Iterator[RunRecord | JobSpec]:
        """What the finish may move, in order: waiting runs to decide again (``RunRecord``),
        and jobs without triggers that may start an automatic run (``JobSpec``). Lazy: each
        item is computed after the previous one was acted on."""
        for run_id in followers:
            run = self.find_waiting(run_id)
            if run is not None:
                yield run
        if finished.state not in DONE_STATES:
            return
        for name in self.dag.downstream.get(finished.job, ()):
            job = jobs.get(name)
            if job is None:
                continue
            for run in list(self._waiting.get(name, {}).values()):
                if "after_runs" not in run.options:
                    yield run
            # Runs made for a 'with upstream' request feed that request, not automatic runs;
            # a backfill run with --no-downstream starts none.
            if not job.triggers and job.enabled and "request" not in finished.options \
                    and not finished.options.get("no_downstream"):
                yield job

    # ------------------------------------------------------------------ decisions
    def decide(self, job: JobSpec, since: float | None) -> Decision:
        """The job's condition over its upstream jobs' finishes after ``since``.

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
                wanted = self.dag.upstream_set(job.name)
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

    def decide_waiting(self, job: JobSpec, run: RunRecord, upstream: Mapping[str, RunState] | None) -> Decision:
        """A waiting run's decision; ``upstream``: for a run of a 'with upstream' request, the
        states of its request's upstream runs (by job, or by run id for a vanished run), None
        while one of them is not finished."""
        if "after_runs" in run.options:
            return self._decide_request(job, upstream)
        if job.depends_on is None:
            return "run", "no dependencies any more"
        return self.decide(job, run.options.get("since"))

    def _decide_backfill(self, job: JobSpec, finished: RunRecord) -> Decision:
        """A backfill run's finish decides one run of a downstream job by itself: the
        condition over this run and the other upstream jobs' latest results (a backfill's
        runs end faster than reference times can tell them apart)."""
        assert job.depends_on is not None
        states: dict[str, RunState] = {finished.job: finished.state}
        for upstream in job.depends_on.jobs:
            if upstream != finished.job:
                latest = self._hist[upstream].latest_state
                if latest is None:
                    return "wait", ""
                states[upstream] = latest
        return self._decide_request(job, states)

    @staticmethod
    def _decide_request(job: JobSpec, states: Mapping[str, RunState] | None) -> Decision:
        if states is None:
            return "wait", ""
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

    # ------------------------------------------------------------------ new runs
    def auto_run(self, job: JobSpec, finished: RunRecord, now: float) -> RunRecord | None:
        """The automatic run of a job without triggers after ``finished`` (an upstream run),
        if its condition says so: queued-to-be, or already finished as upstream-failed."""
        backfill = finished.options.get("backfill")
        if backfill:
            verdict, reason = self._decide_backfill(job, finished)
        else:
            verdict, reason = self.decide(job, self._ref.get(job.name))
        if verdict not in ("run", "upstream_failed"):
            return None
        run = RunRecord(
            id=new_id(),
            job=job.name,
            trigger=AUTO_TRIGGER,
            trigger_key=f"{job.name}#{AUTO_TRIGGER}",
            payload={"upstream_job": finished.job, "upstream_run": finished.id},
            created_at=now,
            reason=reason,
        )
        if backfill:
            # One downstream run per backfill run, carrying the instant it was made for.
            run.options = {"backfill": backfill}
            run.scheduled_for = finished.scheduled_for
        if verdict == "upstream_failed":
            run.state = RunState.UPSTREAM_FAILED
            run.finished_at = run.created_at
        return run

    def request_runs(self, name: str, base: Mapping[str, Any], options: Mapping[str, Any]) -> list[RunRecord]:
        """A 'with upstream' request for job ``name``: one run per job of its upstream
        subgraph (ids derived from the request's, so a redo after a crash finds them), then
        the job's own run (``base`` fields, ``options``); waiting ones wait for their upstream runs."""
        root_id = base["id"]
        plan = self.dag.plan(name)
        ids = {member: (root_id if member == name else derived_id(root_id, member)) for member, _ups in plan}
        runs = []
        for member, ups in plan:
            fields = dict(base, id=ids[member], job=member)
            run_options: dict[str, Any] = dict(options) if member == name else {}
            if member != name:
                fields.update(event_id=None, env={}, parent_run=root_id, trigger="upstream", trigger_key=None)
                run_options["request"] = root_id
            after = [ids[u] for u in ups]
            run = RunRecord(**fields, options=run_options)
            if after:
                run.state = RunState.WAITING
                run.reason = "waiting for upstream runs of this request"
                run_options["after_runs"] = after
            else:
                run.state = RunState.QUEUED
            runs.append(run)
        return runs
