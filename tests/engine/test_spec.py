"""The frozen spec dataclasses (engine.spec): input references, dataset paths compared by component, and what a
step's outputs and reads are."""

from __future__ import annotations

import dataclasses

import pytest

from engine.spec import InputRef, OutputSpec, PipelineSpec, StepSpec, path_parts, paths_nest


def _step(name: str = "s", *, outputs: tuple[str, ...] = ("out",), declared: tuple[str, ...] = ("out",),
          **kw: object) -> StepSpec:
    values: dict = {"transform": None, "sql": "SELECT 1", "inputs": {}, "params": {}, "depends_on": (),
                    "outputs": {o: OutputSpec(o, f"ds/{o}") for o in outputs}, "declared_outputs": declared, **kw}
    return StepSpec(name=name, **values)


@pytest.mark.parametrize("text,ref,shown", [
    ("trades", InputRef(step="trades"), "trades"),
    (" split.odd ", InputRef(step="split", output="odd"), "split.odd"),
    ("dataset:analytics/bars/", InputRef(dataset="analytics/bars"), "dataset:analytics/bars"),
    ("dataset: /trade ", InputRef(dataset="trade"), "dataset:trade"),
])
def test_an_input_reference_parses_and_prints_as_written(text, ref, shown):
    assert InputRef.parse(text) == ref
    assert str(ref) == shown and InputRef.parse(str(ref)) == ref


def test_dataset_paths_compare_by_component():
    assert path_parts("a//b/./c/") == path_parts("/a/b/c") == ("a", "b", "c")
    assert path_parts("") == path_parts("/") == ()
    assert paths_nest(("a",), ("a", "b")) and paths_nest(("a", "b"), ("a",)) and paths_nest(("a",), ("a",))
    assert not paths_nest(("bars_1m",), ("bars_1m5",)) and not paths_nest(("a", "b"), ("a", "c"))


def test_specs_are_frozen():
    step = _step()
    with pytest.raises(dataclasses.FrozenInstanceError):
        step.sql = "SELECT 2"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        PipelineSpec(name="p", file="p.yaml", steps={}).name = "q"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        InputRef(step="a").step = "b"  # type: ignore[misc]


def test_a_steps_kind_outputs_and_upstream_steps():
    sql = _step("s", outputs=("written",), inputs={"t": InputRef(step="t"), "d": InputRef(dataset="x")},
                depends_on=("u",))
    assert sql.kind == "sql" and _step(transform="bars").kind == "bars"
    assert sql.upstream_steps() == {"t", "u"}  # a dataset input names no step
    # one declared output written under another name: a bare reference means the written one
    assert sql.default_output() == "written" and sql.output_names() == ["out", "written"]
    split = _step("split", outputs=("even",), declared=("even", "odd"))
    assert split.default_output() == "even" and split.output_names() == ["even", "odd"]
    assert _step(outputs=(), declared=("a", "b")).default_output() == "a"


def test_a_steps_dataset_reads_are_its_dataset_inputs_and_its_non_empty_dataset_params():
    step = _step("r", inputs={"t": InputRef(dataset="trade"), "s": InputRef(step="other")},
                 params={"path": "quote", "blank": "  ", "n": 3}, dataset_params=("path", "blank", "n", "absent"))
    assert step.dataset_reads() == [(("steps", "r", "inputs", "t"), "trade"),
                                    (("steps", "r", "params", "path"), "quote")]
