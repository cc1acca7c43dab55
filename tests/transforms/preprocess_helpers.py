"""Helpers shared by the preprocess tests: a TransformContext over a local raw folder."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from engine.context import TransformContext


def raw_context(spark: Any, raw: Path, day: dt.date) -> TransformContext:
    """A context whose raw root is ``raw`` (no storage root: ingestion reads raw files only)."""

    def raw_reader(rel: str) -> str | None:
        return str(raw / rel) if (raw / rel).exists() else None

    return TransformContext(spark=spark, date=day, step="ingest", log=logging.getLogger("test.preprocess"),
                            _dataset_reader=lambda rel: None, _raw_reader=raw_reader, raw_root=f"local folder {raw}")
