"""``--select`` parsing, apart from applying it (like dbt): ``step``, ``+step``, ``step+``, ``+step+``.

``+step`` adds the step's upstream steps, ``step+`` its downstream steps. Several selectors may be given,
separated by commas or spaces; the result is their union. Inputs live in memory between steps, so a step
selected alone still needs its upstream steps computed: they run as *feeders* (computed, outputs not written).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.dag import Dag
from engine.errors import TickflowError


class SelectionError(TickflowError):
    """A --select that names no step of the spec: a usage error (exit 2)."""


@dataclass(frozen=True)
class Selector:
    name: str
    upstream: bool
    downstream: bool


def parse_selectors(texts: Iterable[str]) -> list[Selector]:
    out: list[Selector] = []
    for text in texts:
        for token in text.replace(",", " ").split():
            up = token.startswith("+")
            down = token.endswith("+") and len(token) > 1
            name = token.strip("+")
            if not name:
                raise SelectionError(f"empty selector '{token}'")
            out.append(Selector(name, up, down))
    return out


@dataclass(frozen=True)
class Selection:
    selected: frozenset[str]  # run and write their outputs
    feeders: frozenset[str]  # computed only because a selected step reads them

    def runs(self, step: str) -> bool:
        return step in self.selected or step in self.feeders


def select(dag: Dag, selectors: list[Selector]) -> Selection:
    unknown = [s.name for s in selectors if s.name not in dag.parents]
    if unknown:
        raise SelectionError(
            f"unknown step(s) in --select: {', '.join(unknown)}; steps are: {', '.join(dag.nodes)}"
        )
    chosen: set[str] = set()
    for s in selectors:
        chosen.add(s.name)
        if s.upstream:
            chosen |= dag.upstream(s.name)
        if s.downstream:
            chosen |= dag.downstream(s.name)
    needed: set[str] = set()
    for name in chosen:
        needed |= dag.upstream(name)
    return Selection(frozenset(chosen), frozenset(needed - chosen))


def select_all(dag: Dag) -> Selection:
    return Selection(frozenset(dag.nodes), frozenset())
