"""Each analytics transform against the independent plain-Python oracle on generated market data."""

from __future__ import annotations

import bisect
import datetime as dt
import math
import random
import re

import jsonschema
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


# Edge cases of the running-total moving average, each against the mean computed directly in plain Python.
_MA_SCHEMA = "sym STRING, venue STRING, tm TIMESTAMP_NTZ, seq LONG, px DOUBLE"
_T0 = dt.datetime(2020, 8, 10, 9, 30)
_US1 = dt.timedelta(microseconds=1)


def _direct_means(rows: list[tuple], window: dt.timedelta, by: tuple[int, ...]) -> dict[tuple, float | None]:
    """(sym, venue, seq) -> sum / count of the non-null prices of the rows with the same `by` fields and time in
    [t - window, t]; a null-time row averages the null-time rows of its keys. Python's own float arithmetic:
    NaN in the window gives NaN, inf and -inf give NaN, inf alone gives inf, as Spark's avg does."""
    out = {}
    for r in rows:
        same = [o for o in rows if all(o[i] == r[i] for i in by)]
        if r[2] is None:
            inside = [o[4] for o in same if o[2] is None and o[4] is not None]
        else:
            inside = [o[4] for o in same if o[2] is not None and r[2] - window <= o[2] <= r[2] and o[4] is not None]
        out[(r[0], r[1], r[3])] = sum(inside) / len(inside) if inside else None
    return out


def _check_means(spark, rows: list[tuple], window: str, by: list[str] | None = None, rel: float = 1e-12) -> None:
    by = by or ["sym", "venue"]
    df = spark.createDataFrame(rows, _MA_SCHEMA)
    p = params("moving_average", value="px", window=window, by=by, time_col="tm", output_col="ma")
    out = moving_average(ctx(spark, None), {"trades": df}, p)
    assert out.columns == ["sym", "venue", "tm", "seq", "px", "ma"]
    got = {(r.sym, r.venue, r.seq): r.ma for r in out.collect()}
    delta = dt.timedelta(microseconds=parse_duration_us(window))
    expected = _direct_means(rows, delta, tuple(["sym", "venue", "tm", "seq", "px"].index(c) for c in by))
    assert set(got) == set(expected)
    bad = [(k, got[k], e) for k, e in expected.items()
           if not (got[k] is None and e is None
                   or got[k] is not None and e is not None
                   and (math.isnan(got[k]) and math.isnan(e) or math.isclose(got[k], e, rel_tol=rel)))]
    assert not bad, f"{len(bad)} mismatches, first: {bad[:5]}"


def test_moving_average_window_edges_are_inclusive(spark):
    w = dt.timedelta(minutes=30)
    rows = [("A", "X", _T0, 1, 10.0), ("A", "X", _T0 + w - _US1, 2, 20.0), ("A", "X", _T0 + w, 3, 40.0),
            ("A", "X", _T0 + w + _US1, 4, 80.0), ("A", "X", _T0 + 2 * w, 5, 160.0),
            ("A", "X", _T0 + 2 * w + _US1, 6, 320.0)]
    _check_means(spark, rows, "30 minutes")
    # spelled out: the trade at 10:00 sees 09:30 (exactly one window back); 10:00:00.000001 does not
    got = {r.seq: r.ma for r in moving_average(ctx(spark, None), {"trades": spark.createDataFrame(rows, _MA_SCHEMA)},
                                               params("moving_average", value="px", by=["sym"], time_col="tm",
                                                      output_col="ma")).collect()}
    assert got[3] == (10.0 + 20.0 + 40.0) / 3 and got[4] == (20.0 + 40.0 + 80.0) / 3


def test_moving_average_many_trades_share_a_time(spark):
    rng = random.Random(5)
    tie, edge = _T0 + dt.timedelta(minutes=40), _T0 + dt.timedelta(minutes=10)
    times = [tie] * 60 + [edge] * 7 + [_T0 + dt.timedelta(seconds=rng.randrange(3600)) for _ in range(40)]
    rows = [("A", "X", tm, seq, round(rng.uniform(10, 1000), 2)) for seq, tm in enumerate(times)]
    _check_means(spark, rows, "30 minutes")
    _check_means(spark, rows, "1 second")


def test_moving_average_single_trade_and_long_gaps(spark):
    rows = [("ONE", "X", _T0 + dt.timedelta(hours=2), 1, 12.5),
            ("GAP", "X", _T0, 1, 10.0), ("GAP", "X", _T0 + dt.timedelta(seconds=1), 2, 11.0),
            ("GAP", "X", _T0 + dt.timedelta(hours=3), 3, 100.0), ("GAP", "X", _T0 + dt.timedelta(hours=3), 4, 300.0),
            ("GAP", "X", _T0 + dt.timedelta(hours=6), 5, 7.0)]
    _check_means(spark, rows, "30 minutes")


def test_moving_average_interleaved_keys(spark):
    rng = random.Random(9)
    rows = [(rng.choice(["A", "B", "C"]), rng.choice(["X", "Y"]),
             _T0 + dt.timedelta(milliseconds=rng.randrange(0, 3_600_000, 250)), seq, round(rng.uniform(10, 500), 3))
            for seq in range(400)]
    _check_means(spark, rows, "5 minutes")
    _check_means(spark, rows, "5 minutes", by=["sym"])  # one key spans both venues


def test_moving_average_null_values_and_null_times(spark):
    m = dt.timedelta(minutes=1)
    rows = [("A", "X", _T0, 1, 10.0), ("A", "X", _T0 + m, 2, None), ("A", "X", _T0 + m, 3, 14.0),
            ("A", "X", _T0 + 5 * m, 4, None),  # the only trade of its window: no price, null mean
            ("A", "X", None, 5, 3.0), ("A", "X", None, 6, 5.0), ("A", "X", None, 7, None),  # averaged together
            ("B", "X", None, 1, None)]
    _check_means(spark, rows, "2 minutes")


def test_moving_average_nan_and_infinity_stay_in_their_windows(spark):
    m, inf = dt.timedelta(minutes=1), float("inf")
    rows = [("A", "X", _T0, 1, float("nan")), ("A", "X", _T0 + m, 2, 3.0), ("A", "X", _T0 + 10 * m, 3, 4.0),
            ("A", "X", _T0 + 11 * m, 4, inf), ("A", "X", _T0 + 12 * m, 5, -inf), ("A", "X", _T0 + 20 * m, 6, 2.0),
            ("A", "X", _T0 + 21 * m, 7, -inf), ("A", "X", _T0 + 30 * m, 8, 1.0)]
    _check_means(spark, rows, "2 minutes")


def test_moving_average_an_outlier_price_leaves_the_later_means_of_its_key_exact(spark):
    """A fat-finger price of 1.2e19 (a valid positive number) entered the running sums whole, and the means of
    its key for the rest of the day came out as 0.0 instead of 17 once it had left the window."""
    h, m = dt.timedelta(hours=1), dt.timedelta(minutes=1)
    rows = [("A", "X", _T0, 1, 1.2e19), ("A", "X", _T0 + 2 * h, 2, 17.0), ("A", "X", _T0 + 2 * h + m, 3, 17.5),
            ("B", "X", _T0, 1, 1e17), ("B", "X", _T0 + 2 * h, 2, 17.0),
            ("C", "X", _T0, 1, 1.2e10), ("C", "X", _T0 + h, 2, 0.0123), ("C", "X", _T0 + h + m, 3, 0.0124),
            ("D", "X", _T0, 1, 5e19), ("D", "X", _T0 + 10 * m, 2, 3.0), ("D", "X", _T0 + h, 3, 3.25),
            ("E", "X", _T0, 1, -4.4e18), ("E", "X", _T0 + h, 2, 5.0),
            ("F", "X", _T0, 1, 123456789.123), ("F", "X", _T0 + m, 2, 9.5e15), ("F", "X", _T0 + h, 3, 1e-7)]
    _check_means(spark, rows, "30 minutes", rel=1e-15)


@pytest.mark.parametrize("window", ["30 minutes", "2 seconds"])
def test_moving_average_precision_on_a_long_day(spark, window):
    """24k trades per key; one key's price jumps between ~10 and ~1000, so small windows follow large running
    totals. Exact reference: math.fsum over the window's prices."""
    rng = random.Random(13)
    rows = []
    for sym, level in (("STEADY", 1000.0), ("JUMPY", None)):
        price = level
        for seq in range(24_000):
            if level is None:
                price = rng.choice([10.0, 1000.0]) * (1.0 + rng.gauss(0.0, 0.01))
            else:
                price *= 1.0 + rng.gauss(0.0, 0.0005)
            rows.append((sym, "X", _T0 + dt.timedelta(milliseconds=rng.randrange(23_400_000)), seq, price))
    df = spark.createDataFrame(rows, _MA_SCHEMA)
    p = params("moving_average", value="px", window=window, by=["sym"], time_col="tm", output_col="ma")
    got = {(r.sym, r.seq): r.ma for r in moving_average(ctx(spark, None), {"trades": df}, p).collect()}
    delta = dt.timedelta(microseconds=parse_duration_us(window))
    worst = 0.0
    for sym in ("STEADY", "JUMPY"):
        ordered = sorted((r for r in rows if r[0] == sym), key=lambda r: r[2])
        times, prices = [r[2] for r in ordered], [r[4] for r in ordered]
        for r in ordered:
            lo, hi = bisect.bisect_left(times, r[2] - delta), bisect.bisect_right(times, r[2])
            exact = math.fsum(prices[lo:hi]) / (hi - lo)
            worst = max(worst, abs(got[(sym, r[3])] - exact) / exact)
    # 1e-9 is the requirement; the split into exact high parts keeps it near 1e-16 (a plain difference of
    # running sums reaches ~1e-10 here)
    assert worst <= 1e-12, worst


def test_moving_average_plan_is_one_shuffle_and_one_window(spark, frames):
    out = moving_average(ctx(spark, None), {"trades": frames[0]}, params("moving_average"))
    plan = out._jdf.queryExecution().executedPlan().toString()
    assert len(re.findall(r"(?<!Broadcast)Exchange ", plan)) == 1, plan
    assert len(re.findall(r"\bWindow \[", plan)) == 1, plan
    assert out.columns == [*frames[0].columns, "mov_avg_pr"]


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


def test_bad_parameters_and_inputs_fail_with_one_line(spark, frames):
    with pytest.raises(jsonschema.ValidationError, match="'7 fortnights' does not match"):
        params("bars", bar_length="7 fortnights")  # the spec's validation refuses it before Spark starts
    called_directly = {**params("bars"), "bar_length": "7 fortnights"}  # as another plugin might call it
    with pytest.raises(TransformError, match="bar_length '7 fortnights' is not a duration"):
        bars(ctx(spark, None), {"trades": frames[0]}, called_directly)
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
