"""Checks of the job graph: unique names, known upstream jobs, no dependency cycle."""

from __future__ import annotations

from typing import Any

from .._dag import find_cycles
from .issues import Checks, PathT
from .messages import suggest

__all__ = ["check_graph"]


def _dependencies(job: dict[str, Any]) -> tuple[list[str], PathT]:
    dep = job.get("depends_on")
    if isinstance(dep, list):
        return [d for d in dep if isinstance(d, str)], ("depends_on",)
    if isinstance(dep, dict) and isinstance(dep.get("jobs"), list):
        return [d for d in dep["jobs"] if isinstance(d, str)], ("depends_on", "jobs")
    return [], ()


def check_graph(checks: Checks, jobs: list[Any]) -> None:
    """Duplicate job names, ``depends_on`` naming unknown jobs, and one issue per cycle."""
    first: dict[str, int] = {}
    for index, job in enumerate(jobs):
        if not isinstance(job, dict) or not isinstance(job.get("name"), str):
            continue
        name = job["name"]
        if name in first:
            line = checks.located.where(("jobs", first[name], "name"))[0]
            checks.add(
                ("jobs", index, "name"), f"duplicate job name {name!r} (first defined on line {line})",
                "duplicate-job", job=name,
            )
        else:
            first[name] = index
    edges: dict[str, list[str]] = {}
    for name, index in first.items():
        deps, sub = _dependencies(jobs[index])
        edges[name] = []
        for i, dep in enumerate(deps):
            if dep in first:
                edges[name].append(dep)
            else:
                checks.add(
                    ("jobs", index) + sub + (i,),
                    f"depends on unknown job {dep!r}{suggest(dep, first)}",
                    "unknown-job",
                    job=name,
                )
    for cycle in find_cycles(edges, list(first)):
        head = cycle[0]
        _deps, sub = _dependencies(jobs[first[head]])
        checks.add(("jobs", first[head]) + sub, "dependency cycle: " + " -> ".join(cycle + [head]), "cycle", job=head)
