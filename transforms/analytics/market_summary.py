"""Market summary: one row per day with breadth (advancers, decliners), volume and top movers."""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from engine.registry import transform
from transforms.analytics.timeutil import require_columns


def _top(ret_cond: Any, sort_key: Any, n: int) -> Any:
    """The first n of {symbol, return} sorted by (sort_key, symbol): collect_list skips non-matching rows."""
    picked = F.collect_list(F.when(ret_cond, F.struct(sort_key.alias("k"), F.col("symbol"), F.col("return"))))
    return F.transform(
        F.slice(F.array_sort(picked), 1, n),
        lambda x: F.struct(x["symbol"].alias("symbol"), x["return"].alias("return")),
    )


@transform(
    "market_summary",
    description="Per day: symbols traded, advancers, decliners, total volume, top gainers and losers.",
    params_schema="market_summary.json",
    inputs=["daily"],
)
def market_summary(ctx: Any, inputs: dict[str, DataFrame], params: dict[str, Any]) -> DataFrame:
    """Top movers are built inside the aggregate (sorted arrays), so nothing is collected to the driver.
    Gainers have return > 0 (largest first), losers return < 0 (smallest first); ties go by symbol."""
    df = inputs["daily"]
    require_columns(df, ["trade_dt", "symbol", "return", "volume", "trade_count"], transform="market_summary",
                    input_name="daily")
    n = int(params["top_n"])
    ret = F.col("return")
    summary = df.groupBy("trade_dt").agg(
        F.count(F.when(F.col("trade_count") > 0, True)).alias("symbol_count"),
        F.count(F.when(ret > 0, True)).alias("advancers"),
        F.count(F.when(ret < 0, True)).alias("decliners"),
        F.count(F.when(ret == 0, True)).alias("unchanged"),
        F.sum("volume").cast("long").alias("total_volume"),
        F.sum("trade_count").cast("long").alias("total_trades"),
        _top(ret > 0, -ret, n).alias("top_gainers"),
        _top(ret < 0, ret, n).alias("top_losers"),
    )
    if ctx.date is None:
        return summary
    # A day without trades (an exchange holiday delivering empty files) still gets its row: zero counts, no movers.
    day = ctx.spark.createDataFrame([(ctx.date,)], "trade_dt date")
    zero = F.lit(0).cast("long")
    return day.join(summary, "trade_dt", "full_outer").select(
        "trade_dt", *[F.coalesce(F.col(c), zero).alias(c) for c in ("symbol_count", "advancers", "decliners",
                                                                       "unchanged", "total_volume", "total_trades")],
        *[F.coalesce(F.col(c), F.array().cast(summary.schema[c].dataType)).alias(c)
          for c in ("top_gainers", "top_losers")],
    )
