"""transforms/analytics/prior_close.py against the plain-Python oracle on the generated market."""

from __future__ import annotations

import pytest

from engine.errors import TransformError
from tests.transforms.analytics import oracle
from tests.transforms.analytics.helpers import FRI, MON, THU, compare, ctx, keyed, params
from transforms.analytics.prior_close import prior_close


@pytest.mark.parametrize("date", [THU, FRI, MON])
@pytest.mark.parametrize("by", [["symbol", "exchange"], ["symbol"]])
def test_prior_close_skips_weekends_and_days_without_trades(spark, frames, market, date, by):
    out = keyed(prior_close(ctx(spark, date), {"history": frames[0]}, params("prior_close", by=by)), by)
    expected = oracle.prior_close(market.trades, date, tuple(by))
    compare(out, {k: {"close_pr": v[0], "close_dt": v[1], "trade_dt": date} for k, v in expected.items()},
            ["close_pr", "close_dt", "trade_dt"])
    if date == MON and by == ["symbol", "exchange"]:
        assert out[("SYMC", "NASDAQ")]["close_dt"] == THU  # did not trade on Friday
        assert out[("SYMD", "NYSE")]["close_dt"] == THU
        assert out[("SYMA", "NYSE")]["close_dt"] == FRI  # across the weekend


def test_prior_close_needs_a_date(spark, frames):
    with pytest.raises(TransformError, match="needs a processing date"):
        prior_close(ctx(spark, None), {"history": frames[0]}, params("prior_close"))
