"""How run and plan choose their dates (engine/run_dates.py): the raw root check of a catch-up."""

from __future__ import annotations

import argparse
import datetime as dt
from types import SimpleNamespace

from engine.run_dates import check_raw_root, undated_raw_folders
from engine.storage.local import LocalStorage


def _args(**kw: object) -> argparse.Namespace:
    return argparse.Namespace(**{"date": None, "start": None, "end": None, **kw})


SPEC = SimpleNamespace(name="preprocess", catch_up={"raw_folders": ["csv", "json"]})


def _raw(tmp_path):
    for rel in ("csv/2020-08-05", "csv/backup", "csv/_tmp", "csv/.hidden", "json/2020-08-05", "json/2020-8-12"):
        (tmp_path / "raw" / rel).mkdir(parents=True)
    return LocalStorage(tmp_path / "raw")


def test_a_catch_up_warns_once_about_raw_folders_whose_name_is_not_a_date(tmp_path, capsys):
    """csv/backup and json/2020-8-12 were skipped without a word: a delivery under a mis-named folder was never
    processed and never flagged ("nothing to do")."""
    raw = _raw(tmp_path)
    assert undated_raw_folders(raw, ["csv", "json"]) == ["csv/backup", "json/2020-8-12"]  # hidden names are not
    check_raw_root(_args(), SPEC, raw)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: preprocess: ")
    assert "csv/backup, json/2020-8-12" in err and "YYYY-MM-DD" in err and str(tmp_path / "raw") in err
    check_raw_root(_args(start=dt.date(2020, 8, 1), end=dt.date(2020, 8, 31)), SPEC, raw)  # a backfill too
    assert "csv/backup" in capsys.readouterr().err


def test_no_warning_for_one_date_or_dated_folders_only(tmp_path, capsys):
    raw = _raw(tmp_path)
    check_raw_root(_args(date=dt.date(2020, 8, 5)), SPEC, raw)  # --date names its folder: nothing is skipped
    assert capsys.readouterr().err == ""
    clean = tmp_path / "clean"
    (clean / "csv" / "2020-08-05").mkdir(parents=True)
    check_raw_root(_args(), SPEC, LocalStorage(clean))
    assert capsys.readouterr().err == ""
    check_raw_root(_args(), SimpleNamespace(name="analyze", catch_up={"upstream": "preprocess"}), raw)
    assert capsys.readouterr().err == ""
