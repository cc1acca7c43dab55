"""Parsing of az://, abfs:// and abfss:// roots and of connection strings."""

from __future__ import annotations

import pytest

from engine.errors import ConfigError
from engine.storage.azure_uri import (
    abfss_uri,
    account_from_endpoint,
    clean_rel_path,
    dfs_suffix_for,
    is_azure_uri,
    parse_azure_uri,
    parse_connection_string,
)


@pytest.mark.parametrize(("uri", "container", "prefix", "account"), [
    ("az://market/warehouse", "market", "warehouse", None),
    ("az://market", "market", "", None),
    ("az://market/", "market", "", None),
    ("az://market/a/b/", "market", "a/b", None),
    ("abfs://market/raw", "market", "raw", None),
    ("abfss://market@acct01.dfs.core.windows.net/deep/prefix", "market", "deep/prefix", "acct01"),
    ("abfs://market@acct01.dfs.core.windows.net", "market", "", "acct01"),
])
def test_parse_accepted_forms(uri: str, container: str, prefix: str, account: str | None) -> None:
    loc = parse_azure_uri(uri)
    assert (loc.container, loc.prefix, loc.account) == (container, prefix, account)


def test_abfss_host_suffix_is_kept() -> None:
    loc = parse_azure_uri("abfss://c01@acct.dfs.core.chinacloudapi.cn/x")
    assert loc.host_suffix == "dfs.core.chinacloudapi.cn"


def test_legacy_wasbs_maps_to_the_dfs_host() -> None:
    loc = parse_azure_uri("wasbs://market@acct01.blob.core.windows.net/wh")
    assert (loc.container, loc.account, loc.prefix, loc.host_suffix) == ("market", "acct01", "wh",
                                                                         "dfs.core.windows.net")


def test_default_container_fills_empty_netloc() -> None:
    assert parse_azure_uri("az:///wh", default_container="market").container == "market"
    with pytest.raises(ConfigError, match="names no container"):
        parse_azure_uri("az:///wh")


@pytest.mark.parametrize(("uri", "message"), [
    ("s3://bucket/x", "not an Azure storage URI"),
    ("az://Bad_Name/x", "not a valid container name"),
    ("az://ab/x", "not a valid container name"),
    ("abfss://market@Not-An-Account.dfs.core.windows.net/x", "not a valid storage account"),
    ("az://market/x?sig=abc", "query"),
    ("az://market/../etc", "'..'"),
])
def test_parse_rejects(uri: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_azure_uri(uri)


@pytest.mark.parametrize("uri", [
    "https://acct.blob.core.windows.net/market/wh?sv=2024-01-01&sig=S3CRETsig%3D",  # not an az:// URI either
    "az://market/wh?sv=2024-01-01&sig=S3CRETsig%3D",
    "az://Bad_Name/wh?sig=S3CRETsig%3D",
    "abfss://market@Bad-Acct.dfs.core.windows.net/wh#sig=S3CRETsig%3D",
    "s3://user:S3CRETsig%3D@bucket/x",
])
def test_a_rejected_uri_is_named_without_its_query_or_password(uri: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_azure_uri(uri)
    assert "S3CRET" not in str(info.value) and "***" in str(info.value), info.value


def test_join_and_clean() -> None:
    loc = parse_azure_uri("az://market/wh")
    assert loc.join("trade") == "wh/trade"
    assert loc.join("/analytics//bars_1m/") == "wh/analytics/bars_1m"
    assert parse_azure_uri("az://market").join("trade") == "trade"
    assert clean_rel_path("./a/./b") == "a/b"


def test_is_azure_uri() -> None:
    assert is_azure_uri("az://c/x") and is_azure_uri("ABFSS://c@a.dfs.core.windows.net/")
    assert not is_azure_uri("warehouse") and not is_azure_uri("/tmp/az://x") and not is_azure_uri("s3://b")


def test_abfss_uri() -> None:
    assert abfss_uri("acct", "market", "wh/trade") == "abfss://market@acct.dfs.core.windows.net/wh/trade"
    assert abfss_uri("acct", "market", "") == "abfss://market@acct.dfs.core.windows.net/"


def test_dfs_suffix_for() -> None:
    assert dfs_suffix_for("acct", "") == "dfs.core.windows.net"
    assert dfs_suffix_for("acct", "https://acct.blob.core.usgovcloudapi.net") == "dfs.core.usgovcloudapi.net"
    assert dfs_suffix_for("acct", "http://127.0.0.1:10000/acct") == "dfs.core.windows.net"
    assert dfs_suffix_for("acct", "", "core.chinacloudapi.cn") == "dfs.core.chinacloudapi.cn"


@pytest.mark.parametrize(("endpoint", "account"), [
    ("https://acct.blob.core.windows.net", "acct"),
    ("https://Acct.blob.core.usgovcloudapi.net/", "acct"),
    ("http://127.0.0.1:10000/devstoreaccount1", "devstoreaccount1"),
    ("http://localhost:10000/devstoreaccount1/", "devstoreaccount1"),
    ("https://data.example.com", ""),
    ("https://proxy.example.com/storage", ""),
])
def test_account_from_endpoint(endpoint: str, account: str) -> None:
    assert account_from_endpoint(endpoint) == account


def test_connection_string_parts_and_repr_hides_key() -> None:
    cs = ("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=S3CRETKEY==;"
          "EndpointSuffix=core.windows.net;BlobEndpoint=https://acct.blob.core.windows.net/")
    parts = parse_connection_string(cs)
    assert (parts.account, parts.account_key, parts.endpoint_suffix) == ("acct", "S3CRETKEY==", "core.windows.net")
    assert parts.blob_endpoint == "https://acct.blob.core.windows.net"
    assert "S3CRETKEY" not in repr(parts)


def test_development_storage_shortcut() -> None:
    parts = parse_connection_string("UseDevelopmentStorage=true")
    assert parts.account == "devstoreaccount1"
    assert parts.blob_endpoint == "http://127.0.0.1:10000/devstoreaccount1"
    assert parts.account_key


@pytest.mark.parametrize("cs", ["AccountName=acct;AccountKey=k3y==;garbage-without-equals", "AccountKey=k3y=="])
def test_connection_string_errors_do_not_echo_it(cs: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_connection_string(cs)
    assert cs not in str(info.value)
