"""Which tracker the config opens, and the table it names (``job_tracker_table_name``)."""

from __future__ import annotations

import sqlite3

import pytest

from engine.config import load_config
from engine.errors import ConfigError
from engine.tracker import open_tracker
from engine.tracker.sqlite_backend import SqliteTracker


def _tables(path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


@pytest.mark.parametrize("text,env,table", [
    ("job_tracker_table_name = Ops_Jobs\n", {}, "ops_jobs"),  # the documented name, folded like PostgreSQL's
    ("table = old_jobs\n", {}, "old_jobs"),  # the older name
    ("", {"TICKFLOW_TRACKER_JOB_TRACKER_TABLE_NAME": "env_jobs"}, "env_jobs"),
])
def test_the_sqlite_tracker_table_is_tracker_job_tracker_table_name(tmp_path, text, env, table):
    ini = tmp_path / "c.ini"
    ini.write_text(f"[tracker]\nsqlite_path = {tmp_path}/t.sqlite\n{text}")
    config = load_config(ini, env=env)
    assert config.postgres is None  # [tracker] never switches to PostgreSQL
    with open_tracker(config) as tracker:
        assert isinstance(tracker, SqliteTracker)
        tracker.set_status("preprocess_2024-01-04", "success")
    assert table in _tables(tmp_path / "t.sqlite") and "job_tracker" not in _tables(tmp_path / "t.sqlite")
    with open_tracker(config, read_only=True) as tracker:
        assert [r.job_id for r in tracker.list_jobs()] == ["preprocess_2024-01-04"]


@pytest.mark.parametrize("name", ["job tracker", "jt;drop table x", "1jt", "a" * 64])
def test_an_invalid_sqlite_table_name_is_refused_before_anything_is_created(tmp_path, name):
    ini = tmp_path / "c.ini"
    ini.write_text(f"[tracker]\nsqlite_path = {tmp_path}/state/t.sqlite\njob_tracker_table_name = {name}\n")
    with pytest.raises(ConfigError) as info:  # when the config is read, naming file and key
        open_tracker(load_config(ini, env={}))
    assert str(info.value).startswith(f"{ini}: [tracker] job_tracker_table_name: job tracker table name '{name}' is "
                                      f"not a valid SQL identifier")
    assert info.value.exit_code == 2 and not (tmp_path / "state").exists()


def test_postgres_keeps_its_own_table_name_setting(tmp_path, monkeypatch):
    """[postgres] switches to PostgreSQL, whose table is [postgres] job_tracker_table_name, as before."""
    import engine.tracker.postgres_backend as pg

    opened = []
    monkeypatch.setattr(pg, "PostgresTracker", lambda config, read_only=False: opened.append(config) or "pg")
    ini = tmp_path / "c.ini"
    ini.write_text("[postgres]\nhost = db\njob_tracker_table_name = pg_jobs\n[tracker]\njob_tracker_table_name = x\n")
    assert open_tracker(load_config(ini, env={})) == "pg"
    assert opened[0].job_tracker_table_name == "pg_jobs"
