"""``--select`` parsing, apart from applying it (like dbt): ``step``, ``+step``, ``step+``, ``+step+``.

``+step`` adds the step's upstream steps, ``step+`` its downstream steps. Several selectors may be given,
separated by commas or spaces; the result is their union. Inputs live in memory between steps, so a step
selected alone still needs its upstream steps computed: they run as *feeders* (computed, outputs not written).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from engine.dag import Dag
from engine.errors import TickflowError
from engine.suggest import did_you_mean


class SelectionError(TickflowError):
    """A --select that is empty, malformed or names no step of the spec: a usage error (exit 2)."""


_SELECTOR = re.compile(r"(\+?)([^+]+)(\+?)")


@dataclass(frozen=True)
class Selector:
    name: str
    upstream: bool
    downstream: bool


def parse_selectors(texts: Iterable[str]) -> list[Selector]:
    """The selectors of the ``--select`` values ``texts``. An empty or blank value is an error, not "select
    nothing": such a run would take the lock, run no step and stamp the job again."""
    out: list[Selector] = []
    for text in texts:
        for token in text.replace(",", " ").split():
            m = _SELECTOR.fullmatch(token)
            if m is None:
                raise SelectionError(f"malformed selector '{token}' in --select; expected step, +step, step+ or "
                                     "+step+")
            out.append(Selector(m.group(2), bool(m.group(1)), bool(m.group(3))))
    if not out:
        raise SelectionError("--select is empty; give a step (step, +step, step+ or +step+), or leave --select "
                             "out to run every step")
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
        hints = [f"'{name}'{did_you_mean(name, dag.nodes)}" for name in unknown]
        raise SelectionError(f"unknown step(s) in --select: {', '.join(hints)}; steps are: {', '.join(dag.nodes)}")
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
