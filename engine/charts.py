"""Charts declared in a pipeline's YAML (`report: {charts: [...]}`), drawn with matplotlib as inline SVG.

The engine knows nothing about what is charted: the YAML names a source (a step's output, or a metric a
step recorded), the columns and the kind of chart; the runner loads the rows and calls ``render_chart``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from engine.spec_items import ItemSpecError, item_problems

KINDS = ("line", "bar", "barh", "stacked_bar")
_KEYS = {"title", "source", "kind", "x", "y", "series", "facet", "max_facets", "limit", "max_series",
         "xlabel", "ylabel"}
DEFAULT_LIMIT = 100_000  # rows fetched to the driver for one chart when the YAML sets no limit


class ChartSpecError(ItemSpecError):
    """A chart declared in the YAML is malformed; the message names the chart and the key."""


class ChartError(ValueError):
    """A chart cannot be drawn from the data it was given (e.g. a column is missing)."""


@dataclass(frozen=True)
class ChartSpec:
    title: str
    source: str  # "step", "step.output", "metrics:step.key" or "dataset:rel/path"
    kind: str = "line"
    x: str | None = None
    y: tuple[str, ...] = ()
    series: str | None = None
    facet: str | None = None
    max_facets: int = 4
    limit: int | None = None
    max_series: int = 10
    xlabel: str | None = None
    ylabel: str | None = None

    @property
    def source_kind(self) -> str:
        """'metrics' (a dict a step recorded), 'dataset' (a committed dataset) or 'step' (a step's output)."""
        if self.source.startswith("metrics:"):
            return "metrics"
        if self.source.startswith("dataset:"):
            return "dataset"
        return "step"

    @property
    def step(self) -> str | None:
        """The step the chart reads from (None for a dataset source)."""
        if self.source_kind == "dataset":
            return None
        ref = self.source.split(":", 1)[1] if self.source_kind == "metrics" else self.source
        return ref.split(".", 1)[0]

    @property
    def output(self) -> str | None:
        """The named output of the step, or None for its default output (step sources only)."""
        if self.source_kind != "step" or "." not in self.source:
            return None
        return self.source.split(".", 1)[1]

    @property
    def metric_key(self) -> str | None:
        """The metrics key (metrics sources only)."""
        if self.source_kind != "metrics":
            return None
        return self.source.split(":", 1)[1].split(".", 1)[1]

    @property
    def dataset(self) -> str | None:
        """The dataset path under the storage root (dataset sources only)."""
        return self.source.split(":", 1)[1] if self.source_kind == "dataset" else None

    @property
    def row_limit(self) -> int:
        """How many rows the runner should fetch (limit or a safe default)."""
        return self.limit or DEFAULT_LIMIT

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the chart uses, so the runner can select only those before fetching."""
        cols = [c for c in (self.x, *self.y, self.series, self.facet) if c]
        return tuple(dict.fromkeys(cols))


@dataclass(frozen=True)
class Chart:
    title: str
    svg: str  # an <svg> element, ready to inline
    note: str = ""  # e.g. "first 4 of 9 facets shown"


def _where(i: int, item: Mapping[str, Any]) -> str:
    title = item.get("title") if isinstance(item, Mapping) else None
    return f"charts[{i}]" + (f" ({title})" if isinstance(title, str) else "")


def _bad(i: int, item: Any, detail: str, key: str | None = None) -> ChartSpecError:
    """``charts[i] (title): detail``, carrying the index and key for validation."""
    return ChartSpecError(f"{_where(i, item)}: {detail}", index=i, key=key, detail=detail)


def _opt_str(i: int, item: Mapping[str, Any], key: str) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _bad(i, item, f"'{key}' must be a column name (a non-empty string)", key)
    return value


def _opt_int(i: int, item: Mapping[str, Any], key: str, default: int | None, lo: int, hi: int) -> int | None:
    value = item.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _bad(i, item, f"'{key}' must be an integer in [{lo}, {hi}], got {value!r}", key)
    return value


def parse_chart(i: int, item: Any) -> ChartSpec:
    """One YAML chart item -> ChartSpec; ``i`` is its index, used in error messages."""
    if not isinstance(item, Mapping):
        raise _bad(i, item, "expected a mapping with title, source, kind, x, y")
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise _bad(i, item, f"unknown key(s) {', '.join(unknown)}; expected some of {', '.join(sorted(_KEYS))}",
                   unknown[0])
    title, source = item.get("title"), item.get("source")
    if not isinstance(title, str) or not title.strip():
        raise _bad(i, None, "'title' is required (a non-empty string)", "title" if "title" in item else None)
    if not isinstance(source, str) or not source.strip():
        raise _bad(i, item, "'source' is required: a step, step.output, metrics:<step>.<key> or dataset:<path>",
                   "source" if "source" in item else None)
    kind = item.get("kind", "bar" if source.startswith("metrics:") else "line")
    if kind not in KINDS:
        raise _bad(i, item, f"kind '{kind}' is not one of {', '.join(KINDS)}", "kind")
    y_raw = item.get("y")
    if y_raw is None:
        y: tuple[str, ...] = ()
    elif isinstance(y_raw, str) and y_raw:
        y = (y_raw,)
    elif isinstance(y_raw, list) and y_raw and all(isinstance(c, str) and c for c in y_raw):
        y = tuple(y_raw)
    else:
        raise _bad(i, item, "'y' must be a column name or a non-empty list of them", "y")
    spec = ChartSpec(
        title=title, source=source, kind=kind, x=_opt_str(i, item, "x"), y=y,
        series=_opt_str(i, item, "series"), facet=_opt_str(i, item, "facet"),
        max_facets=_opt_int(i, item, "max_facets", 4, 1, 16) or 4,
        limit=_opt_int(i, item, "limit", None, 1, 10_000_000),
        max_series=_opt_int(i, item, "max_series", 10, 1, 50) or 10,
        xlabel=item.get("xlabel"), ylabel=item.get("ylabel"),
    )
    if spec.source_kind == "metrics":
        ref = source.split(":", 1)[1]
        if "." not in ref or not all(ref.split(".", 1)):
            raise _bad(i, item, f"metrics source must be 'metrics:<step>.<key>', got {source!r}", "source")
        if kind not in ("bar", "barh"):
            raise _bad(i, item, f"a metrics chart is a 'bar' or 'barh' chart, not '{kind}'", "kind")
        if spec.series or spec.facet:
            raise _bad(i, item, "a metrics chart takes no series or facet", "series" if spec.series else "facet")
    else:
        if spec.x is None or not spec.y:
            raise _bad(i, item, f"'x' and 'y' are required for a {spec.source_kind} source")
        if spec.source_kind == "dataset" and not spec.dataset:
            raise _bad(i, item, "dataset source must be 'dataset:<path>'", "source")
    if spec.series and len(spec.y) > 1 and kind != "line":
        raise _bad(i, item, f"with 'series', a {kind} chart takes a single 'y' column", "series")
    return spec


def chart_problems(items: Any) -> tuple[list[tuple[int, ChartSpec]], list[ItemSpecError]]:
    """Every chart of `report.charts`: the good ones with their index, and an error for each bad one
    (validation reports them all at once, each at its own line, not only the first)."""
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        return [], [ChartSpecError("report.charts must be a list of charts")]
    return item_problems(items, parse_chart, lambda spec: spec.title, lambda i, item, _spec, first: _bad(
        i, item, f"duplicate chart title (charts[{first}] has it too); titles are unique", "title"))


def parse_charts(items: Sequence[Any]) -> list[ChartSpec]:
    """Validate the YAML's `report.charts` list; raises ChartSpecError naming the first bad chart."""
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise ChartSpecError("report.charts must be a list of charts")
    specs = [parse_chart(i, item) for i, item in enumerate(items)]
    titles = [s.title for s in specs]
    dup = sorted({t for t in titles if titles.count(t) > 1})
    if dup:
        raise ChartSpecError(f"report.charts: duplicate chart title(s): {', '.join(dup)}")
    return specs


# ---------------------------------------------------------------------------------------------- rendering

def _metric_frame(spec: ChartSpec, metric: Mapping[str, Any]) -> tuple[pd.DataFrame, ChartSpec]:
    x, y = spec.x or "label", (spec.y[0] if spec.y else "value")
    rows = [(str(k), v) for k, v in metric.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    rows.sort(key=lambda kv: -float(kv[1]))
    frame = pd.DataFrame(rows, columns=[x, y])
    return frame, ChartSpec(title=spec.title, source=spec.source, kind=spec.kind, x=x, y=(y,),
                            limit=spec.limit, xlabel=spec.xlabel if spec.xlabel is not None else "",
                            ylabel=spec.ylabel if spec.ylabel is not None else "")


def _not_a_mapping(spec: ChartSpec, value: Any) -> str:
    """Why a metric cannot be charted: a step recorded one value (``ctx.record('keys', 3)``), not labelled numbers."""
    kind = type(value).__name__
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return (f"chart '{spec.title}': metrics {spec.source.split(':', 1)[1]} is {'an' if kind[0] in 'aeiou' else 'a'} "
            f"{kind} ({shown}); a metrics chart needs a {{label: number}} mapping, e.g. "
            f"ctx.record('{spec.metric_key}', {{'a': 1, 'b': 2}})")


def _table_to_metric(spec: ChartSpec, frame: pd.DataFrame) -> dict[str, Any]:
    """A metric given as a table: its label/value columns (or x/y, or the first two) back to a dict."""
    if spec.x and spec.y and {spec.x, spec.y[0]} <= set(frame.columns):
        label, value = spec.x, spec.y[0]
    elif {"label", "value"} <= set(frame.columns):
        label, value = "label", "value"
    elif len(frame.columns) >= 2:
        label, value = frame.columns[0], frame.columns[1]
    else:
        raise ChartError(f"chart '{spec.title}': a metrics table needs a label and a value column")
    return dict(zip(frame[label].astype(str), frame[value], strict=True))


def _prepare(spec: ChartSpec, frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in spec.columns if c not in frame.columns]
    if missing:
        raise ChartError(f"chart '{spec.title}': column(s) {', '.join(missing)} not in {spec.source} "
                         f"(it has: {', '.join(map(str, frame.columns))})")
    frame = frame.loc[:, list(spec.columns)].copy()
    if spec.limit is not None:
        frame = frame.head(spec.limit)
    for col in spec.y:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    xs = frame[spec.x].dropna()
    if frame[spec.x].dtype == object and len(xs) and isinstance(xs.iloc[0], dt.date):
        frame[spec.x] = pd.to_datetime(frame[spec.x])
    return frame


def _label(value: Any) -> str:
    if isinstance(value, pd.Timestamp | dt.datetime):
        ts = pd.Timestamp(value)
        if ts.hour == ts.minute == ts.second == ts.microsecond == 0:
            return ts.strftime("%Y-%m-%d")
        return ts.strftime("%H:%M:%S" if ts.second else "%H:%M")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _style(ax, spec: ChartSpec, horizontal: bool) -> None:
    ax.grid(True, axis="x" if horizontal else "y", alpha=0.3, linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    value_axis = ax.xaxis if horizontal else ax.yaxis
    fmt = value_axis.get_major_formatter()
    if hasattr(fmt, "set_useOffset"):
        fmt.set_useOffset(False)
        fmt.set_scientific(False)
    ax.tick_params(labelsize=8)
    xlabel = spec.xlabel if spec.xlabel is not None else spec.x
    ylabel = spec.ylabel if spec.ylabel is not None else (spec.y[0] if len(spec.y) == 1 else "")
    if horizontal:
        xlabel, ylabel = ylabel, xlabel
    ax.set_xlabel(xlabel or "", fontsize=8)
    ax.set_ylabel(ylabel or "", fontsize=8)


def _series_values(spec: ChartSpec, frame: pd.DataFrame) -> list[Any]:
    return list(dict.fromkeys(frame[spec.series].dropna()))[: spec.max_series]


def _table(spec: ChartSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """x -> one column per bar group (series values, or the y columns), in order of appearance."""
    if spec.series:
        keep = frame[frame[spec.series].isin(_series_values(spec, frame))]
        table = keep.pivot_table(index=spec.x, columns=spec.series, values=spec.y[0], aggfunc="sum", sort=False)
        return table.loc[:, [v for v in _series_values(spec, frame) if v in table.columns]]
    return frame.groupby(spec.x, sort=False)[list(spec.y)].sum()


def _draw_line(ax, spec: ChartSpec, frame: pd.DataFrame) -> int:
    frame = frame.sort_values(spec.x, kind="stable")
    n = 0
    groups = ([(v, frame[frame[spec.series] == v]) for v in _series_values(spec, frame)]
              if spec.series else [(None, frame)])
    for value, sub in groups:
        for col in spec.y:
            label = col if value is None else (str(value) if len(spec.y) == 1 else f"{value} · {col}")
            ax.plot(sub[spec.x], sub[col], label=label, linewidth=1.3, marker="o" if len(sub) < 30 else None,
                    markersize=3)
            n += 1
    if pd.api.types.is_datetime64_any_dtype(frame[spec.x]):
        import matplotlib.dates as mdates

        times = frame[spec.x].dropna()
        if len(times) and times.min() == times.max():  # one instant: give the locator a range to tick
            ax.set_xlim(times.min() - pd.Timedelta(minutes=1), times.max() + pd.Timedelta(minutes=1))
        locator = mdates.AutoDateLocator(maxticks=8)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    return n


def _draw_bars(ax, spec: ChartSpec, frame: pd.DataFrame) -> int:
    table = _table(spec, frame)
    cats = [_label(v) for v in table.index]
    positions = list(range(len(cats)))
    horizontal = spec.kind == "barh"
    groups = list(table.columns)
    if spec.kind == "stacked_bar":
        bottom = [0.0] * len(cats)
        for g in groups:
            vals = table[g].fillna(0.0).tolist()
            ax.bar(positions, vals, 0.75, bottom=bottom, label=str(g))
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    else:
        width = 0.8 / max(len(groups), 1)
        for k, g in enumerate(groups):
            offs = [p - 0.4 + width * (k + 0.5) for p in positions]
            vals = table[g].tolist()
            if horizontal:
                ax.barh(offs, vals, width, label=str(g))
            else:
                ax.bar(offs, vals, width, label=str(g))
    if len(groups) == 1 and len(cats) <= 30 and spec.kind != "stacked_bar":
        ax.bar_label(ax.containers[0], labels=[format_value(v) for v in table[groups[0]].tolist()],
                     padding=2, fontsize=7, color="#444444")
        ax.margins(**({"x": 0.08} if horizontal else {"y": 0.08}))
    if horizontal:
        ax.set_yticks(positions, cats)
        ax.invert_yaxis()  # first row on top, as in the data
    else:
        rotate = len(cats) > 8 or max((len(c) for c in cats), default=0) * len(cats) > 70
        ax.set_xticks(positions, cats, rotation=45 if rotate else 0, ha="right" if rotate else "center")
    return len(groups)


def format_value(value: float) -> str:
    """Short label for a bar value: thousands separators, at most 4 significant decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.4g}"


def _no_data(spec: ChartSpec) -> Chart:
    from matplotlib.figure import Figure

    from engine.graph_render import figure_to_svg

    fig = Figure(figsize=(8, 1.2))
    fig.text(0.5, 0.5, f"{spec.title}: no data", ha="center", va="center", fontsize=10, color="#777777")
    return Chart(spec.title, figure_to_svg(fig), note="no data")


def render_chart(spec: ChartSpec, frame: pd.DataFrame | Mapping[str, Any]) -> Chart:
    """Draw one chart; ``frame`` is the source rows (pandas) or, for a metrics source, the metric dict."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from engine.graph_render import figure_to_svg

    if spec.source_kind == "metrics" and isinstance(frame, pd.DataFrame):
        frame = _table_to_metric(spec, frame)
    elif spec.source_kind == "metrics" and not isinstance(frame, Mapping):
        raise ChartError(_not_a_mapping(spec, frame))
    if isinstance(frame, Mapping):
        frame, spec = _metric_frame(spec, frame)
    frame = _prepare(spec, frame)
    if frame.empty:
        return _no_data(spec)

    notes: list[str] = []
    if spec.facet:
        all_facets = list(dict.fromkeys(frame[spec.facet].dropna()))
        facets: list[Any] = all_facets[: spec.max_facets]
        if len(all_facets) > len(facets):
            notes.append(f"first {len(facets)} of {len(all_facets)} {spec.facet} values shown")
    else:
        facets = [None]
    if spec.series:
        n_series = frame[spec.series].nunique(dropna=True)
        if n_series > spec.max_series:
            notes.append(f"first {spec.max_series} of {n_series} {spec.series} values shown")

    ncols = 1 if len(facets) == 1 else 2
    nrows = math.ceil(len(facets) / ncols)
    n_cats = int(frame[spec.x].nunique())
    groups = (min(int(frame[spec.series].nunique()), spec.max_series) if spec.series else len(spec.y))
    width = 11.0
    if spec.kind == "barh":
        panel_h = max(1.4, 0.28 * n_cats * (1 if spec.kind == "stacked_bar" else max(groups, 1)) + 0.7)
    else:
        panel_h = 3.2
        if spec.kind in ("bar", "stacked_bar") and len(facets) == 1:  # a few fat bars need no full width
            bars = n_cats * (1 if spec.kind == "stacked_bar" else max(groups, 1))
            width = min(11.0, max(5.0, 2.0 + 0.55 * bars))
    fig = Figure(figsize=(width, panel_h * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    fig.suptitle(spec.title, fontsize=11, fontweight="bold", x=0.01, ha="left")
    for k, value in enumerate(facets):
        ax = axes[k // ncols][k % ncols]
        sub = frame if value is None else frame[frame[spec.facet] == value]
        n = _draw_line(ax, spec, sub) if spec.kind == "line" else _draw_bars(ax, spec, sub)
        _style(ax, spec, horizontal=spec.kind == "barh")
        if value is not None:
            ax.set_title(_label(value), fontsize=9, loc="left")
        if n > 1 or spec.series:  # a series is named even when only one value is present
            ax.legend(fontsize=7, frameon=False, ncols=min(n, 4))
    for k in range(len(facets), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    return Chart(spec.title, figure_to_svg(fig), note="; ".join(notes))


def fetch_frame(df, spec: ChartSpec) -> pd.DataFrame:
    """The rows a chart needs from a Spark DataFrame: only its columns, at most ``spec.row_limit`` rows.

    Raises ChartError naming the missing columns before any Spark job runs.
    """
    missing = [c for c in spec.columns if c not in df.columns]
    if missing:
        raise ChartError(f"chart '{spec.title}': column(s) {', '.join(missing)} not in {spec.source} "
                         f"(it has: {', '.join(df.columns)})")
    return df.select(*[f"`{c}`" for c in spec.columns]).limit(spec.row_limit).toPandas()


def error_chart(spec: ChartSpec, message: str) -> Chart:
    """A placeholder that shows in the report why a chart could not be drawn."""
    from matplotlib.figure import Figure

    from engine.graph_render import figure_to_svg

    fig = Figure(figsize=(8, 1.2))
    fig.text(0.5, 0.5, f"{spec.title}: chart not drawn", ha="center", va="center", fontsize=10,
             color="#c62828")
    return Chart(spec.title, figure_to_svg(fig), note=message)


def render_all(specs: Sequence[ChartSpec], fetch: Callable[[ChartSpec], Any], log: logging.Logger | None = None
               ) -> list[Chart]:
    """Render every chart; ``fetch(spec)`` returns its rows (pandas), its metric dict, or None (no data).

    A chart that fails (missing column, failed step, Spark error) becomes a placeholder with the reason,
    and a warning in the log: a broken chart never costs the run its report.
    """
    charts: list[Chart] = []
    for spec in specs:
        try:
            data = fetch(spec)
            with warnings.catch_warnings():  # values near a float's limits: matplotlib warns while scaling axes
                warnings.simplefilter("ignore", RuntimeWarning)
                charts.append(_no_data(spec) if data is None else render_chart(spec, data))
        except Exception as exc:  # any failure stays in this chart
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if log is not None:
                log.warning("chart '%s' not drawn: %s", spec.title, first)
            charts.append(error_chart(spec, first))
    return charts
