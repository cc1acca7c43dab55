"""What happened in a run: the facts the tracker, the report and the console summary share."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

STEP_STATUSES = ("pending", "running", "success", "failed", "skipped")


@dataclass
class ExpectationResult:
    name: str
    action: str  # warn | drop | fail | check (dataset-level)
    expression: str
    passed: int
    failed: int
    ok: bool
    detail: str = ""


@dataclass
class StepRecord:
    name: str
    transform: str  # "sql" for SQL steps
    depends_on: list[str] = field(default_factory=list)
    status: str = "pending"
    started: dt.datetime | None = None
    ended: dt.datetime | None = None
    duration_s: float | None = None
    rows_in: dict[str, int | None] = field(default_factory=dict)  # input name -> rows (None: not counted)
    rows_out: dict[str, int] = field(default_factory=dict)  # output name -> rows written
    outputs: dict[str, str] = field(default_factory=dict)  # output name -> dataset path under the root
    metrics: dict[str, Any] = field(default_factory=dict)  # what the transform recorded (counts by reason...)
    expectations: list[ExpectationResult] = field(default_factory=list)
    error: str | None = None
    skip_reason: str | None = None


@dataclass
class RunRecord:
    run_id: str
    pipeline: str
    date: str | None
    spec_file: str
    storage_root: str
    status: str = "running"  # running | success | stale (a --select run left steps out of date) | failed | skipped
    started: dt.datetime | None = None
    ended: dt.datetime | None = None
    steps: list[StepRecord] = field(default_factory=list)  # topological order
    log_file: str | None = None
    report_html: str | None = None
    report_json: str | None = None
    message: str = ""

    @property
    def edges(self) -> list[tuple[str, str]]:
        return [(dep, s.name) for s in self.steps for dep in s.depends_on]

    @property
    def duration_s(self) -> float | None:
        if self.started and self.ended:
            return (self.ended - self.started).total_seconds()
        return None

    def step(self, name: str) -> StepRecord:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        def conv(value: Any) -> Any:
            if isinstance(value, dt.datetime):  # with the UTC offset: a naive time is this machine's local time
                return value.astimezone().isoformat()
            if isinstance(value, dt.date):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: conv(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [conv(v) for v in value]
            return value

        out = conv(asdict(self))
        out["edges"] = [list(e) for e in self.edges]
        out["duration_s"] = self.duration_s
        return out
