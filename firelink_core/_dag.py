"""The dependency graph of jobs: edges indexed once, cycles refused, upstream-first plans."""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Mapping

__all__ = ["Dag", "DagError"]


class DagError(ValueError):
    """The dependencies cannot form a DAG (a cycle, an unknown upstream job)."""


class Dag:
    """Upstream and downstream edges of every job, built once per config.

    ``edges`` maps each job to the jobs it depends on. Validation already rejects cycles
    and unknown jobs; this class refuses them again so the engine can never loop.
    """

    def __init__(self, edges: Mapping[str, Iterable[str]]) -> None:
        self.upstream: dict[str, tuple[str, ...]] = {job: tuple(deps) for job, deps in edges.items()}
        self.downstream: dict[str, list[str]] = {job: [] for job in self.upstream}
        for job, deps in self.upstream.items():
            for dep in deps:
                if dep not in self.downstream:
                    raise DagError(f"job {job!r} depends on unknown job {dep!r}")
                self.downstream[dep].append(job)
        sorter = graphlib.TopologicalSorter(self.upstream)
        try:
            self.order: tuple[str, ...] = tuple(sorter.static_order())
        except graphlib.CycleError as exc:
            cycle = exc.args[1]
            raise DagError("dependency cycle (upstream -> downstream): " + " -> ".join(cycle)) from None
        self._rank = {job: i for i, job in enumerate(self.order)}
        self._upstream_sets: dict[str, frozenset[str]] = {}

    def upstream_set(self, job: str) -> frozenset[str]:
        """The direct upstream jobs of ``job`` as a set (built on first use)."""
        found = self._upstream_sets.get(job)
        if found is None:
            found = self._upstream_sets[job] = frozenset(self.upstream.get(job, ()))
        return found

    def ancestors(self, job: str) -> set[str]:
        """Every job ``job`` depends on, directly or not (without ``job`` itself)."""
        seen: set[str] = set()
        stack = list(self.upstream.get(job, ()))
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self.upstream.get(current, ()))
        return seen

    def plan(self, job: str) -> list[tuple[str, tuple[str, ...]]]:
        """The upstream subgraph of ``job`` then ``job``, in topological order.

        Each item is ``(name, its upstream jobs)``; every upstream appears before the jobs
        that need it, so independent branches can start together.
        """
        if job not in self.upstream:
            raise DagError(f"unknown job {job!r}")
        members = self.ancestors(job) | {job}
        return [(name, self.upstream[name]) for name in sorted(members, key=self._rank.__getitem__)]
