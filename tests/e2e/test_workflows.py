"""Both workflows end to end as a user runs them: generator, backfill with a weekend, catch-up, status."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
WEEK = [dt.date(2024, 1, 4) + dt.timedelta(days=n) for n in range(7)]  # Thu .. Wed, with a weekend
TRADING = [d for d in WEEK if d.weekday() < 5]


def run(args, cwd, timeout=900):
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = tmp_path_factory.mktemp("workflows")
    out = run([sys.executable, "-m", "datagen", "--out", "raw", "--start", "2024-01-04", "--days", "5",
               "--events", "3000", "--symbols", "4", "--parts", "2", "--seed", "11"], work)
    assert out.returncode == 0, out.stderr
    # the last setting is misspelt (coalescePartitions): Spark would take it without a word
    (work / "tickflow.ini").write_text("[spark]\nmaster = local[2]\nspark.sql.shuffle.partitions = 4\n"
                                       "spark.sql.adaptive.coalescePartition.enabled = false\n")
    return work


def test_generator_skips_the_weekend(workdir):
    dates = sorted(p.name for p in (workdir / "raw" / "csv").iterdir())
    assert dates == [d.isoformat() for d in TRADING]


def test_backfill_runs_each_trading_day_then_skips_them(workdir):
    args = [str(ROOT / "preprocess.sh"), "--start", WEEK[0].isoformat(), "--end", WEEK[-1].isoformat(),
            "--config", "tickflow.ini"]
    first = run(args, workdir)
    assert first.returncode == 0, first.stderr[-3000:]
    table = first.stdout[first.stdout.index("date        status"):]
    for d in TRADING:
        assert f"{d.isoformat()}  success" in table, table
    for d in WEEK:
        if d.weekday() >= 5:
            assert d.isoformat() not in table
    assert "report: " in first.stdout and "log: " in first.stdout
    # said once for the invocation (one Spark session for every date), the right spelling not named
    assert first.stderr.count("[spark] spark.sql.adaptive.coalescePartition.enabled is not a setting Spark") == 1
    assert "shuffle.partitions is not" not in first.stderr
    for d in TRADING:
        assert (workdir / "warehouse" / "trade" / f"trade_dt={d.isoformat()}").is_dir()

    again = run(args, workdir, timeout=120)
    assert again.returncode == 0, again.stderr
    for d in TRADING:
        assert f"{d.isoformat()}  skipped" in again.stdout, again.stdout
    assert "starting Spark" not in again.stderr  # nothing to do: no JVM


def test_analyze_catches_up_and_status_shows_both(workdir):
    first = run([str(ROOT / "analyze.sh"), "--config", "tickflow.ini"], workdir)
    assert first.returncode == 0, first.stderr[-3000:]
    status = run([sys.executable, str(ROOT / "run_pipeline.py"), "status", "--config", "tickflow.ini"], workdir)
    assert status.returncode == 0
    for d in TRADING:
        for pipeline in ("preprocess", "analyze"):
            line = next(ln for ln in status.stdout.splitlines() if ln.startswith(f"{pipeline}_{d.isoformat()} "))
            assert " success " in line, line
    again = run([str(ROOT / "analyze.sh"), "--date", TRADING[-1].isoformat(), "--config", "tickflow.ini"],
                workdir, timeout=120)
    assert again.returncode == 0 and "already succeeded" in again.stdout
    nothing = run([str(ROOT / "analyze.sh"), "--config", "tickflow.ini"], workdir, timeout=120)
    assert nothing.returncode == 0 and "nothing to do" in nothing.stdout


def test_report_json_matches_datasets(workdir, spark):
    reports = sorted((workdir / "warehouse" / "_reports" / "analyze" / TRADING[-1].isoformat()).glob("*/report.json"))
    assert reports
    data = json.loads(reports[-1].read_text())
    assert data["status"] == "success"
    assert (data["report_json"], data["report_html"]) == (str(reports[-1]), str(reports[-1].with_suffix(".html")))
    steps = {s["name"]: s for s in data["steps"]}
    bars = spark.read.parquet(str(workdir / "warehouse" / "analytics" / "bars_1m"))
    assert steps["bars_1m"]["rows_out"]["bars_1m"] == bars.where(f"trade_dt = '{TRADING[-1]}'").count()


def test_a_day_of_empty_files_runs_through_both_workflows(workdir):
    """An exchange holiday delivered as empty files: nothing valid, yet both jobs succeed, the summary has its
    row of zeros, and the prior close still comes from each key's own latest earlier trading date."""
    import pandas as pd

    day = TRADING[-1] + dt.timedelta(days=1)
    (workdir / "raw" / "csv" / day.isoformat() / "NYSE").mkdir(parents=True)
    (workdir / "raw" / "csv" / day.isoformat() / "NYSE" / "part-00000.txt").write_text("")
    for script in ("preprocess.sh", "analyze.sh"):
        out = run([str(ROOT / script), "--date", day.isoformat(), "--config", "tickflow.ini"], workdir)
        assert out.returncode == 0, (script, out.stdout[-2000:], out.stderr[-3000:])
    wh = workdir / "warehouse"
    summary = pd.read_parquet(wh / "analytics" / "market_summary" / f"trade_dt={day}")
    assert summary[["symbol_count", "advancers", "total_volume"]].values.tolist() == [[0, 0, 0]]
    trades = pd.read_parquet(wh / "trade")
    trades = trades[trades["trade_dt"].astype(str) < str(day)].sort_values(["trade_dt", "event_tm", "event_seq_nb"])
    last = trades.groupby(["symbol", "exchange"]).tail(1)
    expected = {(r.symbol, r.exchange): (r.trade_pr, str(r.trade_dt)) for r in last.itertuples()}
    closes = pd.read_parquet(wh / "analytics" / "prior_close" / f"trade_dt={day}")
    assert {(r.symbol, r.exchange): (r.close_pr, str(r.close_dt)) for r in closes.itertuples()} == expected
    assert len(expected) > 4


def test_a_deleted_close_partition_is_rewritten_and_the_dates_reading_it_recomputed(workdir):
    """Someone deletes one date's trade_close partition by hand. The tracker still says the date succeeded,
    yet the catch-ups notice: preprocess runs that date again (reusing nothing it lost) and analyze then
    recomputes every later date, whose prior close read it, instead of keeping closes from an older day."""
    import pandas as pd

    wh = workdir / "warehouse"
    gone_day, reader = TRADING[-2], TRADING[-1]
    closes_before = pd.read_parquet(wh / "analytics" / "prior_close" / f"trade_dt={reader}")
    assert set(closes_before["close_dt"].astype(str)) == {str(gone_day)}
    lost = wh / "trade_close" / f"trade_dt={gone_day}"
    for part in lost.iterdir():
        part.unlink()
    lost.rmdir()

    pre = run([str(ROOT / "preprocess.sh"), "--config", "tickflow.ini"], workdir)
    assert pre.returncode == 0, pre.stderr[-3000:]
    assert f"trade_close/trade_dt={gone_day}" in pre.stderr and "running it again" in pre.stderr
    assert lost.is_dir()
    ana = run([str(ROOT / "analyze.sh"), "--config", "tickflow.ini"], workdir)
    assert ana.returncode == 0, ana.stderr[-3000:]
    for day in (reader, reader + dt.timedelta(days=1)):  # the later dates (the empty-files day too) ran again
        assert f"{day.isoformat()}  success" in ana.stdout, ana.stdout
    closes = pd.read_parquet(wh / "analytics" / "prior_close" / f"trade_dt={reader}")
    key = ["symbol", "exchange"]
    assert closes.sort_values(key).reset_index(drop=True).equals(closes_before.sort_values(key).reset_index(drop=True))


def test_a_late_raw_file_reruns_its_date_and_the_dates_after_it(workdir):
    """A correction file lands in a date's raw folder after the date was processed. The tracker says the date
    succeeded, yet the plan and both catch-ups notice: preprocess runs that date again (the correction wins in
    trade/), analyze then recomputes that date and every later one, and a third catch-up has nothing to do."""
    import pandas as pd

    wh, day = workdir / "warehouse", TRADING[0]
    trades = pd.read_parquet(wh / "trade" / f"trade_dt={day}")
    csv_trades = trades[trades["source_file"].str.startswith("csv/")].sort_values(["event_tm", "event_seq_nb"])
    old = csv_trades.iloc[len(csv_trades) // 2]
    key = (old.symbol, old.exchange, old.event_tm, old.event_seq_nb)
    new_price = round(float(old.trade_pr) * 1.5, 6)
    late = workdir / "raw" / "csv" / str(day) / old.exchange / "part-late.txt"
    late.write_text(f"{day},{day} 23:59:59.000,T,{old.symbol},{old.event_tm:%Y-%m-%d %H:%M:%S.%f}"[:-3]
                    + f",{old.event_seq_nb},{old.exchange},{new_price},{int(old.trade_size)}\n")

    # the analyze of that date would read what preprocess no longer stands for: refused before Spark
    blocked = run([str(ROOT / "analyze.sh"), "--config", "tickflow.ini", "--date", str(day)], workdir)
    assert blocked.returncode == 3, blocked.stderr[-3000:]
    assert f"preprocess_{day} (status: success, but its raw input changed since it ran: csv/{day}" in blocked.stderr
    plan = run([str(ROOT / "preprocess.sh"), "--config", "tickflow.ini", "--dry-run"], workdir)
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "its raw input changed since it ran" in plan.stdout and f"csv/{day}" in plan.stdout, plan.stdout
    pre = run([str(ROOT / "preprocess.sh"), "--config", "tickflow.ini"], workdir)
    assert pre.returncode == 0, pre.stderr[-3000:]
    assert f"csv/{day}" in pre.stderr and "running it again" in pre.stderr, pre.stderr[-3000:]
    after = pd.read_parquet(wh / "trade" / f"trade_dt={day}")
    assert len(after) == len(trades)  # a correction replaces its key's row
    row = after[(after.symbol == key[0]) & (after.exchange == key[1]) & (after.event_tm == key[2])
                & (after.event_seq_nb == key[3])]
    assert len(row) == 1 and row.iloc[0].trade_pr == new_price and row.iloc[0].source_file.endswith("part-late.txt")

    ana = run([str(ROOT / "analyze.sh"), "--config", "tickflow.ini"], workdir)
    assert ana.returncode == 0, ana.stderr[-3000:]
    for later in TRADING:
        assert f"{later.isoformat()}  success" in ana.stdout, ana.stdout
    again = run([str(ROOT / "preprocess.sh"), "--config", "tickflow.ini"], workdir)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr[-2000:]
