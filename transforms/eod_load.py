"""End-of-day load: resolve corrections and split the day's valid events into trade and quote datasets.

Key: (trade_dt, rec_type, symbol, exchange, event_tm, event_seq_nb). Of several records with one key the
latest arrival_tm (the file's file_tm) wins; ties are broken deterministically by the greatest source_file
(relative path; later part files sort later), then the greatest line number in that file (the later line).

Corrections are rare (about 1% of keys), so the wide rows are never shuffled as a whole: a 64-bit hash of each
key is counted (one narrow shuffle of 8-byte values), rows whose hash occurs once pass straight through, and
only rows whose hash repeats (the corrected keys, plus any hash collision) are ranked by a window over the
real key. A collision therefore costs a little work, never a wrong row. The repeated keys of both record types are
ranked in one pass and kept in memory: the day's (persisted) events are scanned four times in all, for the hash
counts, the repeated keys, the trades written and the quotes written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from engine.registry import transform

KEY: tuple[str, ...] = ("trade_dt", "rec_type", "symbol", "exchange", "event_tm", "event_seq_nb")
TRADE_COLUMNS: tuple[str, ...] = ("trade_dt", "symbol", "exchange", "event_tm", "event_seq_nb", "arrival_tm",
                                  "trade_pr", "trade_size", "execution_id", "source_file")
QUOTE_COLUMNS: tuple[str, ...] = ("trade_dt", "symbol", "exchange", "event_tm", "event_seq_nb", "arrival_tm",
                                  "bid_pr", "bid_size", "ask_pr", "ask_size", "source_file")
CLOSE_COLUMNS: tuple[str, ...] = ("trade_dt", "symbol", "exchange", "event_tm", "event_seq_nb", "trade_pr")
_HASH = "_tf_key_hash"


def latest_arrival(events: DataFrame) -> DataFrame:
    """Keep one record per key: latest arrival_tm, then greatest source_file, then greatest line_no."""
    order = [F.col("arrival_tm").desc(), F.col("source_file").desc_nulls_last(),
             F.col("line_no").desc_nulls_last()]
    w = Window.partitionBy(*KEY).orderBy(*order)
    return events.withColumn("_rank", F.row_number().over(w)).where(F.col("_rank") == 1).drop("_rank")


def repeated_key_hashes(events: DataFrame) -> DataFrame:
    """The key hashes that occur more than once (small: the corrected keys), kept in memory for both outputs."""
    hashed = events.select(F.xxhash64(*KEY).alias(_HASH))
    # Partitioned by the hash first, so each task counts only its own share of the keys (a map-side partial
    # count over every key of a file would hold millions of distinct keys and gain nothing).
    counts = hashed.repartition(_HASH).groupBy(_HASH).agg(F.count(F.lit(1)).alias("_n"))
    return counts.where(F.col("_n") > 1).select(_HASH).persist(StorageLevel.MEMORY_AND_DISK)


def split_repeated(events: DataFrame, repeated: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(rows whose key hash occurs once, the resolved rows of repeated hashes) for every record type.

    The resolved part is small and kept in memory, so the events are scanned for it once, not once per output.
    """
    flagged = events.withColumn(_HASH, F.xxhash64(*KEY)).join(
        F.broadcast(repeated.withColumn("_dup", F.lit(True))), on=_HASH, how="left").drop(_HASH)
    single = flagged.where(F.col("_dup").isNull()).drop("_dup")
    multiple = latest_arrival(flagged.where(F.col("_dup")).drop("_dup")).persist(StorageLevel.MEMORY_AND_DISK)
    return single, multiple


def day_closes(trades: DataFrame) -> DataFrame:
    """Each (trade_dt, symbol, exchange)'s last trade: latest event_tm, then highest event_seq_nb (unique per key
    once corrections are resolved). A later date's prior close reads these few rows instead of every earlier
    trade, so it can look back over the whole history however long a key did not trade."""
    last = F.max(F.struct("event_tm", "event_seq_nb", "trade_pr")).alias("_last")
    return trades.groupBy("trade_dt", "symbol", "exchange").agg(last).select(
        "trade_dt", "symbol", "exchange", *[F.col(f"_last.{c}").alias(c) for c in CLOSE_COLUMNS[3:]])


def eod_frames(events: DataFrame) -> dict[str, DataFrame]:
    """The transform's body: {'trade': ..., 'quote': ..., 'close': ...}, each partitionable by trade_dt."""
    single, multiple = split_repeated(events, repeated_key_hashes(events))

    def of_type(rec_type: str, columns: tuple[str, ...]) -> DataFrame:
        is_type = F.col("rec_type") == rec_type
        return single.where(is_type).unionByName(multiple.where(is_type)).select(*columns)

    trade = of_type("T", TRADE_COLUMNS)
    return {"trade": trade, "quote": of_type("Q", QUOTE_COLUMNS), "close": day_closes(trade)}


@transform(
    "eod_load",
    description="End-of-day load: keep the latest arrival of each trade/quote key; split trades and quotes; "
                "each key's last trade of the day (close).",
    params_schema="eod_load.json",
    inputs=["events"],
    outputs=["trade", "quote", "close"],
)
def eod_load(ctx: Any, inputs: Mapping[str, DataFrame], params: Mapping[str, Any]) -> dict[str, DataFrame]:
    """Corrections resolved; the engine writes trade/, quote/ and trade_close/ partitioned by trade_dt."""
    return eod_frames(inputs["events"])
