from __future__ import annotations

import datetime as dt
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
    assert cfg.stop_grace_seconds == 30
    assert load_config(None, env={"TICKFLOW_PIPELINE_STOP_GRACE_SECONDS": "5"}).stop_grace_seconds == 5
    assert cfg.log_keep_days == 30
    assert load_config(None, env={"TICKFLOW_PIPELINE_LOG_KEEP_DAYS": "0"}).log_keep_days == 0
    assert cfg.holidays == ()
    assert load_config(None, env={"TICKFLOW_PIPELINE_HOLIDAYS": "2025-01-01, 2024-12-25"}).holidays == (
        dt.date(2024, 12, 25), dt.date(2025, 1, 1))


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
    ("[pipeline]\nstop_grace_seconds = -1\n", "stop_grace_seconds must be 0 or more, got -1"),
    ("[pipeline]\nholidays = 2024-12-25, Christmas\n", "[pipeline] holidays: 'Christmas' is not a YYYY-MM-DD date"),
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
    ({"TICKFLOW_STORGE_ROOT": "/data/wh"},
     "environment TICKFLOW_STORGE_ROOT: no config section [storge]; did you mean TICKFLOW_STORAGE_ROOT?"),
    ({"TICKFLOW_TRACKERS_LEASE_SECONDS": "60"}, "did you mean TICKFLOW_TRACKER_LEASE_SECONDS?"),
])
def test_a_bad_environment_override_is_named_as_such(tmp_path, env, words):
    ini = tmp_path / "c.ini"
    ini.write_text("[postgres]\nhost = 127.0.0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config(ini, env=env)
    assert words in str(info.value)


def test_other_tickflow_variables_are_not_taken_for_misspelt_sections(tmp_path):
    env = {"TICKFLOW_CONFIG": "", "TICKFLOW_CACHE_DIR": str(tmp_path), "TICKFLOW_PYTHON": "python3",
           "TICKFLOW_TEST_PG_DSN": "postgresql://postgres@127.0.0.1/postgres", "TICKFLOW_HOME": "/opt/tickflow",
           "TICKFLOW_RELEASE_CHANNEL": "stable", "TICKFLOW_STORAGE_ROOT": str(tmp_path / "wh")}
    assert load_config(None, env=env).storage.root == str(tmp_path / "wh")


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


# -- a secret wrapped onto its own line ---------------------------------------------------------------------
AZURE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
HIDDEN = "a line that is not 'key = value' (not shown: it may be a wrapped secret value"


@pytest.mark.parametrize("text,secret,words", [
    # read as a key named after the secret (it holds '=')
    (f"[azure]\nstorage_account = acct\naccess_key =\n{AZURE_KEY}\n", AZURE_KEY, f"[azure] line 4: {HIDDEN}"),
    (f"[postgres]\nhost = db\npassword =\n{AZURE_KEY}\n", AZURE_KEY, f"[postgres] line 4: {HIDDEN}"),
    # a short secret holding '=' looks like a key, but it follows a key left empty
    ("[postgres]\npassword =\nhunter2=xyz\n", "hunter2", f"[postgres] line 3: {HIDDEN}"),
    # no '=' or ':' at all: the INI reader's own error would quote the line
    ("[postgres]\npassword =\nhunter2xyz\n", "hunter2xyz", f"not valid INI: [postgres] line 3: {HIDDEN}"),
    ("[azure]\naccess_key =\nc2VjcmV0a2V5c2VjcmV0\n", "c2VjcmV0a2V5c2VjcmV0", f"[azure] line 3: {HIDDEN}"),
    (f"[spark]\nspark.hadoop.fs.azure.account.key.acct.dfs.core.windows.net =\n{AZURE_KEY}\n", AZURE_KEY,
     f"[spark] line 3: {HIDDEN}"),
    (f"[storage]\nroot = /wh\n{AZURE_KEY}\n", AZURE_KEY, f"[storage] line 3: {HIDDEN}"),
    (f"[spark]\nconf = spark.a=1,\n  {AZURE_KEY[:-2]}\n", AZURE_KEY[:-2],
     "conf entries must be key=value, got entry 2"),
    (f"{AZURE_KEY[:-2]}\n[azure]\n", AZURE_KEY[:-2], "line 1: text before the first [section] header (not shown"),
])
def test_a_secret_wrapped_onto_its_own_line_is_never_shown(tmp_path, text, secret, words):
    ini = tmp_path / "c.ini"
    ini.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(ini, env={})
    message = str(info.value)
    assert words in message and str(ini) in message, message
    for shown in (secret, secret.lower(), secret[:8], secret[:8].lower()):
        assert shown not in message, message
    assert info.value.exit_code == 2


def test_unknown_keys_are_named_when_they_look_like_keys(tmp_path):
    ini = tmp_path / "c.ini"
    ini.write_text(f"[azure]\ncontainr = market\naccess_key = {AZURE_KEY}\n{'x' * 41} = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(ini, env={"TICKFLOW_AZURE_ENDPOINTT": "http://x"})
    message = str(info.value)
    assert ("[azure] unknown key(s) containr, endpointt; expected some of access_key, connection_string, container, "
            f"endpoint, storage_account; line 4: {HIDDEN}") in message, message
    assert message.startswith("environment TICKFLOW_AZURE_ENDPOINTT: ") and "x" * 41 not in message
    ini.write_text("[spark]\nmastr = local[2]\n")
    with pytest.raises(ConfigError, match=r"\[spark\] unknown key\(s\) mastr; expected master, conf or spark\.\*"):
        load_config(ini, env={})
    ini.write_text("[postgres]\npassword = a\npassword = b\n")
    with pytest.raises(ConfigError, match=r"\[postgres\] line 3: key 'password' is given twice$"):
        load_config(ini, env={})


@pytest.mark.parametrize("text", [
    "[postgres]\npassword = {s}\nport = abc\n",
    "[postgres]\npassword = {s}\nconnect_timeout = soon\n",
    "[postgres]\npassword = {s} ; from the vault\n",
    "[azure]\naccess_key = {s} # the old key\n",
    "[azure]\nconnection_string = AccountName=a;AccountKey={s} ;x\n",
    "[spark]\nspark.hadoop.fs.azure.account.key.a.dfs.core.windows.net = {s} ; key\n",
    "[azure]\naccess_key = {s}\n[storage]\nmode = fast\n",
    "[azure]\naccess_key = {s}\n[tracker]\nlease_seconds = 1\n",
])
def test_errors_about_known_keys_never_show_a_secret(tmp_path, text):
    ini = tmp_path / "c.ini"
    ini.write_text(text.format(s="hunter2-Secret"))
    with pytest.raises(ConfigError) as info:
        load_config(ini, env={})
    assert "hunter2" not in str(info.value), str(info.value)


# -- the SQLite tracker's table name --------------------------------------------------------------------------
def test_the_sqlite_tracker_table_is_named_by_job_tracker_table_name(tmp_path):
    ini = tmp_path / "c.ini"
    for text, env, table in [
        ("", {}, "job_tracker"),
        ("[tracker]\njob_tracker_table_name = ops_jobs\n", {}, "ops_jobs"),
        ("[tracker]\ntable = old_jobs\n", {}, "old_jobs"),  # the older name still works
        ("[tracker]\ntable = jobs\njob_tracker_table_name = jobs\n", {}, "jobs"),
        ("[tracker]\njob_tracker_table_name = ops_jobs\n", {"TICKFLOW_TRACKER_JOB_TRACKER_TABLE_NAME": "env_jobs"},
         "env_jobs"),
        ("[tracker]\ntable = old_jobs\n", {"TICKFLOW_TRACKER_JOB_TRACKER_TABLE_NAME": "env_jobs"}, "env_jobs"),
    ]:
        ini.write_text(text)
        cfg = load_config(ini, env=env)
        assert cfg.tracker.table == table and cfg.postgres is None, (text, env)  # no switch to PostgreSQL


@pytest.mark.parametrize("text,env,where", [
    ("[tracker]\ntable = old_jobs\njob_tracker_table_name = ops_jobs\n", {}, "{ini}"),
    ("", {"TICKFLOW_TRACKER_TABLE": "old_jobs", "TICKFLOW_TRACKER_JOB_TRACKER_TABLE_NAME": "ops_jobs"},
     "environment TICKFLOW_TRACKER_JOB_TRACKER_TABLE_NAME, TICKFLOW_TRACKER_TABLE"),
])
def test_two_different_sqlite_table_names_are_refused(tmp_path, text, env, where):
    ini = tmp_path / "c.ini"
    ini.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(ini, env=env)
    assert str(info.value) == (f"{where.format(ini=ini)}: [tracker] job_tracker_table_name 'ops_jobs' and table "
                               f"'old_jobs' (an older name of the same setting) disagree; keep only "
                               f"job_tracker_table_name")
    assert info.value.exit_code == 2


# -- [spark] values, DSNs and the file itself ------------------------------------------------------------------
@pytest.mark.parametrize("text,words", [
    ("[spark]\nconf = spark.a=1, spark.hadoop.svc.token={s} ;x\n", "[spark] conf: the value of entry 2 (spark.hadoop"
                                                                    ".svc.token) contains ' ;' or ' #'"),
    ("[spark]\nconf = spark.x.y={s} # old\n", "[spark] conf: the value of entry 1 (spark.x.y) contains"),
    ("[spark]\nconf = spark.a=1, {s}\n", "[spark] conf entries must be key=value, got entry 2 (not shown"),
    ("[spark]\nconf = spark.a=1, ={s}\n", "[spark] conf entries must be key=value, got entry 2 (not shown"),
])
def test_errors_about_spark_conf_entries_never_show_their_values(tmp_path, text, words):
    """A comma inside a credential splits it into a piece without '=', and the key ``conf`` names no secret:
    the errors name the entry by its number (and key), never its text."""
    ini = tmp_path / "c.ini"
    ini.write_text(text.format(s="word123Secret"))
    with pytest.raises(ConfigError) as info:
        load_config(ini, env={})
    message = str(info.value)
    assert words in message and str(ini) in message and "word123" not in message, message


def test_secrets_include_spark_settings_named_like_credentials(tmp_path):
    ini = tmp_path / "c.ini"
    ini.write_text("[spark]\nspark.hadoop.myservice.api.key = k3yV4lue\nspark.hadoop.fs.s3a.endpoint = s3.local\n"
                   "spark.security.credentials.hive.enabled = true\n"
                   "conf = spark.hadoop.db.passwd=pw0rd, spark.sql.shuffle.partitions=4\n")
    assert sorted(load_config(ini, env={}).secrets()) == ["k3yV4lue", "pw0rd"]  # not 'true': a switch is no secret


def test_secrets_are_collected_without_the_newline_of_a_wrapped_line(tmp_path):
    ini = tmp_path / "c.ini"
    ini.write_text("[postgres]\npassword =\n  hunter2pw\n")
    assert load_config(ini, env={}).secrets() == ["hunter2pw"]


@pytest.mark.parametrize("host,database,secrets", [
    ("postgresql://etl:pw%40one@db:5432/md?sslmode=require", "md", ["pw%40one", "pw@one"]),
    ("db", "host=db dbname=md password='two words' sslmode=require", ["'two words'", "two words"]),
    ("db.example", "md?user=etl&password=pw3&sslmode=require", ["pw3"]),
    ("db", "postgresql://postgres:PwLongSecretABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@db/md", ["PwLongSecret"]),
])
def test_a_dsn_in_host_or_database_is_refused_without_showing_its_password(host, database, secrets):
    """The driver passes such a value on as a plain name, which never connects; PostgreSQL then echoed the
    unknown database cut to 63 characters, and the password's first characters reached the console."""
    with pytest.raises(ConfigError) as info:
        load_config(None, env={"TICKFLOW_POSTGRES_HOST": host, "TICKFLOW_POSTGRES_DATABASE": database})
    key, value = ("HOST", host) if "://" in host else ("DATABASE", database)
    assert str(info.value).startswith(f"environment TICKFLOW_POSTGRES_{key}: [postgres] {key.lower()} holds a "
                                      "connection string ('"), info.value
    assert "***" in str(info.value) and not any(secret in str(info.value) for secret in secrets)
    assert info.value.exit_code == 2


def test_a_config_path_that_is_a_folder_or_not_utf8_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, env={})
    assert str(info.value) == f"config file {tmp_path} is a directory; give the INI file in it"
    ini = tmp_path / "latin1.ini"
    ini.write_bytes("[postgres]\nhost = db\npassword = caf\xe9Secret\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config(ini, env={})
    assert str(info.value) == (f"config file {ini} is not UTF-8 text: line 3 (byte offset 35) holds a byte that is "
                               f"not UTF-8 (e.g. Latin-1); save the file as UTF-8")
    assert info.value.exit_code == 2 and "caf" not in str(info.value)


@pytest.mark.parametrize("master", ["local", "local[4]", "local[*]", "local[4,2]", "local[*, 3]",
                                    "local-cluster[2,1,1024]", "spark://h1:7077,h2:7077", "yarn",
                                    "k8s://https://k8s.example:443", "mesos://m.example:5050"])
def test_every_spark_master_form_is_accepted(tmp_path, master):
    ini = tmp_path / "c.ini"
    ini.write_text(f"[spark]\nmaster = {master}\n")
    assert load_config(ini, env={}).spark.master == master


@pytest.mark.parametrize("master", ["lcoal[*]", "local[0]", "local[x]", "LOCAL", "yarn-client", "spark://", ""])
def test_a_misspelt_spark_master_is_refused_when_the_config_loads(tmp_path, master):
    """Found only when the JVM failed to start, it showed a Java stack trace and a misleading gateway error."""
    ini = tmp_path / "c.ini"
    ini.write_text(f"[spark]\nmaster = {master}\n")
    with pytest.raises(ConfigError) as info:
        load_config(ini, env={})
    assert str(info.value) == (f"{ini}: [spark] master '{master}' is not a Spark master URL; expected local, "
                               f"local[N], local[*], local[N,F], local[*,F], local-cluster[N,C,M], spark://HOST:PORT, "
                               f"yarn, k8s://HOST:PORT or mesos://HOST:PORT")


def test_spark_master_as_a_spark_setting(tmp_path):
    ini = tmp_path / "c.ini"
    ini.write_text("[spark]\nspark.master = local[2]\nspark.sql.shuffle.partitions = 3\n")
    cfg = load_config(ini, env={})
    assert cfg.spark.master == "local[2]" and cfg.spark.conf == {"spark.sql.shuffle.partitions": "3"}
    assert load_config(ini, env={"TICKFLOW_SPARK_MASTER": "yarn"}).spark.master == "yarn"  # the environment wins
    ini.write_text("[spark]\nspark.master = lcoal[2]\n")
    with pytest.raises(ConfigError, match=r"\[spark\] spark.master 'lcoal\[2\]' is not a Spark master URL"):
        load_config(ini, env={})
    ini.write_text("[spark]\nmaster = local[1]\nconf = spark.master=local[2]\n")
    with pytest.raises(ConfigError, match=r"\[spark\] master 'local\[1\]' and spark.master 'local\[2\]' disagree"):
        load_config(ini, env={})


@pytest.mark.parametrize("section,key", [("storage", "root"), ("storage", "raw_root"), ("storage", "cache_dir"),
                                         ("tracker", "sqlite_path"), ("pipeline", "log_dir")])
def test_a_path_left_empty_is_refused_not_read_as_the_working_directory(tmp_path, section, key):
    ini = tmp_path / "c.ini"
    ini.write_text(f"[{section}]\n{key} =\n")
    with pytest.raises(ConfigError) as info:
        load_config(ini, env={})
    assert str(info.value) == (f"{ini}: [{section}] {key} is empty; give a path (or leave the key out for its "
                               f"default)")
    with pytest.raises(ConfigError, match="environment TICKFLOW_STORAGE_ROOT: \\[storage\\] root is empty"):
        load_config(None, env={"TICKFLOW_STORAGE_ROOT": ""})


@pytest.mark.parametrize("key", ["JOB_TRACKER_TABLE_NAME", "TABLE"])
def test_an_empty_sqlite_table_name_is_refused_as_postgresqls_is(key):
    """It was silently the default table on SQLite, while the same empty value was refused for PostgreSQL."""
    with pytest.raises(ConfigError, match=rf"environment TICKFLOW_TRACKER_{key}: \[tracker\] {key.lower()} is "
                                          r"empty; leave it out for the default 'job_tracker'"):
        load_config(None, env={f"TICKFLOW_TRACKER_{key}": " "})


@pytest.mark.parametrize(("section", "key"), [("postgres", "job_tracker_table_name"),
                                            ("tracker", "job_tracker_table_name"), ("tracker", "table")])
def test_a_tracker_table_name_that_is_no_sql_identifier_is_refused_naming_its_key(tmp_path, section, key):
    """It used to be refused only once the tracker opened, without saying which setting held it."""
    ini = tmp_path / "c.ini"
    ini.write_text(f"[{section}]\n{key} = job-tracker\n")
    with pytest.raises(ConfigError, match=rf"c.ini: \[{section}\] {key}: job tracker table name 'job-tracker' is "
                                          r"not a valid SQL identifier"):
        load_config(ini, env={})
    ini.write_text(f"[{section}]\n{key} = Job_Tracker_2\n")
    load_config(ini, env={})


# -- [postgres] statement_timeout -----------------------------------------------------------------------------
def test_postgres_statement_timeout_defaults_to_30_seconds_and_can_be_set(tmp_path):
    ini = tmp_path / "c.ini"
    ini.write_text("[postgres]\nhost = db.example.internal\n")
    cfg = load_config(ini, env={})
    assert cfg.postgres is not None and cfg.postgres.statement_timeout == 30
    ini.write_text("[postgres]\nhost = db.example.internal\nstatement_timeout = 120\n")
    cfg = load_config(ini, env={})
    assert cfg.postgres is not None and cfg.postgres.statement_timeout == 120
    cfg = load_config(ini, env={"TICKFLOW_POSTGRES_STATEMENT_TIMEOUT": "45"})
    assert cfg.postgres is not None and cfg.postgres.statement_timeout == 45


@pytest.mark.parametrize("key", ["statement_timeout", "connect_timeout"])
@pytest.mark.parametrize("value,words", [
    ("soon", "[postgres] {key} must be an integer, got 'soon'"),
    ("2.5", "[postgres] {key} must be an integer, got '2.5'"),
    ("0", "[postgres] {key} must be at least 1 (seconds), got 0"),
    ("-5", "[postgres] {key} must be at least 1 (seconds), got -5"),
])
def test_a_bad_postgres_timeout_is_refused_naming_the_key(tmp_path, key, value, words):
    words = words.format(key=key)
    ini = tmp_path / "c.ini"
    ini.write_text(f"[postgres]\npassword = hunter2-Secret\n{key} = {value}\n")
    with pytest.raises(ConfigError) as info:
        load_config(ini, env={})
    assert str(info.value) == f"{ini}: {words}" and "hunter2" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config(None, env={f"TICKFLOW_POSTGRES_{key.upper()}": value})
    assert str(info.value) == f"environment TICKFLOW_POSTGRES_{key.upper()}: {words}"
