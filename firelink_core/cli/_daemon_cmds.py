"""``firelink run`` and the commands that talk to a running daemon: status, trigger, stop, reload, runs, logs."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from .._control import (
    ControlClient,
    ControlError,
    DaemonNotRunning,
    attempt_from_dict,
    run_from_dict,
    suggest,
    to_jsonable,
)
from .._daemon import (
    DEFAULT_STATE_DIR,
    config_state_dir,
    lock_holder,
    run_daemon,
    spawn_detached,
)
from ..abc import StorageContext
from ..durations import format_duration, parse_duration
from ..logs import attempt_log_path, read_log
from ..model import Config
from ..plugins import Plugins
from ..records import AttemptRecord, RunRecord, RunState

__all__ = ["COMMANDS", "EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE", "EXIT_NOT_RUNNING"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
"""Also an unknown job name (the argument is wrong)."""
EXIT_NOT_RUNNING = 3

F = TypeVar("F", bound=Callable[..., Any])

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DEFAULT_CONFIG = Path("firelink.yaml")


# --------------------------------------------------------------------------- helpers


def _fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    click.echo(f"firelink: {message}", err=True)
    sys.exit(code)


def _pipe_safe(func: F) -> F:
    """``firelink runs | head`` closes the pipe early: end quietly, as other Unix tools do."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except BrokenPipeError:
            # Python would complain again while flushing stdout at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(EXIT_FAILURE)

    return wrapper  # type: ignore[return-value]


def _not_running(exc: DaemonNotRunning) -> NoReturn:
    click.echo(str(exc), err=True)
    sys.exit(EXIT_NOT_RUNNING)


def _duration(_ctx: click.Context, param: click.Parameter, value: Any) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None


def _address(_ctx: click.Context, param: click.Parameter, value: Any) -> tuple[str, int] | None:
    if value is None:
        return None
    from .._metrics import parse_address

    try:
        return parse_address(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None


def _config_errors(errors: Iterable[Any]) -> None:
    """Print config problems the way ``firelink validate`` does: ``file:line:col: message``."""
    for error in errors:
        click.echo(str(error), err=True)


def _load_config(path: Path, *, extra_plugins: tuple[str, ...] = (), state_dir: Path | None = None,
                 interpolate: bool = True) -> tuple[Config, Plugins]:
    """Load and validate a config; on problems print them located (as ``validate`` does) and exit 1."""
    from ..config import ConfigInvalid, load_config

    try:
        return load_config(path, extra_plugins=extra_plugins, state_dir=state_dir, interpolate=interpolate)
    except ConfigInvalid as exc:
        _config_errors(exc.errors)
        sys.exit(EXIT_FAILURE)


def _locate_options(func: F) -> F:
    """``--state-dir``/``-c CONFIG``/``--json`` shared by the client commands."""
    func = click.option(
        "--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of text."
    )(func)
    func = click.option(
        "-c", "--config", "config_path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        envvar="FIRELINK_CONFIG",
        help="A config file: its state_dir locates the daemon (default ./firelink.yaml if present). Env FIRELINK_CONFIG.",
    )(func)
    func = click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="FIRELINK_STATE_DIR",
        help="The daemon's state directory (overrides the config's). Env FIRELINK_STATE_DIR.",
    )(func)
    return func


class _Target:
    """Where a client command looks: the state directory and, if known, the config file."""

    def __init__(self, state_dir: Path | None, config_path: Path | None) -> None:
        if config_path is None and _DEFAULT_CONFIG.is_file() and state_dir is None:
            config_path = _DEFAULT_CONFIG
        self.config_path = config_path.absolute() if config_path else None
        if state_dir is not None:
            self.state_dir = state_dir.expanduser().absolute()
        elif config_path is not None:
            self.state_dir = config_state_dir(config_path)
        else:
            self.state_dir = DEFAULT_STATE_DIR.expanduser()
        self.client = ControlClient(self.state_dir)
        self._config: tuple[Config, Plugins] | None = None

    def check_alive_without_socket(self) -> None:
        """A daemon holding the lock but not answering is not "not running": say so, exit 1."""
        pid = lock_holder(self.state_dir)
        if pid:
            who = f"pid {pid}" if pid > 0 else "a process"
            _fail(
                f"firelink ({who}) holds the lock on {self.state_dir} but does not answer on its"
                " control socket (still starting, or stuck); see its log"
            )

    def request(self, cmd: str, **args: Any) -> Any:
        """A request to the running daemon; exits 3 when none runs."""
        try:
            return self.client.request(cmd, **args)
        except DaemonNotRunning as exc:
            self.check_alive_without_socket()
            _not_running(exc)
        except ControlError as exc:
            _control_failure(exc)

    def try_request(self, cmd: str, **args: Any) -> tuple[bool, Any]:
        """``(True, result)`` from a running daemon, ``(False, why not)`` when none runs."""
        try:
            return True, self.client.request(cmd, **args)
        except DaemonNotRunning as exc:
            self.check_alive_without_socket()
            return False, str(exc)
        except ControlError as exc:
            _control_failure(exc)

    def config(self) -> tuple[Config, Plugins] | None:
        """The config, loaded without interpolating ``${VARS}`` (exits 1 when it is invalid)."""
        if self._config is None and self.config_path is not None:
            self._config = _load_config(self.config_path, state_dir=self.state_dir, interpolate=False)
        return self._config

    def job_names(self) -> list[str] | None:
        loaded = self.config()
        return None if loaded is None else list(loaded[0].job_names)


def _control_failure(exc: ControlError) -> NoReturn:
    if exc.code == "unknown-job":
        _unknown_job(exc.data.get("job", "?"), exc.data.get("suggestions") or [])
    _fail(exc.message)


def _unknown_job(job: str, suggestions: list[str]) -> NoReturn:
    hint = f"; did you mean {' or '.join(repr(s) for s in suggestions)}?" if suggestions else ""
    _fail(f"no job named {job!r}{hint}", EXIT_USAGE)


def _check_job_offline(target: _Target, job: str | None) -> None:
    names = target.job_names()
    if job is not None and names is not None and job not in names:
        _unknown_job(job, suggest(job, names))


class _OfflineStorage:
    """The config's storage opened from the CLI while the daemon is down."""

    def __init__(self, target: _Target) -> None:
        self.target = target

    def run(self, work: Callable[[Any], Any]) -> Any:
        loaded = self.target.config()
        if not self.target.state_dir.is_dir():
            return None  # nothing was ever recorded here; do not create the directory
        if loaded is None:
            from ..plugins import make_plugins

            plugins, storage_type, options = make_plugins(), "sqlite", {}
        else:
            config, plugins = loaded
            storage_type, options = config.storage.type, dict(config.storage.options)
        cls = plugins.storages().get(storage_type)
        if cls is None:
            _fail(f"storage type {storage_type!r} is not installed")

        if storage_type == "sqlite":
            options["readonly"] = True  # a reader never migrates or creates the daemon's database
        context = _StorageContext(self.target.state_dir)

        async def main() -> Any:
            storage = cls(options, context)
            db_path = getattr(storage, "path", None)
            if isinstance(db_path, Path) and not db_path.exists():
                return None  # the daemon never ran with this state directory
            await storage.open()
            try:
                return await work(storage)
            finally:
                await storage.close()

        try:
            return asyncio.run(main())
        except Exception as exc:  # a locked, newer or damaged database: say what, no traceback
            _fail(f"cannot read the run history in {self.target.state_dir}: {type(exc).__name__}: {exc}")


class _StorageContext(StorageContext):
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.logger = logging.getLogger("firelink.storage")


def _complete_jobs(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    """Job names for shell completion: from the running daemon, else from the config."""
    try:
        target = _Target(ctx.params.get("state_dir"), ctx.params.get("config_path"))
        target.client.timeout = 2.0
        try:
            names = [job["name"] for job in target.client.request("status")["jobs"]]
        except (DaemonNotRunning, ControlError):
            if target.config_path is None:
                return []
            from ..config import load_config

            names = list(load_config(target.config_path, interpolate=False)[0].job_names)
    except Exception:  # completion must never print a traceback into the user's shell
        return []
    return [name for name in names if name.startswith(incomplete)]


# --------------------------------------------------------------------------- formatting


def _when(ts: float | None, now: float | None = None) -> str:
    if ts is None:
        return "-"
    now = time.time() if now is None else now
    local = dt.datetime.fromtimestamp(ts).astimezone()
    delta = ts - now
    text = local.strftime("%H:%M:%S") if abs(delta) < 43200 else local.strftime("%Y-%m-%d %H:%M")
    rel = format_duration(abs(delta))
    return f"{text} (in {rel})" if delta > 0 else f"{text} ({rel} ago)"


def _iso_to_ts(value: Any) -> float | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def _result_text(run: RunRecord) -> str:
    text = run.state.value
    if run.exit_code not in (None, 0):
        text += f" (exit {run.exit_code})"
    elif run.signal:
        text += f" (signal {run.signal})"
    return text


def _last_run_text(run: RunRecord | None, now: float) -> str:
    if run is None:
        return "-"
    return f"{_result_text(run)} {_when(run.finished_at or run.started_at or run.created_at, now)}"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def _exit_code_of(run: RunRecord) -> int:
    """The job's exit code; 1 for a failure without one (timeout, signal, executor error)."""
    if run.state == RunState.SUCCESS:
        return EXIT_OK
    if run.exit_code is not None and 0 < run.exit_code < 256:
        return run.exit_code
    return EXIT_FAILURE


def _print_json(value: Any) -> None:
    click.echo(json.dumps(to_jsonable(value), indent=2))


# --------------------------------------------------------------------------- run


@click.command("run")
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--state-dir", type=click.Path(file_okay=False, path_type=Path), envvar="FIRELINK_STATE_DIR",
    help="Where state, logs, the lock and the control socket live (default: the config's"
    " state_dir, else ~/.local/state/firelink). Env FIRELINK_STATE_DIR.",
)
@click.option("--plugin", "plugins", multiple=True, metavar="IMPORT_PATH",
              help="Load an extra plugin module (repeatable).")
@click.option("--grace", default="30s", show_default=True, callback=_duration,
              help="How long running jobs get to finish on SIGTERM/SIGINT before they are terminated.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Readable lines or one JSON object per line.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
              default="info", show_default=True)
@click.option("--metrics", "metrics", metavar="HOST:PORT", callback=_address,
              help="Serve Prometheus metrics at http://HOST:PORT/metrics (a bare PORT binds 127.0.0.1).")
@click.option("--detach", is_flag=True,
              help="Run in the background: pid file and log file in the state directory.")
@click.option("--detached-child", is_flag=True, hidden=True)
def run_cmd(
    config: Path,
    state_dir: Path | None,
    plugins: tuple[str, ...],
    grace: float,
    log_format: str,
    log_level: str,
    metrics: tuple[str, int] | None,
    detach: bool,
    detached_child: bool,
) -> None:
    """Run the scheduler daemon on CONFIG until SIGTERM/SIGINT (or `firelink stop`).

    \b
    The config is validated first, exactly as `firelink validate` does.
    SIGTERM/SIGINT: graceful stop (a second SIGINT stops at once).
    SIGHUP or `firelink reload`: re-read the config (an invalid one is rejected).
    Exit codes: 0 after a graceful stop, 1 invalid config, already running or a
    daemon error, 2 usage error.
    """
    config_path = config.absolute()
    override = state_dir.expanduser().absolute() if state_dir is not None else None
    loaded_config, loaded_plugins = _load_config(config_path, extra_plugins=plugins, state_dir=override)
    resolved_state = Path(loaded_config.state_dir)

    if detach and not detached_child:
        pid = lock_holder(resolved_state)
        if pid:
            _fail(f"firelink is already running on state directory {resolved_state} (pid {pid})")
        args = [str(config_path), "--state-dir", str(resolved_state), "--grace", f"{grace}s",
                "--log-format", log_format, "--log-level", log_level]
        for plugin in plugins:
            args += ["--plugin", plugin]
        if metrics is not None:
            args += ["--metrics", f"[{metrics[0]}]:{metrics[1]}" if ":" in metrics[0] else f"{metrics[0]}:{metrics[1]}"]
        try:
            sys.exit(spawn_detached(args, resolved_state))
        except OSError as exc:
            _fail(f"cannot start the daemon in the background: {exc}")

    def reload_config() -> tuple[Config, Plugins]:
        from ..config import load_config

        return load_config(config_path, extra_plugins=plugins, state_dir=override)

    sys.exit(
        run_daemon(
            loaded_config,
            loaded_plugins,
            config_path=config_path,
            reload_config=reload_config,
            grace=grace,
            log_format=log_format,
            log_level=log_level,
            log_to_file=detached_child,
            metrics=metrics,
        )
    )


# --------------------------------------------------------------------------- status


@click.command("status")
@_locate_options
@_pipe_safe
def status_cmd(state_dir: Path | None, config_path: Path | None, as_json: bool) -> None:
    """Show the daemon and every job: triggers, state, last run, next due time.

    \b
    With the daemon down and a config known, shows the jobs' last runs from the
    database. Exit codes: 0 running, 3 not running.
    """
    target = _Target(state_dir, config_path)
    up, info = target.try_request("status")
    if up:
        if as_json:
            _print_json({"running": True, **info})
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
    for job in info.get("jobs", []):
        last = run_from_dict(job["last_run"]) if job.get("last_run") else None
        last_text = _last_run_text(last, now)
        state = job.get("state", "?")
        if job.get("running", 0) > 1:
            state += f" x{job['running']}"
        degraded = [k for k, h in (job.get("health") or {}).items() if h and h.get("state") == "degraded"]
        if degraded:
            state += " (trigger degraded)"
            problems += [f"  {key}: {job['health'][key].get('message') or 'degraded'}" for key in degraded]
        rows.append([job["name"], ", ".join(job.get("triggers") or []) or "-", state, last_text,
                     _when(_iso_to_ts(job.get("next_due")), now)])
    if rows:
        click.echo()
        click.echo(_table(rows, ["JOB", "TRIGGERS", "STATE", "LAST RUN", "NEXT DUE"]))
    if problems:
        click.echo("\ndegraded triggers:\n" + "\n".join(problems))


def _status_down(target: _Target, message: str, as_json: bool) -> NoReturn:
    loaded = target.config()
    if loaded is None:
        if as_json:
            _print_json({"running": False, "reason": message, "state_dir": str(target.state_dir), "jobs": None})
        else:
            click.echo(message)
        sys.exit(EXIT_NOT_RUNNING)
    config = loaded[0]

    async def last_runs(storage: Any) -> dict[str, RunRecord | None]:
        out: dict[str, RunRecord | None] = {}
        for job in config.jobs:
            runs = await storage.list_runs(job.name, limit=1)
            out[job.name] = runs[0] if runs else None
        return out

    lasts = _OfflineStorage(target).run(last_runs) or {}
    jobs = []
    for job in config.jobs:
        triggers = [t.describe() for t in job.triggers]
        last = lasts.get(job.name)
        state = "disabled" if not job.enabled else ("failing" if last and last.finished and last.state != RunState.SUCCESS else "idle")
        jobs.append({"name": job.name, "triggers": triggers, "state": state, "last_run": last})
    if as_json:
        _print_json({"running": False, "reason": message, "state_dir": str(target.state_dir),
                     "config": str(target.config_path), "jobs": jobs})
        sys.exit(EXIT_NOT_RUNNING)
    click.echo(f"{message}\nconfig {target.config_path}; state {target.state_dir}; last runs from the database:")
    now = time.time()
    rows = [
        [j["name"], ", ".join(j["triggers"]) or "-", j["state"],
         _last_run_text(j["last_run"], now)]
        for j in jobs
    ]
    if rows:
        click.echo()
        click.echo(_table(rows, ["JOB", "TRIGGERS", "STATE", "LAST RUN"]))
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


@click.command("trigger")
@click.argument("job", shell_complete=_complete_jobs)
@click.option("--wait", is_flag=True, help="Stream the run's log and exit with the job's exit code.")
@click.option("--with-upstream", is_flag=True, help="Run the job's depends_on jobs first.")
@click.option("--env", "env_items", multiple=True, metavar="KEY=VALUE", help="Extra variables for the job (repeatable).")
@_locate_options
@_pipe_safe
def trigger_cmd(
    job: str,
    wait: bool,
    with_upstream: bool,
    env_items: tuple[str, ...],
    state_dir: Path | None,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Run JOB now; print its run id.

    \b
    With --wait: the run's output streams to stdout (progress on stderr) and the
    exit code is the job's: 0 success, the job's own non-zero exit code, or 1 for a
    failure without one (timeout, killed by a signal, executor error, skipped,
    upstream failed, interrupted). 2 unknown job, 3 daemon not running.
    """
    env = _parse_env(env_items)
    target = _Target(state_dir, config_path)
    args = {"job": job, "env": env, "with_upstream": with_upstream}
    if not wait:
        result = target.request("trigger", **args)
        if as_json:
            _print_json(result)
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
            done = _show_stream_message(message, quiet=as_json)
            if done is not None:
                if as_json:
                    _print_json(done)
                else:
                    _print_run_end(done)
                sys.exit(_exit_code_of(done))
    except DaemonNotRunning as exc:
        target.check_alive_without_socket()
        _not_running(exc)
    except ControlError as exc:
        _control_failure(exc)
    except KeyboardInterrupt:
        where = f" (run {run_id})" if run_id else ""
        click.echo(f"\nfirelink: stopped watching; the run goes on{where}", err=True)
        sys.exit(130)
    _fail("the daemon stopped before the run ended" + (f" (run {run_id})" if run_id else ""))


def _show_stream_message(message: Mapping[str, Any], *, quiet: bool = False) -> RunRecord | None:
    """Print one streamed message; return the run when it is the final one."""
    if "error" in message:
        err = message["error"]
        raise ControlError(err.get("code", "error"), err.get("message", "error"))
    if "state" in message:
        if message["state"] in ("waiting", "retrying") and not quiet:
            reason = f": {message['reason']}" if message.get("reason") else ""
            click.echo(f"firelink: run {message['state']}{reason}", err=True)
    elif "attempt" in message:
        if message["attempt"] > 1 and not quiet:
            click.echo(f"firelink: attempt {message['attempt']}", err=True)
    elif "log" in message:
        if not quiet:
            sys.stdout.write(message["log"])
            sys.stdout.flush()
    elif message.get("done") and "run" in message:
        return run_from_dict(message["run"])
    return None


def _print_run_end(run: RunRecord) -> None:
    took = run.duration()
    extra = f" in {format_duration(took)}" if took is not None else ""
    reason = f": {run.reason}" if run.reason else (f": {run.error}" if run.error else "")
    click.echo(f"firelink: run {run.id} {_result_text(run)}{extra}{reason}", err=True)


# --------------------------------------------------------------------------- stop / reload


@click.command("stop")
@click.option("--grace", default=None, callback=_duration,
              help="How long running jobs get to finish (default: the daemon's --grace); 0 stops at once.")
@_locate_options
def stop_cmd(grace: float | None, state_dir: Path | None, config_path: Path | None, as_json: bool) -> None:
    """Stop the daemon gracefully and wait until it has exited.

    Exit codes: 0 stopped, 1 error, 3 not running.
    """
    target = _Target(state_dir, config_path)
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
        _not_running(exc)
    except ControlError as exc:
        if exc.code not in ("closed",):
            _control_failure(exc)
    deadline = time.monotonic() + 30
    while lock_holder(target.state_dir):
        if time.monotonic() > deadline:
            _fail(f"firelink (pid {pid}) stopped its engine but has not exited yet")
        time.sleep(0.05)
    if as_json:
        _print_json({"stopped": True, "pid": pid})
    else:
        click.echo("firelink: stopped", err=True)


@click.command("reload")
@_locate_options
def reload_cmd(state_dir: Path | None, config_path: Path | None, as_json: bool) -> None:
    """Re-read the daemon's config (like SIGHUP), validating it first.

    An invalid config is rejected and its errors printed; the old one keeps running.
    Exit codes: 0 reloaded, 1 rejected, 3 not running.
    """
    target = _Target(state_dir, config_path)
    try:
        result = target.client.request("reload")
    except DaemonNotRunning as exc:
        target.check_alive_without_socket()
        _not_running(exc)
    except ControlError as exc:
        if as_json:
            _print_json({"reloaded": False, **exc.as_dict()})
            sys.exit(EXIT_FAILURE)
        click.echo(f"firelink: reload rejected: {exc.message}", err=True)
        for line in exc.data.get("errors") or []:
            click.echo(line, err=True)
        sys.exit(EXIT_FAILURE)
    if as_json:
        _print_json({"reloaded": True, **result})
        return
    parts = [f"{k} {', '.join(result.get(k) or []) or '-'}" for k in ("added", "removed", "changed")]
    click.echo("firelink: reloaded; " + "; ".join(parts))


# --------------------------------------------------------------------------- runs / logs


@click.command("runs")
@click.argument("job", required=False, shell_complete=_complete_jobs)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--state", "states", multiple=True, type=click.Choice([s.value for s in RunState]),
              help="Only runs in this state (repeatable).")
@_locate_options
@_pipe_safe
def runs_cmd(
    job: str | None, limit: int, states: tuple[str, ...], state_dir: Path | None,
    config_path: Path | None, as_json: bool,
) -> None:
    """Run history, newest first (read from the database when the daemon is down)."""
    target = _Target(state_dir, config_path)
    args = {"job": job, "states": list(states) or None, "limit": limit}
    up, result = target.try_request("runs", **args)
    if up:  # the daemon answers for any storage, even a memory one
        runs = [run_from_dict(r) for r in result["runs"]]
    else:
        _check_job_offline(target, job)
        state_filter = [RunState(s) for s in states] or None
        runs = _OfflineStorage(target).run(
            lambda storage: storage.list_runs(job, states=state_filter, limit=limit)
        ) or []
    if as_json:
        _print_json(runs)
        return
    if not runs:
        click.echo("no runs" + (f" of {job}" if job else "") + ("" if up else " (firelink is not running)"), err=True)
        return
    now = time.time()
    rows = []
    for run in runs:
        took = run.duration()
        rows.append([
            run.id, run.job, _result_text(run), run.trigger or "-",
            _when(run.started_at or run.created_at, now),
            format_duration(took) if took is not None else "-",
            run.reason or run.error or "",
        ])
    click.echo(_table(rows, ["RUN", "JOB", "STATE", "TRIGGER", "STARTED", "TOOK", "REASON"]))


@click.command("logs")
@click.argument("job", shell_complete=_complete_jobs)
@click.argument("run_id", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep printing output until the run finishes.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), envvar="FIRELINK_STATE_DIR",
              help="The daemon's state directory. Env FIRELINK_STATE_DIR.")
@click.option("-c", "--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              envvar="FIRELINK_CONFIG", help="A config file whose state_dir to use. Env FIRELINK_CONFIG.")
@_pipe_safe
def logs_cmd(job: str, run_id: str | None, follow: bool, state_dir: Path | None, config_path: Path | None) -> None:
    """Print a run's output (JOB's latest run by default), every attempt in order.

    With -f, a running run is followed until it finishes (with the daemon down, what
    was written is printed). Exit codes: 0, 1 no such run, 2 unknown job.
    """
    target = _Target(state_dir, config_path)
    up, result = target.try_request("run", job=job, run_id=run_id)
    if up:
        run = run_from_dict(result["run"])
        attempts = [attempt_from_dict(a) for a in result["attempts"]]
    else:
        _check_job_offline(target, job)

        async def fetch(storage: Any) -> tuple[RunRecord | None, list[AttemptRecord]]:
            if run_id is not None:
                found = await storage.get_run(run_id)
            else:
                latest = await storage.list_runs(job, limit=1)
                found = latest[0] if latest else None
            return found, (await storage.list_attempts(found.id) if found else [])

        fetched = _OfflineStorage(target).run(fetch)
        run, attempts = fetched if fetched else (None, [])
        if run is None:
            _fail(f"no run {run_id!r}" if run_id else f"job {job!r} has not run yet")
    if run.job != job:
        _fail(f"run {run.id} belongs to job {run.job!r}, not {job!r}")
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


def _follow(target: _Target, run_id: str) -> None:
    try:
        for message in target.client.stream("follow", run_id=run_id, timeout=None):
            if "result" in message:
                continue
            if _show_stream_message(message) is not None:
                return
    except DaemonNotRunning as exc:
        _not_running(exc)
    except ControlError as exc:
        _control_failure(exc)
    except KeyboardInterrupt:
        sys.exit(130)


COMMANDS: list[click.Command] = [run_cmd, status_cmd, trigger_cmd, stop_cmd, reload_cmd, runs_cmd, logs_cmd]
