"""Ingestion and validation on the real sample and on generated data with known corruptions."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import pytest

from datagen import GenConfig, generate
from engine.errors import TransformError
from tests.transforms import preprocess_reference as ref
from tests.transforms.preprocess_helpers import raw_context
from transforms.ingest import ingest_frames, ingest_preflight
from transforms.validation import REASON_CODES

SAMPLE_DATES = (dt.date(2020, 8, 5), dt.date(2020, 8, 6))


def _plain_counts(sample: Path, day: dt.date) -> Counter[str]:
    """Trades and quotes per date, read directly from the files."""
    out: Counter[str] = Counter()
    for path in (sample / "csv" / day.isoformat()).glob("*/part-*"):
        out.update(line.split(",")[2] for line in path.read_text().splitlines())
    for path in (sample / "json" / day.isoformat()).glob("*/part-*"):
        out.update(json.loads(line)["event_type"] for line in path.read_text().splitlines())
    return out


@pytest.fixture(scope="module")
def sample_ingested(spark, shared_sample):
    """Both sample dates ingested once: (metrics, event rows, quarantine count) per date."""
    out = {}
    for day in SAMPLE_DATES:
        ctx = raw_context(spark, shared_sample, day)
        frames = ingest_frames(ctx, {})
        out[day] = (ctx.metrics, frames["events"].collect(), frames["quarantine"].count())
    return out


@pytest.mark.parametrize("day", SAMPLE_DATES)
def test_real_sample_all_valid_with_exact_counts(sample_ingested, shared_sample, day):
    metrics, events, bad_rows = sample_ingested[day]
    assert metrics["bad"] == 0 and metrics["lines_read"] == 600 == metrics["valid"] and bad_rows == 0
    assert Counter(r["rec_type"] for r in events) == _plain_counts(shared_sample, day)
    assert all(r["trade_dt"] == day and r["line_no"] >= 1 for r in events)


def test_real_sample_json_trades_carry_price_and_size(sample_ingested, shared_sample):
    day = SAMPLE_DATES[0]
    expected = {}
    for path in (shared_sample / "json" / day.isoformat()).glob("*/part-*"):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec["event_type"] == "T":
                expected[(rec["symbol"], rec["event_seq_nb"])] = (rec["price"], rec["size"], rec["execution_id"])
    rows = [r for r in sample_ingested[day][1] if r["rec_type"] == "T" and r["source_file"].startswith("json/")]
    got = {(r["symbol"], r["event_seq_nb"]): (r["trade_pr"], r["trade_size"], r["execution_id"]) for r in rows}
    assert got == expected and len(got) == 30


def test_real_sample_total_is_1200_records(sample_ingested):
    assert sum(m["valid"] for m, _e, _q in sample_ingested.values()) == 1200


@pytest.fixture(scope="module")
def corrupted(tmp_path_factory, spark):
    """A generated day with every kind of corruption, ingested once."""
    raw = tmp_path_factory.mktemp("raw")
    stats = generate(GenConfig(out=raw, seed=7, start=dt.date(2020, 8, 5), days=1, events=3000, symbols=3,
                               parts=3, bad_rate=0.04, correction_rate=0.05, collect_bad=True))
    day = dt.date(2020, 8, 5)
    ctx = raw_context(spark, raw, day)
    out = ingest_frames(ctx, {"max_bad_share": 1.0})
    quarantine = out["quarantine"].collect()
    return raw, day, stats, ctx, out, quarantine


def test_generated_bad_counts_per_reason_match_reference(corrupted):
    raw, day, stats, ctx, _out, quarantine = corrupted
    expected = Counter(r.reason for r in ref.ingest_day(raw, day) if r.reason)
    assert set(expected) == set(REASON_CODES)  # every kind is present
    assert Counter(r["reason"] for r in quarantine) == expected
    assert {k: v for k, v in ctx.metrics["bad_by_reason"].items()} == dict(expected)
    assert ctx.metrics["valid"] + ctx.metrics["bad"] == ctx.metrics["lines_read"] == stats.lines


def test_generated_each_bad_line_kept_with_file_line_and_reason(corrupted):
    raw, day, stats, _ctx, _out, quarantine = corrupted
    expected = {(r.source_file, r.line_no): (r.raw_line, r.reason) for r in ref.ingest_day(raw, day) if r.reason}
    got = {(r["source_file"], r["line_no"]): (r["raw_line"], r["reason"]) for r in quarantine}
    assert got == expected
    assert all(r["partition"] == "B" and r["trade_dt"] == day and r["detail"] for r in quarantine)
    # the generator's intended kind is the reason found: one rule broken per corrupted line
    assert {(f, n): k for f, n, k in stats.bad_lines} == {k: v[1] for k, v in got.items()}
    # a field's rule names the field and shows its raw text, which is in the raw line
    named = [r for r in quarantine if r["reason"] in ("bad_number", "non_positive", "bad_timestamp")]
    assert named
    for r in named:
        field, _, value = r["detail"].split(": ", 1)[1].partition(" '")
        assert value.endswith("'") and value[:-1] in r["raw_line"] and field in (
            "event_seq_nb", "trade_pr", "trade_size", "bid_pr", "bid_size", "ask_pr", "ask_size", "file_tm",
            "event_tm"), r


def test_generated_valid_events_match_reference(corrupted):
    raw, day, _stats, _ctx, out, _q = corrupted
    cols = ["trade_dt", "rec_type", "symbol", "exchange", "event_tm", "event_seq_nb", "arrival_tm", "trade_pr",
            "trade_size", "bid_pr", "bid_size", "ask_pr", "ask_size", "execution_id"]
    expected = Counter(
        (r.source_file, r.line_no, *[r.values.get(c) for c in cols])
        for r in ref.ingest_day(raw, day) if r.reason is None)
    got = Counter((r["source_file"], r["line_no"], *[r[c] for c in cols]) for r in out["events"].collect())
    assert got == expected


def test_bad_share_threshold_fails_naming_the_file(spark, tmp_path):
    generate(GenConfig(out=tmp_path, seed=3, days=1, events=400, symbols=2, parts=2, bad_rate=0.2))
    ctx = raw_context(spark, tmp_path, dt.date(2020, 8, 5))
    with pytest.raises(TransformError, match=r"max_bad_share 5\.00%; worst (csv|json)/2020-08-05/\w+/part-"):
        ingest_frames(ctx, {"max_bad_share": 0.05})


def test_missing_raw_input_is_a_clear_error(spark, tmp_path):
    ctx = raw_context(spark, tmp_path, dt.date(2020, 8, 5))
    with pytest.raises(TransformError) as info:
        ingest_frames(ctx, {})
    assert (f"no raw input under csv/2020-08-05, json/2020-08-05 of the raw root (local folder {tmp_path})"
            in str(info.value))
    out = ingest_frames(ctx, {"require_input": False})
    assert out["events"].count() == 0 and out["quarantine"].count() == 0


def test_preflight_refuses_a_date_without_raw_input_without_spark(tmp_path):
    import logging

    from engine.context import PreflightContext
    from engine.storage.local import LocalStorage

    ctx = PreflightContext(date=dt.date(2020, 8, 5), step="ingest", log=logging.getLogger("test"),
                           _raw_exists=LocalStorage(tmp_path).exists, raw_root=f"local folder {tmp_path}")
    with pytest.raises(TransformError) as info:
        ingest_preflight(ctx, {})
    assert str(info.value) == (f"ingest 2020-08-05: no raw input under csv/2020-08-05, json/2020-08-05 of the raw "
                               f"root (local folder {tmp_path})")
    ingest_preflight(ctx, {"require_input": False})
    (tmp_path / "json" / "2020-08-05" / "NYSE").mkdir(parents=True)
    ingest_preflight(ctx, {})  # one source with input is enough
    ingest_preflight(ctx, {"exchanges": ["NYSE"]})
    with pytest.raises(TransformError, match="no raw input"):
        ingest_preflight(ctx, {"exchanges": ["NASDAQ"]})
    with pytest.raises(TransformError, match="no raw input under csv/2020-08-06"):
        ingest_preflight(ctx, {"date": "2020-08-06", "sources": [{"folder": "csv"}]})
    with pytest.raises(TransformError, match="unknown format 'xml'"):
        ingest_preflight(ctx, {"sources": [{"folder": "x", "format": "xml"}]})


def test_preflight_refuses_folders_without_a_file_the_glob_takes_as_the_reader_would(tmp_path):
    """The same verdict and message as the step's own check once Spark runs (test below), a JVM start earlier;
    globs whose meaning to Hadoop and to fnmatch could differ are left to that check."""
    import logging

    from engine.context import PreflightContext
    from engine.storage.local import LocalStorage

    raw, day = LocalStorage(tmp_path), "2020-08-05"
    ctx = PreflightContext(date=dt.date(2020, 8, 5), step="ingest", log=logging.getLogger("test"),
                           _raw_exists=raw.exists, raw_root=f"local folder {tmp_path}",
                           _raw_files=lambda rel: [f.name for f in raw.list_files(rel)])
    folder = tmp_path / "csv" / day / "NYSE"
    folder.mkdir(parents=True)
    (tmp_path / "json" / day / "NASDAQ").mkdir(parents=True)
    with pytest.raises(TransformError, match=rf"^ingest {day}: no file under csv/{day}, json/{day} matches "
                                             r"file_glob 'part-\*'$"):
        ingest_preflight(ctx, {})
    (folder / "data-00001.txt").write_text("x\n")
    (folder / "_SUCCESS").write_text("")
    (folder / "_temporary").mkdir()
    (folder / "_temporary" / "part-00009.txt").write_text("x\n")
    with pytest.raises(TransformError) as info:
        ingest_preflight(ctx, {})
    assert str(info.value) == (f"ingest {day}: no file under csv/{day}, json/{day} matches file_glob 'part-*' "
                               f"(1 other file(s) there, e.g. csv/{day}/NYSE/data-00001.txt)")
    ingest_preflight(ctx, {"file_glob": "data-?????.txt"})
    ingest_preflight(ctx, {"file_glob": "part-[0-9]*"})  # a class: left to the reader's check
    ingest_preflight(ctx, {"require_input": False})
    with pytest.raises(TransformError, match="no raw input"):  # an exchange filter looks in its folders only
        ingest_preflight(ctx, {"exchanges": ["ARCA"]})
    (tmp_path / "json" / day / "NASDAQ" / "part-00000.txt").write_text("{}\n")
    ingest_preflight(ctx, {})
    with pytest.raises(TransformError, match="1 other file"):
        ingest_preflight(ctx, {"exchanges": ["NYSE"]})


def test_exchange_filter_and_crlf_lines(spark, shared_sample, tmp_path):
    src = next((shared_sample / "csv" / "2020-08-05").glob("*/part-*"))
    target = tmp_path / "csv" / "2020-08-05" / "NYSE"
    target.mkdir(parents=True)
    (target / "part-00000.txt").write_bytes(src.read_bytes().replace(b"\n", b"\r\n"))
    other = tmp_path / "csv" / "2020-08-05" / "OTHER"
    other.mkdir(parents=True)
    (other / "part-00000.txt").write_text("garbage\n")
    ctx = raw_context(spark, tmp_path, dt.date(2020, 8, 5))
    ingest_frames(ctx, {"exchanges": ["NYSE"]})
    assert ctx.metrics["valid"] == 300 and ctx.metrics["bad"] == 0


def test_line_numbers_exact_when_files_are_split_across_partitions(spark, tmp_path):
    generate(GenConfig(out=tmp_path, seed=21, days=1, events=6000, symbols=2, exchanges=(("NYSE", "csv"),
                       ("NASDAQ", "json")), parts=1, bad_rate=0.02))
    day = dt.date(2020, 8, 5)
    previous = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "65536")  # ~10 splits per file
    try:
        ctx = raw_context(spark, tmp_path, day)
        out = ingest_frames(ctx, {"max_bad_share": 1.0})
        got = {(r["source_file"], r["line_no"]): r["raw_line"] for r in out["quarantine"].collect()}
        events = out["events"].select("source_file", "line_no").collect()
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", previous)
    records = ref.ingest_day(tmp_path, day)
    assert got == {(r.source_file, r.line_no): r.raw_line for r in records if r.reason}
    assert sorted((r["source_file"], r["line_no"]) for r in events) == sorted(
        (r.source_file, r.line_no) for r in records if r.reason is None)


def test_line_number_join_is_dropped_where_line_no_is_not_read(corrupted):
    """Writing trades/quotes and counting keys must not pay a join per event for a column they do not read."""
    events = corrupted[4]["events"]

    def joins(df) -> int:
        return df._jdf.queryExecution().optimizedPlan().toString().count("Join")

    assert joins(events.select("trade_dt", "symbol", "source_file", "trade_pr")) == 0
    assert joins(events.select("line_no")) == 1


def test_file_level_oddities_each_line_valid_or_kept(spark, tmp_path):
    """What exchange files look like in practice: a byte order mark, a compressed part, blank lines, no final
    newline, an empty file, bytes that are not UTF-8. Nothing is dropped and each bad line says why."""
    import bz2
    import gzip

    day = "2020-08-05"
    line = f"{day},{day} 17:00:00.000,T,ABC,{day} 10:00:00.100,{{seq}},NYSE,10.5,100"
    folder = tmp_path / "csv" / day / "NYSE"
    folder.mkdir(parents=True)
    (folder / "part-00000.txt").write_bytes(b"\xef\xbb\xbf" + line.format(seq=1).encode() + b"\n")
    (folder / "part-00001.gz").write_bytes(gzip.compress(line.format(seq=2).encode() + b"\n"))
    (folder / "part-00002.txt").write_bytes(line.format(seq=3).encode() + b"\n\n   \n" + line.format(seq=4).encode())
    (folder / "part-00003.txt").write_bytes(b"")
    (folder / "part-00004.txt").write_bytes(line.format(seq=5).replace("ABC", "A\xff").encode("latin-1") + b"\n")
    (folder / "part-00005.bz2").write_bytes(bz2.compress(line.format(seq=6).encode() + b"\n"))
    ctx = raw_context(spark, tmp_path, dt.date(2020, 8, 5))
    out = ingest_frames(ctx, {"max_bad_share": 1.0})
    events = sorted((r["source_file"].rsplit("/", 1)[1], r["line_no"], r["event_seq_nb"])
                    for r in out["events"].collect())
    assert events == [("part-00000.txt", 1, 1), ("part-00001.gz", 1, 2), ("part-00002.txt", 1, 3),
                      ("part-00002.txt", 4, 4), ("part-00005.bz2", 1, 6)]
    bad = sorted((r["source_file"].rsplit("/", 1)[1], r["line_no"], r["reason"], r["raw_line"])
                 for r in out["quarantine"].collect())
    assert bad == [("part-00002.txt", 2, "unknown_rec_type", ""), ("part-00002.txt", 3, "unknown_rec_type", "   "),
                   ("part-00004.txt", 1, "bad_encoding", line.format(seq=5).replace("ABC", "A\ufffd"))]
    assert ctx.metrics["lines_read"] == 8 and ctx.metrics["files"] == 5  # the empty file has no line


def test_files_the_glob_leaves_out_are_named_and_a_day_without_a_match_fails(spark, tmp_path, caplog):
    """An exchange that renames its files must not make a short day, or an empty one, succeed without a word."""
    day = "2020-08-05"
    folder = tmp_path / "csv" / day / "NYSE"
    folder.mkdir(parents=True)
    line = f"{day},{day} 17:00:00.000,T,ABC,{day} 10:00:00.100,1,NYSE,10.5,100\n"
    (folder / "data-00001.txt").write_text(line)
    (folder / "_SUCCESS").write_text("")  # hidden from the reader, so not reported either
    (folder / ".data-00001.txt.crc").write_text("")
    (folder / "_temporary").mkdir()
    (folder / "_temporary" / "part-00009.txt").write_text(line)  # a writer's unfinished file: not read
    ctx = raw_context(spark, tmp_path, dt.date(2020, 8, 5))
    with pytest.raises(TransformError) as info:
        ingest_frames(ctx, {})
    assert str(info.value) == (f"ingest {day}: no file under csv/{day}, json/{day} matches file_glob 'part-*' "
                               f"(1 other file(s) there, e.g. csv/{day}/NYSE/data-00001.txt)")
    out = ingest_frames(ctx, {"require_input": False})
    assert out["events"].count() == 0
    # with a file the glob takes, the day runs and names the one it left out
    (folder / "part-00000.txt").write_text(line.replace(",1,NYSE", ",2,NYSE"))
    caplog.clear()
    out = ingest_frames(ctx, {})
    assert [r["event_seq_nb"] for r in out["events"].collect()] == [2]
    assert ctx.metrics["files_not_read"] == [f"csv/{day}/NYSE/data-00001.txt"]
    assert any(f"1 file(s) under the date's raw folders do not match file_glob 'part-*' and were not read: "
               f"csv/{day}/NYSE/data-00001.txt" in r.getMessage() for r in caplog.records)
    # a glob that takes both reads both
    out = ingest_frames(ctx, {"file_glob": "*.txt"})
    assert sorted(r["event_seq_nb"] for r in out["events"].collect()) == [1, 2]
    assert ctx.metrics["files_not_read"] == []


def test_empty_raw_folders_fail_the_day(spark, tmp_path):
    (tmp_path / "json" / "2020-08-05" / "NASDAQ").mkdir(parents=True)
    ctx = raw_context(spark, tmp_path, dt.date(2020, 8, 5))
    with pytest.raises(TransformError, match=r"^ingest 2020-08-05: no file under csv/2020-08-05, "
                                             r"json/2020-08-05 matches file_glob 'part-\*'$"):
        ingest_frames(ctx, {})


def test_a_link_to_a_folder_fails_the_day_naming_it_and_links_to_nothing_or_fifos_are_named(spark, tmp_path,
                                                                                           caplog):
    """The reader follows links to folders (a link to '..' read the day 41 times, each bad line quarantined 41
    times, and the run succeeded); links to nothing and FIFOs were skipped without a word."""
    import os

    day = "2020-08-05"
    folder = tmp_path / "csv" / day / "NYSE"
    folder.mkdir(parents=True)
    line = f"{day},{day} 17:00:00.000,T,ABC,{day} 10:00:00.100,{{seq}},NYSE,10.5,100\n"
    (folder / "part-00000.txt").write_text(line.format(seq=1))
    (tmp_path / "elsewhere.txt").write_text(line.format(seq=2))
    (folder / "part-00001.txt").symlink_to(tmp_path / "elsewhere.txt")  # a link to a file: read as the file
    (folder / "part-00002.txt").symlink_to(tmp_path / "gone.txt")
    os.mkfifo(folder / "part-00003.txt")
    ctx = raw_context(spark, tmp_path, dt.date(2020, 8, 5))
    out = ingest_frames(ctx, {})
    assert sorted(r["event_seq_nb"] for r in out["events"].collect()) == [1, 2]
    assert ctx.metrics["lines_read"] == 2 and ctx.metrics["files"] == 2
    assert ctx.metrics["files_not_read"] == [f"csv/{day}/NYSE/part-00002.txt", f"csv/{day}/NYSE/part-00003.txt"]
    assert any(f"2 entries under the date's raw folders are no readable file and were not read: "
               f"csv/{day}/NYSE/part-00002.txt (a link to nothing), csv/{day}/NYSE/part-00003.txt (not a regular "
               f"file)" in r.getMessage() for r in caplog.records)

    (folder / "loop").symlink_to("..")
    with pytest.raises(TransformError) as info:
        ingest_frames(ctx, {})
    assert str(info.value).startswith(f"ingest {day}: csv/{day}/NYSE/loop -> .. is a link to a folder: the reader "
                                      f"would read that folder too")


def test_source_file_is_the_files_name_not_its_uri(spark, tmp_path):
    """A space, '%', '#', '[', '?' in a name were written percent-encoded ('part-0%20a.txt'), naming no file."""
    day = "2020-08-05"
    names = ["part-0 a.txt", "part-1%41.txt", "part-2#x.txt", "part-3[1].txt", "part-4+b.txt", "part-5é.txt"]
    line = f"{day},{day} 17:00:00.000,T,ABC,{day} 10:00:00.100,{{seq}},NY SE,10.5,0\n"  # bad: price 0
    folder = tmp_path / "csv" / day / "NY SE"
    folder.mkdir(parents=True)
    for seq, name in enumerate(names):
        (folder / name).write_text(line.format(seq=seq))
    ctx = raw_context(spark, tmp_path, dt.date(2020, 8, 5))
    out = ingest_frames(ctx, {"max_bad_share": 1.0, "file_glob": "part-*"})
    assert sorted(r["source_file"] for r in out["quarantine"].collect()) == sorted(
        f"csv/{day}/NY SE/{name}" for name in names)
    for r in out["quarantine"].collect():
        assert (tmp_path / r["source_file"]).is_file()
