"""Raw folder stamps: what makes a date's raw input count as changed since a step read it."""

from __future__ import annotations

import datetime as dt
import os

from engine.raw_inputs import (
    RawStamp,
    RawStamper,
    changed_folders,
    changed_raw,
    describe_changed,
    read_stamps,
    stamp_folder,
)
from engine.spec import PipelineSpec, StepSpec
from engine.step_message import written_message
from engine.storage.local import LocalStorage
from engine.tracker.base import JobRow

DAY = dt.date(2024, 1, 5)


def _write(path, text: str, mtime_ns: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def _raw(tmp_path) -> LocalStorage:
    _write(tmp_path / "csv/2024-01-05/NYSE/part-0.txt", "a\n", 1_700_000_000_000_000_000)
    _write(tmp_path / "csv/2024-01-05/NYSE/part-1.txt", "bb\n", 1_700_000_000_000_000_000)
    _write(tmp_path / "csv/2024-01-08/NYSE/part-0.txt", "c\n", 1_700_000_000_000_000_000)
    return LocalStorage(tmp_path)


def test_a_stamp_changes_with_a_new_a_grown_or_a_rewritten_file_and_not_otherwise(tmp_path) -> None:
    raw = _raw(tmp_path)
    first = stamp_folder(raw, "csv/2024-01-05")
    assert (first.files, first.size) == (2, 5)
    assert stamp_folder(raw, "csv/2024-01-05") == first
    # hidden names (checksums, markers, uncommitted folders) are not input, as for Spark's reader
    _write(tmp_path / "csv/2024-01-05/NYSE/.part-0.txt.crc", "x")
    _write(tmp_path / "csv/2024-01-05/_SUCCESS", "")
    _write(tmp_path / "csv/2024-01-05/_temporary/part-9.txt", "late\n")
    assert stamp_folder(raw, "csv/2024-01-05") == first
    _write(tmp_path / "csv/2024-01-05/NYSE/part-2.txt", "late\n")
    added = stamp_folder(raw, "csv/2024-01-05")
    assert (added.files, added.size) == (3, 10)
    (tmp_path / "csv/2024-01-05/NYSE/part-2.txt").unlink()
    assert stamp_folder(raw, "csv/2024-01-05") == first
    # same size, written again: only the time tells
    _write(tmp_path / "csv/2024-01-05/NYSE/part-1.txt", "BB\n", 1_700_000_000_000_000_001)
    rewritten = stamp_folder(raw, "csv/2024-01-05")
    assert (rewritten.files, rewritten.size) == (2, 5) and rewritten != first
    absent = stamp_folder(raw, "csv/2030-01-01")  # a folder that is not there holds no files
    assert (absent.files, absent.size, absent.describe()) == (0, 0, "no files")
    assert absent == stamp_folder(raw, "json/2024-01-05")


def test_files_that_only_went_away_are_no_change_but_a_newer_file_is(tmp_path) -> None:
    """Raw files archived after processing, or a mistyped raw root (nothing found), must not make a finished
    date run again: it could only fail. A file added, replaced or rewritten is a change, even beside a removal."""
    raw = _raw(tmp_path)
    then = stamp_folder(raw, "csv/2024-01-05")
    assert then.newest_ns == 1_700_000_000_000_000_000
    (tmp_path / "csv/2024-01-05/NYSE/part-1.txt").unlink()
    fewer = stamp_folder(raw, "csv/2024-01-05")
    assert fewer != then and not fewer.has_news_since(then)
    (tmp_path / "csv/2024-01-05/NYSE/part-0.txt").unlink()
    assert not stamp_folder(raw, "csv/2024-01-05").has_news_since(then)  # none left
    assert not stamp_folder(LocalStorage(tmp_path / "typo"), "csv/2024-01-05").has_news_since(then)
    _write(tmp_path / "csv/2024-01-05/NYSE/part-0.txt", "A\n", 1_700_000_000_000_000_500)  # rewritten, newer
    assert stamp_folder(raw, "csv/2024-01-05").has_news_since(then)
    # a copy that keeps an older time (cp -p, rsync -t) under a new name: as many files as before, other names
    _write(tmp_path / "csv/2024-01-05/NYSE/part-0.txt", "a\n", 1_700_000_000_000_000_000)
    _write(tmp_path / "csv/2024-01-05/NYSE/part-9.txt", "bb\n", 1_600_000_000_000_000_000)
    assert stamp_folder(raw, "csv/2024-01-05").has_news_since(then)


def test_a_catch_up_stamper_lists_each_top_folder_once_and_agrees_with_a_direct_stamp(tmp_path) -> None:
    raw = _raw(tmp_path)
    listed: list[str] = []
    original = raw.list_files

    def counting(rel: str):
        listed.append(rel)
        return original(rel)

    raw.list_files = counting  # type: ignore[method-assign]
    stamper = RawStamper(raw)
    for rel in ("csv/2024-01-05", "csv/2024-01-08", "csv/2024-01-05/NYSE", "csv/2024-02-01"):
        assert stamper.stamp(rel) == stamp_folder(LocalStorage(tmp_path), rel)
    assert listed == ["csv"]


def test_a_stamp_survives_the_tracker_row_and_a_change_is_described(tmp_path) -> None:
    raw = _raw(tmp_path)
    stamp = stamp_folder(raw, "csv/2024-01-05")
    assert RawStamp.decode(stamp.encode()) == stamp
    assert RawStamp.decode("garbage") is None and RawStamp.decode("1:x:y:0") is None
    assert RawStamp.decode("2:5:ab") is None  # not a stamp this version writes: not weighed
    message = written_message({}, {}, {}, {"csv/2024-01-05": stamp.encode(), "json/2024-01-05": "0:0:e3b0:0"})
    assert read_stamps(message) == {"csv/2024-01-05": stamp.encode(), "json/2024-01-05": "0:0:e3b0:0"}
    assert read_stamps('{"partitions": {}}') == {} and read_stamps(None) == {}
    assert changed_folders(written_message({}, {}, {}, {"csv/2024-01-05": stamp.encode()}), RawStamper(raw)) == []
    _write(tmp_path / "csv/2024-01-05/NYSE/part-2.txt", "late\n")
    _write(tmp_path / "json/2024-01-05/BATS/part-0.txt", "{}\n")
    changed = changed_folders(message, RawStamper(raw))
    assert changed[0] == "csv/2024-01-05 (3 files, 0.0 MB; was 2 files, 0.0 MB)"
    assert changed[1].startswith("json/2024-01-05 (1 file, 0.0 MB; was no files")
    assert describe_changed(changed).startswith("its raw input changed since it ran: csv/2024-01-05 (3 files")
    assert describe_changed([f"f{n}" for n in range(5)]).endswith("f0, f1, f2 and 2 more")


def test_a_job_weighs_the_raw_folders_of_its_succeeded_steps_only(tmp_path) -> None:
    raw = _raw(tmp_path)
    steps = {n: StepSpec(name=n, transform="t", sql=None, inputs={}, params={}, outputs={}, depends_on=())
             for n in ("ingest", "other", "failed")}
    spec = PipelineSpec(name="p", file="p.yaml", steps=steps)
    stamp = stamp_folder(raw, "csv/2024-01-05").encode()
    stale = "2:5:0000:1700000000000000000"

    def row(step: str, status: str, stamps: dict[str, str]) -> JobRow:
        job = f"p.{step}_{DAY}"
        return JobRow(job, status, None, None, message=written_message({}, {}, {}, stamps))

    rows = {r.job_id: r for r in (row("ingest", "success", {"csv/2024-01-05": stamp}),
                                  row("other", "success", {}),
                                  row("failed", "failed", {"csv/2024-01-05": stale}))}
    assert changed_raw(spec, DAY, rows, RawStamper(raw)) == []
    rows[f"p.other_{DAY}"] = row("other", "success", {"csv/2024-01-05": stale})
    assert changed_raw(spec, DAY, rows, RawStamper(raw)) == [
        "csv/2024-01-05 (2 files, 0.0 MB, same count and size, but a file's name or time differs)"]
