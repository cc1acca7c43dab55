"""Writes a step output aside, checks it, then commits: a failed step never leaves half a dataset, and a step
with several outputs commits them only once all of them are staged and checked."""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.partition_values import partition_type_problem
from engine.run_record import ExpectationResult
from engine.spec import OutputSpec
from engine.storage.base import PendingWrite, Storage

log = logging.getLogger("tickflow.writer")
QUARANTINE_PATH = "quarantine"
QUARANTINE_PARTITION = "trade_dt"
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"  # the folder Spark writes a null partition value to


@dataclass
class WriteResult:
    rows: int
    partitions: list[str] = field(default_factory=list)
    expectations: list[ExpectationResult] = field(default_factory=list)
    dropped: int = 0


def _written_partitions(pending: PendingWrite) -> list[str]:
    if not pending.partition_by or "://" in pending.uri:
        return []
    level = [Path(pending.uri)]
    for _ in pending.partition_by:
        level = [c for p in level if p.is_dir() for c in sorted(p.iterdir()) if c.is_dir() and "=" in c.name]
    return [str(p.relative_to(pending.uri)) for p in level]


def _has_data_files(uri: str) -> bool:
    if "://" in uri:
        return True
    return any(Path(uri).rglob("*.parquet"))


def read_written(spark: Any, uri: str) -> Any | None:
    """The data just written, or None when Spark wrote no file (an empty partitioned output)."""
    return spark.read.parquet(uri) if _has_data_files(uri) else None


def settle_tasks(spark: Any, timeout: float = 30.0) -> bool:
    """Waits until no task of this thread's job group runs; False if some still did at the timeout.

    A cancelled or failed job is reported before its killed tasks have stopped, and a task may still be
    closing a file: removing the staging folder first would let that file land in a folder recreated for it.
    """
    sc = spark.sparkContext
    group = sc.getLocalProperty("spark.jobGroup.id")
    if not group:
        return True
    status = sc.statusTracker()
    deadline = time.monotonic() + timeout
    while True:
        stages = [s for j in status.getJobIdsForGroup(group) if (info := status.getJobInfo(j)) is not None
                  for s in info.stageIds]
        running = sum(st.numActiveTasks for s in stages if (st := status.getStageInfo(s)) is not None)
        if running == 0:
            return True
        if time.monotonic() >= deadline:
            log.warning("%d task(s) of %s still running after %.0f s; removing its staged files anyway",
                        running, group, timeout)
            return False
        time.sleep(0.05)


def write_spark(df: Any, pending: PendingWrite) -> None:
    writer = df.write.mode("overwrite" if pending.mode != "append" else "append")
    if pending.partition_by:
        writer = writer.partitionBy(*pending.partition_by)
    writer.parquet(pending.uri)


def write_empty_partitions(spark: Any, schema: Any, pending: PendingWrite) -> None:
    """A partitioned write of no rows leaves no file, so a dataset whose only date had no rows (a first day
    without quotes) would not exist at all, and its readers would fail. Each partition the write replaces gets
    a file of no rows instead: the date reads as empty, with the output's columns and types."""
    from pyspark.sql.types import StructType

    data_schema = StructType([f for f in schema.fields if f.name not in pending.partition_by])
    empty = spark.createDataFrame([], data_schema)
    for partition in pending.replace_partitions:
        empty.write.mode("overwrite").parquet(f"{pending.uri.rstrip('/')}/{partition}")


def quarantine_partition(quarantine_date: str | None) -> str:
    """The quarantine partition an output's dropped rows of one run date go to (and that its rerun replaces)."""
    return f"{QUARANTINE_PARTITION}={quarantine_date or NULL_PARTITION}"


def begin_quarantine(storage: Storage, out: OutputSpec, run_id: str, quarantine_date: str | None) -> PendingWrite:
    """The write of ``out``'s dropped rows for one date into the shared quarantine dataset.

    The dataset is partitioned by date only, and other steps (e.g. ingest) write into the same date partitions,
    so an output owns its files in the partition, not the partition: the write is an append owned by the output's
    path (unique in a pipeline), replacing that owner's earlier files of the date, and only those. A rerun that
    drops no row still replaces them (with none).
    """
    tag = re.sub(r"[^A-Za-z0-9]+", "_", out.path).strip("_")  # no '-': local staging folders parse on it
    pending = storage.begin_write(QUARANTINE_PATH, f"{run_id}_q_{tag}", "append", (QUARANTINE_PARTITION,),
                                  owner=out.path)
    return dataclasses.replace(pending, replace_partitions=(quarantine_partition(quarantine_date),))


@dataclass
class StagedOutput:
    """An output written aside and checked, with its quarantine rows: published by ``commit_staged`` only, so a
    step with several outputs publishes none of them unless every one was staged and passed its checks."""

    result: WriteResult
    pending: PendingWrite
    q_pending: PendingWrite | None = None


def commit_staged(storage: Storage, *outputs: StagedOutput) -> None:
    """Publish the outputs and their quarantine rows as one (``Storage.commit_all``)."""
    storage.commit_all([p for s in outputs for p in (s.pending, s.q_pending) if p is not None])


def abort_staged(storage: Storage, staged: StagedOutput) -> None:
    storage.abort(staged.pending)
    if staged.q_pending is not None:
        storage.abort(staged.q_pending)


def write_output(spark: Any, df: Any, out: OutputSpec, storage: Storage, run_id: str, *,
                 expectations: list[Any] | None = None, quarantine_date: str | None = None) -> WriteResult:
    """Write ``df`` to ``out.path`` and publish it at once: one output on its own (the runner stages every output
    of a step first, checks its lock, then commits them all)."""
    staged = stage_output(spark, df, out, storage, run_id, expectations=expectations,
                          quarantine_date=quarantine_date)
    commit_staged(storage, staged)
    return staged.result


class PartitionTypeError(ValueError):
    """An output's partition column would write folder values of another kind than the dataset's."""


def refuse_foreign_partition_type(df: Any, out: OutputSpec, storage: Storage) -> None:
    """A transform that returns its date partition column as a timestamp (or a string) writes
    ``trade_dt=2024-01-05 00%3A00%3A00`` beside ``trade_dt=2024-01-05``: readers then get both folders' rows.
    Refused before anything is written (one listing of the dataset's top level)."""
    if not out.partition_by or out.partition_by[0] not in df.columns or not storage.exists(out.path):
        return
    column = out.partition_by[0]
    why = partition_type_problem(out.path, column, df.schema[column].dataType, storage.list_dirs(out.path))
    if why:
        raise PartitionTypeError(f"output {out.name}: {why}")


def stage_output(spark: Any, df: Any, out: OutputSpec, storage: Storage, run_id: str, *,
                 expectations: list[Any] | None = None, quarantine_date: str | None = None) -> StagedOutput:
    """Write ``df`` aside for ``out.path``; drop/warn/fail expectations are applied on the way. Nothing is
    published: the caller commits (``commit_staged``) or aborts (``abort_staged``) what this returns. When
    writing or a check fails, what was staged is removed and the error raised.

    The row count and the expectations' violation counts are observed while the rows are written (no second
    pass over the output); only `unique` checks and the samples of a failure read the staged files back.
    """
    from pyspark.sql import Observation

    from engine.expectations import aggregates

    exps = list(expectations or [])
    dropped_df = None
    if exps:
        from engine.expectations import split_rows

        df, dropped_df = split_rows(df, exps)
    observation = Observation()
    df = df.observe(observation, *aggregates(df, exps))
    refuse_foreign_partition_type(df, out, storage)
    pending = storage.begin_write(out.path, run_id, out.mode, out.partition_by)
    if out.replace_partitions:
        pending = dataclasses.replace(pending, replace_partitions=out.replace_partitions)
    q_pending = None
    try:
        write_spark(df, pending)
        observed = observation.get
        if int(observed["__n"]) == 0 and pending.mode == "overwrite_partitions" and pending.replace_partitions:
            write_empty_partitions(spark, df.schema, pending)
        result = WriteResult(rows=int(observed["__n"]), partitions=_written_partitions(pending))
        dropped_counts: dict[str, int] = {}
        if dropped_df is not None:
            from pyspark.sql import functions as F

            q_pending = begin_quarantine(storage, out, run_id, quarantine_date)
            # counted while written: an owned write may be staged where an empty one cannot be read back
            reasons = [e.name for e in exps if e.kind == "expr" and e.action == "drop"]
            q_observation = Observation()
            q = dropped_df.withColumn(QUARANTINE_PARTITION, F.lit(quarantine_date).cast("date")).observe(
                q_observation, *[F.sum(F.when(F.col("reason") == name, 1).otherwise(0)).alias(f"__d{i}")
                                 for i, name in enumerate(reasons)])
            write_spark(q, q_pending)
            counted = q_observation.get
            dropped_counts = {name: int(counted[f"__d{i}"] or 0) for i, name in enumerate(reasons)}
            result.dropped = sum(dropped_counts.values())
        if exps:
            from engine.expectations import enforce, evaluate

            def staged() -> Any:
                back = read_written(spark, pending.uri)
                return back if back is not None else spark.createDataFrame([], df.schema)

            # the staged files are read back only for unique checks and for the samples of a failure
            written = staged() if any(e.kind == "unique" for e in exps) else None
            result.expectations = evaluate(written, exps, dropped_counts=dropped_counts, observed=observed)
            if not all(r.ok for r in result.expectations):
                enforce(written if written is not None else staged(), exps, result.expectations)
    except BaseException:
        settle_tasks(spark)
        abort_staged(storage, StagedOutput(WriteResult(0), pending, q_pending))
        raise
    return StagedOutput(result, pending, q_pending)
