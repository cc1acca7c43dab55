"""transforms/analytics/bars.py against the plain-Python oracle on the generated market."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.transforms.analytics import oracle
from tests.transforms.analytics.helpers import compare, ctx, keyed, params
from transforms.analytics.bars import bars
from transforms.analytics.timeutil import parse_duration_us


@pytest.mark.parametrize("length", ["1 minute", "5 minutes"])
def test_bars_match_oracle(spark, frames, market, length):
    out = keyed(bars(ctx(spark, None), {"trades": frames[0]}, params("bars", bar_length=length)),
                ["trade_dt", "symbol", "bar_start"])
    delta = dt.timedelta(microseconds=parse_duration_us(length))
    expected = oracle.bars(market.trades, delta)
    compare(out, expected, ["open", "high", "low", "close", "volume", "trade_count", "vwap"])
    assert all(v["bar_end"] - v["bar_start"] == delta for v in out.values())
    # cross-exchange tie at 10:00:00: the open is NASDAQ's trade (exchange order), checked by the oracle
    assert any(k[2].time() == dt.time(10, 0) for k in out)
