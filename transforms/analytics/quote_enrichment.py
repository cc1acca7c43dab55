"""Quote enrichment: an as-of join of each quote to the latest same-day trade, plus the prior close."""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from engine.registry import transform
from transforms.analytics.presort import presorted
from transforms.analytics.timeutil import epoch_us, require_columns

QUOTE_COLUMNS = ["bid_pr", "bid_size", "ask_pr", "ask_size"]
_KIND, _TRADE = "_tf_kind", "_tf_trade"


@transform(
    "quote_enrichment",
    description="Each quote with the latest trade at or before it (as-of join) and its prior close.",
    params_schema="quote_enrichment.json",
    inputs=["quotes", "trades", "closes"],
)
def quote_enrichment(ctx: Any, inputs: dict[str, DataFrame], params: dict[str, Any]) -> DataFrame:
    """Trades and quotes are unioned and sorted once per key by (time, trades first, sequence); a running
    last-non-null over that order carries the latest trade to every quote. One shuffle, linear after the
    sort (radix pre-sort, see ``presort``), no range join. The small prior-close table is broadcast."""
    quotes, trades, closes = inputs["quotes"], inputs["trades"], inputs["closes"]
    by, time_col, seq_col = list(params["by"]), params["time_col"], params["seq_col"]
    require_columns(quotes, [*by, time_col, seq_col, *QUOTE_COLUMNS], transform="quote_enrichment",
                    input_name="quotes")
    require_columns(trades, [*by, time_col, seq_col, "trade_pr", "mov_avg_pr"], transform="quote_enrichment",
                    input_name="trades")
    close_keys = [c for c in by if c in closes.columns]
    require_columns(closes, [*close_keys, "close_pr"], transform="quote_enrichment", input_name="closes")

    trade_side = trades.select(
        *by, time_col, seq_col,
        F.lit(0).alias(_KIND),
        F.struct(F.col("trade_pr").alias("pr"), F.col("mov_avg_pr").alias("ma")).alias(_TRADE),
    )
    quote_side = quotes.select(*by, time_col, seq_col, *QUOTE_COLUMNS, F.lit(1).alias(_KIND))
    running = (
        Window.partitionBy(*by)
        .orderBy(time_col, _KIND, seq_col)
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    both = trade_side.unionByName(quote_side, allowMissingColumns=True)
    asof = (
        presorted(both, by, epoch_us(time_col), F.col(_KIND))
        .withColumn("_last", F.last(_TRADE, ignorenulls=True).over(running))
        .where(F.col(_KIND) == 1)
    )
    close_side = closes.select(*close_keys, F.col("close_pr"))
    return asof.join(F.broadcast(close_side), on=close_keys, how="left").select(
        *by, time_col, seq_col, *QUOTE_COLUMNS,
        F.col("_last.pr").alias("last_trade_pr"),
        F.col("_last.ma").alias("last_mov_avg_pr"),
        "close_pr",
        (F.col("bid_pr") - F.col("close_pr")).alias("bid_pr_mv"),
        (F.col("ask_pr") - F.col("close_pr")).alias("ask_pr_mv"),
    )
