from __future__ import annotations

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
    assert cfg.base_dir == tmp_path



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
