"""``firelink run-once``: run one job in the foreground without the daemon."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from .._daemon import lock_holder
from ._common import default_config_or_exit, fail, load_config_or_exit, plugin_option
from ._control_cmds import _parse_env
from ._format import exit_code_of, print_json, print_run_end, show_stream_message
from ._target import unknown_job

__all__ = ["COMMANDS", "run_once_cmd"]


@click.command("run-once")
@click.argument("job")
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="FIRELINK_CONFIG",
    help="The config (default ./firelink.yaml). Env FIRELINK_CONFIG.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="FIRELINK_STATE_DIR",
    help="Where the run is recorded and its log written (default: the config's state_dir)."
    " Env FIRELINK_STATE_DIR.",
)
@click.option(
    "--env",
    "env_items",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra variables for the job (repeatable).",
)
@plugin_option
@click.option(
    "--json", "as_json", is_flag=True, help="Print the finished run as JSON instead of the output."
)
def run_once_cmd(
    job: str,
    config_path: Path | None,
    state_dir: Path | None,
    env_items: tuple[str, ...],
    extra_plugins: tuple[str, ...],
    as_json: bool,
) -> None:
    """Run JOB once now, in the foreground, without the daemon; exit with its code.

    \b
    The job runs exactly as the daemon runs it (its executor, env, cwd, timeout,
    retries, log file and notifiers), by hand: its triggers and depends_on are
    ignored and nothing runs after it. The run is recorded in the state directory
    when its storage can be opened (see `firelink runs`, `firelink logs`).
    Refused while a daemon runs on the state directory: use `firelink trigger JOB --wait`.
    Ctrl-C cancels the run (the job gets its stop signal and kill_grace).

    \b
    Example:
      firelink run-once backup -c firelink.yaml

    \b
    Exit codes: the job's (0 success, its own non-zero code, 1 for a failure
    without one), 1 refused or invalid config, 2 unknown job.
    """
    env = _parse_env(env_items)
    if config_path is None:
        config_path = default_config_or_exit("-c CONFIG")
    override = state_dir.expanduser().absolute() if state_dir is not None else None
    config, plugins = load_config_or_exit(
        config_path.absolute(), extra_plugins=extra_plugins, state_dir=override
    )
    if job not in config.job_names:
        from .._control import suggest

        unknown_job(job, suggest(job, list(config.job_names)))
    state = Path(config.state_dir)
    pid = lock_holder(state)
    if pid:
        who = f" (pid {pid})" if pid > 0 else ""
        fail(
            f"firelink is running on {state}{who}: use `firelink trigger {job} --wait` to run it there"
        )

    from .._run_once import run_once

    def show(message: object) -> None:
        if not as_json:
            show_stream_message(message)  # type: ignore[arg-type]

    try:
        result = asyncio.run(run_once(config, plugins, job, env=env, show=show))
    except Exception as exc:  # the engine could not start (an executor, a notifier): say what
        fail(f"run-once of {job} failed: {type(exc).__name__}: {exc}")
    if as_json:
        print_json(
            {
                "run": result.run,
                "recorded_in": result.recorded_in,
                "not_recorded": result.why_not_recorded,
            }
        )
    else:
        print_run_end(result.run)
        if result.recorded_in is None:
            click.echo(f"firelink: the run is not recorded: {result.why_not_recorded}", err=True)
    sys.exit(exit_code_of(result.run))


COMMANDS: list[click.Command] = [run_once_cmd]
