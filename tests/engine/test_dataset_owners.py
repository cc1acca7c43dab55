from __future__ import annotations

from types import SimpleNamespace

from engine.dataset_owners import foreign_outputs, writers
from engine.spec import OutputSpec, PipelineSpec, StepSpec
from engine.step_message import written_message


def row(job_id: str, paths: dict[str, str] | None) -> SimpleNamespace:
    message = written_message({}, {}, paths) if paths is not None else "failed: boom"
    return SimpleNamespace(job_id=job_id, message=message)


ROWS = [row("preprocess.ingest_2024-01-04", {"quarantine": "quarantine"}),
        row("preprocess.eod_2024-01-04", {"trade": "trade", "quote": "quote"}),
        row("preprocess_2024-01-04", None), row("analyze.bars_2024-01-04", {"bars": "analytics/bars_1m"}),
        row("preprocess.eod_2024-01-05", None), row("not-a-job", {"x": "x"})]


def spec(name: str, *paths: str) -> PipelineSpec:
    steps = {f"s{i}": StepSpec(name=f"s{i}", transform=None, sql="SELECT 1", inputs={}, params={},
                               outputs={"o": OutputSpec("o", path)}, depends_on=(), line=10 + i)
             for i, path in enumerate(paths)}
    return PipelineSpec(name=name, file="x.yaml", steps=steps)


def test_the_writers_of_other_pipelines_come_from_their_step_rows() -> None:
    assert writers(ROWS, besides="analyze") == {("quarantine",): ("preprocess", "ingest"),
                                                ("trade",): ("preprocess", "eod"), ("quote",): ("preprocess", "eod")}


def test_an_output_into_over_or_inside_another_pipelines_dataset_is_a_problem_and_its_own_are_not() -> None:
    problems = foreign_outputs(spec("analyze", "analytics/bars_1m", "quarantine", "trade/extra", "analytics/x",
                                    "tradex"), ROWS)
    assert problems == [
        "x.yaml:11: steps.s1.outputs.o.path: dataset 'quarantine' would overwrite 'quarantine', which pipeline "
        "'preprocess' writes (step ingest); a dataset belongs to the one pipeline that writes it: choose another "
        "path",
        "x.yaml:12: steps.s2.outputs.o.path: dataset 'trade/extra' would overwrite 'trade', which pipeline "
        "'preprocess' writes (step eod); a dataset belongs to the one pipeline that writes it: choose another path"]
    assert foreign_outputs(spec("preprocess", "trade", "quarantine"), ROWS) == []
