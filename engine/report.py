"""The run report: one self-contained HTML page (no network needed) and the same facts as JSON.

Built only from the RunRecord and the rendered charts, so it can be written for any run, failed ones too.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from engine import graph_render
from engine.charts import Chart
from engine.run_record import ExpectationResult, RunRecord, StepRecord

TEMPLATES = Path(__file__).resolve().parent / "templates"
HTML_NAME, JSON_NAME = "report.html", "report.json"


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["duration"] = format_duration
    env.filters["num"] = format_number
    return env


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() and abs(value) < 1e15 else f"{value:,.6g}"
    return str(value)


def expectation_state(result: ExpectationResult) -> str:
    """ok, warn (violations tolerated: warn/drop) or fail (the step fails on it)."""
    if result.ok:
        return "ok"
    return "warn" if result.action in ("warn", "drop") else "fail"


def _metric_tables(step: StepRecord) -> tuple[list[tuple[str, list[tuple[str, Any]]]], list[tuple[str, Any]]]:
    """Split metrics into {label: number} tables (e.g. bad_by_reason) and plain scalar facts."""
    tables: list[tuple[str, list[tuple[str, Any]]]] = []
    scalars: list[tuple[str, Any]] = []
    for key, value in step.metrics.items():
        if isinstance(value, dict):
            rows = sorted(value.items(), key=lambda kv: (-kv[1] if isinstance(kv[1], int | float) else 0, kv[0]))
            tables.append((key, [(str(k), v) for k, v in rows]))
        elif isinstance(value, list | tuple):
            scalars.append((key, ", ".join(map(str, value))))
        else:
            scalars.append((key, value))
    return tables, scalars


def _timeline_svg(record: RunRecord) -> str | None:
    """A Gantt-like chart of when each step ran (only when steps have start and end times)."""
    timed = [s for s in record.steps if s.started and s.ended]
    if not timed:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    t0 = min(s.started for s in timed if s.started)
    fig = Figure(figsize=(11, 0.32 * len(timed) + 0.9), layout="constrained")
    ax = fig.add_subplot()
    for i, s in enumerate(timed):
        start = (s.started - t0).total_seconds()  # type: ignore[operator]
        length = max((s.ended - s.started).total_seconds(), 0.0)  # type: ignore[operator]
        fill, stroke, _ = graph_render.STATUS_COLORS.get(s.status, graph_render.STATUS_COLORS["pending"])
        ax.barh(i, max(length, 0.001), left=start, color=fill, edgecolor=stroke, linewidth=1.0, height=0.6)
        ax.text(start + length, i, f"  {format_duration(length)}", va="center", fontsize=7, color="#444444")
    ax.set_yticks(range(len(timed)), [s.name for s in timed], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the first step started", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(True, axis="x", alpha=0.3, linewidth=0.6)
    ax.set_axisbelow(True)
    return graph_render.figure_to_svg(fig)


def _log_link(log_file: str | None) -> tuple[str | None, str | None]:
    """(href, label): an absolute file:// URI (the report may be written in a temporary folder and
    published elsewhere, so a relative link would break); URIs such as az:// are kept as they are."""
    if not log_file:
        return None, None
    if "://" in log_file:
        return log_file, log_file
    return Path(log_file).resolve().as_uri(), str(log_file)


def _masker(secrets: Sequence[str]):
    from engine.logs import SecretMasker

    return SecretMasker(secrets)


def build_context(record: RunRecord, charts: Sequence[Chart], out_dir: Path, log_file: str | None) -> dict:
    statuses = {s.name: s.status for s in record.steps}
    nodes = [s.name for s in record.steps]
    dag_svg: str | None = None
    if nodes:
        try:
            dag_svg = graph_render.to_svg(nodes, record.edges, statuses)
        except graph_render.GraphError:
            dag_svg = None
    steps = []
    for s in record.steps:
        tables, scalars = _metric_tables(s)
        steps.append({"rec": s, "metric_tables": tables, "metric_scalars": scalars,
                      "exp_states": [expectation_state(e) for e in s.expectations]})
    expectations = [(s.name, e, expectation_state(e)) for s in record.steps for e in s.expectations]
    counts = {st: sum(1 for s in record.steps if s.status == st) for st in graph_render.STATUS_COLORS}
    href, label = _log_link(log_file or record.log_file)
    timeline = _timeline_svg(record)
    return {
        "r": record,
        "steps": steps,
        "with_metrics": [s for s in steps if s["metric_tables"] or s["metric_scalars"]],
        "expectations": expectations,
        "exp_summary": {k: sum(1 for _, _, st in expectations if st == k) for k in ("ok", "warn", "fail")},
        "status_counts": {k: v for k, v in counts.items() if v},
        "colors": graph_render.STATUS_COLORS,
        "dag_svg": Markup(dag_svg) if dag_svg else None,
        "timeline_svg": Markup(timeline) if timeline else None,
        "charts": [{"title": c.title, "svg": Markup(c.svg), "note": c.note} for c in charts],
        "log_href": href,
        "log_label": label,
        "rows_out_total": sum(sum(v for v in s.rows_out.values() if v) for s in record.steps),
        "generated": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    }


def render_html(record: RunRecord, charts: Sequence[Chart], out_dir: Path, log_file: str | None) -> str:
    return _env().get_template("report.html.j2").render(**build_context(record, charts, out_dir, log_file))


def report_json(record: RunRecord, charts: Sequence[Chart], log_file: str | None) -> dict[str, Any]:
    data = record.to_json()
    data["log_file"] = log_file or record.log_file
    data["charts"] = [{"title": c.title, "note": c.note} for c in charts]
    return data


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(record: RunRecord, charts: list[Chart], out_dir: Path, log_file: str | None,
                 *, secrets: Sequence[str] = ()) -> tuple[Path, Path]:
    """Write report.html and report.json into ``out_dir``; returns their paths (html, json).

    ``secrets`` are masked in both files as a last line of defence (the record should hold none): the masker
    knows the forms the page writes them in (HTML-escaped by the template, URL-encoded in links, JSON-escaped).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path, json_path = out_dir / HTML_NAME, out_dir / JSON_NAME
    mask = _masker(secrets).mask
    html = render_html(record, charts, out_dir, log_file)
    payload = json.dumps(report_json(record, charts, log_file), indent=2, default=str, ensure_ascii=False)
    _write_atomic(html_path, mask(html))
    _write_atomic(json_path, mask(payload) + "\n")
    return html_path, json_path
