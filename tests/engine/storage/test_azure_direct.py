"""Direct mode: the abfss:// URIs and ABFS Hadoop settings it produces (no hadoop-azure jars here),
and its _SUCCESS-gated metadata calls against Azurite's blob endpoint."""

from __future__ import annotations

import dataclasses

import pytest

from engine.config import AzureConfig, Config, StorageConfig
from engine.errors import ConfigError, StorageError
from engine.storage.azure_direct import OWNED_STAGING, AzureDirectStorage
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
    assert st.spark_conf()[f"spark.hadoop.fs.azure.account.key.{HOST}"] == KEY
    assert all(k.startswith("spark.hadoop.") for k in st.spark_conf())
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
    st = AzureDirectStorage.from_config(f"az://{container}/wh", config, cleanup_grace_seconds=0)
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


def test_owned_append_is_staged_then_replaces_its_owners_files_only(azurite, container) -> None:
    """Spark names the files it writes, so an owned write goes to a hidden staging folder of the dataset and
    commit copies the files in under the owner's names, dropping that owner's earlier ones (Azurite stands in
    for the abfss:// side: the test writes what Spark would)."""
    config = Config(azure=AzureConfig(storage_account=ACCOUNT, container=container, access_key=ACCOUNT_KEY,
                                      endpoint=azurite.endpoint), storage=StorageConfig(mode="direct"))
    st = AzureDirectStorage.from_config(f"az://{container}/wh", config, cleanup_grace_seconds=0)
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
