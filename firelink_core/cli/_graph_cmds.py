"""``firelink graph``: the job dependency graph as Mermaid or Graphviz dot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .._control import run_from_dict
from .._graph import render_dot, render_mermaid
from ..records import RunRecord
from ._common import load_config_or_exit
from ._target import Target

__all__ = ["COMMANDS", "graph_cmd"]


def _last_runs(config: Any, config_path: Path, state_dir: Path | None) -> dict[str, RunRecord]:
    """Each job's latest run: from the running daemon, else from the database."""
    target = Target(state_dir, config_path)
    up, info = target.try_request("status")
    if up:
        return {job["name"]: run_from_dict(job["last_run"]) for job in info.get("jobs", []) if job.get("last_run")}

    async def latest(storage: Any) -> dict[str, RunRecord]:
        out = {}
        for job in config.jobs:
            runs = await storage.list_runs(job.name, limit=1)
            if runs:
                out[job.name] = runs[0]
        return out

    return target.read_history(latest) or {}


@click.command("graph")
@click.argument("config_path", metavar="CONFIG", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True,
    help="mermaid: a flowchart for Markdown; dot: Graphviz (dot -Tsvg).",
)
@click.option("--status", is_flag=True, help="Colour each job by its last run's result (daemon, else the database).")
@click.option(
    "--state-dir", type=click.Path(file_okay=False, path_type=Path), envvar="FIRELINK_STATE_DIR",
    help="The daemon's state directory for --status (default: the config's).",
)
def graph_cmd(config_path: Path, fmt: str, status: bool, state_dir: Path | None) -> None:
    """Print the job dependency graph of CONFIG: each job with its triggers, edges
    labelled with the dependency condition.

    \b
    Example:
      firelink graph firelink.yaml --format dot | dot -Tsvg > jobs.svg


    Exit status: 0, or 1 when the config is invalid (problems printed as by validate).
    """
    config, _plugins = load_config_or_exit(config_path, state_dir=state_dir, interpolate=False)
    last = _last_runs(config, config_path, state_dir) if status else None
    render = render_mermaid if fmt == "mermaid" else render_dot
    click.echo(render(config, last), nl=False)


COMMANDS: list[click.Command] = [graph_cmd]
