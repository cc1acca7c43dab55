"""Prior close: for each key, its last trade on its own latest trading date before the processing date."""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from engine.registry import transform
from transforms.analytics.timeutil import require_columns, require_date


@transform(
    "prior_close",
    description="Per key, the last trade price on the key's latest trading date before the run date.",
    params_schema="prior_close.json",
    inputs=["history"],
)
def prior_close(ctx: Any, inputs: dict[str, DataFrame], params: dict[str, Any]) -> DataFrame:
    """One aggregation over the history: the maximum of (trade_dt, order...) picks the latest date and the
    last trade on it in one pass, so days a key did not trade (weekends, holidays) are skipped naturally.

    The input is earlier trades, or (in analyze.yaml) each key's last trade per date from trade_close/, which
    gives the same closes from far fewer rows; rows on or after the run date are ignored here, so a wider read
    cannot leak today's trades into the close.
    """
    date = require_date(ctx, "prior_close")
    df = inputs["history"]
    by, order, value = list(params["by"]), list(params["order_by"]), params["value"]
    order = [c for c in order if c not in by]
    require_columns(df, ["trade_dt", *by, *order, value], transform="prior_close", input_name="history")
    last = F.max_by(
        F.struct(F.col("trade_dt").alias("close_dt"), F.col(value).alias("close_pr")),
        F.struct("trade_dt", *order),
    )
    out_col = params["output_col"]
    return (
        df.where(F.col("trade_dt") < F.lit(date))
        .groupBy(*by)
        .agg(last.alias("_last"))
        .select(
            F.lit(date).alias("trade_dt"),
            *by,
            F.col("_last.close_pr").cast("double").alias(out_col),
            F.col("_last.close_dt").alias("close_dt"),
        )
    )
