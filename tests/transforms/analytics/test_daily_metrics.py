"""transforms/analytics/daily_metrics.py, fed as analyze.yaml wires it, against the plain-Python oracle."""

from __future__ import annotations

import pytest

from tests.transforms.analytics import oracle
from tests.transforms.analytics.helpers import FRI, MON, compare, keyed
from tests.transforms.analytics.helpers import pipeline_day as _pipeline_day


@pytest.mark.parametrize("date", [FRI, MON])
def test_daily_metrics_match_oracle(spark, frames, market, date):
    out = keyed(_pipeline_day(spark, frames, date)["daily"], ["trade_dt", "symbol"])
    expected = oracle.daily_metrics(market.trades_on(date), market.quotes_on(date), date, market.trades)
    compare(out, expected, ["open", "high", "low", "close", "volume", "trade_count", "vwap", "prior_close",
                            "return", "realized_vol", "bar_count", "quote_count", "mean_spread",
                            "mean_spread_bps"])
    if date == FRI:
        assert out[(FRI, "SYMD")]["trade_count"] == 0 and out[(FRI, "SYMD")]["quote_count"] > 0
