"""A small graph wrapper over stdlib graphlib: order, cycles (printed as a path) and neighbourhoods; and the step
graph of a spec (``dag_of``)."""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from engine.spec import StepSpec, path_parts, paths_nest


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


def dataset_edges(steps: Mapping[str, StepSpec]) -> dict[tuple[str, str], str]:
    """Implicit edges ``(writer, reader) -> path``: a step reading ``dataset:<path>`` runs after the step of the
    same spec that writes that dataset (or one inside it, or around it), so it reads this run's version."""
    edges: dict[tuple[str, str], str] = {}
    for reader in steps.values():
        for ref in reader.inputs.values():
            parts = path_parts(ref.dataset) if ref.dataset else ()
            if not parts:
                continue
            for writer in steps.values():
                if writer.name != reader.name and any(paths_nest(parts, path_parts(out.path))
                                                      for out in writer.outputs.values()):
                    edges.setdefault((writer.name, reader.name), str(ref.dataset))
    return edges


def dag_of(steps: Mapping[str, StepSpec]) -> Dag:
    """Edges from step inputs, ``depends_on`` and ``dataset:`` inputs written by a step of the same spec."""
    deps = {name: step.upstream_steps() & set(steps) for name, step in steps.items()}
    for writer, reader in dataset_edges(steps):
        deps[reader].add(writer)
    return Dag.build({name: sorted(parents) for name, parents in deps.items()})
