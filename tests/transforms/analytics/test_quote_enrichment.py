"""transforms/analytics/quote_enrichment.py, fed as analyze.yaml wires it, against the plain-Python oracle."""

from __future__ import annotations

import pytest

from tests.transforms.analytics import oracle
from tests.transforms.analytics.helpers import MON, THU, TRADE_KEY, WINDOW, compare, keyed
from tests.transforms.analytics.helpers import pipeline_day as _pipeline_day


@pytest.mark.parametrize("date", [THU, MON])
def test_quote_enrichment_matches_oracle(spark, frames, market, date):
    out = keyed(_pipeline_day(spark, frames, date)["enriched"], TRADE_KEY)
    expected = oracle.quote_enrichment(market.quotes_on(date), market.trades_on(date), date, WINDOW, market.trades)
    compare(out, expected, ["bid_pr", "ask_pr", "bid_size", "ask_size", "last_trade_pr", "last_mov_avg_pr",
                            "close_pr", "bid_pr_mv", "ask_pr_mv"])
    before_first = [k for k, v in expected.items() if v["last_trade_pr"] is None]
    assert len(before_first) >= 3 * 4 * 2 - 2 * 3, "quotes before the first trade are expected"
    if date == THU:
        assert all(v["close_pr"] is None for v in out.values())
    else:
        assert all(v["close_pr"] is not None for v in out.values())


def test_quote_enrichment_columns(spark, frames):
    df = _pipeline_day(spark, frames, MON)["enriched"]
    assert df.columns == ["trade_dt", "symbol", "exchange", "event_tm", "event_seq_nb", "bid_pr", "bid_size",
                          "ask_pr", "ask_size", "last_trade_pr", "last_mov_avg_pr", "close_pr", "bid_pr_mv",
                          "ask_pr_mv"]


def test_quote_enrichment_plan_has_no_join_of_trades_and_quotes(spark, frames):
    plan = _pipeline_day(spark, frames, MON)["enriched"]._jdf.queryExecution().executedPlan().toString()
    assert "SortMergeJoin" not in plan and "BroadcastNestedLoopJoin" not in plan and "Cartesian" not in plan
    assert "BroadcastHashJoin" in plan  # only the small prior-close table is joined
