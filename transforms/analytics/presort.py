"""Cheap pre-sorting of per-key time series ahead of a Window.

A Window sorts its input by its partition keys, then its order keys. Spark's sorter first compares an 8-byte
prefix of the *first* sort column and only on a tie loads both rows and compares them in full. With a
partition key first (here a date, the same for a whole day), that prefix never differs within a key, so almost
every one of the n·log n comparisons of a day's millions of rows is a full row comparison with two cache misses.

Sorting first by one 64-bit column whose high bits come from a hash of the keys and whose low bits are the time
lets Spark use its radix sort (a single long key is decided by its prefix alone). The Window's own sort is
then still planned, but meets rows already grouped by key and in time order, runs that its TimSort merges in
close to linear time. Results do not depend on the pre-sort: the Window's sort alone decides the order; a
collision of hash bits, a null, or a time outside the bits' range only makes the runs shorter.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

_TIME_BITS = 37  # microseconds modulo 2^37, about 38 hours: a day's events never wrap more than once
_SORT_COL = "_tf_presort"
_BYTES_PER_TASK = 48 << 20  # optimizer's size estimate per task: 5M events' as-of rows in 9 tasks


def _partitions(df: DataFrame) -> int:
    """Enough partitions that a task's rows, held twice (both sorts), fit its share of execution memory.

    A fixed count, not left to adaptive execution: that coalesces by shuffled (compressed) bytes, which made
    tasks of a 5M-event day spill. The estimate is the optimizer's, known without running anything (exact for
    persisted inputs); at least ``spark.sql.shuffle.partitions``.
    """
    floor = int(df.sparkSession.conf.get("spark.sql.shuffle.partitions") or 8)
    try:
        estimate = int(df._jdf.queryExecution().optimizedPlan().stats().sizeInBytes())
    except Exception:  # an unusual plan or a Spark without these internals: keep the configured count
        return floor
    if estimate >= 2**62:  # no estimate (Spark's default is Long.MaxValue), e.g. rows from a Python list
        return floor
    return max(floor, min(1024, -(-estimate // _BYTES_PER_TASK)))


def presorted(df: DataFrame, by: Sequence[str], time_us: Column, tiebreak: Column | None = None) -> DataFrame:
    """``df`` hash-partitioned by ``by`` (as the Window will want it) and sorted within each partition by
    (hash bits of ``by``, ``time_us`` modulo 2^37, ``tiebreak``); ``tiebreak`` is 0 or 1, e.g. trades
    before quotes at the same time. Without keys the Window runs as one partition anyway: ``df`` unchanged."""
    if not by:
        return df
    tie_bits = 0 if tiebreak is None else 1
    hash_bits = 64 - _TIME_BITS - tie_bits
    # an arithmetic shift keeps the sign: the high bits order keys the way the signed long compares them
    key_part = F.shiftleft(F.shiftright(F.xxhash64(*by), 64 - hash_bits), _TIME_BITS + tie_bits)
    time_part = F.shiftleft(F.coalesce(F.pmod(time_us, F.lit(1 << _TIME_BITS)), F.lit(0)), tie_bits)
    composite = key_part.bitwiseOR(time_part)
    if tiebreak is not None:
        composite = composite.bitwiseOR(F.coalesce(tiebreak.cast("long"), F.lit(0)).bitwiseAND(F.lit(1)))
    return (df.withColumn(_SORT_COL, composite)
            .repartition(_partitions(df), *[F.col(c) for c in by])
            .sortWithinPartitions(_SORT_COL)
            .drop(_SORT_COL))
