"""Local storage: staged writes are renamed into place, and a finished write leaves no staging folder behind."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.errors import StorageError
from engine.storage.local import FOREIGN_ABANDONED_SECONDS, JOURNAL_MARK, STAGING, TRASH, LocalStorage


def _stage(storage: LocalStorage, rel: str, run_id: str, files: dict[str, str], mode: str = "overwrite_partitions"):
    pending = storage.begin_write(rel, run_id, mode, ("trade_dt",))
    for name, text in files.items():
        path = Path(pending.uri) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return pending


def test_list_files_gives_every_visible_file_below_a_folder_with_its_size_and_time(tmp_path):
    for rel, text in {"csv/d/NYSE/part-1.txt": "bb", "csv/d/NYSE/part-0.txt": "a", "csv/d/ARCA/x": "ccc",
                      "csv/d/NYSE/.part-0.txt.crc": "h", "csv/d/_SUCCESS": "", "csv/d/_tmp/part-9": "z"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    storage = LocalStorage(tmp_path)
    files = storage.list_files("csv/d")
    assert [(f.name, f.size) for f in files] == [("ARCA/x", 3), ("NYSE/part-0.txt", 1), ("NYSE/part-1.txt", 2)]
    assert files[1].version == str((tmp_path / "csv/d/NYSE/part-0.txt").stat().st_mtime_ns)
    assert storage.list_files("csv/none") == []
    with pytest.raises(StorageError, match="escapes the storage root"):
        storage.list_files("../elsewhere")


def test_commit_replaces_partitions_and_leaves_no_staging_or_trash_folder(tmp_path):
    storage = LocalStorage(tmp_path)
    storage.commit(_stage(storage, "trade", "r1", {"trade_dt=2020-08-05/a.parquet": "old",
                                                   "trade_dt=2020-08-06/b.parquet": "keep"}))
    trade = _stage(storage, "trade", "r2", {"trade_dt=2020-08-05/c.parquet": "new"})
    quote = _stage(storage, "quote", "r2", {"trade_dt=2020-08-05/d.parquet": "q"})
    storage.commit(trade)
    assert (tmp_path / STAGING).is_dir() and Path(quote.uri).is_dir()  # the run's other output is still staged
    storage.commit(quote)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet")) == [
        "quote/trade_dt=2020-08-05/d.parquet", "trade/trade_dt=2020-08-05/c.parquet",
        "trade/trade_dt=2020-08-06/b.parquet"]
    assert not (tmp_path / STAGING).exists() and not (tmp_path / TRASH).exists()


def test_abort_removes_the_staged_files_and_keeps_the_published_ones(tmp_path):
    storage = LocalStorage(tmp_path)
    storage.commit(_stage(storage, "trade", "r1", {"trade_dt=2020-08-05/a.parquet": "old"}))
    storage.abort(_stage(storage, "trade", "r2", {"trade_dt=2020-08-05/c.parquet": "new"}))
    assert (tmp_path / "trade/trade_dt=2020-08-05/a.parquet").read_text() == "old"
    assert not (tmp_path / STAGING).exists()


def test_a_runs_staging_folders_stay_while_another_of_its_writes_is_in_flight(tmp_path):
    """Steps write concurrently: committing one output must not prune the folders another write (whose
    files Spark has not created yet) stages under."""
    storage = LocalStorage(tmp_path)
    first = storage.begin_write("analytics/a", "r1", "overwrite", ())
    second = storage.begin_write("analytics/b", "r1", "overwrite", ())
    (Path(first.uri)).mkdir()
    (Path(first.uri) / "part-0.parquet").write_text("a")
    storage.commit(first)
    Path(second.uri).mkdir()  # no parents=True: fails if the commit above pruned the run's staging folder
    (Path(second.uri) / "part-0.parquet").write_text("b")
    storage.commit(second)
    assert (tmp_path / "analytics/a/part-0.parquet").read_text() == "a"
    assert (tmp_path / "analytics/b/part-0.parquet").read_text() == "b"
    assert not (tmp_path / STAGING).exists()


def test_concurrent_writes_of_one_run_all_commit(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    storage = LocalStorage(tmp_path)

    def write(i: int) -> None:
        pending = _stage(storage, f"out/w{i}", "r1", {f"trade_dt=2020-08-0{i % 4 + 1}/p{i}.parquet": str(i)})
        storage.commit(pending)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, range(40)))
    assert len(list((tmp_path / "out").rglob("*.parquet"))) == 40
    assert not (tmp_path / STAGING).exists()


def test_another_runs_staging_folder_keeps_the_base(tmp_path):
    storage = LocalStorage(tmp_path)
    other = (tmp_path / STAGING / "otherhost-1-r0")
    other.mkdir(parents=True)
    storage.commit(_stage(storage, "trade", "r1", {"trade_dt=2020-08-05/a.parquet": "x"}))
    assert [p.name for p in (tmp_path / STAGING).iterdir()] == ["otherhost-1-r0"]
    other.rmdir()
    storage.commit(_stage(storage, "trade", "r2", {"trade_dt=2020-08-05/b.parquet": "y"}))
    assert not (tmp_path / STAGING).exists() and not (tmp_path / TRASH).exists()


_RUNS = """
import sys
from pathlib import Path
from engine.storage.local import LocalStorage

root, i = sys.argv[1], int(sys.argv[2])
storage = LocalStorage(root)
for k in range(200):
    pending = storage.begin_write(f"out/w{i}", f"r{k}", "overwrite", ())
    Path(pending.uri).mkdir()
    (Path(pending.uri) / "part-0.parquet").write_text(str(k))
    storage.commit(pending)
"""


def test_runs_of_several_processes_create_and_remove_the_shared_bases_safely(tmp_path):
    """Each process's last write removes the then empty bases, while another process may be creating its own
    folder in them: every write of every process must still commit."""
    root = Path(__file__).resolve().parents[3]
    procs = [subprocess.Popen([sys.executable, "-c", _RUNS, str(tmp_path), str(i)], cwd=root,
                              stderr=subprocess.PIPE, text=True) for i in range(4)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    assert sorted(p.read_text() for p in (tmp_path / "out").rglob("*.parquet")) == ["199"] * 4
    assert not (tmp_path / STAGING).exists() and not (tmp_path / TRASH).exists()


def test_settle_removes_what_this_process_left_and_keeps_other_processes_folders(tmp_path):
    storage = LocalStorage(tmp_path)
    pending = _stage(storage, "trade", "r1", {"trade_dt=2020-08-05/a.parquet": "x"})
    storage.abort(pending)
    # what a task killed by the cancel writes after the abort: its attempt folder under the run's staging
    late = Path(pending.uri) / "_temporary" / "0" / "_temporary" / "attempt_1"
    late.mkdir(parents=True)
    (late / "part-0.parquet").write_text("late")
    (tmp_path / TRASH / f"{socket.gethostname()}-{os.getpid()}-r1" / "trade").mkdir(parents=True)
    other = tmp_path / STAGING / f"{socket.gethostname()}-1-r9" / "quote"  # pid 1 is alive: another run's
    other.mkdir(parents=True)
    storage.settle()
    assert not (tmp_path / TRASH).exists()
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        STAGING, f"{STAGING}/{socket.gethostname()}-1-r9", f"{STAGING}/{socket.gethostname()}-1-r9/quote"]
    other.rmdir()
    other.parent.rmdir()
    storage.settle()
    assert list(tmp_path.iterdir()) == []


def _owned(storage: LocalStorage, owner: str, run_id: str, files: dict[str, str], replace: tuple[str, ...] = ()):
    pending = storage.begin_write("quarantine", run_id, "append", ("trade_dt",), owner=owner)
    pending = dataclasses.replace(pending, replace_partitions=replace)
    for name, text in files.items():
        path = Path(pending.uri) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    storage.commit(pending)


def _contents(folder: Path) -> dict[str, list[str]]:
    """Partition -> sorted texts of its data files."""
    out: dict[str, list[str]] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.name.startswith((".", "_")):
            out.setdefault(p.parent.relative_to(folder).as_posix(), []).append(p.read_text())
    return {k: sorted(v) for k, v in out.items()}


def test_an_owned_append_replaces_its_owners_files_and_keeps_everyone_elses(tmp_path):
    """A shared dataset (a quarantine): a rerun of one writer replaces exactly its earlier files in the
    partitions it writes or replaces; the partition's other writers and its other partitions stay."""
    storage = LocalStorage(tmp_path)
    storage.commit(_stage(storage, "quarantine", "ingest", {"trade_dt=D1/part-0.parquet": "ingest"}))
    _owned(storage, "demo/a", "r1", {"trade_dt=D1/part-1.parquet": "a1", "trade_dt=D2/part-2.parquet": "a2"})
    _owned(storage, "demo/b", "r1", {"trade_dt=D1/part-1.parquet": "b1"})  # the same file name: no clash
    q = tmp_path / "quarantine"
    assert _contents(q) == {"trade_dt=D1": ["a1", "b1", "ingest"], "trade_dt=D2": ["a2"]}

    _owned(storage, "demo/a", "r2", {"trade_dt=D1/part-3.parquet": "a1 again"}, replace=("trade_dt=D1",))
    assert _contents(q) == {"trade_dt=D1": ["a1 again", "b1", "ingest"], "trade_dt=D2": ["a2"]}
    _owned(storage, "demo/a", "r3", {"trade_dt=D1/part-4.parquet": "a1 third"})  # a written partition is replaced
    assert _contents(q) == {"trade_dt=D1": ["a1 third", "b1", "ingest"], "trade_dt=D2": ["a2"]}

    _owned(storage, "demo/a", "r4", {}, replace=("trade_dt=D1", "trade_dt=D2"))  # a clean rerun: none left
    assert _contents(q) == {"trade_dt=D1": ["b1", "ingest"]}
    assert not (q / "trade_dt=D2").exists()  # no empty partition folder stays
    assert not (tmp_path / STAGING).exists() and not (tmp_path / TRASH).exists()


def test_cleanup_leaves_other_hosts_runs_alone_until_they_are_a_day_old(tmp_path):
    """A root shared over NFS or a volume: another host's PID means nothing here, so its folders are
    abandoned only when nothing in them changed for FOREIGN_ABANDONED_SECONDS; this host's when the PID is gone."""
    host = socket.gethostname()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()

    def run_folder(base: str, name: str) -> Path:
        part = tmp_path / base / name / "trade" / "_temporary" / "0" / "part-00000.parquet"
        part.parent.mkdir(parents=True)
        part.write_text("in flight")
        return tmp_path / base / name

    fresh = run_folder(STAGING, "other-host-4242-r1")  # dashes in a host name, as in web-01
    fresh_trash = run_folder(TRASH, "other-host-4242-r1")
    stale = run_folder(STAGING, "other-host-4343-r2")
    stale_trash = run_folder(TRASH, "other-host-4343-r2")
    two_days_ago = time.time() - 2 * 24 * 3600
    for folder in (stale, stale_trash):
        for path in [folder, *folder.rglob("*")]:
            os.utime(path, (two_days_ago, two_days_ago))
    mine_dead = run_folder(STAGING, f"{host}-{dead}-r3")
    mine_live = run_folder(STAGING, f"{host}-{os.getpid()}-r-4")  # a run id with a dash
    assert FOREIGN_ABANDONED_SECONDS <= 24 * 3600 < 2 * 24 * 3600
    LocalStorage(tmp_path).cleanup("")
    assert fresh.exists() and fresh_trash.exists() and mine_live.exists()
    assert not stale.exists() and not stale_trash.exists() and not mine_dead.exists()


def test_another_hosts_run_folder_written_to_recently_deep_inside_is_kept(tmp_path):
    """A long write changes files deep in its folder, not the run folder itself: any recent change keeps it."""
    folder = tmp_path / STAGING / "other-host-7-r1"
    part = folder / "trade" / "trade_dt=2020-08-05" / "part-0.parquet"
    part.parent.mkdir(parents=True)
    part.write_text("x")
    old = time.time() - 2 * 24 * 3600
    for path in (folder, folder / "trade", part.parent):
        os.utime(path, (old, old))
    LocalStorage(tmp_path).cleanup("")
    assert part.exists()


@pytest.mark.parametrize("rel", ["analytics/../../decoy", "../decoy", "/../decoy", "a/../..", "", "a/.."])
def test_a_write_outside_the_root_is_refused_before_anything_is_touched(tmp_path, rel):
    """Refused before any folder is made (nor is the root itself a dataset to write)."""
    root = tmp_path / "wh"
    (root / "a").mkdir(parents=True)
    storage = LocalStorage(root)
    with pytest.raises(StorageError, match="escapes the storage root|names the storage root"):
        storage.begin_write(rel, "r1", "overwrite", ())
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["wh", "wh/a"]


def test_a_write_path_climbing_out_of_the_staging_folder_deletes_nothing_outside(tmp_path):
    """The staging folder is built from the path and emptied first: built under <root>/<staging>/<run>,
    `analytics/../../../../decoy` named <root>/../decoy, which was deleted before the commit noticed that the
    path escapes the root."""
    root = tmp_path / "wh"
    root.mkdir()
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    (decoy / "keep.txt").write_text("x")
    storage = LocalStorage(root)
    with pytest.raises(StorageError, match="escapes the storage root"):
        storage.begin_write("analytics/../../../../decoy", "r1", "overwrite", ())
    assert (decoy / "keep.txt").read_text() == "x"


def test_check_creates_nothing_and_refuses_a_root_under_a_file(tmp_path):
    root = tmp_path / "a" / "b" / "warehouse"
    LocalStorage(root).check()
    assert list(tmp_path.iterdir()) == []  # a run refused after the check leaves no folder
    (tmp_path / "a").write_text("a file where a folder should be")
    with pytest.raises(StorageError, match=r"cannot use storage root .*warehouse: .*/a is not a folder"):
        LocalStorage(root).check()


def test_a_commit_killed_between_its_two_renames_is_finished_by_the_next_cleanup(tmp_path):
    """A real process commits a new partition and is SIGKILLed right after the old one went to the trash and
    before the new one took its place; the next run's cleanup finishes the commit from its journal."""
    storage = LocalStorage(tmp_path)
    storage.commit(_stage(storage, "trade", "r1", {"trade_dt=2020-08-05/a.parquet": "old",
                                                   "trade_dt=2020-08-06/b.parquet": "other day"}))
    proc = _killed_committing(tmp_path, {"trade": {"trade_dt=2020-08-05/c.parquet": "new"}},
                              kill_when="'.tickflow_trash' in str(dst)")
    assert proc.returncode == -9
    assert not (tmp_path / "trade/trade_dt=2020-08-05").exists()  # the window: neither old nor new in place
    LocalStorage(tmp_path).cleanup()
    assert _contents(tmp_path / "trade") == {"trade_dt=2020-08-05": ["new"], "trade_dt=2020-08-06": ["other day"]}
    assert not (tmp_path / TRASH).exists() and not (tmp_path / STAGING).exists()


def _killed_committing(root: Path, outputs: dict[str, dict[str, str]], kill_when: str, *,
                       quarantine: dict[str, str] | None = None, before: bool = False) -> subprocess.CompletedProcess:
    """A real process stages ``outputs`` (dataset -> file -> text; plus an owned append to quarantine) and
    commits them as one step does; it SIGKILLs itself the first time ``kill_when`` holds after a rename
    (``before``: instead of that rename; ``dst`` is the rename's target as text)."""
    script = f"""
import os, signal
from pathlib import Path
from engine.storage.local import LocalStorage
storage = LocalStorage(Path({str(root)!r}))
pendings = []
for rel, files in {outputs!r}.items():
    pending = storage.begin_write(rel, "r2", "overwrite_partitions", ("trade_dt",))
    pendings.append(pending)
    for name, text in files.items():
        (Path(pending.uri) / name).parent.mkdir(parents=True, exist_ok=True)
        (Path(pending.uri) / name).write_text(text)
if {quarantine!r}:
    q = storage.begin_write("quarantine", "r2_q", "append", ("trade_dt",), owner="trade")
    pendings.append(q)
    for name, text in {quarantine!r}.items():
        (Path(q.uri) / name).parent.mkdir(parents=True, exist_ok=True)
        (Path(q.uri) / name).write_text(text)
real_replace = os.replace
def replace(src, dst):
    dst = str(dst)
    if {before} and ({kill_when}):
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst)
    if {kill_when}:
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
storage.commit_all(pendings)
"""
    return subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[3], timeout=60)


def _old_day(root: Path) -> LocalStorage:
    storage = LocalStorage(root)
    storage.commit_all([_stage(storage, "trade", "r1", {"trade_dt=D1/t.parquet": "old trade",
                                                          "trade_dt=D0/t.parquet": "day before"}),
                        _stage(storage, "quote", "r1", {"trade_dt=D1/q.parquet": "old quote"})])
    q = storage.begin_write("quarantine", "r1_q", "append", ("trade_dt",), owner="trade")
    (Path(q.uri) / "trade_dt=D1").mkdir(parents=True)
    (Path(q.uri) / "trade_dt=D1/bad.parquet").write_text("old bad")
    storage.commit(q)
    return storage


NEW_TRADES_IN = "dst.endswith('trade/trade_dt=D1') and '.tickflow_trash' not in dst"
NEW_DAY = {"trade": {"trade_dt=D1/t.parquet": "new trade"}, "quote": {"trade_dt=D1/q.parquet": "new quote"}}


def _day(root: Path) -> dict[str, dict[str, list[str]]]:
    return {name: _contents(root / name) for name in ("trade", "quote", "quarantine")}


def test_a_step_killed_between_the_commits_of_its_outputs_is_finished_by_the_next_cleanup(tmp_path):
    """kill -9 after the trades went in: new trades beside old quotes, until the next run's cleanup rolls the
    step's commit forward from its journal (quotes and the owned quarantine files too)."""
    _old_day(tmp_path)
    proc = _killed_committing(tmp_path, NEW_DAY, NEW_TRADES_IN, quarantine={"trade_dt=D1/bad2.parquet": "new bad"})
    assert proc.returncode == -9
    half = _day(tmp_path)
    assert half["trade"]["trade_dt=D1"] == ["new trade"] and half["quote"]["trade_dt=D1"] == ["old quote"]
    journals = list((tmp_path / STAGING).glob(f"*-{JOURNAL_MARK}*.json"))
    assert len(journals) == 1
    LocalStorage(tmp_path).cleanup()
    assert _day(tmp_path) == {"trade": {"trade_dt=D0": ["day before"], "trade_dt=D1": ["new trade"]},
                              "quote": {"trade_dt=D1": ["new quote"]}, "quarantine": {"trade_dt=D1": ["new bad"]}}
    assert not (tmp_path / TRASH).exists() and not (tmp_path / STAGING).exists()


def test_a_step_killed_before_its_journal_is_in_place_publishes_nothing(tmp_path):
    _old_day(tmp_path)
    before = _day(tmp_path)
    proc = _killed_committing(tmp_path, NEW_DAY, "dst.endswith('.json')", quarantine={"trade_dt=D1/b.parquet": "x"},
                              before=True)
    assert proc.returncode == -9
    assert _day(tmp_path) == before
    LocalStorage(tmp_path).cleanup()
    assert _day(tmp_path) == before
    assert not (tmp_path / TRASH).exists() and not (tmp_path / STAGING).exists()


def test_a_cleanup_killed_while_finishing_a_commit_is_finished_by_the_one_after(tmp_path):
    _old_day(tmp_path)
    assert _killed_committing(tmp_path, NEW_DAY, NEW_TRADES_IN).returncode == -9
    script = f"""
import os, signal
from pathlib import Path
from engine.storage.local import LocalStorage
real_replace = os.replace
def replace(src, dst):
    real_replace(src, dst)
    if '.tickflow_trash' in str(dst) and 'quote' in str(dst):  # the old quotes aside, the new not yet in
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
LocalStorage(Path({str(tmp_path)!r})).cleanup()
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[3], timeout=60)
    assert proc.returncode == -9
    assert not (tmp_path / "quote/trade_dt=D1").exists()
    LocalStorage(tmp_path).cleanup()
    assert _day(tmp_path)["quote"] == {"trade_dt=D1": ["new quote"]}
    assert _day(tmp_path)["trade"]["trade_dt=D1"] == ["new trade"]
    assert not (tmp_path / TRASH).exists() and not (tmp_path / STAGING).exists()


def test_a_live_processs_journal_is_left_alone_and_an_unreadable_one_keeps_its_files(tmp_path, caplog):
    storage = _old_day(tmp_path)
    staged = _stage(storage, "quote", "r9", {"trade_dt=D1/q.parquet": "staged"})
    live = tmp_path / STAGING / f"{socket.gethostname()}-{os.getpid()}-{JOURNAL_MARK}x.json"
    live.write_text('{"version": 1, "writes": []}')
    LocalStorage(tmp_path).cleanup()
    assert live.exists() and Path(staged.uri).is_dir()
    live.unlink()

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    tag = f"{socket.gethostname()}-{int(dead.stdout)}"
    (tmp_path / STAGING / f"{tag}-r5/quote/trade_dt=D1").mkdir(parents=True)
    (tmp_path / STAGING / f"{tag}-r5/quote/trade_dt=D1/q.parquet").write_text("staged by the dead")
    broken = tmp_path / STAGING / f"{tag}-{JOURNAL_MARK}y.json"
    broken.write_text(json.dumps({"version": 1, "writes": [{"uri": f"{STAGING}/{tag}-r5/quote",
                                                              "rel_path": "quote"}]}))
    for n, text in enumerate(("not json", '{"writes": [{"rel_path": "quote"}, 3]}')):
        (tmp_path / STAGING / f"{tag}-{JOURNAL_MARK}z{n}.json").write_text(text)
    LocalStorage(tmp_path).cleanup()
    assert broken.exists() and (tmp_path / STAGING / f"{tag}-r5/quote/trade_dt=D1/q.parquet").exists()
    assert "could not finish the commit of an ended run" in caplog.text
    assert _day(tmp_path)["quote"] == {"trade_dt=D1": ["old quote"]}


def test_an_older_versions_commit_killed_between_its_renames_gets_the_old_output_back(tmp_path):
    """Without a journal (a commit of an earlier version), the trash of a dead run is put back where its place
    is empty."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run = tmp_path / TRASH / f"{socket.gethostname()}-{int(dead.stdout)}-r3"
    (run / "trade/trade_dt=2020-08-05").mkdir(parents=True)
    (run / "trade/trade_dt=2020-08-05/old.parquet").write_text("old")
    (tmp_path / "trade").mkdir()
    LocalStorage(tmp_path).cleanup()
    assert _contents(tmp_path / "trade") == {"trade_dt=2020-08-05": ["old"]}
    assert not (tmp_path / TRASH).exists()


def test_cleanup_restores_nothing_that_is_in_place_or_holds_no_data(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run = tmp_path / TRASH / f"{socket.gethostname()}-{int(dead.stdout)}-r3"
    (run / "trade/trade_dt=2020-08-05").mkdir(parents=True)
    (run / "trade/trade_dt=2020-08-05/old.parquet").write_text("replaced by a finished commit")
    (run / "quote/trade_dt=2020-08-05").mkdir(parents=True)  # an empty leftover: nothing to restore
    (tmp_path / "trade/trade_dt=2020-08-05").mkdir(parents=True)
    (tmp_path / "trade/trade_dt=2020-08-05/new.parquet").write_text("new")
    LocalStorage(tmp_path).cleanup()
    assert _contents(tmp_path / "trade") == {"trade_dt=2020-08-05": ["new"]}
    assert not (tmp_path / "quote").exists() and not (tmp_path / TRASH).exists()


def test_ctrl_c_between_the_commits_of_a_steps_outputs_waits_for_the_last_one(tmp_path, monkeypatch):
    storage = _old_day(tmp_path)
    pendings = [_stage(storage, rel, "r2", files) for rel, files in NEW_DAY.items()]
    real_replace = os.replace

    def replace(src, dst):
        real_replace(src, dst)
        if str(dst).endswith("trade/trade_dt=D1") and TRASH not in str(dst):
            signal.raise_signal(signal.SIGINT)  # the trades are in, the quotes not yet

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        storage.commit_all(pendings)
    monkeypatch.undo()
    assert _day(tmp_path)["quote"] == {"trade_dt=D1": ["new quote"]}
    assert _day(tmp_path)["trade"]["trade_dt=D1"] == ["new trade"]
    assert not (tmp_path / STAGING).exists()
