"""Exchange share: each venue's volume and its fraction of the symbol's volume for the day."""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from engine.registry import transform
from transforms.analytics.timeutil import require_columns


@transform(
    "exchange_share",
    description="Per symbol and venue: volume, trade count and share of the symbol's volume.",
    params_schema="exchange_share.json",
    inputs=["trades"],
)
def exchange_share(ctx: Any, inputs: dict[str, DataFrame], params: dict[str, Any]) -> DataFrame:
    """Aggregate first (small), then a window over the aggregate for the symbol's total."""
    df = inputs["trades"]
    by, venue, size = list(params["by"]), params["venue"], params["size"]
    require_columns(df, [*by, venue, size], transform="exchange_share", input_name="trades")
    per_venue = df.groupBy(*by, venue).agg(
        F.sum(F.col(size).cast("long")).alias("volume"),
        F.count(F.lit(1)).alias("trade_count"),
    )
    total = F.sum("volume").over(Window.partitionBy(*by))
    return per_venue.withColumn("symbol_volume", total).withColumn(
        "share", F.col("volume") / F.col("symbol_volume")
    )
