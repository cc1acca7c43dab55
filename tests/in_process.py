"""Run a product pipeline in the test session's SparkSession instead of through ./preprocess.sh or ./analyze.sh.

A CLI subprocess starts its own JVM (~10 s plus JIT warm-up every time). Where a test only needs the datasets a
run produces (e.g. a reference to compare against), this runs the same spec with the same config, registry and
storages as ``run_pipeline.py run`` does, date by date, in the already running session. There is no job tracker
(every step is computed), no run log and no report: tests of those go through the CLI.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.config import Config
from engine.registry import REGISTRY
from engine.run_record import RunRecord
from engine.runner import PipelineRunner, RunOptions
from engine.spec_loader import load_spec
from engine.storage.factory import open_storage
from engine.storage.local import LocalStorage


def run_pipeline(spec_path: str | Path, config: Config, dates: Iterable[dt.date], spark: Any) -> list[RunRecord]:
    """Runs ``spec_path`` for each of ``dates`` (in the order given) with ``config``'s local root and raw root;
    returns the dates' run records. A failed step raises (StepFailed), as in a CLI run."""
    storage, raw_storage = (open_storage(root, config) for root in (config.storage.root, config.storage.raw_root))
    for store in (storage, raw_storage):
        if not isinstance(store, LocalStorage):
            raise ValueError(f"in-process runs are for local storage only, not {store.describe()}")
    REGISTRY.discover(config.modules, where=config.source)
    records: list[RunRecord] = []
    try:
        for date in dates:
            spec = load_spec(spec_path, date=date, config=config)
            runner = PipelineRunner(spec, config, date=date, storage=storage, raw_storage=raw_storage,
                                    registry=REGISTRY, spark_provider=lambda: spark,
                                    options=RunOptions(parallel_steps=config.parallel_steps))
            records.append(runner.run())
    finally:
        storage.settle()  # as the CLI at its end: this process's staging and trash folders go
    return records
