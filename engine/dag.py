"""A small graph wrapper over stdlib graphlib: order, cycles (printed as a path) and neighbourhoods."""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class CycleError(Exception):
    def __init__(self, cycle: list[str]):
        self.cycle = cycle
        super().__init__("dependency cycle: " + " -> ".join(cycle))


@dataclass(frozen=True)
class Dag:
    """Nodes in declaration order; ``parents[n]`` are the nodes ``n`` depends on."""

    nodes: tuple[str, ...]
    parents: Mapping[str, frozenset[str]]

    @staticmethod
    def build(deps: Mapping[str, Iterable[str]]) -> Dag:
        return Dag(tuple(deps), {n: frozenset(d) for n, d in deps.items()})

    def children(self, node: str) -> set[str]:
        return {n for n in self.nodes if node in self.parents[n]}

    def edges(self) -> list[tuple[str, str]]:
        return [(p, n) for n in self.nodes for p in sorted(self.parents[n])]

    def order(self) -> list[str]:
        """Topological order, stable: among ready nodes, declaration order wins."""
        position = {n: i for i, n in enumerate(self.nodes)}
        sorter = graphlib.TopologicalSorter({n: self.parents[n] for n in self.nodes})
        try:
            sorter.prepare()
        except graphlib.CycleError as exc:
            # graphlib lists each node before the one that depends on it: [a, b, ..., a]
            raise CycleError(list(exc.args[1])) from None
        out: list[str] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready(), key=position.__getitem__)
            out.extend(ready)
            sorter.done(*ready)
        return out

    def upstream(self, node: str) -> set[str]:
        seen: set[str] = set()
        stack = [node]
        while stack:
            for p in self.parents[stack.pop()]:
                if p not in seen:
                    seen.add(p)
                    stack.append(p)
        return seen

    def downstream(self, node: str) -> set[str]:
        seen: set[str] = set()
        stack = [node]
        while stack:
            for c in self.children(stack.pop()):
                if c not in seen:
                    seen.add(c)
                    stack.append(c)
        return seen
