from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.config import load_config
from engine.errors import ConfigError


def test_defaults_are_local(tmp_path):
    cfg = load_config(None, env={})
    assert cfg.postgres is None and cfg.azure is None
    assert cfg.spark.master == "local[*]" and cfg.storage.root == "warehouse"
    assert cfg.parallel_steps == 2 and cfg.storage.cache_keep_days == 7
    assert load_config(None, env={"TICKFLOW_STORAGE_CACHE_KEEP_DAYS": "3"}).storage.cache_keep_days == 3
    assert load_config(None, env={"TICKFLOW_PIPELINE_PARALLEL_STEPS": "1"}).parallel_steps == 1
    assert cfg.log_keep_days == 30
    assert load_config(None, env={"TICKFLOW_PIPELINE_LOG_KEEP_DAYS": "0"}).log_keep_days == 0


def test_ini_sections_and_env_override(tmp_path):
    ini = tmp_path / "c.ini"
    ini.write_text("[postgres]\nhost = db.example\nport = 6543\ndatabase = md\nuser = ops\npassword = s3cret\n"
                   "job_tracker_table_name = jobs\n[spark]\nmaster = local[2]\nspark.sql.shuffle.partitions = 3\n"
                   "[storage]\nroot = /data/wh\n")
    cfg = load_config(ini, env={"TICKFLOW_POSTGRES_PASSWORD": "fromenv", "TICKFLOW_STORAGE_RAW_ROOT": "/in"})
    assert cfg.postgres.host == "db.example" and cfg.postgres.port == 6543
    assert cfg.postgres.password == "fromenv" and cfg.storage.raw_root == "/in"
    assert cfg.spark.conf == {"spark.sql.shuffle.partitions": "3"}
    assert "fromenv" not in repr(cfg) and "fromenv" not in cfg.postgres.describe()
    assert cfg.secrets() == ["fromenv"]


def test_relative_paths_of_a_config_file_are_its_folders_and_left_out_ones_the_working_directory(tmp_path,
                                                                                             monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    etc = tmp_path / "etc"
    etc.mkdir()
    ini = etc / "c.ini"
    ini.write_text("[storage]\nroot = wh\nraw_root = az://market/raw\n[tracker]\nsqlite_path = /abs/t.sqlite\n")
    cfg = load_config(ini, env={"TICKFLOW_PIPELINE_LOG_DIR": "logs"})
    assert cfg.storage.root == str(etc / "wh") and cfg.storage.raw_root == "az://market/raw"
    assert cfg.tracker.sqlite_path == "/abs/t.sqlite"
    assert cfg.log_dir == "logs" and cfg.storage.cache_dir == ".tickflow/cache" and cfg.base_dir == work
    only_pg = etc / "pg.ini"
    only_pg.write_text("[postgres]\nhost = db\n")
    assert load_config(only_pg, env={}).storage.root == "warehouse"  # under the working directory, not etc/



def test_spark_keys_keep_their_case_and_own_keys_do_not_care(tmp_path):
    """Spark reads spark.eventLog.enabled, not spark.eventlog.enabled: INI must not fold the case."""
    ini = tmp_path / "c.ini"
    ini.write_text("[spark]\nMaster = local[1]\nspark.eventLog.enabled = true\n"
                   "conf = spark.sql.adaptive.coalescePartitions.enabled=false\n[storage]\nROOT = /data/wh\n")
    cfg = load_config(ini, env={})
    assert cfg.spark.master == "local[1]" and cfg.storage.root == "/data/wh"
    assert cfg.spark.conf == {"spark.eventLog.enabled": "true",
                              "spark.sql.adaptive.coalescePartitions.enabled": "false"}

@pytest.mark.parametrize("text,words", [
    ("[postgres]\nport = abc\n", "port must be an integer"),
    ("[nonsense]\na = 1\n", "unknown section"),
    ("[storage]\nmode = weird\n", "mode must be"),
    ("[pipeline]\nparallel_steps = 0\n", "parallel_steps must be at least 1"),
    ("[pipeline]\nparallel_steps = many\n", "parallel_steps must be an integer"),
    ("[storage]\ncache_keep_days = 0\n", "cache_keep_days must be at least 1"),
    ("[pipeline]\nlog_keep_days = -1\n", "log_keep_days must be 0 (keep every log) or more, got -1"),
    ("[storage]\ncache_keep_days = week\n", "cache_keep_days must be an integer"),
    ("[postgres]\nhostname = x\n", "unknown key(s) hostname"),
    ("not an ini", "not valid INI"),
])
def test_bad_config_names_what_and_where(tmp_path, text, words):
    ini = tmp_path / "bad.ini"
    ini.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(ini, env={})
    assert words in str(info.value) and str(ini) in str(info.value)


@pytest.mark.parametrize("text,words", [
    ("[storage]\nraw_root = raw   ; where exchange files arrive\n", "[storage] raw_root: 'raw   ; where"),
    ("[spark]\nmaster = local[*] # or yarn\n", "[spark] master: 'local[*] # or yarn'"),
    ("[postgres]\npassword = hunter2pw ; better: env\n", "[postgres] password: its value contains"),
])
def test_a_comment_after_a_value_is_refused_not_read_as_the_value(tmp_path, text, words):
    ini = tmp_path / "c.ini"
    ini.write_text("; a comment on its own line is fine\n" + text)
    with pytest.raises(ConfigError) as info:
        load_config(ini, env={})
    message = str(info.value)
    assert words in message and str(ini) in message and "comments go on their own line" in message
    assert "hunter2pw" not in message  # a secret is never shown, even when it is probably a comment


def test_a_comment_sign_inside_a_value_or_from_the_environment_is_kept(tmp_path):
    ini = tmp_path / "c.ini"
    ini.write_text("[postgres]\npassword = p#ss;word\n; the next line continues the value list\n"
                   "[spark]\nconf = spark.a=1,\n  # a comment line inside a list\n  spark.b=2\n")
    cfg = load_config(ini, env={"TICKFLOW_STORAGE_RAW_ROOT": "/data/raw ;x"})
    assert cfg.postgres is not None and cfg.postgres.password == "p#ss;word"
    assert cfg.spark.conf == {"spark.a": "1", "spark.b": "2"} and cfg.storage.raw_root == "/data/raw ;x"


@pytest.mark.parametrize("env,words", [
    ({"TICKFLOW_TRACKER_LEASE_SECONDS": "abc"}, "environment TICKFLOW_TRACKER_LEASE_SECONDS: [tracker] lease_seconds"),
    ({"TICKFLOW_STORAGE_MODE": "weird"}, "environment TICKFLOW_STORAGE_MODE: [storage] mode must be"),
    ({"TICKFLOW_POSTGRES_HOSTT": "x"}, "environment TICKFLOW_POSTGRES_HOSTT: [postgres] unknown key(s) hostt"),
])
def test_a_bad_environment_override_is_named_as_such(tmp_path, env, words):
    ini = tmp_path / "c.ini"
    ini.write_text("[postgres]\nhost = 127.0.0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config(ini, env=env)
    assert words in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.ini", env={})


def test_secrets_include_the_key_inside_a_connection_string(tmp_path):
    ini = tmp_path / "az.ini"
    ini.write_text("[azure]\nconnection_string = DefaultEndpointsProtocol=http;AccountName=acct;"
                   "AccountKey=c2VjcmV0a2V5;BlobEndpoint=http://127.0.0.1:1/acct;\n")
    secrets = load_config(ini, env={}).secrets()
    assert "c2VjcmV0a2V5" in secrets  # masked on its own, not only as part of the whole string
    assert any("AccountKey=c2VjcmV0a2V5" in s for s in secrets)


def test_every_ini_example_of_the_readme_loads(tmp_path):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```ini\n(.*?)```", readme, re.S)
    assert len(blocks) >= 3
    for n, block in enumerate(blocks):
        ini = tmp_path / f"readme{n}.ini"
        ini.write_text(block)
        load_config(ini, env={})  # raises ConfigError naming the key of a broken example
