"""Spark's parser checks every SQL text of a run before its first step computes."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from engine.config import Config, StorageConfig, TrackerConfig
from engine.errors import StepFailed
from engine.registry import REGISTRY
from engine.runner import PipelineRunner
from engine.spec import StepSpec
from engine.spec_loader import load_spec
from engine.sql_check import step_texts, syntax_errors
from engine.storage.local import LocalStorage
from engine.tracker.factory import open_tracker
from engine.tracker.guard import JobGuard

DATE = dt.date(2024, 1, 5)


def _step(name: str, sql: str | None = None, transform: str | None = None, params=None, expectations=()) -> StepSpec:
    return StepSpec(name=name, transform=transform, sql=sql, inputs={}, params=params or {}, outputs={},
                    depends_on=(), expectations=tuple(expectations))


def test_each_text_of_a_step_is_named_for_where_it_is_in_the_spec() -> None:
    step = _step("s", sql="SELECT 1", expectations=[{"name": "pos", "expr": "x > 0"}, {"name": "n", "unique": ["x"]}])
    assert [(t.where, t.text, t.is_query) for t in step_texts(step, with_expectations=True)] == [
        ("sql", "SELECT 1", True), ("expectations[0] (pos) expr", "x > 0", False)]
    assert [t.where for t in step_texts(step, with_expectations=False)] == ["sql"]
    read = _step("r", transform="read_dataset", params={"path": "trade", "where": "trade_dt < DATE'2024-01-05'"})
    assert [t.where for t in step_texts(read, with_expectations=True)] == ["params.where"]


def test_spark_s_parser_finds_the_syntax_errors_and_accepts_what_spark_accepts(spark) -> None:
    good = _step("good", sql="WITH x AS (SELECT 1 AS a) SELECT transform(array(a), v -> v + 1) AS b FROM x",
                 expectations=[{"name": "within", "expr": "vwap BETWEEN low * (1 - 1e-12) AND high"},
                               {"name": "any", "expr": "exists(arr, x -> x > 0) AND s RLIKE '^[A-Z]+$'"}])
    bad = _step("bad", sql="SELECT a FROM t WHERE a >", expectations=[{"name": "ge", "expr": "bid_pr =< ask_pr"}])
    feeder = _step("feeder", sql="SELECT 1", expectations=[{"name": "broken", "expr": "a > > 0"}])
    read = _step("read", transform="read_dataset", params={"path": "trade", "where": "trade_dt < < 1"})
    errors = syntax_errors(spark, [good, bad, feeder, read], writing={"good", "bad", "read"})
    assert [name for name, _ in errors] == ["bad", "bad", "read"], errors
    assert errors[0][1].startswith("sql is not valid Spark SQL: [PARSE_SYNTAX_ERROR] Syntax error at or near end")
    assert errors[1][1].startswith("expectations[0] (ge) expr is not valid Spark SQL: [PARSE_SYNTAX_ERROR] Syntax "
                                   "error at or near '<'")
    assert "(line 1, pos 8)" in errors[1][1] and "== SQL ==" not in errors[1][1]
    assert errors[2][1].startswith("params.where is not valid Spark SQL")


SPEC = """
pipeline: parse_first
modules: [{mod}]
steps:
  one:
    transform: t_counted
    params: {{log: "{log}"}}
    outputs: {{one: {{path: r/one, partition_by: [day]}}}}
  two:
    sql: SELECT id, day FROM one
    inputs: {{one: one}}
    outputs: {{two: {{path: r/two, partition_by: [day]}}}}
    expectations:
      - {{name: positive, expr: "id >= 0 AND AND id < 100"}}
"""


def test_a_run_with_a_broken_expectation_fails_before_any_step_computes_or_writes(
        tmp_path, write_spec, test_transforms_module, spark, caplog) -> None:
    log_file = tmp_path / "computed.log"
    spec_path = write_spec(SPEC.format(mod=test_transforms_module, log=log_file))
    config = Config(storage=StorageConfig(root=str(tmp_path / "wh")),
                    tracker=TrackerConfig(sqlite_path=str(tmp_path / "t.sqlite")), base_dir=tmp_path)
    storage = LocalStorage(tmp_path / "wh")
    spec = load_spec(spec_path, date=DATE, config=config)
    with open_tracker(config) as tracker, caplog.at_level(logging.ERROR, logger="tickflow.runner"):
        guard = JobGuard(tracker, spec.name, DATE, lease_seconds=30, log=logging.getLogger("tickflow.test"))
        runner = PipelineRunner(spec, config, date=DATE, storage=storage, raw_storage=storage, registry=REGISTRY,
                                spark_provider=lambda: spark, guard=guard)
        with pytest.raises(StepFailed, match=r"step 'two' .*\(positive\) expr is not valid Spark SQL"):
            runner.run()
        assert tracker.get(f"parse_first.two_{DATE}").status == "failed"
        assert tracker.get(f"parse_first_{DATE}").status == "failed"
        assert tracker.get(f"parse_first.one_{DATE}") is None  # never started
    assert not log_file.exists() and not (tmp_path / "wh" / "r").exists()
    assert "failed before any step ran" in caplog.text
