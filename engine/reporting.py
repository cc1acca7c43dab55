"""Builds the run report (HTML + JSON) from a run record and publishes it next to the outputs."""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from engine.run_record import RunRecord
from engine.storage.base import Storage
from engine.storage.local import LocalStorage

log = logging.getLogger("tickflow.report")
REPORTS = "_reports"


def report_prefix(record: RunRecord) -> str:
    return f"{REPORTS}/{record.pipeline}/{record.date or 'nodate'}/{record.run_id}"


def build_charts(runner: Any, record: RunRecord) -> list[Any]:
    """Charts declared under ``report.charts``; a chart that cannot be drawn shows why instead."""
    from engine.charts import fetch_frame, parse_charts, render_all

    def fetch(spec: Any) -> Any:
        if spec.source_kind == "metrics":
            try:
                return record.step(spec.step).metrics.get(spec.metric_key)
            except KeyError:
                return None
        if spec.source_kind == "dataset":
            spark = getattr(runner, "spark", None)
            uri = runner.storage.read_uri(spec.dataset)
            if spark is None or uri is None:
                return None
            return fetch_frame(spark.read.parquet(uri), spec)
        frame = runner.chart_frames.get(spec)
        if isinstance(frame, Exception):  # fetching failed while the step ran: the chart shows why
            raise frame
        return frame

    return render_all(parse_charts(list(runner.spec.charts)), fetch, log)


def _plain(value: Any) -> Any:
    """What the report's JSON writes for a date (RunRecord.to_json); anything else is not JSON."""
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _shown(value: Any) -> str:
    """A text standing for a value the report cannot hold; never fails (a repr may)."""
    try:
        return repr(value)[:500]
    except Exception:
        return f"<{type(value).__module__}.{type(value).__qualname__}>"


def sanitize_metrics(record: RunRecord) -> None:
    """Replace, in place, every metric the report cannot write as JSON by its repr, with a warning.

    ``ctx.record`` refuses such values; this covers anything else that put one there. A DataFrame must never
    reach the report's ``asdict`` (a deep copy), which fails on Spark objects and would cost the whole report.
    """
    for step in record.steps:
        for key, value in list(step.metrics.items()):
            try:
                json.dumps(value, default=_plain)
            except (TypeError, ValueError) as exc:
                step.metrics[key] = _shown(value)
                log.warning("the run report shows metric '%s' of step '%s' as text: its %s value is not "
                            "JSON-serialisable (%s)", key, step.name, type(value).__name__, exc)


def _keep_locally(record: RunRecord, charts: list[Any], log_file: Path | None, secrets: list[str], where: str,
                  exc: Exception) -> str:
    """Writes the report beside the run's log when the storage refused it, and says where."""
    from engine.report import HTML_NAME, JSON_NAME, write_report

    base = log_file.parent if log_file else Path(tempfile.gettempdir())
    folder = base / f"report_{record.pipeline}_{record.date or 'nodate'}_{record.run_id}"
    folder.mkdir(parents=True, exist_ok=True)
    record.report_html, record.report_json = str(folder / HTML_NAME), str(folder / JSON_NAME)
    html, _ = write_report(record, charts, folder, str(log_file) if log_file else None, secrets=secrets)
    log.warning("the run report could not be published to %s (%s); it is kept at %s", where, exc, html)
    return str(html)


def publish_report(record: RunRecord, runner: Any, storage: Storage, log_file: Path | None) -> str | None:
    """Write report.html/report.json; returns where a person can open it (a path or URI)."""
    from engine.report import HTML_NAME, JSON_NAME, write_report

    secrets = runner.config.secrets()
    try:
        sanitize_metrics(record)
    except Exception:  # never lose the report over it: write_report says what still fails
        log.debug("sanitizing metrics failed", exc_info=True)
    try:
        charts = build_charts(runner, record)
        prefix = report_prefix(record)
        if isinstance(storage, LocalStorage):
            out_dir = storage.path / prefix
            out_dir.mkdir(parents=True, exist_ok=True)
            record.report_html, record.report_json = str(out_dir / HTML_NAME), str(out_dir / JSON_NAME)
            html, _ = write_report(record, charts, out_dir, str(log_file) if log_file else None,
                                   secrets=secrets)
            return str(html)
        where = f"{storage.root.rstrip('/')}/{prefix}"
        record.report_html, record.report_json = f"{where}/{HTML_NAME}", f"{where}/{JSON_NAME}"
        with tempfile.TemporaryDirectory() as tmp:
            html, js = write_report(record, charts, Path(tmp), str(log_file) if log_file else None,
                                    secrets=secrets)
            try:
                storage.put_file(f"{prefix}/{Path(html).name}", str(html))
                storage.put_file(f"{prefix}/{Path(js).name}", str(js))
            except Exception as exc:  # the storage went away (often why the run failed): keep the report here
                return _keep_locally(record, charts, log_file, secrets, where, exc)
        return record.report_html
    except Exception as exc:
        record.report_html = record.report_json = None
        log.warning("the run report could not be written: %s", exc)
        log.debug("report failure", exc_info=True)
        return None
