"""Trade moving average: each trade gets the mean price of the trades of the last `window` up to itself."""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from engine.registry import transform
from transforms.analytics.presort import presorted
from transforms.analytics.timeutil import epoch_us, parse_duration_us, require_columns

_US = "_tf_ma_us"
_GRID = float(2**20)  # the high parts of the values are multiples of 2^-20 ...
_HI_LIMIT = float(2**33)  # ... and their running sums are exact while below 2^33 (53 bits in all)
_BIG_GRID = float(2**13)  # values from 2^33 on: their big parts are multiples of 2^13, exact in sums below 2^66


@transform(
    "moving_average",
    description="Adds the mean of a column over [time - window, time] (inclusive, time-based) per key.",
    params_schema="moving_average.json",
    inputs=["trades"],
)
def moving_average(ctx: Any, inputs: dict[str, DataFrame], params: dict[str, Any]) -> DataFrame:
    """Mean of ``value`` over the trades of the same ``by`` keys with time in [t - window, t], both ends
    included, and every trade sharing the current trade's time t included (a time window, not a row count).

    Linear, as a difference of running totals: over event time in microseconds, ``upto`` sums the trades with
    time <= t and ``before`` the trades with time < t - window (``RANGE UNBOUNDED PRECEDING .. -window-1``;
    microseconds are integers). Both frames only ever grow, so Spark advances them incrementally (one pass),
    whereas a sliding ``rangeBetween(-window, 0)`` frame is re-aggregated from scratch each time its lower
    bound moves: O(trades x trades per window). Both frames share partitioning and ordering: one shuffle,
    one sort (after a radix pre-sort that makes it cheap, see ``presort``), one Window operator.

    Semantics kept from the sliding frame:
    * null values are ignored (``sum``/``count`` skip them); the mean is null when the window holds no
      non-null value;
    * NaN and +-infinity stay inside the windows that hold them (NaN if a window holds a NaN or both
      infinities, else the infinity): they are counted apart instead of entering the running sums, where they
      would poison every later trade of the key;
    * a trade with a null time averages the null-time trades of its key (nulls sort first; their RANGE frame
      is their peers) and is left out of every timed trade's window.

    Precision: a plain difference of running sums would carry the rounding of the running sum's magnitude,
    a relative error of about (trades of the key so far) x 1.1e-16 x |value| / |mean|, and one outlier (a
    price of 1.2e19) would wipe out every later mean of its key that day. So each finite value is split into
    parts whose running sums are exact, and one remainder whose sums round at a tiny scale:
    * a value from 2^33 on gives a big part on a 2^13 grid (sums exact below 2^66) and leaves a remainder
      below 2^12 that is a multiple of 2^-19 (its ulp is at least that);
    * the rest (the value itself below 2^33) gives a high part on a 2^-20 grid (sums exact below 2^33) and
      a remainder |r| <= 2^-21.
    Each window sum is then a difference of exact sums plus the remainders' (rounded at 2^-21 scale), so the
    mean is within a few ulp of the exact one while a key's day sums stay below those bounds (high parts below
    2^33 ~ 8.6e9, e.g. 8M trades at 1,000; big parts below 2^66 ~ 7.4e19).
    """
    df = inputs["trades"]
    by, value, time_col = list(params["by"]), params["value"], params["time_col"]
    require_columns(df, [*by, value, time_col], transform="moving_average", input_name="trades")
    window_us = parse_duration_us(params["window"], what="moving_average window")

    t = F.col(_US)
    ordered = Window.partitionBy(*by).orderBy(t)
    upto = ordered.rangeBetween(Window.unboundedPreceding, Window.currentRow)
    before = ordered.rangeBetween(Window.unboundedPreceding, -window_us - 1)
    v = F.col(value).cast("double")
    finite = F.when(F.abs(v) < F.lit(float("inf")), v)  # NaN and +-infinity are counted apart, not summed
    big = F.when(F.abs(finite) >= F.lit(_HI_LIMIT), F.rint(finite / _BIG_GRID) * _BIG_GRID).otherwise(F.lit(0.0))
    rest = finite - big  # exact: both are multiples of the value's ulp
    hi = F.when(F.abs(rest) < F.lit(_HI_LIMIT), F.rint(rest * _GRID) / _GRID).otherwise(rest)
    # NaN counts as both infinities: the mean is NaN if the window holds both "signs", else that infinity
    up = F.when(F.isnan(v) | (v == F.lit(float("inf"))), F.lit(1)).otherwise(F.lit(0))
    down = F.when(F.isnan(v) | (v == F.lit(float("-inf"))), F.lit(1)).otherwise(F.lit(0))

    def in_window(agg: Any) -> F.Column:
        """agg(window) = agg(upto) - agg(before); a null-time trade's window is its null-time peers."""
        earlier = F.when(t.isNotNull(), F.coalesce(agg.over(before), F.lit(0)))
        return F.coalesce(agg.over(upto), F.lit(0)) - F.coalesce(earlier, F.lit(0))

    parts = {  # each aggregate once: the Window operator evaluates every expression it is given
        f"{_US}_big": in_window(F.sum(big)),
        f"{_US}_hi": in_window(F.sum(hi)),
        f"{_US}_lo": in_window(F.sum(rest - hi)),
        f"{_US}_n": in_window(F.count(v)),
        f"{_US}_up": in_window(F.sum(up)),
        f"{_US}_down": in_window(F.sum(down)),
    }
    bigs, high, low, count, ups, downs = (F.col(c) for c in parts)
    mean = (F.when(count == 0, F.lit(None).cast("double"))
            .when((ups > 0) & (downs > 0), F.lit(float("nan")))
            .when(ups > 0, F.lit(float("inf")))
            .when(downs > 0, F.lit(float("-inf")))
            .otherwise((bigs + high + low) / count))
    return (presorted(df.withColumn(_US, epoch_us(time_col)), by, t)
            .select("*", *[col.alias(name) for name, col in parts.items()])
            .withColumn(params["output_col"], mean)
            .drop(_US, *parts))
