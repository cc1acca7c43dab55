"""Daily metrics per symbol: OHLC, volume, VWAP, return on the prior close, realized volatility, spreads."""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from engine.registry import transform
from transforms.analytics.timeutil import require_columns

BAR_COLUMNS = ["bar_start", "open", "high", "low", "close", "volume", "trade_count", "notional"]


def _trade_side(bars: DataFrame, by: list[str]) -> DataFrame:
    """Day OHLCV from the 1-minute bars (small), and realized volatility from consecutive bar closes."""
    prev_close = F.lag("close").over(Window.partitionBy(*by).orderBy("bar_start"))
    log_ret = F.log(F.col("close") / prev_close)
    return (
        bars.withColumn("_r2", log_ret * log_ret)
        .groupBy(*by)
        .agg(
            F.min_by("open", "bar_start").alias("open"),
            F.max("high").alias("high"),
            F.min("low").alias("low"),
            F.max_by("close", "bar_start").alias("close"),
            F.sum("volume").alias("volume"),
            F.sum("trade_count").alias("trade_count"),
            F.sum("notional").alias("_notional"),
            F.count(F.lit(1)).alias("bar_count"),
            # sum() of no returns (a single bar) is null; no price move means zero volatility
            F.sqrt(F.coalesce(F.sum("_r2"), F.lit(0.0))).alias("realized_vol"),
        )
        .withColumn("vwap", F.col("_notional") / F.col("volume"))
        .drop("_notional")
    )


def _quote_side(quotes: DataFrame, by: list[str]) -> DataFrame:
    spread = F.col("ask_pr") - F.col("bid_pr")
    mid = (F.col("ask_pr") + F.col("bid_pr")) / 2
    return quotes.groupBy(*by).agg(
        F.count(F.lit(1)).alias("quote_count"),
        F.avg(spread).alias("mean_spread"),
        F.avg(F.lit(10000.0) * spread / mid).alias("mean_spread_bps"),
    )


@transform(
    "daily_metrics",
    description="Per symbol and day: OHLC, volume, VWAP, return, realized volatility, quoted spreads.",
    params_schema="daily_metrics.json",
    inputs=["bars", "quotes", "closes"],
)
def daily_metrics(ctx: Any, inputs: dict[str, DataFrame], params: dict[str, Any]) -> DataFrame:
    """`bars` must be 1-minute bars (realized volatility is defined on them), `closes` the consolidated
    prior close per symbol. A symbol with quotes but no trades gets a row with zero volume."""
    bars_df, quotes, closes = inputs["bars"], inputs["quotes"], inputs["closes"]
    by, close_col = list(params["by"]), params["close_col"]
    require_columns(bars_df, [*by, *BAR_COLUMNS], transform="daily_metrics", input_name="bars")
    require_columns(quotes, [*by, "bid_pr", "ask_pr"], transform="daily_metrics", input_name="quotes")
    close_keys = [c for c in by if c in closes.columns]
    require_columns(closes, [*close_keys, close_col], transform="daily_metrics", input_name="closes")

    day = _trade_side(bars_df, by).join(_quote_side(quotes, by), on=by, how="full_outer")
    prior = closes.select(*close_keys, F.col(close_col).alias("prior_close"),
                          F.col("close_dt").alias("prior_close_dt") if "close_dt" in closes.columns
                          else F.lit(None).cast("date").alias("prior_close_dt"))
    day = day.join(F.broadcast(prior), on=close_keys, how="left")
    return day.select(
        *by,
        "open", "high", "low", "close",
        F.coalesce("volume", F.lit(0)).cast("long").alias("volume"),
        F.coalesce("trade_count", F.lit(0)).cast("long").alias("trade_count"),
        "vwap",
        "prior_close", "prior_close_dt",
        (F.col("close") / F.col("prior_close") - 1).alias("return"),
        "realized_vol",
        F.coalesce("bar_count", F.lit(0)).cast("long").alias("bar_count"),
        F.coalesce("quote_count", F.lit(0)).cast("long").alias("quote_count"),
        "mean_spread", "mean_spread_bps",
    )
