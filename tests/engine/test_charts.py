"""Charts declared in YAML: parsing errors, every kind rendered, facets, series, metric sources."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from engine.charts import (
    ChartError,
    ChartSpecError,
    chart_problems,
    fetch_frame,
    parse_charts,
    render_all,
    render_chart,
)

SVG_NS = "{http://www.w3.org/2000/svg}"


def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    minutes = pd.date_range("2020-08-06 09:30", periods=30, freq="1min")
    rows = [(sym, ex, m, 100 + rng.normal(), int(rng.integers(1, 500)))
            for sym in ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF") for ex in ("N", "Q") for m in minutes]
    return pd.DataFrame(rows, columns=["symbol", "exchange", "minute", "price", "volume"])


def axes_count(svg: str) -> int:
    root = ET.fromstring(svg)
    return sum(1 for el in root.iter(f"{SVG_NS}g") if re.fullmatch(r"axes_\d+", el.get("id", "")))


def test_parse_defaults_and_source_forms():
    specs = parse_charts([
        {"title": "a", "source": "bars", "x": "minute", "y": "price"},
        {"title": "b", "source": "bars.by_symbol", "kind": "bar", "x": "symbol", "y": ["volume", "price"]},
        {"title": "c", "source": "metrics:validate.bad_by_reason"},
        {"title": "d", "source": "dataset:analytics/daily", "kind": "barh", "x": "symbol", "y": "volume",
         "limit": 20},
    ])
    a, b, c, d = specs
    assert (a.kind, a.y, a.step, a.output, a.max_facets) == ("line", ("price",), "bars", None, 4)
    assert (b.step, b.output, b.y) == ("bars", "by_symbol", ("volume", "price"))
    assert (c.kind, c.source_kind, c.step, c.metric_key) == ("bar", "metrics", "validate", "bad_by_reason")
    assert (d.source_kind, d.dataset, d.step, d.row_limit) == ("dataset", "analytics/daily", None, 20)
    assert a.columns == ("minute", "price")


@pytest.mark.parametrize("item, fragment", [
    ({"source": "s", "x": "a", "y": "b"}, "'title' is required"),
    ({"title": "t", "x": "a", "y": "b"}, "'source' is required"),
    ({"title": "t", "source": "s", "kind": "pie", "x": "a", "y": "b"}, "kind 'pie'"),
    ({"title": "t", "source": "s", "y": "b"}, "'x' and 'y' are required"),
    ({"title": "t", "source": "metrics:nodot"}, "metrics:<step>.<key>"),
    ({"title": "t", "source": "metrics:s.k", "kind": "line"}, "'bar' or 'barh'"),
    ({"title": "t", "source": "s", "x": "a", "y": "b", "max_facets": 0}, "max_facets"),
    ({"title": "t", "source": "s", "x": "a", "y": "b", "colour": "red"}, "unknown key(s) colour"),
    ({"title": "t", "source": "s", "kind": "bar", "x": "a", "y": ["b", "c"], "series": "d"}, "single 'y'"),
])
def test_parse_errors(item, fragment):
    with pytest.raises(ChartSpecError) as exc:
        parse_charts([item])
    assert fragment in str(exc.value)


def test_validation_gets_every_bad_chart_with_its_index_and_key():
    """parse_charts stops at the first bad chart; validation reports them all, each at its own line."""
    good, errors = chart_problems([
        {"title": "a", "source": "s", "x": "a", "y": "b"},
        {"title": "b", "source": "s", "kind": "pie", "x": "a", "y": "b"},
        {"title": "c", "source": "metrics:s.k", "series": "z"},
        {"title": "a", "source": "t", "x": "a", "y": "b"},
    ])
    assert [(i, c.title) for i, c in good] == [(0, "a")]
    assert [(e.index, e.key, e.detail) for e in errors] == [
        (1, "kind", "kind 'pie' is not one of line, bar, barh, stacked_bar"),
        (2, "series", "a metrics chart takes no series or facet"),
        (3, "title", "duplicate chart title (charts[0] has it too); titles are unique"),
    ]
    assert str(errors[0]) == "charts[1] (b): kind 'pie' is not one of line, bar, barh, stacked_bar"


def test_duplicate_titles_rejected():
    with pytest.raises(ChartSpecError, match="duplicate"):
        parse_charts([{"title": "t", "source": "s", "x": "a", "y": "b"}] * 2)


def test_line_with_facets_limits_small_multiples():
    df = frame()
    [spec] = parse_charts([{"title": "Price", "source": "bars", "x": "minute", "y": "price", "series": "exchange",
                            "facet": "symbol", "max_facets": 4}])
    chart = render_chart(spec, df)
    assert chart.title == "Price" and chart.svg.startswith("<svg")
    assert axes_count(chart.svg) == 4  # 6 symbols, at most 4 panels
    assert chart.note == "first 4 of 6 symbol values shown"
    for sym in ("AAA", "BBB", "CCC", "DDD"):
        assert f">{sym}<" in chart.svg
    assert ">EEE<" not in chart.svg


@pytest.mark.parametrize("kind", ["bar", "barh", "stacked_bar"])
def test_bar_kinds_with_series(kind):
    df = frame().groupby(["symbol", "exchange"], as_index=False)["volume"].sum()
    [spec] = parse_charts([{"title": "Volume", "source": "v", "kind": kind, "x": "symbol", "y": "volume",
                            "series": "exchange"}])
    chart = render_chart(spec, df)
    assert axes_count(chart.svg) == 1
    root = ET.fromstring(chart.svg)
    bars = [el for el in root.iter(f"{SVG_NS}g") if re.fullmatch(r"patch_\d+", el.get("id", ""))]
    assert len(bars) >= len(df)  # one rectangle per (symbol, exchange), plus the axes background
    for sym in df["symbol"].unique():
        assert f">{sym}<" in chart.svg


def test_metric_chart_labels_values():
    [spec] = parse_charts([{"title": "Bad records by reason", "source": "metrics:validate.bad_by_reason",
                            "kind": "barh"}])
    chart = render_chart(spec, {"bad_price": 120, "bid_gt_ask": 7, "note": "not a number"})
    assert ">bad_price<" in chart.svg and ">bid_gt_ask<" in chart.svg and ">120<" in chart.svg
    assert "not a number" not in chart.svg
    # the same metric handed over as a label/value table draws the same bars
    table = pd.DataFrame({"label": ["bad_price", "bid_gt_ask"], "value": [120, 7]})
    again = render_chart(spec, table)
    assert ">bad_price<" in again.svg and ">120<" in again.svg


def test_limit_and_dates_and_empty():
    [spec] = parse_charts([{"title": "Daily", "source": "d", "x": "day", "y": "n", "limit": 3}])
    days = pd.DataFrame({"day": [pd.Timestamp("2020-08-03").date() + pd.Timedelta(days=i) for i in range(5)],
                         "n": [1, 2, 3, 4, 5]})
    chart = render_chart(spec, days)
    points = re.findall(r'<use [^>]*style="[^"]*fill: #1f77b4', chart.svg)  # markers of the first line
    assert len(points) == 3  # only the first 3 rows are plotted
    empty = render_chart(spec, days.iloc[0:0])
    assert empty.note == "no data" and "no data" in empty.svg


def test_missing_column_is_named():
    [spec] = parse_charts([{"title": "P", "source": "bars", "x": "minute", "y": "vwap"}])
    with pytest.raises(ChartError, match="column\\(s\\) vwap not in bars"):
        render_chart(spec, frame())


def test_fetch_from_spark_and_render_all(spark):
    df = spark.sql("""
        SELECT * FROM VALUES
          ('AAA', TIMESTAMP_NTZ'2020-08-06 09:30:00', 10.0, 1), ('AAA', TIMESTAMP_NTZ'2020-08-06 09:31:00', 10.5, 2),
          ('BBB', TIMESTAMP_NTZ'2020-08-06 09:30:00', 20.0, 3)
        AS t(symbol, minute, close, extra)""")
    good, bad, metric, empty = parse_charts([
        {"title": "close", "source": "bars", "x": "minute", "y": "close", "series": "symbol", "limit": 2},
        {"title": "broken", "source": "bars", "x": "minute", "y": "vwap"},
        {"title": "reasons", "source": "metrics:v.bad_by_reason"},
        {"title": "nothing", "source": "other", "x": "a", "y": "b"},
    ])
    pdf = fetch_frame(df, good)
    assert list(pdf.columns) == ["minute", "close", "symbol"] and len(pdf) == 2
    assert str(pdf["minute"].dtype).startswith("datetime64")
    sources = {"close": lambda: fetch_frame(df, good), "broken": lambda: fetch_frame(df, bad),
               "reasons": lambda: {"x": 3}, "nothing": lambda: None}
    charts = render_all([good, bad, metric, empty], lambda spec: sources[spec.title]())
    assert [c.title for c in charts] == ["close", "broken", "reasons", "nothing"]
    assert charts[0].note == "" and ">AAA<" in charts[0].svg
    assert "vwap" in charts[1].note and "chart not drawn" in charts[1].svg
    assert ">x<" in charts[2].svg
    assert charts[3].note == "no data"


def test_a_line_chart_of_one_instant_renders_without_warnings():
    """A quiet run of a tiny day must print nothing: matplotlib warned on a date axis of zero width."""
    import warnings

    [spec] = parse_charts([{"title": "One minute", "source": "d", "x": "minute", "y": "price"}])
    one = pd.DataFrame({"minute": [pd.Timestamp("2020-08-06 09:30")], "price": [101.5]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chart = render_chart(spec, one)
    assert chart.note != "no data" and "09:30" in chart.svg


def test_prices_near_the_float_limit_render_without_warnings():
    """A day with a price near 1.8e308 (valid, if absurd) printed matplotlib's overflow warning in the run."""
    import warnings

    [spec] = parse_charts([{"title": "Huge", "source": "d", "x": "minute", "y": "price"}])
    huge = pd.DataFrame({"minute": pd.to_datetime(["2020-08-06 09:30", "2020-08-06 09:31"]),
                         "price": [1.7976931348623157e308, 17.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (chart,) = render_all([spec], lambda _spec: huge)
    assert chart.note == "" and "not drawn" not in chart.svg, chart.note


@pytest.mark.parametrize("value,what", [(3, "is an int (3)"), (["a", 1], "is a list (['a', 1])")])
def test_a_metric_that_is_not_a_mapping_is_named_with_what_it_is(value, what):
    """A step recorded one value (ctx.record('keys', 3)): the warning says so, not "'int' object has no 'loc'"."""
    [spec] = parse_charts([{"title": "Imbalance", "source": "metrics:imbalance.keys", "kind": "bar"}])
    with pytest.raises(ChartError) as info:
        render_chart(spec, value)
    assert str(info.value) == (f"chart 'Imbalance': metrics imbalance.keys {what}; a metrics chart needs a "
                               "{label: number} mapping, e.g. ctx.record('keys', {'a': 1, 'b': 2})")
