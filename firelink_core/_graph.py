"""The job dependency graph as Mermaid or Graphviz dot text."""

from __future__ import annotations

import re
from collections.abc import Mapping

from .model import Config, JobSpec
from .records import RunRecord, RunState

__all__ = ["render_mermaid", "render_dot", "STATE_COLOURS"]

STATE_COLOURS: Mapping[str, str] = {
    "success": "#2e7d32",
    "failed": "#c62828",
    "timed_out": "#c62828",
    "upstream_failed": "#ef6c00",
    "interrupted": "#ef6c00",
    "running": "#1565c0",
    "waiting": "#6a1b9a",
    "skipped": "#757575",
}


def _job_label(job: JobSpec) -> str:
    triggers = ", ".join(t.describe() for t in job.triggers)
    if not triggers:
        triggers = "after upstream" if job.depends_on else "no trigger"
    return f"{job.name}\n{triggers}"


def _node_id(name: str) -> str:
    return "j_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def _edges(config: Config) -> list[tuple[str, str, str]]:
    return [
        (upstream, job.name, job.depends_on.condition)
        for job in config.jobs
        if job.depends_on
        for upstream in job.depends_on.jobs
    ]


def _state(last: Mapping[str, RunRecord] | None, job: str) -> str | None:
    if not last or job not in last:
        return None
    state = last[job].state
    return state.value if isinstance(state, RunState) else str(state)


def render_mermaid(config: Config, last_runs: Mapping[str, RunRecord] | None = None) -> str:
    """A ``flowchart LR``; with ``last_runs`` nodes are coloured by the last run's state."""
    lines = ["flowchart LR"]
    for job in config.jobs:
        label = _job_label(job).replace('"', "'").replace("\n", "<br/>")
        lines.append(f'  {_node_id(job.name)}["{label}"]')
    for upstream, downstream, condition in _edges(config):
        lines.append(f"  {_node_id(upstream)} -->|{condition}| {_node_id(downstream)}")
    if last_runs is not None:
        for job in config.jobs:
            state = _state(last_runs, job.name)
            if state in STATE_COLOURS:
                lines.append(f"  style {_node_id(job.name)} fill:{STATE_COLOURS[state]},color:#ffffff")
    return "\n".join(lines) + "\n"


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_dot(config: Config, last_runs: Mapping[str, RunRecord] | None = None) -> str:
    """A Graphviz ``digraph``; with ``last_runs`` nodes are filled by the last run's state."""
    lines = ["digraph firelink {", "  rankdir=LR;", '  node [shape=box, style="rounded"];']
    for job in config.jobs:
        attrs = [f"label={_dot_quote(_job_label(job))}"]
        state = _state(last_runs, job.name)
        if state in STATE_COLOURS:
            attrs.append(f'style="rounded,filled", fillcolor="{STATE_COLOURS[state]}", fontcolor="#ffffff"')
        lines.append(f"  {_dot_quote(job.name)} [{', '.join(attrs)}];")
    for upstream, downstream, condition in _edges(config):
        lines.append(f"  {_dot_quote(upstream)} -> {_dot_quote(downstream)} [label={_dot_quote(condition)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
