"""End-of-day load: resolve corrections and split the day's valid events into trade and quote datasets.

Key: (trade_dt, rec_type, symbol, exchange, event_tm, event_seq_nb). Of several records with one key the
latest arrival_tm (the file's file_tm) wins; ties are broken deterministically by the greatest source_file
(relative path; later part files sort later), then the greatest line number in that file (the later line).
Trades and quotes are de-duplicated separately, so each output's write shuffles only its own records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from engine.registry import transform

KEY: tuple[str, ...] = ("trade_dt", "rec_type", "symbol", "exchange", "event_tm", "event_seq_nb")
TRADE_COLUMNS: tuple[str, ...] = ("trade_dt", "symbol", "exchange", "event_tm", "event_seq_nb", "arrival_tm",
                                  "trade_pr", "trade_size", "execution_id", "source_file")
QUOTE_COLUMNS: tuple[str, ...] = ("trade_dt", "symbol", "exchange", "event_tm", "event_seq_nb", "arrival_tm",
                                  "bid_pr", "bid_size", "ask_pr", "ask_size", "source_file")


def latest_arrival(events: DataFrame) -> DataFrame:
    """Keep one record per key: latest arrival_tm, then greatest source_file, then greatest line_no."""
    order = [F.col("arrival_tm").desc(), F.col("source_file").desc_nulls_last(),
             F.col("line_no").desc_nulls_last()]
    w = Window.partitionBy(*KEY).orderBy(*order)
    return events.withColumn("_rank", F.row_number().over(w)).where(F.col("_rank") == 1).drop("_rank")


def eod_frames(events: DataFrame) -> dict[str, DataFrame]:
    """The transform's body: {'trade': ..., 'quote': ...}, each partitionable by trade_dt."""
    trades = latest_arrival(events.where(F.col("rec_type") == "T")).select(*TRADE_COLUMNS)
    quotes = latest_arrival(events.where(F.col("rec_type") == "Q")).select(*QUOTE_COLUMNS)
    return {"trade": trades, "quote": quotes}


@transform(
    "eod_load",
    description="End-of-day load: keep the latest arrival of each trade/quote key; split trades and quotes.",
    params_schema="eod_load.json",
    inputs=["events"],
    outputs=["trade", "quote"],
)
def eod_load(ctx: Any, inputs: Mapping[str, DataFrame], params: Mapping[str, Any]) -> dict[str, DataFrame]:
    """Corrections resolved; the engine writes trade/ and quote/ partitioned by trade_dt."""
    return eod_frames(inputs["events"])
