"""Trade moving average: each trade gets the mean price of the trades of the last `window` up to itself."""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from engine.registry import transform
from transforms.analytics.timeutil import epoch_us, parse_duration_us, require_columns

_US = "_tf_ma_us"


@transform(
    "moving_average",
    description="Adds the mean of a column over [time - window, time] (inclusive, time-based) per key.",
    params_schema="moving_average.json",
    inputs=["trades"],
)
def moving_average(ctx: Any, inputs: dict[str, DataFrame], params: dict[str, Any]) -> DataFrame:
    """A RANGE frame over event time in microseconds, so every trade at the window's two edges counts,
    including all trades sharing the current trade's time (a ROWS frame would not)."""
    df = inputs["trades"]
    by, value, time_col = list(params["by"]), params["value"], params["time_col"]
    require_columns(df, [*by, value, time_col], transform="moving_average", input_name="trades")
    window_us = parse_duration_us(params["window"], what="moving_average window")
    frame = Window.partitionBy(*by).orderBy(F.col(_US)).rangeBetween(-window_us, 0)
    return (
        df.withColumn(_US, epoch_us(time_col))
        .withColumn(params["output_col"], F.avg(F.col(value).cast("double")).over(frame))
        .drop(_US)
    )
