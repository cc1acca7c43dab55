"""Time bars (OHLC, volume, trade count, VWAP) of a configurable length, per symbol by default."""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from engine.registry import transform
from transforms.analytics.timeutil import epoch_us, from_epoch_us, parse_duration_us, require_columns


@transform(
    "bars",
    description="OHLC bars with volume, trade count, notional and VWAP; the bar length is a parameter.",
    params_schema="bars.json",
    inputs=["trades"],
)
def bars(ctx: Any, inputs: dict[str, DataFrame], params: dict[str, Any]) -> DataFrame:
    """Bars start at multiples of the length counted from midnight (zone-less epoch arithmetic); open and
    close are the first and last trade in `order_by` order, so equal timestamps resolve deterministically.
    Only bars with trades exist."""
    df = inputs["trades"]
    by, order = list(params["by"]), list(params["order_by"])
    price, size, time_col = params["price"], params["size"], params["time_col"]
    require_columns(df, [*by, *order, price, size, time_col], transform="bars", input_name="trades")
    length_us = parse_duration_us(params["bar_length"], what="bar_length")
    us = epoch_us(time_col)
    start = from_epoch_us(us - F.pmod(us, F.lit(length_us)))
    ordering = F.struct(*order)
    px = F.col(price).cast("double")
    return (
        df.withColumn("bar_start", start)
        .groupBy(*by, "bar_start")
        .agg(
            F.min_by(px, ordering).alias("open"),
            F.max(px).alias("high"),
            F.min(px).alias("low"),
            F.max_by(px, ordering).alias("close"),
            F.sum(F.col(size).cast("long")).alias("volume"),
            F.count(F.lit(1)).alias("trade_count"),
            F.sum(px * F.col(size)).alias("notional"),
        )
        .select(
            *by,
            "bar_start",
            from_epoch_us(epoch_us("bar_start") + F.lit(length_us)).alias("bar_end"),
            "open", "high", "low", "close", "volume", "trade_count", "notional",
            (F.col("notional") / F.col("volume")).alias("vwap"),
        )
    )
