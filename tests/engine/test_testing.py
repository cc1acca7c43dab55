"""engine.testing: the supported way for a plugin's own tests to run a transform on small DataFrames."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.errors import TransformError
from engine.executor import StepContractError
from engine.registry import Registry, transform
from engine.testing import NoStorageInTest, TransformCallError, run_transform, transform_context

TRADES = [("2024-01-05", "AAA", "N", 100), ("2024-01-05", "AAA", "N", 200), ("2024-01-05", "AAA", "Q", 100),
          ("2024-01-05", "BBB", "Q", 50)]


@pytest.fixture(scope="module")
def trades(spark):
    return spark.createDataFrame(TRADES, "trade_dt string, symbol string, exchange string, trade_size long")


def test_a_built_in_transform_runs_with_its_schema_defaults(spark, trades):
    out = run_transform("exchange_share", spark, {"trades": trades}, date="2024-01-05")
    rows = {(r.symbol, r.exchange): (r.volume, r.trade_count, r.symbol_volume, r.share) for r in out.collect()}
    assert rows == {("AAA", "N"): (300, 2, 400, 0.75), ("AAA", "Q"): (100, 1, 400, 0.25),
                    ("BBB", "Q"): (50, 1, 50, 1.0)}
    by_venue = run_transform("exchange_share", spark, {"trades": trades}, {"by": ["trade_dt"]})
    assert {r.exchange: r.share for r in by_venue.collect()} == pytest.approx({"N": 300 / 450, "Q": 150 / 450})


def test_params_and_inputs_are_checked_as_a_spec_step_s_would_be(spark, trades):
    with pytest.raises(TransformCallError) as info:
        run_transform("exchange_share", spark, {"trade": trades}, {"venue": 3, "bys": ["symbol"]})
    msg = str(info.value)
    assert msg.startswith("transform 'exchange_share' (inputs: trades): ")
    assert "params.venue: 3 is an integer; expected a string" in msg
    assert "params.bys: unknown parameter 'bys' (did you mean 'by'?); expected one of: by, size, venue" in msg
    assert "inputs: missing 'trades' (did you mean 'trade'?)" in msg
    assert "inputs: 'trade' is not an input of it (did you mean 'trades'?)" in msg
    with pytest.raises(TransformCallError, match="inputs: 'trades' is a pandas.core.frame.DataFrame, not a "
                                                 "pyspark.sql.DataFrame"):
        run_transform("exchange_share", spark, {"trades": trades.toPandas()})


def test_an_unknown_transform_is_named_with_a_suggestion(spark, trades):
    with pytest.raises(TransformCallError, match="unknown transform 'exchange_shares' \\(did you mean "
                                                 "'exchange_share'\\?\\); import the module that defines it"):
        run_transform("exchange_shares", spark, {"trades": trades})


def test_a_plugin_transform_with_two_outputs_and_recorded_facts(spark, trades):
    reg = Registry()

    @transform("t_split_sizes", description="Small and large trades.", inputs=["trades"], outputs=["small", "big"],
               params_schema={"type": "object", "additionalProperties": False,
                              "properties": {"min_size": {"type": "integer", "default": 100}}}, registry=reg)
    def split(ctx, inputs, params):
        df = inputs["trades"]
        ctx.log.info("split at %d for %s", params["min_size"], ctx.date)
        ctx.record("min_size_used", params["min_size"])
        return {"small": df.where(df.trade_size < params["min_size"]),
                "big": df.where(df.trade_size >= params["min_size"])}

    ctx = transform_context(spark, date=dt.date(2024, 1, 5), step="sizes")
    outs = run_transform("t_split_sizes", spark, {"trades": trades}, ctx=ctx, registry=reg)
    assert {k: v.count() for k, v in outs.items()} == {"small": 1, "big": 3}
    assert ctx.metrics == {"min_size_used": 100} and ctx.log.name == "tickflow.step.sizes"

    @transform("t_pandas_result", description="Returns pandas.", inputs=["trades"], registry=reg)
    def to_pandas(ctx, inputs, params):
        return inputs["trades"].toPandas()

    with pytest.raises(StepContractError, match="got pandas.core.frame.DataFrame"):
        run_transform("t_pandas_result", spark, {"trades": trades}, registry=reg)


def test_the_test_context_s_readers(spark, tmp_path):
    """Without a folder, asking for a dataset is a clear refusal, not a None a transform takes for "no data"."""
    ctx = transform_context(spark, date="2024-01-05")
    assert ctx.date == dt.date(2024, 1, 5) and ctx.step == "test"
    with pytest.raises(NoStorageInTest, match=r"ctx.dataset_uri\('trade'\): this test context has no storage "
                                              r"root; pass storage_root=<a folder>"):
        ctx.dataset_uri("trade")
    with pytest.raises(NoStorageInTest, match=r"ctx.raw_uri\('csv/2024-01-05'\): .* pass raw_root="):
        ctx.raw_uri("csv/2024-01-05")
    (tmp_path / "wh" / "trade").mkdir(parents=True)
    (tmp_path / "raw" / "csv").mkdir(parents=True)
    ctx = transform_context(spark, storage_root=tmp_path / "wh", raw_root=tmp_path / "raw")
    assert ctx.dataset_uri("trade") == str(tmp_path / "wh" / "trade") and ctx.dataset_uri("quote") is None
    assert ctx.dataset_uri("trade", ["trade_dt=2024-01-05"]) == str(tmp_path / "wh" / "trade")
    assert ctx.raw_uri("csv") == str(tmp_path / "raw" / "csv") and ctx.raw_uri("json") is None
    with pytest.raises(TransformCallError, match="date '2024-13-01' is not a date like 2024-01-05"):
        transform_context(spark, date="2024-13-01")
    assert issubclass(NoStorageInTest, Exception) and not issubclass(NoStorageInTest, TransformError)
