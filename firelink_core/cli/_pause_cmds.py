"""``firelink pause``, ``resume`` and ``explain``: stop one job for a while without editing the
config, start it again, and say why a job did (not) run."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from ..durations import format_duration
from ._common import EXIT_USAGE, fail
from ._format import iso_time, iso_to_ts, print_json, table, when
from ._target import Target, complete_jobs, locate_options

__all__ = ["COMMANDS", "explain_cmd", "pause_cmd", "resume_cmd"]


def _job_args(jobs: tuple[str, ...], every: bool) -> dict[str, Any]:
    if every and jobs:
        fail("give job names or --all, not both", EXIT_USAGE)
    if not every and not jobs:
        fail("name at least one job, or give --all", EXIT_USAGE)
    return {"all": True} if every else {"jobs": list(jobs)}


def _since(value: Any, now: float) -> str:
    return when(value if isinstance(value, (int, float)) else iso_to_ts(value), now)


@click.command("pause")
@click.argument("jobs", nargs=-1, shell_complete=complete_jobs)
@click.option("--all", "every", is_flag=True, help="Pause every job of the config.")
@click.option(
    "--reason", metavar="TEXT", help="Why, shown by status and explain (a maintenance window ...)."
)
@locate_options
def pause_cmd(
    jobs: tuple[str, ...],
    every: bool,
    reason: str | None,
    state_dir: Path | None,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Pause each JOB named until `firelink resume`: its schedule fires are skipped (each skip
    recorded, see `firelink explain`), events from its other triggers (watch, manual,
    plugins) wait and run after the resume. `firelink trigger` of a paused job is refused
    unless --force. The pause is stored: it survives a restart and a reload.

    \b
    Example:
      firelink pause nightly-export --reason "database maintenance until 14:00"

    \b
    Exit codes: 0 paused (a job paused already stays paused, as it was), 1 daemon
    error, 2 unknown job or no job named, 3 daemon not running.
    """
    args = _job_args(jobs, every)
    target = Target(state_dir, config_path)
    result = target.request("pause", reason=reason, **args)
    if as_json:
        print_json(result)
        return
    now = time.time()
    for pause in result["paused"]:
        why = f": {pause['reason']}" if pause.get("reason") else ""
        if pause.get("changed"):
            click.echo(f"firelink: {pause['job']} paused{why}", err=True)
        else:
            click.echo(
                f"firelink: {pause['job']} was paused already, since {_since(pause['since'], now)}{why}",
                err=True,
            )


@click.command("resume")
@click.argument("jobs", nargs=-1, shell_complete=complete_jobs)
@click.option("--all", "every", is_flag=True, help="Resume every paused job.")
@click.option(
    "--catch-up",
    is_flag=True,
    help="Apply the job's catchup policy to the fires skipped during the pause (default: go on from now).",
)
@locate_options
def resume_cmd(
    jobs: tuple[str, ...],
    every: bool,
    catch_up: bool,
    state_dir: Path | None,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Resume paused JOB...: events that waited run now, and the failure count of its circuit
    breaker (pause_after_failures) starts again from zero. Schedules go on from now;
    with --catch-up the fires skipped during the pause are caught up as the job's
    `catchup` says (skip, latest: one run, all).

    \b
    Example:
      firelink resume nightly --catch-up


    \b
    Exit codes: 0 resumed (a job that was not paused is left as it is), 1 daemon
    error, 2 unknown job or no job named, 3 daemon not running.
    """
    args = _job_args(jobs, every)
    target = Target(state_dir, config_path)
    result = target.request("resume", catch_up=catch_up, **args)
    if as_json:
        for item in result["resumed"]:
            if item.get("paused_since") is not None:
                item["paused_since"] = iso_time(float(item["paused_since"]))
        print_json(result)
        return
    if not result["resumed"]:
        click.echo("firelink: no job is paused", err=True)
    now = time.time()
    for item in result["resumed"]:
        if not item.get("resumed"):
            click.echo(f"firelink: {item['job']} was not paused", err=True)
            continue
        paused_for = format_duration(max(now - float(item["paused_since"]), 0.0))
        extra = f"; {item['released']} waiting event(s) released"
        if catch_up:
            extra += f"; {item['caught_up']} fire(s) caught up"
        click.echo(f"firelink: {item['job']} resumed after {paused_for}{extra}", err=True)


def _decision_row(decision: Mapping[str, Any], now: float) -> list[str]:
    origin = decision.get("trigger") or "-"
    if decision.get("scheduled_for") is not None:
        origin += " @ " + time.strftime(
            "%Y-%m-%d %H:%M:%S %Z", time.localtime(float(decision["scheduled_for"]))
        )
    outcome = decision["outcome"].replace("_", " ")
    if decision.get("run_id"):
        outcome += f" (run {str(decision['run_id'])[:8]})"  # tables show 8-character run ids
    return [when(float(decision["at"]), now), origin, outcome, decision.get("reason") or ""]


@click.command("explain")
@click.argument("job", shell_complete=complete_jobs)
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(1, 500),
    default=20,
    show_default=True,
    help="How many decisions to show, newest first.",
)
@locate_options
def explain_cmd(
    job: str, limit: int, state_dir: Path | None, config_path: Path | None, as_json: bool
) -> None:
    """Why JOB did (not) run: what became of each recent fire and event, newest first
    (ran with its run id; skipped: overlap, paused, past misfire_grace, circuit open;
    held while paused; waiting on an upstream job; upstream failed), then its next due
    time and what it waits for now.

    \b
    Example:
      firelink explain nightly


    \b
    Exit codes: 0, 1 daemon error, 2 unknown job, 3 daemon not running.
    """
    target = Target(state_dir, config_path)
    result = target.request("explain", job=job, limit=limit)
    if as_json:
        for decision in result.get("decisions", []):
            decision["at"] = iso_time(float(decision["at"]))
            if decision.get("scheduled_for") is not None:
                decision["scheduled_for"] = iso_time(float(decision["scheduled_for"]))
        print_json(result)
        return
    now = time.time()
    decisions = result.get("decisions") or []
    if decisions:
        click.echo(
            table(
                [_decision_row(d, now) for d in decisions],
                ["WHEN", "FIRE / EVENT", "OUTCOME", "WHY"],
            )
        )
    else:
        click.echo(f"no decisions recorded for {job} yet")
    click.echo(f"\nnext due:    {when(iso_to_ts(result.get('next_due')), now)}")
    click.echo(f"waiting for: {result.get('waiting_for') or '-'}")


COMMANDS: list[click.Command] = [pause_cmd, resume_cmd, explain_cmd]
