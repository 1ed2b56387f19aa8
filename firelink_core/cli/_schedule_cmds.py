"""``firelink next`` (a job's next fire instants, from the config alone) and ``firelink
backfill`` (one run per schedule instant of a past range, through the daemon)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import click

from .._control import ControlError, DaemonNotRunning, suggest
from ..abc import Storage
from ..model import Config, JobSpec
from ..plugins import Plugins
from ._common import EXIT_USAGE, fail
from ._format import print_json, table
from ._target import (
    Target,
    complete_jobs,
    control_failure,
    locate_options,
    not_running,
    unknown_job,
)

__all__ = ["COMMANDS", "next_cmd", "backfill_cmd"]


def _config_job(target: Target, job: str, command: str) -> tuple[Config, Plugins, JobSpec]:
    loaded = target.config()
    if loaded is None:
        fail(
            f"{command} reads the job from the config: give -c CONFIG (or set FIRELINK_CONFIG)",
            EXIT_USAGE,
        )
    config, plugins = loaded
    if job not in config.job_names:
        unknown_job(job, suggest(job, list(config.job_names)))
    return config, plugins, config.job(job)


def _instant(text: str | None, job: JobSpec, option: str) -> datetime | None:
    from ..engine.preview import job_zone, parse_instant

    if text is None:
        return None
    try:
        return parse_instant(text, job_zone(job))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=f"'{option}'") from None


def _local(moment: datetime) -> str:
    offset = moment.strftime("%z")
    return moment.strftime("%Y-%m-%d %a %H:%M:%S") + f" {offset[:3]}:{offset[3:]}"


def _utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


# --------------------------------------------------------------------------- next


@click.command("next")
@click.argument("job", shell_complete=complete_jobs)
@click.option(
    "-n",
    "count",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="How many fire instants to show.",
)
@click.option(
    "--from",
    "from_text",
    metavar="TIME",
    help="Start after this instant (ISO 8601 date or date-time; without an offset in the job's "
    "timezone; default now).",
)
@locate_options
def next_cmd(
    job: str,
    count: int,
    from_text: str | None,
    state_dir: Path | None,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Show JOB's next fire instants, in the job's timezone and in UTC.

    \b
    Works from the config alone (no daemon needed), so it checks a schedule
    while you write it. An instant a DST change moved is marked with why:
    "02:30 does not exist on 2027-03-28 (...); runs at 03:00", or a time that
    happens twice when the clocks go back. Jitter is not included.

    \b
    Example:
      firelink next nightly -n 5 --from 2027-03-26 -c firelink.yaml

    \b
    Exit codes: 0 shown, 1 the job has no schedule (or an invalid config),
    2 unknown job, a bad --from or no config.
    """
    # The engine's modules load here, not with the CLI: validate and status never import them.
    from ..engine.errors import EngineError
    from ..engine.preview import MAX_PREVIEW, next_fires, schedule_triggers

    if count > MAX_PREVIEW:
        raise click.BadParameter(f"at most {MAX_PREVIEW}", param_hint="'-n'")
    target = Target(state_dir, config_path)
    config, plugins, spec = _config_job(target, job, "next")
    after = _instant(from_text, spec, "--from") or datetime.now(timezone.utc)
    try:
        triggers = schedule_triggers(spec, plugins, config)
    except EngineError as exc:
        fail(str(exc))
    if not triggers:
        kinds = ", ".join(t.describe() for t in spec.triggers) or "none"
        fail(
            f"job {job!r} has no schedule (its triggers: {kinds}): it fires only on events or by hand"
        )
    fires = next_fires(spec, triggers, after - timedelta(microseconds=1), count)
    if as_json:
        print_json(
            {
                "job": job,
                "timezone": spec.timezone,
                "from": after.isoformat(),
                "enabled": spec.enabled,
                "fires": [fire.as_dict() for fire in fires],
            }
        )
        return
    disabled = " (disabled: the daemon does not fire it)" if not spec.enabled else ""
    click.echo(f"{job}: next {len(fires)} fire(s) after {_utc(after)}{disabled}")
    if not fires:
        click.echo("  the schedule never fires again")
        return
    several = len(triggers) > 1
    rows = [
        [_local(f.local), _utc(f.at), *([f.trigger] if several else []), f.note or ""]
        for f in fires
    ]
    click.echo(table(rows, [spec.timezone, "UTC", *(["TRIGGER"] if several else []), "DST"]))


# --------------------------------------------------------------------------- backfill


@click.command("backfill")
@click.argument("job", shell_complete=complete_jobs)
@click.option(
    "--from",
    "from_text",
    metavar="TIME",
    required=True,
    help="The range's first instant (included): ISO 8601, without an offset in the job's timezone.",
)
@click.option(
    "--to",
    "to_text",
    metavar="TIME",
    required=True,
    help="The range's end (excluded): ISO 8601, without an offset in the job's timezone.",
)
@click.option(
    "--max-parallel",
    type=click.IntRange(1, 10_000),
    metavar="N",
    help="At most N of the backfill's runs unfinished at a time (the job's own max_instances applies too).",
)
@click.option("--dry-run", is_flag=True, help="List what would run; run nothing.")
@click.option("--rerun", is_flag=True, help="Run instants that already have a run too.")
@click.option(
    "--no-downstream", is_flag=True, help="Downstream jobs do not follow the backfill's runs."
)
@locate_options
def backfill_cmd(
    job: str,
    from_text: str,
    to_text: str,
    max_parallel: int | None,
    dry_run: bool,
    rerun: bool,
    no_downstream: bool,
    state_dir: Path | None,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Run JOB once per schedule instant in [--from, --to).

    \b
    Each run carries its instant as a scheduled run does (FIRELINK_SCHEDULED_FOR,
    the event's scheduled_for). An instant that already has a run, scheduled or
    backfilled, is left alone unless --rerun (skipped and cancelled runs do not
    count). Runs go through the normal DAG: downstream jobs follow each one
    unless --no-downstream. Runs queue behind each other (never skipped for overlap).
    With --dry-run and the daemon down, the plan is read from the config and history.

    \b
    Example:
      firelink backfill hourly --from 2026-11-03 --to 2026-11-04 --dry-run

    \b
    Exit codes: 0 queued (or listed), 1 daemon error, 2 unknown job, a bad range
    or a job without a schedule, 3 daemon not running.
    """
    target = Target(state_dir, config_path)
    loaded = target.config()
    if loaded is not None and job in loaded[0].job_names:
        spec = loaded[0].job(job)
        _instant(from_text, spec, "--from")
        _instant(to_text, spec, "--to")
    args: dict[str, Any] = {
        "job": job,
        "from": from_text,
        "to": to_text,
        "max_parallel": max_parallel,
        "dry_run": dry_run,
        "rerun": rerun,
        "downstream": not no_downstream,
    }
    try:
        result = target.client.request("backfill", **args)
    except DaemonNotRunning as exc:
        target.check_alive_without_socket()
        if not dry_run:
            not_running(exc)
        result = _offline_plan(
            target,
            job,
            from_text,
            to_text,
            rerun=rerun,
            downstream=not no_downstream,
            max_parallel=max_parallel,
        )
    except ControlError as exc:
        if exc.code in ("cannot-backfill", "bad-request"):
            fail(exc.message, EXIT_USAGE)
        control_failure(exc)
    if as_json:
        print_json(result)
        return
    _print_plan(result)


def _offline_plan(
    target: Target,
    job: str,
    from_text: str,
    to_text: str,
    *,
    rerun: bool,
    downstream: bool,
    max_parallel: int | None,
) -> dict[str, Any]:
    """A dry run with the daemon down: the config's schedule against the stored history."""
    from ..engine.backfill import BackfillError, plan_backfill
    from ..engine.errors import EngineError
    from ..engine.preview import schedule_triggers

    config, plugins, spec = _config_job(target, job, "backfill --dry-run with the daemon down")
    start = _instant(from_text, spec, "--from")
    end = _instant(to_text, spec, "--to")
    assert start is not None and end is not None
    try:
        triggers = schedule_triggers(spec, plugins, config)
    except EngineError as exc:
        fail(str(exc))

    async def plan(storage: Storage | None) -> dict[str, Any]:
        found = await plan_backfill(
            cast(Storage, _NoHistory()) if storage is None else storage,
            spec,
            triggers,
            start,
            end,
            rerun=rerun,
        )
        answer = found.as_dict(
            dry_run=True, rerun=rerun, downstream=downstream, max_parallel=max_parallel
        )
        return answer

    try:
        result = target.read_history(plan)
        return result if result is not None else asyncio.run(plan(None))
    except BackfillError as exc:
        fail(str(exc), EXIT_USAGE)


class _NoHistory:
    """The history of a state directory where the daemon never ran: no runs."""

    async def list_scheduled_runs(self, job: str, start: float, end: float) -> list[Any]:
        return []


def _print_plan(result: dict[str, Any]) -> None:
    runs, existing = result.get("runs") or [], result.get("existing") or []
    job = result.get("job")
    verb = "would run" if result.get("dry_run") else "queued"
    left = (
        ""
        if result.get("rerun") or not existing
        else f"; {len(existing)} instant(s) already have a run, left alone"
    )
    follow = "" if result.get("downstream", True) else " (no downstream)"
    click.echo(
        f"backfill of {job} from {result.get('from')} to {result.get('to')}: {verb} {len(runs)} run(s)"
        f"{follow}{left}",
        err=True,
    )
    if runs:
        rows = [[r["local"], r["utc"], r.get("run_id") or "-", r.get("dst") or ""] for r in runs]
        click.echo(table(rows, ["SCHEDULED FOR", "UTC", "RUN", "DST"]))
    if not runs and not existing:
        click.echo("  no schedule instant in that range", err=True)


COMMANDS: list[click.Command] = [next_cmd, backfill_cmd]
