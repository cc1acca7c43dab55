"""Runs one pipeline spec for one processing date: tracker guard, steps in DAG order, atomic outputs.

The runner is thin: the spec is already valid, the tracker guard decides whether we may run, the executor
computes DataFrames, the writer publishes them. Refusals (lock, upstream) happen before Spark starts.
A rerun resumes: a step whose 'success' mark stands and whose outputs exist is not recomputed, unless a step
upstream of it is. A step about to rewrite its outputs first turns its downstream steps' marks 'stale', so no
way a run ends (failure, kill, a --select leaving them out) leaves them looking fresh.
Steps that do not need each other's outputs run concurrently (``parallel_steps``), so one step's planning,
code generation and commit overlap another's tasks; Spark shares the cores between their jobs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from engine.config import Config
from engine.context import PreflightContext, TransformContext
from engine.dag import dag_of
from engine.error_lines import essential_line
from engine.errors import StepFailed, TickflowError
from engine.executor import compute_step
from engine.expectations import ExpectationFailed
from engine.failure_place import located
from engine.logs import STEP_EVENT, mute_console
from engine.partition_values import refuse_foreign_partition_values
from engine.raw_inputs import stamp_folder
from engine.registry import Registry
from engine.run_record import RunRecord, StepRecord
from engine.selection import Selection, parse_selectors, select, select_all
from engine.spec import InputRef, PipelineSpec, StepSpec
from engine.sql_check import syntax_errors
from engine.step_message import step_figures, written_message
from engine.step_reuse import StepReuse
from engine.storage.base import Storage
from engine.storage.local import LocalStorage
from engine.tracker.base import stop_message
from engine.writer import StagedOutput, abort_staged, commit_staged, stage_output

log = logging.getLogger("tickflow.runner")
# steps given up on after a stop (their threads still run their own code): the process must not wait for them
ABANDONED: list[str] = []


@dataclass(frozen=True)
class RunOptions:
    selectors: tuple[str, ...] = ()
    force: bool = False
    wait_for_upstream: float = 0.0
    parallel_steps: int = 2  # steps run at once when neither needs the other's output (1: one by one)
    stop_grace_s: float = 30.0  # after an interrupt, how long a step whose own code (not Spark) runs is waited for
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])



def written_paths(spec: PipelineSpec) -> tuple[str, ...]:
    """The dataset paths the steps of ``spec`` write (whether or not this run computes them)."""
    return tuple(out.path for step in spec.steps.values() for out in step.outputs.values())


def preflight(step: StepSpec, registry: Registry, date: dt.date | None, raw_storage: Storage,
              storage: Storage | None = None, written: tuple[str, ...] = ()) -> None:
    """Runs the step's transform's check made for before Spark starts (if it has one); raises to refuse.

    ``storage`` (the storage root) lets a check look at committed datasets without staging them; ``written``
    names the datasets the spec's steps write, which need not exist before the run."""
    tdef = registry.get(step.transform) if step.transform else None
    if tdef is None or tdef.preflight is None:
        return
    ctx = PreflightContext(date=date, step=step.name, log=logging.getLogger(f"tickflow.step.{step.name}"),
                           _raw_exists=raw_storage.exists, raw_root=raw_storage.describe(),
                           _raw_files=lambda rel: [f.name for f in raw_storage.list_files(rel)],
                           _dataset_exists=storage.exists if storage is not None else None,
                           _dataset_dirs=storage.list_dirs if storage is not None else None,
                           # a local folder is read in place; a remote store would have to download
                           _dataset_folder=storage.read_uri if isinstance(storage, LocalStorage) else None,
                           storage_root=storage.describe() if storage is not None else "", written_paths=written)
    tdef.preflight(ctx, dict(step.params))


class NullGuard:
    """Stands in for the tracker guard in dry runs and tests that need no tracking."""

    already_succeeded = False
    took_over = None

    def __enter__(self) -> NullGuard:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def step_succeeded(self, step: str) -> bool:
        return False

    def steps_not_succeeded(self, steps: Iterable[str]) -> list[tuple[str, str]]:
        return []  # nothing is tracked, so nothing is known to be out of date

    def invalidate_steps(self, steps: Iterable[str], message: str) -> list[str]:
        return []

    def mark_step(self, step: str, status: str, message: str = "") -> None:
        return None

    def assert_lock(self, what: str = "committing outputs") -> None:
        return None  # no lock to lose

    def finish(self, status: str, message: str = "") -> None:
        return None


class PipelineRunner:
    def __init__(self, spec: PipelineSpec, config: Config, *, date: dt.date | None, storage: Storage,
                 raw_storage: Storage, registry: Registry, spark_provider: Callable[[], Any],
                 guard: Any = None, options: RunOptions | None = None,
                 progress_factory: Callable[[int, Any], Any] | None = None):
        self.spec = spec
        self.config = config
        self.date = date
        self.storage = storage
        self.raw_storage = raw_storage
        self.registry = registry
        self.spark_provider = spark_provider
        self.guard = guard if guard is not None else NullGuard()
        self.options = options or RunOptions()
        self.progress_factory = progress_factory  # (steps to run, SparkContext) -> Progress
        self.progress: Any = None
        self.dag = dag_of(spec.steps)
        self.order = self.dag.order()
        self.selection: Selection = (select(self.dag, parse_selectors(self.options.selectors))
                                     if self.options.selectors else select_all(self.dag))
        self.reuse = StepReuse(  # which steps a rerun reuses; the steps' definition digests
            spec, self.dag, self.order, self.selection, self.guard, storage, raw_storage, registry, date,
            self.options.force)
        self.chart_frames: dict[Any, Any] = {}  # ChartSpec -> its rows (pandas), or why they are missing
        self.record: RunRecord | None = None
        self.spark: Any = None
        self._lock = threading.Lock()  # use counts and persisted frames, shared by concurrent steps
        self._guard_lock = threading.Lock()  # one tracker connection: one call at a time
        self._stopping: str | None = None  # why the run is stopping (an interrupt): its steps are cancelled
        self.abandoned: list[str] = []  # steps still running their own code after the stop's grace period

    # -- planning -----------------------------------------------------------------------------------------
    def new_record(self) -> RunRecord:
        record = RunRecord(run_id=self.options.run_id, pipeline=self.spec.name,
                           date=self.date.isoformat() if self.date else None, spec_file=self.spec.file,
                           storage_root=self.storage.describe())
        for name in self.order:
            step = self.spec.steps[name]
            srec = StepRecord(name=name, transform=step.kind, depends_on=sorted(self.dag.parents[name]))
            srec.outputs = {o: out.path for o, out in step.outputs.items()}
            if not self.selection.runs(name):
                srec.status, srec.skip_reason = "skipped", "not selected"
            record.steps.append(srec)
        return record

    def consumers(self) -> dict[tuple[str, str], int]:
        """How many times each (step, output) DataFrame will be used: reads by running steps + its write."""
        counts: dict[tuple[str, str], int] = {}
        for name in self.order:
            if not self.selection.runs(name):
                continue
            step = self.spec.steps[name]
            for ref in step.inputs.values():
                if ref.step is not None:
                    key = (ref.step, self._output_key(ref))
                    counts[key] = counts.get(key, 0) + 1
            if name in self.selection.selected:
                for oname in step.outputs:
                    key = (name, self._canonical(step, oname))
                    counts[key] = counts.get(key, 0) + 1
        for chart in self.spec.charts:
            src = str(chart.get("source", ""))
            if src and not src.startswith(("metrics:", "dataset:")):
                ref = InputRef.parse(src)
                key = (ref.step or "", self._output_key(ref))
                counts[key] = counts.get(key, 0) + 1
        return counts

    def _canonical(self, step: StepSpec, output: str) -> str:
        """Single-output steps answer to any of their names with their one DataFrame."""
        return output if len(step.declared_outputs) > 1 else "__single__"

    def _output_key(self, ref: InputRef) -> str:
        step = self.spec.steps[ref.step or ""]
        return self._canonical(step, ref.output or step.default_output())

    def resumable(self) -> tuple[set[str], dict[str, dict[str, list[str]]]]:
        """Steps a rerun need not compute: (skipped, reloaded); see StepReuse.resumable."""
        return self.reuse.resumable()

    # -- execution ------------------------------------------------------------------------------------------
    def run(self) -> RunRecord:
        record = self.record = self.new_record()
        record.started = dt.datetime.now()
        with self.guard as guard:
            if guard.already_succeeded:
                record.status = "skipped"
                record.message = f"{self.spec.name} for {record.date} already succeeded (use --force to rerun)"
                for srec in record.steps:
                    srec.status = "skipped"
                record.ended = dt.datetime.now()
                return record
            try:
                self._execute(record)
            except BaseException as exc:
                record.status = "failed"
                record.ended = dt.datetime.now()
                record.message = (str(exc) if isinstance(exc, StepFailed) else
                                  stop_message(exc) if isinstance(exc, KeyboardInterrupt) else essential_line(exc))
                guard.finish("failed", record.message)
                raise
            record.ended = dt.datetime.now()
            behind = guard.steps_not_succeeded(n for n in self.order if self.spec.steps[n].outputs)
            record.status = "stale" if behind else "success"
            if behind:  # a --select run left steps out of date: the job is not done, a plain rerun finishes it
                record.message = (f"not up to date: {', '.join(f'{n} ({status})' for n, status in behind)}; "
                                  "a run without --select recomputes them")
            guard.finish(record.status, self.summary(record))
        return record

    def _execute(self, record: RunRecord) -> None:
        skip, reload = self.resumable()
        for name in [*skip, *reload]:
            srec = record.step(name)
            srec.status, srec.skip_reason = "skipped", "succeeded earlier for this date; outputs exist"
            log.info("step %s: skipped (succeeded earlier for %s; --force recomputes)%s", name, record.date,
                     "; its committed outputs feed the steps that run" if name in reload else "")
        to_run = [n for n in self.order if self.selection.runs(n) and n not in skip and n not in reload]
        if not to_run:
            return
        self._preflight(record, to_run)
        if self.options.force:
            self._invalidate_forced(to_run)
        spark = self.spark = self.spark_provider()
        self._check_sql(spark, record, to_run)
        self.storage.cleanup("")
        remaining = self.consumers()
        results: dict[tuple[str, str], Any] = {}
        persisted: dict[tuple[str, str], Any] = {}
        for name, partitions in reload.items():
            step = self.spec.steps[name]
            for oname, out in step.outputs.items():
                results[(name, self._canonical(step, oname))] = self._read_committed(spark, out,
                                                                                    partitions.get(oname))
        self._charts_of_reused(spark, skip, reload)
        total = len(to_run)
        if self.progress_factory is not None:
            self.progress = self.progress_factory(total, spark.sparkContext)
            self.progress.start()
        try:
            self._run_steps(spark, to_run, record, results, persisted, remaining)
        finally:
            self._release_all(spark, persisted)

    def _release_all(self, spark: Any, persisted: dict[tuple[str, str], Any]) -> None:
        """What transforms persisted for this date must not pile up in a backfill. When the JVM is gone (it was
        stopped with us) this cannot work, and must not replace the error or interrupt that ends the run."""
        try:
            if self.progress is not None:
                self.progress.stop()
            for df in persisted.values():
                df.unpersist()
            spark.catalog.clearCache()
        except Exception as exc:
            log.warning("could not release the run's cached data: %s", essential_line(exc))

    def _preflight(self, record: RunRecord, to_run: list[str]) -> None:
        """The transforms' own cheap checks (is the raw input there?), so that such a run fails before Spark."""
        for name in to_run:
            step = self.spec.steps[name]
            try:
                preflight(step, self.registry, self.date, self.raw_storage, self.storage, written_paths(self.spec))
            except TickflowError:
                raise  # the raw storage itself failed (StorageError, exit 2): not the step's verdict
            except Exception as exc:
                log.debug("step %s preflight detail", name, exc_info=True)
                error = located(self.spec, step, exc, essential_line(exc))
                raise self._refused(record, name, error, "before Spark started") from exc

    def _check_sql(self, spark: Any, record: RunRecord, to_run: list[str]) -> None:
        """Every SQL text of the steps that run parses (Spark's parser), before the first step computes: a typo
        in the last step's expectation no longer costs the run's work and half the date's outputs."""
        writing = {n for n in to_run if n in self.selection.selected}
        errors = syntax_errors(spark, [self.spec.steps[n] for n in to_run], writing)
        for name, error in errors[1:]:
            log.error("step %s: %s", name, error)
        if errors:
            name, error = errors[0]
            raise self._refused(record, name, error, "before any step ran")

    def _refused(self, record: RunRecord, name: str, error: str, when: str) -> StepFailed:
        """Records ``name`` failed with ``error`` (found ``when``) and returns the StepFailed that ends the run."""
        step = self.spec.steps[name]
        srec = record.step(name)
        srec.status, srec.error = "failed", error
        log.error("step %s (%s) failed %s: %s", name, step.kind, when, error)
        if name in self.selection.selected:
            self._mark(name, "failed", error)
        return StepFailed(name, step.kind, error)

    def _run_steps(self, spark: Any, to_run: list[str], record: RunRecord, results: dict[tuple[str, str], Any],
                   persisted: dict[tuple[str, str], Any], remaining: dict[tuple[str, str], int]) -> None:
        """Starts each step once the steps it reads from finished, up to ``parallel_steps`` at a time.

        After a failure no further step starts; the running ones finish (their outputs commit or not, as
        alone) and the first failure is raised. An interrupt cancels the running Spark jobs first. Steps run in
        worker threads also one at a time: the main thread, which receives Ctrl-C and SIGTERM, must be free to
        cancel (blocked in a Spark call itself, PySpark's own Ctrl-C handler cannot, and the job ran on until
        Spark was stopped).
        """
        total = len(to_run)
        workers = max(1, self.options.parallel_steps)
        scheduled = set(to_run)
        waiting = {n: {p for p in self.dag.parents[n] if p in scheduled} for n in to_run}
        pending = list(to_run)  # in DAG order: among ready steps the earliest declared starts first
        running: dict[Future[None], str] = {}
        failure: BaseException | None = None
        started = 0
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="step")
        try:
            try:
                while pending or running:
                    while failure is None and len(running) < workers:
                        ready = next((n for n in pending if not waiting[n]), None)
                        if ready is None:
                            break
                        pending.remove(ready)
                        started += 1
                        fut = pool.submit(self._run_step, spark, self.spec.steps[ready], record, started, total,
                                          results, persisted, remaining)
                        running[fut] = ready
                    if not running:
                        break
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for fut in done:
                        name = running.pop(fut)
                        exc = fut.exception()
                        if exc is not None:
                            failure = failure or exc
                            continue
                        for other in pending:
                            waiting[other].discard(name)
            except BaseException as exc:
                self._stop(exc)
                with contextlib.suppress(BaseException):  # a second interrupt: stop waiting
                    self._wait_for_steps(spark, running)
                if running:
                    self._abandon(record, sorted(running.values()))
                raise
        finally:
            pool.shutdown(wait=not self.abandoned, cancel_futures=True)
        if failure is not None:
            raise failure

    def _wait_for_steps(self, spark: Any, running: dict[Future[None], str]) -> None:
        """Interrupted: cancel the running steps' Spark jobs until every step has ended (a step may be between two
        jobs, or just submitting one, when a cancel arrives), for at most ``stop_grace_s`` seconds."""
        deadline = time.monotonic() + self.options.stop_grace_s
        while running and time.monotonic() < deadline:
            with contextlib.suppress(Exception):  # a JVM killed with us (a process-group SIGTERM) has
                spark.sparkContext.cancelAllJobs()  # no jobs to cancel: the interrupt must still win
            done, _ = wait(running, timeout=min(0.5, max(deadline - time.monotonic(), 0.01)))
            for fut in done:
                running.pop(fut)

    def _abandon(self, record: RunRecord, names: list[str]) -> None:
        """Steps still running after the grace period run their own code, not a Spark job (a plugin waiting on
        something): a thread cannot be stopped, so the run ends without them. They commit nothing (each step
        checks before it commits), and the process exits without waiting for their threads (engine.cli)."""
        self.abandoned = names
        ABANDONED.extend(names)
        why = (f"cancelled: {self._stopping} (its own code, not a Spark job, still ran "
               f"{self.options.stop_grace_s:g} s after)")
        for name in names:
            srec = record.step(name)
            srec.status, srec.error = "failed", why
            with contextlib.suppress(Exception):
                self._mark(name, "failed", why)
        log.error("step(s) %s did not end within %g s of the stop: their own code (not a Spark job) is running; the "
                  "run ends without them, and they commit nothing", ", ".join(names), self.options.stop_grace_s)

    def _stop(self, exc: BaseException) -> None:
        """The run is being stopped: the steps still running end as cancelled, and what Spark logs about the
        jobs it cancels (errors, by its lights) stays in the log file."""
        if self._stopping is None:
            self._stopping = stop_message(exc) if isinstance(exc, KeyboardInterrupt) else essential_line(exc)
            # PySpark's own warnings (a collect for a chart whose job was cancelled: its Arrow fallback warns with
            # the JVM's stack) come through Python's warnings, captured as 'py.warnings'
            mute_console("spark", "py4j", "py.warnings")

    def _mark(self, name: str, status: str, message: str = "") -> None:
        with self._guard_lock:
            self.guard.mark_step(name, status, message)

    def _invalidate_forced(self, to_run: list[str]) -> None:
        """A --force run recomputes its steps: their earlier 'success' marks go first, so that a forced run
        failing before it reaches a step (a read of damaged input) is not followed by a plain run that reuses
        what the user asked to recompute. (Feeders of a --select write nothing and keep their rows.)"""
        writing = [n for n in to_run if self.spec.steps[n].outputs and n not in self.selection.feeders]
        with self._guard_lock:
            stale = self.guard.invalidate_steps(writing, "being recomputed (--force)")
        if stale:
            log.info("--force: marked %s stale until recomputed", ", ".join(stale))

    def _invalidate_downstream(self, name: str) -> None:
        """Before ``name`` rewrites its outputs: its downstream steps' outputs no longer follow from them. (Steps
        without outputs are never reused, so their rows need no mark; the job's status ignores them too.)"""
        downstream = self.dag.downstream(name)
        below = [n for n in self.order if n in downstream and self.spec.steps[n].outputs]
        with self._guard_lock:
            stale = self.guard.invalidate_steps(below, f"outputs of upstream step {name} are being recomputed")
        if stale:
            log.info("step %s: marked %s stale until recomputed", name, ", ".join(stale))

    def _read_committed(self, spark: Any, out: Any, partitions: list[str] | None) -> Any:
        uri = self.storage.read_uri(out.path, partitions)
        if not partitions:
            return spark.read.parquet(uri)
        return spark.read.option("basePath", uri).parquet(*[f"{uri}/{p}" for p in partitions])

    def _warn_unowned_empty(self, step: StepSpec, oname: str, rows: int) -> None:
        """A partitioned write of no rows replaces no partition: without replace_partitions, the rows an earlier
        run wrote for this date stay beside a report saying 0 rows. Said where the operator looks."""
        out = step.outputs.get(oname)
        if rows or out is None or out.mode != "overwrite_partitions" or out.replace_partitions:
            return
        cols = ", ".join(f"{c}: ..." for c in out.partition_by)
        log.warning("step %s: output %s wrote no rows, so no partition of '%s' was replaced: rows an earlier run "
                    "wrote for %s stay; declare replace_partitions: {%s} on the output to own the date's "
                    "partition", step.name, oname, out.path, self.date or "this date", cols)

    def _resolve_input(self, spark: Any, ref: InputRef, results: dict[tuple[str, str], Any]) -> Any:
        if ref.dataset is not None:
            uri = self.storage.read_uri(ref.dataset)
            if uri is None:
                raise FileNotFoundError(f"dataset '{ref.dataset}' does not exist under {self.storage.describe()}")
            if "://" not in uri:  # as read_dataset does: a folder of another kind would be read as more rows
                refuse_foreign_partition_values(ref.dataset, uri)
            return spark.read.parquet(uri)
        return results[(ref.step or "", self._output_key(ref))]

    def _run_step(self, spark: Any, step: StepSpec, record: RunRecord, index: int, total: int,
                  results: dict[tuple[str, str], Any], persisted: dict[tuple[str, str], Any],
                  remaining: dict[tuple[str, str], int]) -> None:
        name = step.name
        srec = record.step(name)
        writes = name in self.selection.selected
        srec.status = "running"
        srec.started = dt.datetime.now()
        t0 = time.monotonic()
        log.info("step %s (%s) [%d/%d]: started%s", name, step.kind, index, total,
                 "" if writes else " (feeding a selected step; outputs not written)", extra={STEP_EVENT: True})
        if self.progress is not None:
            self.progress.step_started(name, index)
        # a step's row tells about its committed outputs: a feeder writes none, so its row stays as it was
        if writes:
            if step.outputs:
                self._invalidate_downstream(name)
            self._mark(name, "running")
        spark.sparkContext.setJobGroup(f"{self.spec.name}.{name}", f"{self.spec.name}.{name}", True)
        ctx: TransformContext | None = None
        in_sql = False
        try:
            inputs = {iname: self._resolve_input(spark, ref, results) for iname, ref in step.inputs.items()}
            for iname, ref in step.inputs.items():
                if ref.step is not None:
                    upstream = record.step(ref.step).rows_out
                    srec.rows_in[iname] = upstream.get(ref.output or self.spec.steps[ref.step].default_output())
            raw_read: dict[str, str] = {}  # raw folder -> its stamp when the step read it
            ctx = TransformContext(
                spark=spark, date=self.date, step=name, log=logging.getLogger(f"tickflow.step.{name}"),
                _dataset_reader=self.storage.read_uri, _raw_reader=functools.partial(self._read_raw, raw_read),
                raw_root=self.raw_storage.describe(),
            )
            in_sql = True  # a failure now is the query's own (Spark analyses it at once), not its write's
            outs = compute_step(step, inputs, ctx, self.registry)
            in_sql = False
            for oname, df in outs.items():
                key = (name, self._canonical(step, oname))
                results[key] = df
                if step.cache is True or (step.cache == "auto" and remaining.get(key, 0) >= 2):
                    from pyspark import StorageLevel

                    with self._lock:
                        persisted[key] = df.persist(StorageLevel.MEMORY_AND_DISK)
                        results[key] = persisted[key]
            if writes:
                for oname, wr in self._write_outputs(spark, step, results).items():
                    key = (name, self._canonical(step, oname))
                    srec.rows_out[oname] = wr.rows
                    self._warn_unowned_empty(step, oname, wr.rows)
                    srec.expectations.extend(wr.expectations)
                    if wr.partitions:
                        srec.metrics.setdefault("partitions_written", {})[oname] = wr.partitions
                    if wr.dropped:
                        srec.metrics.setdefault("dropped_by_expectations", {})[oname] = wr.dropped
                    self._release(key, remaining, persisted)
            self._collect_charts(name, results, remaining, persisted)
            srec.metrics.update(ctx.metrics)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):  # the step ran in the interrupted thread
                self._stop(exc)
            srec.status = "failed"
            if ctx is not None:  # what the step recorded before it failed (the counts that made it fail)
                srec.metrics.update(ctx.metrics)
            srec.error = (f"cancelled: {self._stopping}" if self._stopping else
                          located(self.spec, step, exc, essential_line(exc), in_sql=in_sql))
            # a failed check still reports the counts of every expectation of the step (ExpectationFailed.results)
            srec.expectations.extend(getattr(exc, "results", ()))
            srec.ended = dt.datetime.now()
            srec.duration_s = time.monotonic() - t0
            log.log(logging.WARNING if self._stopping else logging.ERROR, "step %s (%s) failed after %.1fs: %s",
                    name, step.kind, srec.duration_s, srec.error)
            log.debug("step %s failure detail", name, exc_info=True)
            if writes:
                self._mark(name, "failed", srec.error)
            if self.progress is not None:
                with contextlib.suppress(Exception):  # the display asks Spark, whose JVM may have ended
                    self.progress.step_finished(name, "failed", {})
            if isinstance(exc, Exception):
                raise StepFailed(name, step.kind, srec.error) from exc
            raise
        finally:
            for ref in step.inputs.values():
                if ref.step is not None:
                    self._release((ref.step, self._output_key(ref)), remaining, persisted)
        srec.status = "success"
        srec.ended = dt.datetime.now()
        srec.duration_s = time.monotonic() - t0
        rows = (", ".join(f"{o}={n:,} row{'' if n == 1 else 's'}" for o, n in srec.rows_out.items())
                or "no outputs written")
        log.info("step %s: done in %.1fs (%s)", name, srec.duration_s, rows, extra={STEP_EVENT: True})
        if self.progress is not None:
            self.progress.step_finished(name, "success", dict(srec.rows_out))
        # what it wrote, so a rerun can feed later steps from the committed outputs instead of recomputing
        written = written_message(srec.metrics.get("partitions_written", {}), srec.rows_out,
                                  {oname: out.path for oname, out in step.outputs.items()}, raw_read,
                                  definition=self.reuse.definition(name), figures=step_figures(srec.metrics))
        if writes:
            self._mark(name, "success", written)

    def _write_outputs(self, spark: Any, step: StepSpec, results: dict[tuple[str, str], Any]) -> dict[str, Any]:
        """Writes every output of ``step``, several at once when steps may run concurrently, and publishes them
        only when all of them were staged and passed their checks: a step that fails leaves every previous
        output in place (not new trades beside old quotes). The lock is checked once, right before the commits.

        Returns {output: WriteResult} in declared order. When outputs fail, the first failing one (in declared
        order) is raised, after the others have finished staging and been removed.
        """
        staged: dict[str, StagedOutput] = {}  # outputs staged so far: their checks are reported if another fails

        def one(oname: str) -> StagedOutput:
            spark.sparkContext.setJobGroup(f"{self.spec.name}.{step.name}", f"{self.spec.name}.{step.name}", True)
            key = (step.name, self._canonical(step, oname))
            staged[oname] = stage_output(spark, results[key], step.outputs[oname], self.storage,
                                         self.options.run_id, expectations=self._expectations_for(step, oname),
                                         quarantine_date=srec_date(self.date))
            return staged[oname]

        names = list(step.outputs)
        if not names:
            return {}
        workers = min(self.options.parallel_steps, len(names))
        try:
            if workers <= 1:
                for oname in names:
                    one(oname)
            else:
                with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"{step.name}.write") as pool:
                    futures = {oname: pool.submit(one, oname) for oname in names}
                    wait(futures.values())
                for fut in futures.values():
                    fut.result()  # the first failure in declared order
            if self._stopping:  # the run was stopped while this step's own code ran on: it publishes nothing
                raise RuntimeError(f"not committed: {self._stopping}")
            check = getattr(self.guard, "assert_lock", None)
            if check is not None:
                check()  # our lock is still ours: the last thing before publishing anything
        except BaseException as exc:
            for done in staged.values():
                abort_staged(self.storage, done)
            if isinstance(exc, ExpectationFailed):
                exc.results[:0] = [r for o in names if o in staged for r in staged[o].result.expectations
                                   if r not in exc.results]
            raise
        # Published as one (Storage.commit_all: Ctrl-C and SIGTERM held back meanwhile, a journal finishes them
        # after a crash): never new trades beside old quotes. A file-system error leaves the ones after it unpublished.
        commit_staged(self.storage, *(staged[oname] for oname in names))
        return {oname: staged[oname].result for oname in names}

    def _expectations_for(self, step: StepSpec, output: str) -> list[Any]:
        if not step.expectations:
            return []
        from engine.expectations import parse_expectations

        exps = parse_expectations(list(step.expectations))
        default = next(iter(step.outputs))
        return [e for e in exps if (getattr(e, "output", None) or default) == output]

    def _release(self, key: tuple[str, str], remaining: dict[tuple[str, str], int],
                 persisted: dict[tuple[str, str], Any]) -> None:
        with self._lock:
            remaining[key] = remaining.get(key, 0) - 1
            done = persisted.pop(key) if remaining[key] <= 0 and key in persisted else None
        if done is not None:
            done.unpersist()

    def _collect_charts(self, name: str, results: dict[tuple[str, str], Any],
                        remaining: dict[tuple[str, str], int], persisted: dict[tuple[str, str], Any]) -> None:
        """Fetch the rows of each chart drawn from this step's results (each chart its own columns)."""
        from engine.charts import fetch_frame, parse_chart

        for i, chart in enumerate(self.spec.charts):
            src = str(chart.get("source", ""))
            if not src or src.startswith(("metrics:", "dataset:")):
                continue
            ref = InputRef.parse(src)
            spec = parse_chart(i, chart)
            if ref.step != name or spec in self.chart_frames:
                continue
            key = (name, self._output_key(ref))
            try:
                self.chart_frames[spec] = fetch_frame(results[key], spec)
            except Exception as exc:  # a chart that cannot be drawn costs the report a chart, not the step
                if self._stopping:  # the run is being stopped: its job was cancelled, so the step was too
                    raise
                self.chart_frames[spec] = exc
            self._release(key, remaining, persisted)

    def _charts_of_reused(self, spark: Any, skip: set[str], reload: dict[str, dict[str, list[str]]]) -> None:
        """Charts drawn from a step this run reuses (it succeeded earlier) read the step's committed output, the
        partitions it wrote for this date, so that a resumed run's report still shows them."""
        from engine.charts import ChartError, fetch_frame, parse_chart

        for i, chart in enumerate(self.spec.charts):
            src = str(chart.get("source", ""))
            if not src or src.startswith(("metrics:", "dataset:")):
                continue
            ref = InputRef.parse(src)
            if ref.step not in skip and ref.step not in reload:
                continue
            spec, step = parse_chart(i, chart), self.spec.steps[ref.step or ""]
            oname = self.reuse.needed_output(step, ref)
            out = step.outputs.get(oname)
            written = reload.get(ref.step or "") or self.reuse.written_partitions(ref.step or "") or {}
            partitions = written.get(oname)
            try:
                if out is None or (out.partition_by and partitions is None):
                    raise ChartError(f"step {ref.step} was not recomputed (it succeeded earlier) and its "
                                     f"{oname} rows of this date cannot be read back; --force recomputes it")
                self.chart_frames[spec] = fetch_frame(self._read_committed(spark, out, partitions), spec)
            except Exception as exc:  # as for a step that ran: the chart shows why, the run goes on
                self.chart_frames[spec] = exc

    def _read_raw(self, stamps: dict[str, str], rel: str) -> str | None:
        """A raw folder for a step, stamped before it is read: a file that lands while the step reads makes
        the next run see a change (and recompute), never the reverse."""
        stamps[rel] = stamp_folder(self.raw_storage, rel).encode()
        return self.raw_storage.read_uri(rel)

    @staticmethod
    def summary(record: RunRecord) -> str:
        ran = [s for s in record.steps if s.status == "success"]
        skipped = [s for s in record.steps if s.status == "skipped"]
        rows = sum(sum(s.rows_out.values()) for s in record.steps)
        dur = f"{record.duration_s:.1f}s" if record.duration_s is not None else "?"
        text = (f"{record.pipeline} {record.date or ''}: {record.status} in {dur}; {len(ran)} step(s) ran, "
                f"{len(skipped)} skipped; {rows:,} rows written").replace("  ", " ")
        return f"{text}; {record.message}" if record.status in ("success", "stale") and record.message else text


def srec_date(date: dt.date | None) -> str | None:
    return date.isoformat() if date else None
