"""transforms/analytics/exchange_share.py against the plain-Python oracle on the generated market."""

from __future__ import annotations

from tests.transforms.analytics import oracle
from tests.transforms.analytics.helpers import compare, ctx, keyed, params
from transforms.analytics.exchange_share import exchange_share


def test_exchange_share_matches_oracle(spark, frames, market):
    out = keyed(exchange_share(ctx(spark, None), {"trades": frames[0]}, params("exchange_share")),
                ["trade_dt", "symbol", "exchange"])
    compare(out, oracle.exchange_share(market.trades), ["volume", "trade_count", "symbol_volume", "share"])
