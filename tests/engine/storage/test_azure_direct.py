"""Direct mode: the abfss:// URIs and ABFS Hadoop settings it produces (no hadoop-azure jars here),
and its _SUCCESS-gated metadata calls against Azurite's blob endpoint."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path

import pytest

from engine.config import AzureConfig, Config, SparkConfig, StorageConfig
from engine.errors import ConfigError, StorageError
from engine.storage.azure_direct import (
    OWNED_STAGING,
    AzureDirectStorage,
    find_abfs_connector,
    require_abfs_connector,
    spark_home,
)
from engine.storage.base import owned_name
from tests.azurite import ACCOUNT, ACCOUNT_KEY

KEY = "c2VjcmV0LWtleS1ub3QtdG8tbGVhaw=="
HOST = "acct01.dfs.core.windows.net"


def _config(**azure: str) -> Config:
    values = {"storage_account": "acct01", "container": "market", "access_key": KEY} | azure
    return Config(azure=AzureConfig(**values), storage=StorageConfig(mode="direct"))


def test_uris_for_az_root() -> None:
    st = AzureDirectStorage.from_config("az://market/wh", _config())
    assert st.uri("trade") == f"abfss://market@{HOST}/wh/trade"
    pending = st.begin_write("analytics/bars_1m", "run-1", "overwrite_partitions", ["trade_dt"])
    assert pending.uri == f"abfss://market@{HOST}/wh/analytics/bars_1m"
    assert pending.partition_by == ("trade_dt",) and pending.mode == "overwrite_partitions"
    assert st.uri("") == f"abfss://market@{HOST}/wh"
    with pytest.raises(StorageError, match="unknown write mode"):
        st.begin_write("x", "r", "merge", [])


def test_abfss_root_keeps_its_host_and_container() -> None:
    st = AzureDirectStorage.from_config("abfss://raw@acct01.dfs.core.windows.net/exchange", _config())
    assert st.uri("csv/2020-08-05") == f"abfss://raw@{HOST}/exchange/csv/2020-08-05"


def test_hadoop_and_spark_conf_for_an_access_key() -> None:
    st = AzureDirectStorage.from_config("az://market/wh", _config())
    assert st.hadoop_conf() == {
        f"fs.azure.account.auth.type.{HOST}": "SharedKey",
        f"fs.azure.account.key.{HOST}": KEY,
        "mapreduce.fileoutputcommitter.marksuccessfuljobs": "true",
    }
    # the key stays out of the SparkConf (the JVM's command line): configure_spark sets it on the running session
    assert st.spark_conf() == {f"spark.hadoop.fs.azure.account.auth.type.{HOST}": "SharedKey",
                               "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "true"}
    assert KEY not in repr(st) and KEY not in st.describe()


def test_conf_from_connection_string_in_a_sovereign_cloud() -> None:
    cs = f"DefaultEndpointsProtocol=https;AccountName=govacct;AccountKey={KEY};EndpointSuffix=core.usgovcloudapi.net"
    st = AzureDirectStorage.from_config("az://market/wh", _config(storage_account="", access_key="",
                                                                   connection_string=cs))
    host = "govacct.dfs.core.usgovcloudapi.net"
    assert st.uri("trade") == f"abfss://market@{host}/wh/trade"
    assert st.hadoop_conf()[f"fs.azure.account.key.{host}"] == KEY
    assert st.target.endpoint == "https://govacct.blob.core.usgovcloudapi.net"


def test_conf_from_a_sas_connection_string() -> None:
    cs = "BlobEndpoint=https://acct01.blob.core.windows.net;SharedAccessSignature=sv=2022&sig=abc"
    st = AzureDirectStorage.from_config("az://market/wh", _config(access_key="", connection_string=cs))
    assert st.hadoop_conf()[f"fs.azure.account.auth.type.{HOST}"] == "SAS"
    assert st.hadoop_conf()[f"fs.azure.sas.fixed.token.{HOST}"] == "sv=2022&sig=abc"
    assert not any("sig=abc" in v or "sas" in k for k, v in st.spark_conf().items())


def test_endpoint_override_maps_blob_host_to_dfs_host() -> None:
    st = AzureDirectStorage.from_config("az://market/wh",
                                        _config(endpoint="https://acct01.blob.core.chinacloudapi.cn"))
    assert st.uri("t") == "abfss://market@acct01.dfs.core.chinacloudapi.cn/wh/t"


@pytest.mark.parametrize(("root", "config", "message"), [
    ("az://market/wh", _config(access_key=""), "needs \\[azure\\] access_key"),
    ("abfss://market@other01.dfs.core.windows.net/wh", _config(), "names account 'other01'"),
    ("az://market/wh", Config(storage=StorageConfig(mode="direct")), "no \\[azure\\] section"),
])
def test_config_errors(root: str, config: Config, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        AzureDirectStorage.from_config(root, config)
    assert KEY not in str(info.value)


def test_success_marker_gates_reads_and_commit(azurite, container) -> None:
    """Metadata calls go through the Blob API, which Azurite serves (the abfss:// side needs a real account)."""
    config = Config(azure=AzureConfig(storage_account=ACCOUNT, container=container, access_key=ACCOUNT_KEY,
                                      endpoint=azurite.endpoint), storage=StorageConfig(mode="direct"))
    st = AzureDirectStorage.from_config(f"az://{container}/wh", config, cleanup_grace_seconds=0,
                                        check_connector=False)  # Azurite serves the Blob API only
    st.check()
    client = st.access.client
    pending = st.begin_write("trade", "run-1", "overwrite", ["trade_dt"])
    client.upload_blob("wh/trade/_temporary/0/task/part-0.parquet", b"half")
    client.upload_blob("wh/trade/trade_dt=2020-08-05/part-0.parquet", b"x")
    assert st.read_uri("trade") is None and not st.exists("trade")  # no _SUCCESS: not committed
    with pytest.raises(StorageError, match="no _SUCCESS marker"):
        st.commit(pending)  # Spark's committer did not finish
    client.upload_blob("wh/trade/_SUCCESS", b"")
    st.commit(pending)
    assert st.read_uri("trade") == f"abfss://{container}@{ACCOUNT}.dfs.core.windows.net/wh/trade"
    assert st.list_dirs("trade") == ["trade_dt=2020-08-05"]
    assert not st.access.blob_exists("wh/trade/_temporary/0/task/part-0.parquet")  # leftover cleaned
    assert st.read_uri("nothing") is None and not st.exists("nothing")
    client.upload_blob("raw/csv/2020-08-05/NYSE/part-00000.txt", b"line")  # raw folders have no _SUCCESS
    raw = AzureDirectStorage.from_config(f"az://{container}/raw", config)
    assert raw.read_uri("csv/2020-08-05") == f"abfss://{container}@{ACCOUNT}.dfs.core.windows.net/raw/csv/2020-08-05"
    assert raw.list_dirs("csv") == ["2020-08-05"]
    client.upload_blob("raw/csv/2020-08-05/NYSE/_SUCCESS", b"")  # hidden names are no input
    client.upload_blob("raw/csv/2020-08-05/NASDAQ/part-00000.txt", b"two lines")
    stamps = raw.list_files("csv/2020-08-05")
    assert [(f.name, f.size) for f in stamps] == [("NASDAQ/part-00000.txt", 9), ("NYSE/part-00000.txt", 4)]
    client.upload_blob("raw/csv/2020-08-05/NYSE/part-00000.txt", b"line", overwrite=True)  # sent again
    again = raw.list_files("csv/2020-08-05")
    assert again[0] == stamps[0] and again[1].version != stamps[1].version and again[1].size == 4
    assert raw.list_files("csv/1999-01-01") == []


def test_owned_append_is_staged_then_replaces_its_owners_files_only(azurite, container) -> None:
    """Spark names the files it writes, so an owned write goes to a hidden staging folder of the dataset and
    commit copies the files in under the owner's names, dropping that owner's earlier ones (Azurite stands in
    for the abfss:// side: the test writes what Spark would)."""
    config = Config(azure=AzureConfig(storage_account=ACCOUNT, container=container, access_key=ACCOUNT_KEY,
                                      endpoint=azurite.endpoint), storage=StorageConfig(mode="direct"))
    st = AzureDirectStorage.from_config(f"az://{container}/wh", config, cleanup_grace_seconds=0,
                                        check_connector=False)  # Azurite serves the Blob API only
    client = st.access.client
    client.upload_blob("wh/q/_SUCCESS", b"")
    client.upload_blob("wh/q/d=1/part-0.parquet", b"ingest")

    def owned(owner: str, files: dict[str, bytes], replace: tuple[str, ...] = (), commit: bool = True) -> None:
        pending = st.begin_write("q", "run-1", "append", ["d"], owner=owner)
        assert f"/wh/q/{OWNED_STAGING}/run-1-" in pending.uri
        staging = pending.uri.split(f"@{ACCOUNT}.dfs.core.windows.net/", 1)[1]
        for name, data in {**files, "_SUCCESS": b""}.items():
            client.upload_blob(f"{staging}/{name}", data)
        assert OWNED_STAGING not in st.list_dirs("q")  # hidden from readers
        if commit:
            st.commit(dataclasses.replace(pending, replace_partitions=replace))
        else:
            st.abort(pending)
        assert not list(client.list_blobs(name_starts_with=f"{staging}/"))

    def contents() -> dict[str, bytes]:
        return {b.name[len("wh/q/"):]: client.download_blob(b.name).readall()
                for b in client.list_blobs(name_starts_with="wh/q/d=")}

    owned("demo/a", {"d=1/part-1.parquet": b"a1", "d=2/part-1.parquet": b"a2"})
    owned("demo/b", {"d=1/part-1.parquet": b"b1"})
    owned("demo/a", {"d=1/part-7.parquet": b"a1 again"}, replace=("d=1",))
    assert contents() == {"d=1/part-0.parquet": b"ingest", f"d=1/{owned_name('demo/a', 'part-7.parquet')}": b"a1 again",
                          f"d=1/{owned_name('demo/b', 'part-1.parquet')}": b"b1",
                          f"d=2/{owned_name('demo/a', 'part-1.parquet')}": b"a2"}
    owned("demo/a", {"d=1/part-8.parquet": b"never"}, commit=False)  # aborted: nothing published
    owned("demo/a", {}, replace=("d=1", "d=2"))
    assert contents() == {"d=1/part-0.parquet": b"ingest", f"d=1/{owned_name('demo/b', 'part-1.parquet')}": b"b1"}
    assert st.exists("q")


# -- the account key stays out of the SparkConf and the JVM's command line

_SESSION_AS_THE_CLI_BUILDS_IT = """
import json, sys
from pyspark import SparkContext
from engine.run_command import Session
from engine.config import AzureConfig, Config, SparkConfig, StorageConfig
from engine.storage.factory import open_storage

key, name = sys.argv[1], sys.argv[2]
config = Config(azure=AzureConfig(storage_account="acct01", container="market", access_key=key),
                storage=StorageConfig(root="az://market/wh", mode="direct"), spark=SparkConfig(master="local[1]"))
session = Session(config, storages=(open_storage("az://market/wh", config), open_storage("az://market/raw", config)))
spark = session.spark_provider()
cmdline = open(f"/proc/{SparkContext._gateway.proc.pid}/cmdline", "rb").read().decode().split("\\0")
hconf = spark.sparkContext._jsc.hadoopConfiguration()
print(json.dumps({"cmdline": cmdline, "spark_conf": spark.sparkContext.getConf().getAll(),
                  "session_conf": list(spark.conf.getAll.items()), "hadoop": hconf.get(name),
                  "auth": hconf.get(name.replace(".key.", ".auth.type."))}))
"""


def test_the_cli_session_gets_the_key_in_its_hadoop_configuration_not_on_the_jvm_command_line(repo_root) -> None:
    """A fresh JVM (the shared test session already runs, so its command line proves nothing): built as the
    CLI builds it for direct mode, the driver JVM's arguments (``ps -o args``) and the SparkConf never hold the
    key, and the running session's Hadoop configuration does."""
    import json
    import os
    import subprocess
    import sys

    name = f"fs.azure.account.key.{HOST}"
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYTHONPATH": str(repo_root)}
    out = subprocess.run([sys.executable, "-c", _SESSION_AS_THE_CLI_BUILDS_IT, KEY, name], cwd=repo_root, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["cmdline"][0].endswith("java") and any("SparkSubmit" in a for a in seen["cmdline"])
    assert not any(KEY in arg for arg in seen["cmdline"])
    assert not any(KEY in value or name in key for key, value in seen["spark_conf"])
    assert not any(KEY in value for _, value in seen["session_conf"])
    assert seen["hadoop"] == KEY and seen["auth"] == "SharedKey"
    assert KEY not in out.stdout.replace(seen["hadoop"], "") and KEY not in out.stderr


def test_configure_spark_sets_the_key_on_the_running_session(spark) -> None:
    st = AzureDirectStorage.from_config("az://market/wh", _config())
    hconf = spark.sparkContext._jsc.hadoopConfiguration()
    try:
        st.configure_spark(spark)
        assert hconf.get(f"fs.azure.account.key.{HOST}") == KEY
        assert hconf.get(f"fs.azure.account.auth.type.{HOST}") == "SharedKey"
    finally:  # the session is shared by the whole test run
        for key in st.hadoop_conf():
            hconf.unset(key)
    assert hconf.get(f"fs.azure.account.key.{HOST}") is None


# -- direct mode refuses a Spark without the hadoop-azure connector before the lock and Spark


def _spark_home(tmp_path: Path, *jars: str) -> Path:
    """A Spark installation's layout: jars/ with the given jar files (empty stand-ins)."""
    home = tmp_path / "spark"
    (home / "jars").mkdir(parents=True)
    for jar in ("spark-core_2.13-4.0.0.jar", "hadoop-client-api-3.4.1.jar", *jars):
        (home / "jars" / jar).write_bytes(b"")
    return home


def test_a_spark_without_hadoop_azure_is_refused_naming_where_it_looked(tmp_path: Path) -> None:
    home = _spark_home(tmp_path, "hadoop-azure-datalake-3.4.1.jar")  # the adl:// connector does not do
    with pytest.raises(StorageError) as info:
        require_abfs_connector({"spark.jars": "/opt/jars/delta-spark.jar",
                                "spark.driver.extraClassPath": f"{tmp_path}/nothing/*"}, {"SPARK_HOME": str(home)})
    message = str(info.value)
    assert info.value.exit_code == 2
    for words in ("mode = direct needs the hadoop-azure connector", f"Spark's jars folder {home}/jars",
                  "[spark] spark.jars;", "[spark] spark.driver.extraClassPath", "hadoop-azure:3.4.1",
                  "mode = staged"):
        assert words in message
    assert "delta-spark" not in message  # names of settings only: a jar URL may carry a token
    with pytest.raises(StorageError, match=r"\(no spark.jars, spark.jars.packages, spark.driver.extraClassPath"):
        require_abfs_connector({}, {"SPARK_HOME": str(home)})


def test_pyspark_without_spark_home_is_looked_at_in_its_own_jars_folder() -> None:
    import pyspark

    assert spark_home({}) == Path(pyspark.__file__).parent
    search = find_abfs_connector({}, spark_home({}), {})
    assert search.looked[0] == f"pyspark's jars folder {Path(pyspark.__file__).parent / 'jars'}"


@pytest.mark.parametrize("where", ["jars folder", "spark.jars", "spark.jars.packages", "extraClassPath folder",
                                   "spark-defaults.conf", "SPARK_DIST_CLASSPATH", "PYSPARK_SUBMIT_ARGS",
                                   "running JVM"])
def test_a_spark_with_hadoop_azure_is_not_refused(tmp_path: Path, where: str) -> None:
    home = _spark_home(tmp_path, "hadoop-azure-3.4.1.jar" if where == "jars folder" else "other.jar")
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "hadoop-azure-3.4.1.jar").write_bytes(b"")
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    (conf_dir / "spark-defaults.conf").write_text("# cluster defaults\nspark.jars.packages  "
                                                  "org.apache.hadoop:hadoop-azure:3.4.1\n")
    env = {"SPARK_HOME": str(home)}
    conf: dict[str, str] = {}
    match where:
        case "spark.jars":
            conf["spark.jars"] = "/opt/jars/delta.jar,/opt/jars/hadoop-azure-3.4.1.jar"
        case "spark.jars.packages":
            conf["spark.jars.packages"] = "io.delta:delta-spark_2.13:4.0.0,org.apache.hadoop:hadoop-azure:3.4.1"
        case "extraClassPath folder":
            conf["spark.driver.extraClassPath"] = f"/opt/none.jar:{extra}/*"
        case "spark-defaults.conf":
            env["SPARK_CONF_DIR"] = str(conf_dir)
        case "SPARK_DIST_CLASSPATH":
            env["SPARK_DIST_CLASSPATH"] = f"/etc/hadoop/conf:{extra}/*"
        case "PYSPARK_SUBMIT_ARGS":
            env["PYSPARK_SUBMIT_ARGS"] = "--packages org.apache.hadoop:hadoop-azure:3.4.1 pyspark-shell"
        case "running JVM":  # spark-submit, Databricks: the JVM's class path was decided elsewhere
            env["PYSPARK_GATEWAY_PORT"] = "40123"
    require_abfs_connector(conf, env)
    if where != "running JVM":
        assert find_abfs_connector(conf, home, env).found


def test_check_refuses_before_any_network_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARK_HOME", str(_spark_home(tmp_path)))
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    for var in ("SPARK_CONF_DIR", "SPARK_DIST_CLASSPATH", "SPARK_CLASSPATH", "PYSPARK_SUBMIT_ARGS"):
        monkeypatch.delenv(var, raising=False)
    st = AzureDirectStorage.from_config("az://market/wh", _config())
    with pytest.raises(StorageError, match="needs the hadoop-azure connector"):
        st.check()
    assert st._access is None  # refused locally: no Blob client, no request to acct01
    with_jar = dataclasses.replace(_config(), spark=SparkConfig(conf={"spark.jars.packages":
                                                                      "org.apache.hadoop:hadoop-azure:3.4.1"}))
    st = AzureDirectStorage.from_config("az://market/wh", with_jar)
    monkeypatch.setattr(AzureDirectStorage, "access", property(lambda self: pytest.fail("reached the network")))
    with pytest.raises(pytest.fail.Exception, match="reached the network"):
        st.check()  # the connector is configured: on to the container check


def test_a_direct_raw_root_is_checked_for_the_connector_and_its_credentials(tmp_path: Path, azurite,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Spark reads a direct raw root through the connector too; a wrong key is named as the raw root's."""
    monkeypatch.setenv("SPARK_HOME", str(_spark_home(tmp_path)))
    for var in ("PYSPARK_GATEWAY_PORT", "SPARK_CONF_DIR", "SPARK_DIST_CLASSPATH", "SPARK_CLASSPATH",
                "PYSPARK_SUBMIT_ARGS"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(StorageError, match="needs the hadoop-azure connector"):
        AzureDirectStorage.from_config("az://market/raw", _config()).check_readable()
    wrong = Config(azure=AzureConfig(storage_account=ACCOUNT, container="market", endpoint=azurite.endpoint,
                                     access_key=base64.b64encode(b"x" * 64).decode()),
                   storage=StorageConfig(mode="direct"))
    raw = AzureDirectStorage.from_config("az://market/raw", wrong, check_connector=False)
    with pytest.raises(StorageError, match="read the raw root's container failed: access denied"):
        raw.check_readable()


def test_a_direct_run_without_the_connector_exits_2_before_the_lock_and_spark(
        azurite, container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        repo_root: Path) -> None:
    from engine import cli
    from engine import spark as spark_module

    monkeypatch.setenv("SPARK_HOME", str(_spark_home(tmp_path)))
    for var in ("PYSPARK_GATEWAY_PORT", "SPARK_CONF_DIR", "SPARK_DIST_CLASSPATH", "SPARK_CLASSPATH",
                "PYSPARK_SUBMIT_ARGS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(spark_module, "build_session", lambda *a, **k: pytest.fail("Spark was started"))
    from azure.storage.blob import ContainerClient

    with ContainerClient(azurite.endpoint, container,
                         credential={"account_name": ACCOUNT, "account_key": ACCOUNT_KEY}) as client:
        client.upload_blob("raw/csv/2020-08-05/NYSE/part-00000.txt", b"a raw file: the run would reach Spark")
    ini = tmp_path / "direct.ini"
    ini.write_text(f"[storage]\nroot = az://{container}/wh\nraw_root = az://{container}/raw\nmode = direct\n"
                   f"[azure]\nstorage_account = {ACCOUNT}\naccess_key = {ACCOUNT_KEY}\nendpoint = {azurite.endpoint}\n"
                   f"[tracker]\nsqlite_path = {tmp_path}/tracker.sqlite\n[pipeline]\nlog_dir = {tmp_path}/logs\n")
    code = cli.main(["run", str(repo_root / "pipelines" / "preprocess.yaml"), "--date", "2020-08-05",
                     "--config", str(ini), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "needs the hadoop-azure connector" in err and "mode = staged" in err
    assert not (tmp_path / "tracker.sqlite").exists()  # refused before the tracker (and its lock)
    assert ACCOUNT_KEY not in err
