"""``firelink retry``: run a finished run again (or, with --from-failed, its chain from the
job that failed)."""

from __future__ import annotations

from pathlib import Path

import click

from .._control import ControlError, DaemonNotRunning
from ._common import EXIT_FAILURE, EXIT_USAGE, fail
from ._format import print_json
from ._target import Target, control_failure, locate_options, not_running

__all__ = ["COMMANDS", "retry_cmd"]


@click.command("retry")
@click.argument("run_id")
@click.option(
    "--from-failed",
    is_flag=True,
    help="From the run of RUN_ID's dependency chain that failed: that job runs again, then "
    "the jobs downstream of it follow; upstream results that succeeded are kept.",
)
@locate_options
def retry_cmd(
    run_id: str, from_failed: bool, state_dir: Path | None, config_path: Path | None, as_json: bool
) -> None:
    """Run the finished run RUN_ID again (its full id or a unique prefix); print the new run's id.

    \b
    The new run is of the same job with the same event data (FIRELINK_EVENT,
    the trigger's variables, FIRELINK_SCHEDULED_FOR) and parameters, and its
    parent_run is RUN_ID. Jobs downstream of it follow through the DAG as after
    any run. With --from-failed, RUN_ID may be any run of a chain a -> b -> c:
    an upstream_failed run leads up to the run that failed (b), which runs
    again, and c follows when it succeeds; a is not run again.
    A run started with --env values cannot be retried: they were never stored.

    \b
    Example:
      firelink retry 3f2a9c1e --from-failed

    \b
    Exit codes: 0 queued, 1 the run cannot be retried (still going, succeeded
    with --from-failed, --env values), 2 unknown or ambiguous run id, or its job
    left the config, 3 daemon not running.
    """
    target = Target(state_dir, config_path)
    try:
        result = target.client.request("retry", run_id=run_id, from_failed=from_failed)
    except DaemonNotRunning as exc:
        target.check_alive_without_socket()
        not_running(exc)
    except ControlError as exc:
        if as_json:
            print_json({"retried": False, **exc.as_dict()})
        if exc.code == "cannot-retry":
            fail(exc.message, EXIT_FAILURE)
        if exc.code in ("unknown-run", "ambiguous-run"):
            suggestions = exc.data.get("suggestions") or []
            hint = (
                f"; did you mean {' or '.join(repr(s) for s in suggestions)}?"
                if suggestions
                else ""
            )
            fail(exc.message + hint, EXIT_USAGE)
        control_failure(exc)
    if as_json:
        print_json({"retried": True, **result})
        return
    click.echo(
        f"firelink: run {result['run_id']} of {result['job']} retries run {result['retry_of']}",
        err=True,
    )
    click.echo(result["run_id"])


COMMANDS: list[click.Command] = [retry_cmd]
