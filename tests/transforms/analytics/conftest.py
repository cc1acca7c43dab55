"""Fixtures shared by the analytics transform tests: the generated market, as Python rows and as cached frames.

Both are session-scoped so that the test modules of the transforms share one build of each (the frames are cached
in Spark once); no test mutates them. A test module may still define its own `market` (test_analyze_pipeline does,
with extra history rows), which overrides this one there.
"""

from __future__ import annotations

import pytest

from tests.transforms.analytics.builder import Market, build_market, quotes_df, trades_df


@pytest.fixture(scope="session")
def market() -> Market:
    return build_market()


@pytest.fixture(scope="session")
def frames(spark, market):
    t = trades_df(spark, market.trades).cache()
    q = quotes_df(spark, market.quotes).cache()
    yield t, q
    t.unpersist()
    q.unpersist()
