"""The commands that read the run history: runs and logs (from the daemon, else from storage)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from .._control import ControlError, DaemonNotRunning, attempt_from_dict, run_from_dict
from ..durations import format_duration
from ..logs import attempt_log_path, read_log
from ..records import AttemptRecord, RunRecord, RunState
from ._common import fail
from ._format import print_json, result_text, show_stream_message, table, when
from ._target import Target, complete_jobs, control_failure, locate_options, not_running

__all__ = ["COMMANDS", "runs_cmd", "logs_cmd"]


@click.command("runs")
@click.argument("job", required=False, shell_complete=complete_jobs)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--state", "states", multiple=True, type=click.Choice([s.value for s in RunState]),
              help="Only runs in this state (repeatable).")
@locate_options
def runs_cmd(
    job: str | None, limit: int, states: tuple[str, ...], state_dir: Path | None,
    config_path: Path | None, as_json: bool,
) -> None:
    """Run history, newest first (read from the database when the daemon is down)."""
    target = Target(state_dir, config_path)
    args = {"job": job, "states": list(states) or None, "limit": limit}
    up, result = target.try_request("runs", **args)
    if up:  # the daemon answers for any storage, even a memory one
        runs = [run_from_dict(r) for r in result["runs"]]
    else:
        target.check_job_offline(job)
        state_filter = [RunState(s) for s in states] or None
        runs = target.read_history(
            lambda storage: storage.list_runs(job, states=state_filter, limit=limit)
        ) or []
    if as_json:
        print_json(runs)
        return
    if not runs:
        click.echo("no runs" + (f" of {job}" if job else "") + ("" if up else " (firelink is not running)"), err=True)
        return
    now = time.time()
    rows = []
    for run in runs:
        took = run.duration()
        rows.append([
            run.id, run.job, result_text(run), run.trigger or "-",
            when(run.started_at or run.created_at, now),
            format_duration(took) if took is not None else "-",
            run.reason or run.error or "",
        ])
    click.echo(table(rows, ["RUN", "JOB", "STATE", "TRIGGER", "STARTED", "TOOK", "REASON"]))


@click.command("logs")
@click.argument("job", shell_complete=complete_jobs)
@click.argument("run_id", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep printing output until the run finishes.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), envvar="FIRELINK_STATE_DIR",
              help="The daemon's state directory. Env FIRELINK_STATE_DIR.")
@click.option("-c", "--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              envvar="FIRELINK_CONFIG", help="A config file whose state_dir to use. Env FIRELINK_CONFIG.")
def logs_cmd(job: str, run_id: str | None, follow: bool, state_dir: Path | None, config_path: Path | None) -> None:
    """Print a run's output (JOB's latest run by default), every attempt in order.

    With -f, a running run is followed until it finishes (with the daemon down, what
    was written is printed). Exit codes: 0, 1 no such run, 2 unknown job.
    """
    target = Target(state_dir, config_path)
    up, result = target.try_request("run", job=job, run_id=run_id)
    if up:
        run = run_from_dict(result["run"])
        attempts = [attempt_from_dict(a) for a in result["attempts"]]
    else:
        target.check_job_offline(job)

        async def fetch(storage: Any) -> tuple[RunRecord | None, list[AttemptRecord]]:
            if run_id is not None:
                found = await storage.get_run(run_id)
            else:
                latest = await storage.list_runs(job, limit=1)
                found = latest[0] if latest else None
            return found, (await storage.list_attempts(found.id) if found else [])

        fetched = target.read_history(fetch)
        run, attempts = fetched if fetched else (None, [])
        if run is None:
            fail(f"no run {run_id!r}" if run_id else f"job {job!r} has not run yet")
    if run.job != job:
        fail(f"run {run.id} belongs to job {run.job!r}, not {job!r}")
    if follow and not run.finished and up:
        _follow(target, run.id)
        return
    _print_attempt_logs(target.state_dir, run, attempts)


def _print_attempt_logs(state_dir: Path, run: RunRecord, attempts: list[AttemptRecord]) -> None:
    out = sys.stdout.buffer
    ordered = sorted(attempts, key=lambda a: a.number)
    if not ordered:
        click.echo(f"firelink: run {run.id} has no output yet ({run.state.value})", err=True)
        return
    for attempt in ordered:
        if len(ordered) > 1:
            click.echo(f"firelink: attempt {attempt.number}", err=True)
        path = attempt.log_path or attempt_log_path(state_dir, run.job, run.id, attempt.number)
        out.write(read_log(path))
        out.flush()


def _follow(target: Target, run_id: str) -> None:
    try:
        for message in target.client.stream("follow", run_id=run_id, timeout=None):
            if "result" in message:
                continue
            if show_stream_message(message) is not None:
                return
    except DaemonNotRunning as exc:
        not_running(exc)
    except ControlError as exc:
        control_failure(exc)
    except KeyboardInterrupt:
        sys.exit(130)


COMMANDS: list[click.Command] = [runs_cmd, logs_cmd]
