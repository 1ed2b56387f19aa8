"""One attempt's data: the request an executor gets, and what its result changes in storage."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..abc import AttemptRequest, AttemptResult, Storage
from ..durations import format_duration
from ..logs import attempt_log_path
from ..model import JobSpec
from ..params import PARAMS, command_with_params, param_env, run_params
from ..records import AttemptRecord, RunRecord, RunState
from .contexts import Reporter
from .requests import is_requested
from .retries import describe_result, retry_delay, should_retry

__all__ = ["START_WRITE_DELAY", "STOPPED", "LogFolders", "Outcome", "attempt_outcome", "attempt_request", "begin_attempt"]

START_WRITE_DELAY = 1.0
"""A run still going after this many seconds has its start (attempt, log path) written."""
STOPPED = "the daemon stopped during the attempt"
"""The reason recorded on an attempt cut short by shutdown."""


class LogFolders:
    """Attempt log paths under the state directory, each job's folder made once."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._made: set[str] = set()

    def path(self, job: str, run_id: str, number: int) -> Path:
        path = attempt_log_path(self.state_dir, job, run_id, number)
        folder = str(path.parent)
        if folder not in self._made:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(folder)
        return path


def begin_attempt(
    storage: Storage, job: JobSpec, run: RunRecord, log_path: Path, now: float
) -> tuple[RunRecord, Reporter]:
    """The run as its next attempt starts, and the attempt's reporter. The run's start
    fields (attempt number, log) are written with its outcome, or after ``START_WRITE_DELAY``
    if still running: one write fewer for the many short runs."""
    number = run.attempts + 1
    attempt = AttemptRecord(
        run_id=run.id, number=number, executor=job.executor.type, started_at=now, log_path=str(log_path)
    )
    changes: dict[str, Any] = {"attempts": number, "log_path": str(log_path), "next_attempt_at": None}
    if run.started_at is None:
        changes["started_at"] = now
    reporter = Reporter(storage, attempt, log_path, job.log.max_bytes, stored=False, run_changes=changes)
    return dataclasses.replace(run, **changes), reporter


def attempt_request(
    job: JobSpec, run: RunRecord, number: int, log_path: Path, secrets: Mapping[str, str] | None = None
) -> AttemptRequest:
    """What the executor gets: the command, and the environment (the event's variables,
    the ``FIRELINK_*`` ones, the job's ``env:``, and for a run made on request its own
    overrides last). ``secrets``: the request's env values, which the run's record holds masked."""
    event_env = {**run.env, **(secrets or {})}
    env = dict(event_env)
    env.update(
        FIRELINK_JOB=job.name,
        FIRELINK_RUN_ID=run.id,
        FIRELINK_ATTEMPT=str(number),
        FIRELINK_TRIGGER=run.trigger or "",
        FIRELINK_EVENT=json.dumps(dict(run.payload), sort_keys=True),
    )
    params = run_params(job, run.options.get(PARAMS), event_env) if job.params else {}
    env.update(param_env(job, params))
    env.update(job.env)
    if is_requested(run.options):
        # `firelink trigger --env` values are per-run overrides of the job's defaults.
        env.update({k: v for k, v in event_env.items() if not k.startswith("FIRELINK_")})
    return AttemptRequest(
        run_id=run.id,
        job=job.name,
        attempt=number,
        command=command_with_params(job.command, params),
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


@dataclass
class Outcome:
    """What an attempt's result writes: the run's new fields, the attempt's end fields, and
    for a retry its delay."""

    run_changes: dict[str, Any]
    attempt_changes: dict[str, Any]
    retry_delay: float | None = None


def attempt_outcome(job: JobSpec, number: int, result: AttemptResult, now: float) -> Outcome:
    """The result of attempt ``number``: success, a retry (per the job's ``retries``), or failure."""
    outcome: dict[str, Any] = dict(exit_code=result.exit_code, signal=result.signal, error=result.error)
    attempt_changes = dict(finished_at=now, timed_out=result.timed_out, **outcome)
    if result.ok:
        return Outcome({**outcome, "state": RunState.SUCCESS, "finished_at": now, "reason": None}, attempt_changes)
    what = describe_result(result)
    if should_retry(job.retries, number, result):
        delay = retry_delay(job.retries, number)
        reason = f"attempt {number} {what}; retrying in {format_duration(delay)}"
        run_changes = {**outcome, "state": RunState.RETRYING, "next_attempt_at": now + delay, "reason": reason}
        return Outcome(run_changes, attempt_changes, delay)
    state = RunState.TIMED_OUT if result.timed_out else RunState.FAILED
    return Outcome({**outcome, "state": state, "finished_at": now, "reason": what}, attempt_changes)
