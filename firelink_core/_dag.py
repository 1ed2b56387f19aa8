"""The dependency graph of jobs: edges indexed once, cycles refused, upstream-first plans."""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["Dag", "DagError", "find_cycles"]


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
        cycles = find_cycles(self.upstream)
        if cycles:
            # Each cycle follows "depends on" edges; the message reads upstream first.
            path = cycles[0] + [cycles[0][0]]
            raise DagError("dependency cycle (upstream -> downstream): " + " -> ".join(reversed(path)))
        self.order: tuple[str, ...] = tuple(graphlib.TopologicalSorter(self.upstream).static_order())
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


def find_cycles(edges: Mapping[str, Sequence[str]], order: Sequence[str] | None = None) -> list[list[str]]:
    """One cycle per strongly connected component of ``edges`` (job -> the jobs it depends on).

    Components come in ``order`` (default: the order of ``edges``), each cycle starting at
    its member first in that order and following edges in their listed order; a cycle
    ``[a, b]`` means a depends on b and b on a. A job depending on itself is a cycle of one.
    """
    order = list(edges) if order is None else list(order)
    position = {name: i for i, name in enumerate(order)}
    cycles = []
    for component in sorted(_components(edges, order), key=lambda c: min(position[n] for n in c)):
        cycles.append(_cycle_through(min(component, key=position.__getitem__), set(component), edges))
    return cycles


def _components(edges: Mapping[str, Sequence[str]], order: Sequence[str]) -> list[list[str]]:
    """The strongly connected components that hold a cycle (Tarjan's algorithm, iterative)."""
    index_of: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in order:
        if root in index_of:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index_of[node] = low[node] = len(index_of)
                stack.append(node)
                on_stack.add(node)
            successors = edges.get(node, ())
            if i < len(successors):
                work.append((node, i + 1))
                nxt = successors[i]
                if nxt not in index_of:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index_of[nxt])
                continue
            if low[node] == index_of[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1 or node in edges.get(node, ()):
                    components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return components


def _cycle_through(start: str, members: set[str], edges: Mapping[str, Sequence[str]]) -> list[str]:
    """A path from ``start`` back to it inside one component (depth first, edges in order)."""
    path = [start]
    seen = {start}
    pending = [iter(edges.get(start, ()))]
    while pending:
        node = path[-1]
        if start in edges.get(node, ()):
            return path
        nxt = next((n for n in pending[-1] if n in members and n not in seen), None)
        if nxt is None:
            pending.pop()
            path.pop()
            continue
        seen.add(nxt)
        path.append(nxt)
        pending.append(iter(edges.get(nxt, ())))
    return [start]  # unreachable for a strongly connected component
