"""Each analytics transform against the independent plain-Python oracle on generated market data."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.errors import TransformError
from tests.transforms.analytics import oracle
from tests.transforms.analytics.builder import DATES, build_market, quotes_df, trades_df
from tests.transforms.analytics.helpers import compare, ctx, keyed, params
from transforms.analytics.bars import bars
from transforms.analytics.daily_metrics import daily_metrics
from transforms.analytics.exchange_share import exchange_share
from transforms.analytics.market_summary import market_summary
from transforms.analytics.moving_average import moving_average
from transforms.analytics.prior_close import prior_close
from transforms.analytics.quote_enrichment import quote_enrichment
from transforms.analytics.timeutil import parse_duration_us

THU, FRI, MON = DATES
TRADE_KEY = ["trade_dt", "symbol", "exchange", "event_tm", "event_seq_nb"]
WINDOW = dt.timedelta(minutes=30)


@pytest.fixture(scope="module")
def market():
    return build_market()


@pytest.fixture(scope="module")
def frames(spark, market):
    t = trades_df(spark, market.trades).cache()
    q = quotes_df(spark, market.quotes).cache()
    yield t, q
    t.unpersist()
    q.unpersist()


def _day(df, date):
    return df.where(df.trade_dt == date)


def _pipeline_day(spark, frames, date):
    """The analyze DAG for one date, by direct calls: what analyze.yaml wires."""
    trades, quotes = _day(frames[0], date), _day(frames[1], date)
    c = ctx(spark, date)
    ma = moving_average(c, {"trades": trades}, params("moving_average"))
    closes = prior_close(c, {"history": frames[0]}, params("prior_close"))
    sym_closes = prior_close(c, {"history": frames[0]}, params("prior_close", by=["symbol"]))
    bars_1m = bars(c, {"trades": trades}, params("bars"))
    daily = daily_metrics(c, {"bars": bars_1m, "quotes": quotes, "closes": sym_closes}, params("daily_metrics"))
    return {"ma": ma, "closes": closes, "sym_closes": sym_closes, "bars": bars_1m, "daily": daily,
            "enriched": quote_enrichment(c, {"quotes": quotes, "trades": ma, "closes": closes},
                                         params("quote_enrichment"))}


def test_moving_average_matches_oracle_on_all_days(spark, frames, market):
    out = keyed(moving_average(ctx(spark, None), {"trades": frames[0]}, params("moving_average")), TRADE_KEY)
    expected = oracle.moving_average(market.trades, WINDOW)
    compare({k: {"m": v["mov_avg_pr"]} for k, v in out.items()}, {k: {"m": v} for k, v in expected.items()},
            ["m"])
    # the window's two edges count: some trade sees a trade exactly 30 minutes earlier
    edge = [t for t in market.trades if any(o["event_tm"] == t["event_tm"] - WINDOW and o["symbol"] == t["symbol"]
                                             and o["exchange"] == t["exchange"] for o in market.trades)]
    assert edge, "generated data lacks trades exactly one window apart"


def test_moving_average_window_and_column_are_parameters(spark, frames, market):
    p = params("moving_average", window="5 minutes", output_col="ma5")
    out = keyed(moving_average(ctx(spark, MON), {"trades": _day(frames[0], MON)}, p), TRADE_KEY)
    expected = oracle.moving_average(market.trades_on(MON), dt.timedelta(minutes=5))
    compare({k: {"m": v["ma5"]} for k, v in out.items()}, {k: {"m": v} for k, v in expected.items()}, ["m"])


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


@pytest.mark.parametrize("date", [FRI, MON])
def test_daily_metrics_match_oracle(spark, frames, market, date):
    out = keyed(_pipeline_day(spark, frames, date)["daily"], ["trade_dt", "symbol"])
    expected = oracle.daily_metrics(market.trades_on(date), market.quotes_on(date), date, market.trades)
    compare(out, expected, ["open", "high", "low", "close", "volume", "trade_count", "vwap", "prior_close",
                            "return", "realized_vol", "bar_count", "quote_count", "mean_spread",
                            "mean_spread_bps"])
    if date == FRI:
        assert out[(FRI, "SYMD")]["trade_count"] == 0 and out[(FRI, "SYMD")]["quote_count"] > 0


def test_exchange_share_matches_oracle(spark, frames, market):
    out = keyed(exchange_share(ctx(spark, None), {"trades": frames[0]}, params("exchange_share")),
                ["trade_dt", "symbol", "exchange"])
    compare(out, oracle.exchange_share(market.trades), ["volume", "trade_count", "symbol_volume", "share"])


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


def test_bad_parameters_and_inputs_fail_with_one_line(spark, frames):
    with pytest.raises(TransformError, match="bar_length '7 fortnights' is not a duration"):
        bars(ctx(spark, None), {"trades": frames[0]}, params("bars", bar_length="7 fortnights"))
    with pytest.raises(TransformError, match=r"input 'trades' lacks column\(s\) \['nope'\]"):
        moving_average(ctx(spark, None), {"trades": frames[0]}, params("moving_average", value="nope"))


def test_durations():
    assert parse_duration_us("30 minutes") == 30 * 60 * 10**6
    assert parse_duration_us("1 minute") == 60 * 10**6
    assert parse_duration_us("5 min") == 300 * 10**6
    assert parse_duration_us("500 ms") == 500_000
    assert parse_duration_us("2 hours") == 7200 * 10**6
    with pytest.raises(TransformError):
        parse_duration_us("0 seconds")
