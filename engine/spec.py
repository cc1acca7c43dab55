"""Frozen, validated pipeline specs: what the loader produces and the runner consumes."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DATASET_PREFIX = "dataset:"


def path_parts(path: str) -> tuple[str, ...]:
    """``'a//b/./c/'`` -> ``('a', 'b', 'c')``: dataset paths compare by component, not by string."""
    norm = posixpath.normpath(path.strip().strip("/") or ".")
    return tuple(part for part in norm.split("/") if part not in ("", "."))


def paths_nest(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """True when one dataset path lies inside the other or both are the same (compare ``path_parts``)."""
    return a[:len(b)] == b or b[:len(a)] == a


@dataclass(frozen=True)
class InputRef:
    """Where a step input comes from: another step's output, or a committed dataset."""

    step: str | None = None
    output: str | None = None  # None: the step's default output
    dataset: str | None = None

    @staticmethod
    def parse(text: str) -> InputRef:
        text = text.strip()
        if text.startswith(DATASET_PREFIX):
            return InputRef(dataset=text[len(DATASET_PREFIX):].strip().strip("/"))
        step, _, output = text.partition(".")
        return InputRef(step=step, output=output or None)

    def __str__(self) -> str:
        if self.dataset is not None:
            return f"{DATASET_PREFIX}{self.dataset}"
        return f"{self.step}.{self.output}" if self.output else str(self.step)


@dataclass(frozen=True)
class OutputSpec:
    name: str
    path: str
    partition_by: tuple[str, ...] = ()
    mode: str = "overwrite"
    # partition folders this output owns for the run ("trade_dt=2020-08-06"): replaced even when empty
    replace_partitions: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepSpec:
    name: str
    transform: str | None  # None for SQL steps
    sql: str | None
    inputs: Mapping[str, InputRef]
    params: Mapping[str, Any]
    outputs: Mapping[str, OutputSpec]
    depends_on: tuple[str, ...]
    cache: bool | str = "auto"
    expectations: tuple[Mapping[str, Any], ...] = ()
    description: str = ""
    line: int | None = None
    declared_outputs: tuple[str, ...] = ("out",)  # what the transform returns; the first is the default
    # inputs a SQL step got by reading another step by its name (``FROM trades`` with no input 'trades'):
    # they are in ``inputs`` like declared ones (``trades: trades``); named here to explain them
    implicit_inputs: tuple[str, ...] = ()
    # params naming a committed dataset the step reads (read_dataset's ``path``): the loader refuses an output
    # that would overwrite one of them
    dataset_params: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return self.transform or "sql"

    def output_names(self) -> list[str]:
        """Names other steps may reference as ``step.<name>``."""
        return list(self.declared_outputs) + [o for o in self.outputs if o not in self.declared_outputs]

    def default_output(self) -> str:
        """The output a bare ``step`` reference means."""
        if len(self.declared_outputs) == 1 and len(self.outputs) == 1:
            return next(iter(self.outputs))
        return self.declared_outputs[0]

    def dataset_reads(self) -> list[tuple[tuple[str, ...], str]]:
        """(key path in the spec, dataset path) of each committed dataset the step reads: ``dataset:<path>``
        inputs and dataset params."""
        reads = [(("steps", self.name, "inputs", name), ref.dataset) for name, ref in self.inputs.items()
                 if ref.dataset]
        return reads + [(("steps", self.name, "params", p), str(self.params[p])) for p in self.dataset_params
                        if isinstance(self.params.get(p), str) and self.params[p].strip()]

    def upstream_steps(self) -> set[str]:
        deps = {ref.step for ref in self.inputs.values() if ref.step is not None}
        return deps | set(self.depends_on)


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    file: str
    steps: Mapping[str, StepSpec]  # in file order
    requires: tuple[str, ...] = ()
    reads_earlier_dates: bool = False  # a rerun of a required job of an earlier date outdates this date's job
    variables: Mapping[str, Any] = field(default_factory=dict)
    modules: tuple[str, ...] = ()
    catch_up: Mapping[str, Any] = field(default_factory=dict)
    charts: tuple[Mapping[str, Any], ...] = ()
    description: str = ""
