"""transforms/analytics/market_summary.py over daily_metrics' output, against the plain-Python oracle."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.transforms.analytics import oracle
from tests.transforms.analytics.helpers import FRI, MON, ctx, keyed, params
from tests.transforms.analytics.helpers import pipeline_day as _pipeline_day
from transforms.analytics.market_summary import market_summary


@pytest.mark.parametrize("top_n", [5, 2])
def test_market_summary_matches_oracle(spark, frames, market, top_n):
    for date in (FRI, MON):
        daily_df = _pipeline_day(spark, frames, date)["daily"]
        out = keyed(market_summary(ctx(spark, date), {"daily": daily_df}, params("market_summary", top_n=top_n)),
                    ["trade_dt"])
        daily = oracle.daily_metrics(market.trades_on(date), market.quotes_on(date), date, market.trades)
        exp = oracle.market_summary(daily, top_n)[date]
        got = out[(date,)]
        for col in ("symbol_count", "advancers", "decliners", "total_volume", "total_trades"):
            assert got[col] == exp[col], col
        for col in ("top_gainers", "top_losers"):
            assert [g["symbol"] for g in got[col]] == [s for s, _ in exp[col]]
            assert all(abs(g["return"] - r) <= 1e-9 * abs(r) for g, (_, r) in zip(got[col], exp[col], strict=True))


def test_a_day_without_trades_gets_a_market_summary_row_of_zeros(spark, frames):
    daily_df = _pipeline_day(spark, frames, FRI)["daily"]
    holiday = FRI + dt.timedelta(days=3)
    out = keyed(market_summary(ctx(spark, holiday), {"daily": daily_df.limit(0)}, params("market_summary")),
                ["trade_dt"])
    assert out == {(holiday,): {"trade_dt": holiday, "symbol_count": 0, "advancers": 0, "decliners": 0,
                                "unchanged": 0, "total_volume": 0, "total_trades": 0, "top_gainers": [],
                                "top_losers": []}}
    both = keyed(market_summary(ctx(spark, holiday), {"daily": daily_df}, params("market_summary")), ["trade_dt"])
    assert sorted(both) == [(FRI,), (holiday,)] and both[(FRI,)]["symbol_count"] > 0
