"""The commands that control the daemon: status, trigger, stop and reload."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import click

from .._control import ControlError, DaemonNotRunning, run_from_dict, to_jsonable
from .._daemon import lock_holder, process_exited
from ..durations import format_duration
from ..records import RunRecord, RunState
from ._common import EXIT_FAILURE, EXIT_NOT_RUNNING, duration_param, fail
from ._format import (
    exit_code_of,
    iso_to_ts,
    last_run_text,
    print_json,
    print_run_end,
    show_stream_message,
    table,
    when,
)
from ._target import Target, complete_jobs, control_failure, locate_options, not_running

__all__ = ["COMMANDS", "status_cmd", "trigger_cmd", "stop_cmd", "reload_cmd"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# --------------------------------------------------------------------------- status


@click.command("status")
@locate_options
def status_cmd(state_dir: Path | None, config_path: Path | None, as_json: bool) -> None:
    """Show the daemon and every job: triggers, state, last run, next due time.

    \b
    With the daemon down and a config known, shows the jobs' last runs from the
    database. Times are in this shell's time zone (TZ) and carry its name; a
    schedule shows its job's time zone beside it; --json gives ISO 8601 with
    offsets. A waiting job says which upstream jobs it waits on.
    Exit codes: 0 running, 3 not running.

    \b
    Examples:
      firelink status -c firelink.yaml
      firelink status --json --state-dir /var/lib/firelink
    """
    target = Target(state_dir, config_path)
    up, info = target.try_request("status")
    if up:
        if as_json:
            print_json({"running": True, **info})
            return
        _print_status_up(info)
        return
    _status_down(target, info, as_json)


def _print_status_up(info: Mapping[str, Any]) -> None:
    uptime = format_duration(info.get("uptime") or 0)
    stopping = ", stopping" if info.get("stopping") else ""
    click.echo(
        f"firelink {info.get('version')} running (pid {info.get('pid')}), up {uptime}{stopping}\n"
        f"config {info.get('config')}\nstate  {info.get('state_dir')}"
    )
    now = time.time()
    rows = []
    problems = []
    paused = []
    waits: list[str] = []
    for job in info.get("jobs", []):
        last = run_from_dict(job["last_run"]) if job.get("last_run") else None
        last_text = last_run_text(last, now)
        state = job.get("state", "?")
        if job.get("running", 0) > 1:
            state += f" x{job['running']}"
        degraded = [k for k, h in (job.get("health") or {}).items() if h and h.get("state") == "degraded"]
        if degraded:
            state += " (trigger degraded)"
            problems += [f"  {key}: {job['health'][key].get('message') or 'degraded'}" for key in degraded]
        if job.get("paused"):
            paused.append(_paused_text(job["name"], job["paused"], now))
        if job.get("waiting_on") or job.get("waiting_needs"):
            waits.append(f"  {job['name']}: {_waiting_text(job, now)}")
        rows.append([job["name"], ", ".join(job.get("triggers") or []) or "-", state, last_text,
                     when(iso_to_ts(job.get("next_due")), now)])
    if rows:
        click.echo()
        click.echo(table(rows, ["JOB", "TRIGGERS", "STATE", "LAST RUN", "NEXT DUE"]))
    if problems:
        click.echo("\ndegraded triggers:\n" + "\n".join(problems))
    if paused:
        click.echo("\npaused jobs (firelink resume JOB):\n" + "\n".join(paused))
    if waits:
        click.echo("\nwaiting on upstream jobs:\n" + "\n".join(waits))


def _waiting_text(job: Mapping[str, Any], now: float) -> str:
    """``sync has not succeeded since 12:00:05 UTC (3m ago)``: what a waiting job waits for."""
    names = job.get("waiting_on") or []
    if job.get("waiting_needs") == "request":
        return "the upstream runs of its request (" + ", ".join(names) + ") have not finished"
    verb = "succeeded" if job.get("waiting_needs") == "success" else "finished"
    have = "has" if len(names) == 1 else "have"
    since = job.get("waiting_since")
    when_text = f"since {when(since, now)}" if since is not None else "yet"
    return f"{', '.join(names) or 'upstream'} {have} not {verb} {when_text}"


def _paused_text(name: str, pause: Mapping[str, Any], now: float) -> str:
    """``  nightly: since 12:00:05 (3m ago), circuit breaker: 3 consecutive failures``"""
    by = "circuit breaker: " if pause.get("by") == "breaker" else ""
    why = f", {by}{pause['reason']}" if pause.get("reason") else ""
    return f"  {name}: since {when(pause.get('since'), now)}{why}"


def _status_down(target: Target, message: str, as_json: bool) -> NoReturn:
    loaded = target.config()
    if loaded is None:
        if as_json:
            print_json({"running": False, "reason": message, "state_dir": str(target.state_dir), "jobs": None})
        else:
            click.echo(message)
        sys.exit(EXIT_NOT_RUNNING)
    config = loaded[0]

    async def last_runs(storage: Any) -> tuple[dict[str, RunRecord | None], dict[str, Any]]:
        out: dict[str, RunRecord | None] = {}
        for job in config.jobs:
            runs = await storage.list_runs(job.name, limit=1)
            out[job.name] = runs[0] if runs else None
        return out, {pause.job: pause for pause in await storage.list_pauses()}

    lasts, pauses = target.read_history(last_runs) or ({}, {})
    jobs = []
    for job in config.jobs:
        triggers = job.trigger_texts()
        last = lasts.get(job.name)
        state = "disabled" if not job.enabled else ("failing" if last and last.finished and last.state != RunState.SUCCESS else "idle")
        if job.enabled and job.name in pauses:
            state = "paused"
        jobs.append({"name": job.name, "triggers": triggers, "state": state, "last_run": last,
                     "paused": pauses.get(job.name)})
    if as_json:
        print_json({"running": False, "reason": message, "state_dir": str(target.state_dir),
                    "config": str(target.config_path), "jobs": jobs})
        sys.exit(EXIT_NOT_RUNNING)
    click.echo(f"{message}\nconfig {target.config_path}; state {target.state_dir}; last runs from the database:")
    now = time.time()
    rows = [
        [j["name"], ", ".join(j["triggers"]) or "-", j["state"],
         last_run_text(j["last_run"], now)]
        for j in jobs
    ]
    if rows:
        click.echo()
        click.echo(table(rows, ["JOB", "TRIGGERS", "STATE", "LAST RUN"]))
    paused = [_paused_text(j["name"], to_jsonable(j["paused"]), now) for j in jobs if j["paused"]]
    if paused:
        click.echo("\npaused jobs (firelink resume JOB, once the daemon runs):\n" + "\n".join(paused))
    sys.exit(EXIT_NOT_RUNNING)


# --------------------------------------------------------------------------- trigger


def _parse_env(values: tuple[str, ...]) -> dict[str, str]:
    env = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not _ENV_NAME.match(key):
            raise click.BadParameter(f"expected KEY=VALUE with KEY a variable name, got {item!r}",
                                     param_hint="'--env'")
        env[key] = value
    return env


def _parse_params(values: tuple[str, ...]) -> dict[str, str]:
    params = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not _ENV_NAME.match(name):
            raise click.BadParameter(f"expected NAME=VALUE with NAME a parameter name, got {name!r}",
                                     param_hint="'--param'")
        params[name] = value
    return params


@click.command("trigger")
@click.argument("job", shell_complete=complete_jobs)
@click.option("--wait", is_flag=True, help="Stream the run's log and exit with the job's exit code.")
@click.option("--with-upstream", is_flag=True, help="Run the job's depends_on jobs first.")
@click.option("--env", "env_items", multiple=True, metavar="KEY=VALUE", help="Extra variables for the job (repeatable).")
@click.option("--force", is_flag=True, help="Run the job even though it is paused (firelink pause).")
@click.option("--param", "param_items", multiple=True, metavar="NAME=VALUE",
              help="A run parameter the job declares (params:), read by its type (repeatable).")
@locate_options
def trigger_cmd(
    job: str,
    wait: bool,
    with_upstream: bool,
    env_items: tuple[str, ...],
    force: bool,
    param_items: tuple[str, ...],
    state_dir: Path | None,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Run JOB now; print its run id.

    \b
    With --wait: the run's output streams to stdout (progress on stderr) and the
    exit code is the job's: 0 success, the job's own non-zero exit code, or 1 for a
    failure without one (timeout, killed by a signal, executor error, skipped,
    upstream failed, interrupted). 2 unknown job or a parameter that is unknown,
    missing or invalid (the message names it and what was expected), 3 daemon not running.
    A paused job is refused (exit 1) unless --force.

    \b
    Example:
      firelink trigger report --wait --env SINCE=2026-01-01
    """
    env = _parse_env(env_items)
    target = Target(state_dir, config_path)
    args = {"job": job, "env": env, "with_upstream": with_upstream, **({"force": True} if force else {})}
    if param_items:
        args["params"] = _parse_params(param_items)
    if not wait:
        result = target.request("trigger", **args)
        if as_json:
            print_json(result)
        else:
            click.echo(result["run_id"])
        return
    run_id = None
    try:
        messages = target.client.stream("trigger", follow=True, timeout=None, **args)
        for message in messages:
            if "result" in message:
                run_id = message["result"]["run_id"]
                if not as_json:
                    click.echo(f"firelink: run {run_id} of {job} triggered", err=True)
                continue
            done = show_stream_message(message, quiet=as_json)
            if done is not None:
                if as_json:
                    print_json(done)
                else:
                    print_run_end(done)
                sys.exit(exit_code_of(done))
    except DaemonNotRunning as exc:
        target.check_alive_without_socket()
        not_running(exc)
    except ControlError as exc:
        control_failure(exc)
    except KeyboardInterrupt:
        where = f" (run {run_id})" if run_id else ""
        click.echo(f"\nfirelink: stopped watching; the run goes on{where}", err=True)
        sys.exit(130)
    fail("the daemon stopped before the run ended" + (f" (run {run_id})" if run_id else ""))


# --------------------------------------------------------------------------- stop / reload


@click.command("stop")
@click.option("--grace", default=None, callback=duration_param, metavar="DURATION",
              help="How long running jobs get to finish (default: the daemon's --grace); 0 stops at once.")
@locate_options
def stop_cmd(grace: float | None, state_dir: Path | None, config_path: Path | None, as_json: bool) -> None:
    """Stop the daemon gracefully and wait until it has exited.

    \b
    Example:
      firelink stop --grace 2m


    Exit codes: 0 stopped, 1 error, 3 not running.
    """
    target = Target(state_dir, config_path)
    pid = None
    wait = None if grace is None else grace + 60
    try:
        for message in target.client.stream("stop", grace=grace, timeout=wait):
            if "result" in message:
                pid = message["result"].get("pid")
                if not as_json:
                    click.echo(f"firelink: stopping (pid {pid})...", err=True)
            elif message.get("done"):
                break
    except DaemonNotRunning as exc:
        target.check_alive_without_socket()
        not_running(exc)
    except ControlError as exc:
        if exc.code not in ("closed",):
            control_failure(exc)
    deadline = time.monotonic() + 30
    while lock_holder(target.state_dir) or (isinstance(pid, int) and pid > 0 and not process_exited(pid)):
        if time.monotonic() > deadline:
            fail(f"firelink (pid {pid}) stopped its engine but has not exited yet")
        time.sleep(0.05)
    if as_json:
        print_json({"stopped": True, "pid": pid})
    else:
        click.echo("firelink: stopped", err=True)


@click.command("reload")
@locate_options
def reload_cmd(state_dir: Path | None, config_path: Path | None, as_json: bool) -> None:
    """Re-read the daemon's config (like SIGHUP), validating it first.

    An invalid config is rejected and its errors printed; the old one keeps running.
    Exit codes: 0 reloaded, 1 rejected, 3 not running.

    \b
    Example:
      firelink reload -c firelink.yaml
    """
    target = Target(state_dir, config_path)
    try:
        result = target.client.request("reload")
    except DaemonNotRunning as exc:
        target.check_alive_without_socket()
        not_running(exc)
    except ControlError as exc:
        if as_json:
            print_json({"reloaded": False, **exc.as_dict()})
            sys.exit(EXIT_FAILURE)
        click.echo(f"firelink: reload rejected: {exc.message}", err=True)
        for line in exc.data.get("errors") or []:
            click.echo(line, err=True)
        sys.exit(EXIT_FAILURE)
    if as_json:
        print_json({"reloaded": True, **result})
        return
    click.echo("firelink: reloaded; " + _reload_summary(result))


def _reload_summary(result: Mapping[str, Any]) -> str:
    """``added -; removed -; changed b; notifiers changed ops`` (notifiers only when some
    changed), or ``nothing changed``."""
    notifiers = result.get("notifiers") or {}
    if not any(result.get(k) or notifiers.get(k) for k in ("added", "removed", "changed")):
        return "nothing changed"
    parts = [f"{k} {', '.join(result.get(k) or []) or '-'}" for k in ("added", "removed", "changed")]
    parts += [f"notifiers {k} {', '.join(notifiers[k])}" for k in ("added", "removed", "changed") if notifiers.get(k)]
    return "; ".join(parts)


COMMANDS: list[click.Command] = [status_cmd, trigger_cmd, stop_cmd, reload_cmd]
