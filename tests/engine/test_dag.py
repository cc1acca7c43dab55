from __future__ import annotations

import pytest

from engine.dag import CycleError, Dag


def test_order_is_topological_and_stable():
    dag = Dag.build({"c": ["a"], "a": [], "b": [], "d": ["c", "b"]})
    order = dag.order()
    assert order.index("a") < order.index("c") < order.index("d")
    assert order.index("b") < order.index("d")
    assert order == ["a", "b", "c", "d"]  # ready nodes keep declaration order (c before b is not ready)


def test_cycle_is_printed_in_dependency_direction():
    dag = Dag.build({"a": ["c"], "b": ["a"], "c": ["b"], "d": []})
    with pytest.raises(CycleError) as info:
        dag.order()
    cycle = info.value.cycle
    assert cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    for x, y in zip(cycle, cycle[1:], strict=False):
        assert x in dag.parents[y]  # each arrow goes from a step to one that depends on it
    assert " -> ".join(cycle) in str(info.value)


def test_self_cycle():
    with pytest.raises(CycleError, match="a -> a"):
        Dag.build({"a": ["a"]}).order()


def test_upstream_downstream_edges():
    dag = Dag.build({"a": [], "b": ["a"], "c": ["b"], "x": []})
    assert dag.upstream("c") == {"a", "b"}
    assert dag.downstream("a") == {"b", "c"}
    assert dag.edges() == [("a", "b"), ("b", "c")]
