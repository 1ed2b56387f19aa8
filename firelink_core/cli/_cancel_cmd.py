"""``firelink cancel``: end a queued, waiting, retrying or running run by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .._control import ControlError, DaemonNotRunning, run_from_dict
from ._common import EXIT_FAILURE, fail
from ._format import print_json
from ._target import Target, control_failure, locate_options, not_running

__all__ = ["COMMANDS", "cancel_cmd"]


@click.command("cancel")
@click.argument("run_id")
@locate_options
def cancel_cmd(
    run_id: str, state_dir: Path | None, config_path: Path | None, as_json: bool
) -> None:
    """Cancel the run RUN_ID (its full id or a unique prefix, as `firelink runs` shows it).

    \b
    A queued, waiting or retrying run ends at once; a running one gets its job's
    stop signal (SIGTERM for a subprocess), then SIGKILL after the job's kill_grace.
    The run is recorded `cancelled`. The command returns once the run has ended.

    \b
    Example:
      firelink cancel 3f2a9c1e

    \b
    Exit codes: 0 cancelled, 1 the run already ended, 2 no such run or an
    ambiguous prefix (the candidates are listed), 3 daemon not running.
    """
    target = Target(state_dir, config_path)
    try:
        # No deadline: a running job may take its kill_grace to stop.
        result = target.client.request("cancel", run_id=run_id, timeout=None)
    except DaemonNotRunning as exc:
        target.check_alive_without_socket()
        not_running(exc)
    except ControlError as exc:
        if exc.code == "run-ended":
            if as_json:
                print_json({"cancelled": False, **exc.as_dict()})
                sys.exit(EXIT_FAILURE)
            fail(exc.message)
        control_failure(exc)
    run = run_from_dict(result["run"])
    if as_json:
        print_json({"cancelled": run.state.value == "cancelled", "run": result["run"]})
        return
    if run.state.value != "cancelled":
        fail(f"run {run.id} of {run.job} ended {run.state.value} before it could be cancelled")
    click.echo(f"firelink: run {run.id} of {run.job} cancelled", err=True)


COMMANDS: list[click.Command] = [cancel_cmd]
