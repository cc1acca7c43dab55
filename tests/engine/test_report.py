"""Run report: JSON and HTML parsed, then the page rendered offline in headless Chromium and looked at."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.charts import parse_charts, render_chart
from engine.report import write_report
from engine.run_record import ExpectationResult, RunRecord, StepRecord

T0 = dt.datetime(2020, 8, 6, 18, 0, 0)
SECRET = "AccountKeyXYZ123=="


def step(name, transform, deps, status, start, end, **kw) -> StepRecord:
    return StepRecord(name=name, transform=transform, depends_on=deps, status=status,
                      started=T0 + dt.timedelta(seconds=start), ended=T0 + dt.timedelta(seconds=end),
                      duration_s=float(end - start), **kw)


def sample_record() -> RunRecord:
    steps = [
        step("validate", "ingest_raw", [], "success", 0, 9, rows_in={"lines": 1000},
             rows_out={"valid": 940, "bad": 60},
             metrics={"bad_by_reason": {"bad_price": 40, "bid_gt_ask": 15, "broken_json": 5}, "files": 4}),
        step("eod_trade", "eod_load", ["validate"], "success", 9, 20, rows_in={"records": 940},
             rows_out={"trade": 400}, outputs={"trade": "trade"},
             expectations=[ExpectationResult("unique_key", "check", "unique(trade_dt, symbol)", 400, 0, True)]),
        step("eod_quote", "eod_load", ["validate"], "failed", 9, 15, rows_in={"records": 940},
             error=f"step 'eod_quote' (eod_load) failed: expectation 'bid_le_ask' failed; key {SECRET}",
             expectations=[ExpectationResult("bid_le_ask", "fail", "bid_pr <= ask_pr", 520, 7, False)]),
        step("summary", "sql", ["eod_trade", "eod_quote"], "skipped", 20, 20, skip_reason="upstream failed"),
    ]
    return RunRecord(run_id="r-42", pipeline="preprocess", date="2020-08-06", spec_file="pipelines/preprocess.yaml",
                     storage_root="./warehouse", status="failed", started=T0, ended=T0 + dt.timedelta(seconds=21),
                     steps=steps, message="1 step failed: eod_quote")


def sample_charts():
    rng = np.random.default_rng(3)
    minutes = pd.date_range("2020-08-06 09:30", periods=60, freq="1min")
    bars = pd.DataFrame([(s, m, 50 + rng.normal(), 50 + rng.normal()) for s in ("AAA", "BBB") for m in minutes],
                        columns=["symbol", "minute", "close", "vwap"])
    volume = pd.DataFrame({"exchange": ["N", "Q", "A"], "volume": [300, 120, 80]})
    specs = parse_charts([
        {"title": "Price and VWAP", "source": "bars", "x": "minute", "y": ["close", "vwap"], "facet": "symbol"},
        {"title": "Volume by exchange", "source": "vol", "kind": "bar", "x": "exchange", "y": "volume"},
        {"title": "Bad records by reason", "source": "metrics:validate.bad_by_reason", "kind": "barh"},
    ])
    rec = sample_record()
    return [render_chart(specs[0], bars), render_chart(specs[1], volume),
            render_chart(specs[2], rec.step("validate").metrics["bad_by_reason"])]


class Collector(HTMLParser):
    """Collects tags with attributes and all text (stdlib parser: no extra dependency)."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.stack: list[str] = []
        self.text: list[str] = []
        self.texts_by_attr: dict[tuple[str, str], str] = {}
        self._open_attr: list[tuple[str, str] | None] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        key = next(((k, v) for k, v in a.items() if k in ("data-rows-out", "data-rows-in")), None)
        if tag not in ("br", "meta", "img", "input", "link"):
            self._open_attr.append(key)

    def handle_endtag(self, tag):
        if self._open_attr:
            self._open_attr.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self._open_attr and self._open_attr[-1]:
            self.texts_by_attr[self._open_attr[-1]] = data


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "_reports" / "preprocess" / "2020-08-06" / "r-42"
    log = out.parent.parent.parent.parent / "logs" / "preprocess_2020-08-06_r-42.log"
    log.parent.mkdir(parents=True)
    log.write_text("log\n")
    record, charts = sample_record(), sample_charts()
    html_path, json_path = write_report(record, charts, out, str(log), secrets=[SECRET])
    return record, charts, html_path, json_path, log


def test_json_has_every_step_and_count(report):
    record, charts, _, json_path, log = report
    data = json.loads(json_path.read_text())
    assert (data["pipeline"], data["date"], data["status"]) == ("preprocess", "2020-08-06", "failed")
    assert [s["name"] for s in data["steps"]] == [s.name for s in record.steps]
    for got, want in zip(data["steps"], record.steps, strict=True):
        assert got["rows_out"] == want.rows_out and got["status"] == want.status
        assert got["duration_s"] == want.duration_s
    assert data["steps"][0]["metrics"]["bad_by_reason"] == {"bad_price": 40, "bid_gt_ask": 15, "broken_json": 5}
    assert data["steps"][2]["expectations"][0]["failed"] == 7
    assert [c["title"] for c in data["charts"]] == [c.title for c in charts]
    assert data["edges"] == [list(e) for e in record.edges]
    assert data["log_file"] == str(log)
    assert SECRET not in json_path.read_text() and "***" in json_path.read_text()
    # times carry their UTC offset: a script reading the file need not guess the machine's time zone
    started = dt.datetime.fromisoformat(data["started"])
    assert started.tzinfo is not None and started == record.started.astimezone()  # type: ignore[union-attr]
    assert dt.datetime.fromisoformat(data["steps"][0]["ended"]).tzinfo is not None


def test_html_has_steps_counts_charts_and_log_link(report):
    record, charts, html_path, _, log = report
    html = html_path.read_text()
    parser = Collector()
    parser.feed(html)
    text = " ".join(parser.text)
    step_rows = [a["data-step"] for t, a in parser.tags if t == "tr" and "data-step" in a]
    assert step_rows == [s.name for s in record.steps]
    for s in record.steps:
        for name, rows in s.rows_out.items():
            assert parser.texts_by_attr[("data-rows-out", name)] == f"{rows:,}"
    for reason, n in record.step("validate").metrics["bad_by_reason"].items():
        assert reason in text and str(n) in text
    exps = [a["data-expectation"] for t, a in parser.tags if t == "tr" and "data-expectation" in a]
    assert exps == ["eod_trade.unique_key", "eod_quote.bid_le_ask"]
    chart_divs = [a["data-chart"] for t, a in parser.tags if t == "div" and "data-chart" in a]
    assert chart_divs == [c.title for c in charts]
    # every chart, the DAG and the timeline are inline SVG: no external resource at all
    assert sum(1 for t, _ in parser.tags if t == "svg") == len(charts) + 2
    assert not [a for t, a in parser.tags if t in ("script", "link", "img") and
                any(str(v).startswith(("http:", "https:", "//")) for v in a.values())]
    links = [a["href"] for t, a in parser.tags if t == "a" and "href" in a]
    assert links and links[0] == log.resolve().as_uri()
    assert SECRET not in html and "failed: expectation &#39;bid_le_ask&#39; failed" in html


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def screenshot(html: Path, png: Path, profile: Path) -> None:
    """Headless Chromium, offline flags, as root: the page must render with no network."""
    exe = find_chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (Debian package 'chromium')")
        pytest.skip("chromium is not installed")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}",
           f"--screenshot={png}", "--window-size=1280,2400", html.resolve().as_uri()]
    # stderr to a file, not a pipe: Chromium's helper processes can hold a pipe open after it exits
    err = png.with_suffix(".stderr.txt")
    with err.open("w") as fh:
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=fh, timeout=120, check=False)
    assert png.exists(), f"chromium wrote no screenshot (rc={proc.returncode}): {err.read_text()[-800:]}"


def test_screenshot_is_not_blank(report, tmp_path):
    from PIL import Image

    _, _, html_path, _, _ = report
    png = tmp_path / "report.png"
    screenshot(html_path, png, tmp_path / "profile")
    img = Image.open(png).convert("RGB")
    assert img.size == (1280, 2400)
    pixels = np.asarray(img).reshape(-1, 3)
    non_white = np.any(pixels < 245, axis=1).mean()
    colours = len(np.unique(pixels // 16, axis=0))  # distinct colours at 4-bit depth per channel
    assert non_white > 0.05, f"only {non_white:.1%} of the page is not white"
    assert colours > 50, f"only {colours} distinct colours"
    # the status colours made it to the screen: the failed badge red and the success green are present
    for rgb in ((0xc6, 0x28, 0x28), (0x2e, 0x7d, 0x32)):
        assert np.any(np.all(np.abs(pixels.astype(int) - rgb) <= 8, axis=1)), f"colour {rgb} not rendered"


def test_report_of_a_run_that_never_started_a_step(tmp_path):
    record = RunRecord(run_id="r-0", pipeline="analyze", date=None, spec_file="pipelines/analyze.yaml",
                       storage_root="./warehouse", status="failed", message="upstream preprocess_2020-08-06 not done")
    html_path, json_path = write_report(record, [], tmp_path, None)
    assert json.loads(json_path.read_text())["steps"] == []
    html = html_path.read_text()
    assert "upstream preprocess_2020-08-06 not done" in html and "<svg" not in html


def test_secrets_with_characters_html_escapes_never_reach_the_report(tmp_path):
    """The page is masked after the template escaped it: a SAS token ('&' in every one) or a password holding
    < > " ' must be masked in its escaped form too, and so must what a cut-short error line left of it."""
    import html

    from engine.error_lines import essential_line

    sas, password = "sv=2022-11-02&ss=b&sig=Ab<c>d\"e'f%2Fg==", "pa'ss<wo>rd&\"x"
    cut = essential_line(RuntimeError("y" * 366 + f" password {password}"))
    assert cut.endswith(password[:7] + "...")
    record = RunRecord(run_id="r-1", pipeline="analyze", date="2020-08-06", spec_file="pipelines/analyze.yaml",
                       storage_root=f"https://acct.blob.core.windows.net/wh?{sas}", status="failed",
                       message=f"upload failed: {sas} / {password}",
                       steps=[step("load", "sql", [], "failed", 0, 1, error=cut)])
    html_path, json_path = write_report(record, [], tmp_path, None, secrets=[sas, password])
    page, data = html.unescape(html_path.read_text()), json.loads(json_path.read_text())
    for text in (page, json.dumps(data, ensure_ascii=False)):
        assert sas not in text and "sig=Ab" not in text and password[:4] not in text, text
    assert data["message"] == "upload failed: *** / ***" and "upload failed: *** / ***" in page
