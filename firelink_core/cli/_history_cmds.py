"""The commands that read the run history: runs and logs (from the daemon, else from storage)."""

from __future__ import annotations

import codecs
import json
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from .._control import ControlError, DaemonNotRunning, attempt_from_dict, run_from_dict, to_jsonable
from ..abc import Storage
from ..durations import format_duration, parse_duration
from ..logs import LogCursor, attempt_log_path, read_log
from ..records import AttemptRecord, RunRecord, RunState, parse_run_cursor
from ..run_ids import AmbiguousRunId, RunIdError, resolve_run, short_id
from ._common import EXIT_NOT_RUNNING, EXIT_USAGE, fail
from ._format import (
    exit_code_of,
    print_json,
    print_run_end,
    result_text,
    show_stream_message,
    table,
    when,
    workers_text,
)
from ._target import Target, complete_jobs, control_failure, locate_options, not_running

__all__ = ["COMMANDS", "runs_cmd", "logs_cmd"]


@click.command("runs")
@click.argument("job", required=False, shell_complete=complete_jobs)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--state", "states", multiple=True, type=click.Choice([s.value for s in RunState]),
              help="Only runs in this state (repeatable).")
@click.option("--job", "job_option", metavar="JOB", shell_complete=complete_jobs,
              help="Only runs of JOB (the same as the JOB argument).")
@click.option("--since", metavar="WHEN", help="Only runs created since WHEN: a duration ago (1d, 2h) or ISO 8601.")
@click.option("--until", metavar="WHEN", help="Only runs created before WHEN: a duration ago (1d, 2h) or ISO 8601.")
@click.option("--page", is_flag=True,
              help="Page through the history: --json prints {runs, next_cursor}; text ends with the next --cursor.")
@click.option("--cursor", metavar="TOKEN", help="The page after the one whose next_cursor is TOKEN (implies --page).")
@locate_options
def runs_cmd(
    job: str | None, limit: int, states: tuple[str, ...], job_option: str | None, since: str | None,
    until: str | None, page: bool, cursor: str | None, state_dir: Path | None, config_path: Path | None,
    as_json: bool,
) -> None:
    """Run history, newest first (read from the database when the daemon is down).

    \b
    Filters: JOB (or --job), --state (repeatable), --since/--until on the time a
    run was created (a duration ago like 1d, or an ISO 8601 time; without an offset
    in this machine's timezone), --limit. --page (or --cursor TOKEN) pages: --json
    then prints {"runs": [...], "next_cursor": TOKEN or null}.

    \b
    Example:
      firelink runs --job nightly --state failed --since 7d --json

    \b
    Exit codes: 0 listed (an empty history too), 1 the history cannot be read,
    2 unknown job, a bad option or cursor.
    """
    if job and job_option and job != job_option:
        raise click.BadParameter(f"the JOB argument says {job!r}, --job {job_option!r}", param_hint="'--job'")
    job = job or job_option
    now = time.time()
    created_after = _when(since, "--since", now)
    created_before = _when(until, "--until", now)
    page = page or cursor is not None
    if cursor is not None:
        try:
            parse_run_cursor(cursor)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--cursor'") from None
    paged = page or created_after is not None or created_before is not None
    target = Target(state_dir, config_path)
    args: dict[str, Any] = {"job": job, "states": list(states) or None, "limit": limit, "attempts": True}
    if paged:
        args.update(since=created_after, until=created_before, cursor=cursor, page=True)
    next_cursor = None
    up, result = target.try_request("runs", **args)
    if up:  # the daemon answers for any storage, even a memory one
        runs = [run_from_dict(r) for r in result["runs"]]
        attempts = {
            run_id: [attempt_from_dict(a) for a in listed] for run_id, listed in result.get("attempts", {}).items()
        }
        next_cursor = result.get("next_cursor")
    else:
        target.check_job_offline(job)
        state_filter = [RunState(s) for s in states] or None
        runs, attempts, next_cursor = target.read_history(
            lambda storage: _runs_and_attempts(
                storage, job, state_filter, limit, paged=paged, since=created_after, until=created_before,
                cursor=cursor,
            )
        ) or ([], {}, None)
    if as_json:
        listed = [{**to_jsonable(run), "attempts": attempts.get(run.id, [])} for run in runs]
        print_json({"runs": listed, "next_cursor": next_cursor} if page else listed)
        return
    if next_cursor and page:
        click.echo(f"firelink: more runs: --cursor {next_cursor}", err=True)
    if not runs:
        click.echo("no runs" + (f" of {job}" if job else "") + ("" if up else " (firelink is not running)"), err=True)
        return
    now = time.time()
    workers = [workers_text(attempts.get(run.id, [])) for run in runs]
    # The column only when a remote executor ran something listed: local runs keep the table narrow.
    with_workers = any(workers)
    params = [_params_text(run) for run in runs]
    with_params = any(params)
    rows = []
    for run, worker, param_text in zip(runs, workers, params, strict=True):
        took = run.duration()
        rows.append([
            short_id(run.id), run.job, result_text(run), run.trigger or "-",
            when(run.started_at or run.created_at, now),
            format_duration(took) if took is not None else "-",
            str(run.attempts),
            *([worker or "-"] if with_workers else []),
            *([param_text or "-"] if with_params else []),
            run.reason or run.error or "",
        ])
    header = ["RUN", "JOB", "STATE", "TRIGGER", "STARTED", "TOOK", "ATTEMPTS", *(["WORKER"] if with_workers else []),
              *(["PARAMS"] if with_params else []), "REASON"]
    click.echo(table(rows, header))


def _params_text(run: RunRecord) -> str:
    """``name=value`` of the run's parameters (a secret one is stored as ``***``)."""
    params = run.options.get("params")
    if not isinstance(params, dict):
        return ""
    return " ".join(f"{name}={value if isinstance(value, str) else json.dumps(value)}" for name, value in params.items())


async def _runs_and_attempts(
    storage: Storage, job: str | None, states: list[RunState] | None, limit: int, *, paged: bool = False,
    since: float | None = None, until: float | None = None, cursor: str | None = None,
) -> tuple[list[RunRecord], dict[str, list[AttemptRecord]], str | None]:
    """The runs ``runs`` lists, their attempts (one query per run, bounded by ``--limit``)
    and the next page's cursor."""
    next_cursor = None
    if paged:
        try:
            runs, next_cursor = await storage.page_runs(
                job, states=states, created_after=since, created_before=until, limit=limit, cursor=cursor
            )
        except ValueError as exc:
            fail(str(exc), EXIT_USAGE)
    else:
        runs = await storage.list_runs(job, states=states, limit=limit)
    return runs, {run.id: await storage.list_attempts(run.id) for run in runs}, next_cursor


def _when(text: str | None, option: str, now: float) -> float | None:
    """``--since``/``--until``: a duration ago (``1d``) or an ISO 8601 time (local without offset)."""
    if text is None:
        return None
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"expected a duration ago (1d, 2h30m) or an ISO 8601 time (2026-11-03T08:00), got {text!r}",
            param_hint=f"'{option}'",
        ) from None
    return moment.astimezone().timestamp() if moment.tzinfo is None else moment.timestamp()


NEXT_RUN_POLL = 0.5
"""Seconds between looks for a job's next run while ``logs -f JOB`` waits for one."""


@click.command("logs")
@click.argument("job", shell_complete=complete_jobs)
@click.argument("run_id", required=False)
@click.option("-f", "--follow", is_flag=True,
              help="Keep printing: RUN_ID until it ends (exit with its code); without RUN_ID, JOB's latest run "
              "and every next one until Ctrl-C.")
@click.option("--tail", type=click.IntRange(min=0), metavar="N",
              help="Only the last N lines of the output written so far (then follow, with -f).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), envvar="FIRELINK_STATE_DIR",
              help="The daemon's state directory. Env FIRELINK_STATE_DIR.")
@click.option("-c", "--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              envvar="FIRELINK_CONFIG", help="A config file whose state_dir to use. Env FIRELINK_CONFIG.")
def logs_cmd(
    job: str, run_id: str | None, follow: bool, tail: int | None, state_dir: Path | None, config_path: Path | None
) -> None:
    """Print a run's output (JOB's latest run by default), every attempt in order.

    \b
    -f JOB RUN_ID follows that run until it ends and exits with its code (as
    `trigger --wait` does); -f JOB follows the latest run, then each next run of
    JOB as it comes, until Ctrl-C (exit 0). With the daemon down, what was written
    is printed (exit 3 with -f, unless RUN_ID has ended: its code).
    Exit codes: 0, 1 JOB has not run yet, 2 unknown job or no such run (RUN_ID is a
    full id or a unique prefix; an ambiguous one lists the candidates), 3 daemon not
    running (with -f).

    \b
    Example:
      firelink logs nightly 3f2a9c1e --tail 50
    """
    target = Target(state_dir, config_path)
    up, run, attempts = _find_run(target, job, run_id)
    if run is None:
        if up and follow and run_id is None:
            click.echo(f"firelink: {job} has not run yet; waiting for its first run", err=True)
            _follow_job(target, job, None, [], tail)
        if run_id:
            fail(f"no run {run_id!r}", EXIT_USAGE)
        fail(f"job {job!r} has not run yet")
    if run.job != job:
        fail(f"run {run.id} belongs to job {run.job!r}, not {job!r}")
    if not follow:
        _print_output(target.state_dir, run, attempts, tail)
        return
    if not up:
        _print_output(target.state_dir, run, attempts, tail)
        if run_id is not None and run.finished:
            sys.exit(exit_code_of(run))
        click.echo("firelink is not running: nothing more to follow", err=True)
        sys.exit(EXIT_NOT_RUNNING)
    if run_id is None:
        _follow_job(target, job, run, attempts, tail)
    try:
        done = _stream_run(target, run, attempts, tail)
    except KeyboardInterrupt:
        click.echo(f"\nfirelink: stopped watching; the run goes on (run {run.id})", err=True)
        sys.exit(130)
    sys.exit(exit_code_of(done))


def _find_run(target: Target, job: str, run_id: str | None) -> tuple[bool, RunRecord | None, list[AttemptRecord]]:
    """``(daemon up, the run or None, its attempts)``: RUN_ID or JOB's latest run."""
    try:
        result = target.client.request("run", job=job, run_id=run_id)
    except DaemonNotRunning:
        target.check_alive_without_socket()
    except ControlError as exc:
        if exc.code == "no-runs":
            return True, None, []
        control_failure(exc)
    else:
        return True, run_from_dict(result["run"]), [attempt_from_dict(a) for a in result["attempts"]]
    target.check_job_offline(job)

    async def fetch(storage: Any) -> tuple[RunRecord | None, list[AttemptRecord]]:
        if run_id is not None:
            try:
                found = await resolve_run(storage, run_id)
            except AmbiguousRunId as exc:
                fail(exc.message, EXIT_USAGE)
            except RunIdError:
                found = None
        else:
            latest = await storage.list_runs(job, limit=1)
            found = latest[0] if latest else None
        return found, (await storage.list_attempts(found.id) if found else [])

    fetched = target.read_history(fetch)
    run, attempts = fetched if fetched else (None, [])
    return False, run, attempts


def _attempt_path(state_dir: Path, run: RunRecord, attempt: AttemptRecord) -> Path:
    return Path(attempt.log_path or attempt_log_path(state_dir, run.job, run.id, attempt.number))


_LINE = re.compile(rb"[^\n]*\n|[^\n]+$")


def _last_lines(data: bytes, count: int) -> tuple[bytes, int]:
    """The last ``count`` lines of ``data`` (a last line without newline counts) and how many there were."""
    lines = _LINE.findall(data)[-count:] if count else []
    return b"".join(lines), len(lines)


def _write_attempts(outputs: list[tuple[int, bytes]], tail: int | None, workers: dict[int, str] | None = None) -> None:
    """Each attempt's output in order (``tail``: only the last lines of them all), a marker
    line on stderr before each attempt when there are several or when ``workers`` names the
    host that ran it (a remote executor's ``worker`` handle)."""
    workers = workers or {}
    shown = outputs
    if tail is not None:
        shown, left = [], tail
        for number, data in reversed(outputs):
            if left <= 0:
                break
            part, lines = _last_lines(data, left)
            left -= lines
            shown.insert(0, (number, part))
    out = sys.stdout.buffer
    for number, data in shown:
        if len(outputs) > 1 or number in workers:
            on = f" on worker {workers[number]}" if number in workers else ""
            click.echo(f"firelink: attempt {number}{on}", err=True)
        out.write(data)
        out.flush()


def _print_output(state_dir: Path, run: RunRecord, attempts: list[AttemptRecord], tail: int | None) -> None:
    ordered = sorted(attempts, key=lambda a: a.number)
    if not ordered:
        click.echo(f"firelink: run {run.id} has no output yet ({run.state.value})", err=True)
        return
    workers = {a.number: str(a.handle["worker"]) for a in ordered if a.handle and a.handle.get("worker")}
    _write_attempts([(a.number, read_log(_attempt_path(state_dir, run, a))) for a in ordered], tail, workers)


def _print_tail_so_far(state_dir: Path, run: RunRecord, attempts: list[AttemptRecord], tail: int) -> dict[int, int]:
    """Print the last ``tail`` lines written so far; return, per attempt, how many characters
    of the daemon's follow stream they cover (it starts each attempt from the beginning)."""
    outputs, covered = [], {}
    for attempt in sorted(attempts, key=lambda a: a.number):
        # Read as the daemon's follower reads (dropped-output marker, then the kept bytes), and
        # decode as it does, so the count matches the start of what it streams.
        data = LogCursor(_attempt_path(state_dir, run, attempt)).read_new()
        covered[attempt.number] = len(codecs.getincrementaldecoder("utf-8")(errors="replace").decode(data))
        outputs.append((attempt.number, data))
    _write_attempts(outputs, tail)
    return covered


def _stream_run(target: Target, run: RunRecord, attempts: list[AttemptRecord], tail: int | None) -> RunRecord:
    """Follow one run on the daemon's stream until it ends; return it as it ended."""
    covered = _print_tail_so_far(target.state_dir, run, attempts, tail) if tail is not None else {}
    current = 0
    try:
        for message in target.client.stream("follow", run_id=run.id, timeout=None):
            if "result" in message:
                continue
            if "attempt" in message:
                current = message["attempt"]
                if current in covered:
                    continue  # its marker was printed with the tail
            elif "log" in message and covered.get(current):
                text = message["log"]
                skip = min(covered[current], len(text))
                covered[current] -= skip
                if skip == len(text):
                    continue
                message = {"log": text[skip:]}
            done = show_stream_message(message)
            if done is not None:
                return done
    except DaemonNotRunning as exc:
        not_running(exc)
    except ControlError as exc:
        control_failure(exc)
    fail(f"the daemon stopped before the run ended (run {run.id})")


def _runs_since(target: Target, job: str, newest: float, seen: set[str]) -> list[RunRecord]:
    """JOB's runs created at or after ``newest`` and not ``seen``, oldest first. A few at each
    look; more only when all of those few are new (a burst between two looks)."""
    fresh: list[RunRecord] = []
    for limit in (10, 1000):
        try:
            found = target.client.request("runs", job=job, limit=limit)["runs"]
        except DaemonNotRunning as exc:
            not_running(exc)
        except ControlError as exc:
            control_failure(exc)
        fresh = [r for r in map(run_from_dict, found) if r.id not in seen and r.created_at >= newest]
        if len(fresh) < limit:
            break
    return sorted(fresh, key=lambda r: r.created_at)


def _follow_job(
    target: Target, job: str, first: RunRecord | None, attempts: list[AttemptRecord], tail: int | None
) -> NoReturn:
    """Follow ``first`` (JOB's latest run), then each next run of JOB, until Ctrl-C (exit 0)."""
    newest, seen = 0.0, set()
    try:
        if first is not None:
            print_run_end(_stream_run(target, first, attempts, tail))
            newest, seen = first.created_at, {first.id}
        while True:
            fresh = _runs_since(target, job, newest, seen)
            if not fresh:
                time.sleep(NEXT_RUN_POLL)
                continue
            for run in fresh:
                if run.created_at > newest:
                    newest, seen = run.created_at, set()
                seen.add(run.id)
                click.echo(f"firelink: run {run.id} of {job} ({run.trigger or 'trigger unknown'})", err=True)
                print_run_end(_stream_run(target, run, [], None))
    except KeyboardInterrupt:
        sys.exit(0)


COMMANDS: list[click.Command] = [runs_cmd, logs_cmd]
