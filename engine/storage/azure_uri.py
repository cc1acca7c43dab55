"""Parsing of Azure storage URIs (az://, abfs://, abfss://) into container, prefix and account.

Operations write roots as ``az://<container>/<prefix>``; Hadoop users write
``abfss://<container>@<account>.dfs.core.windows.net/<prefix>`` (legacy ``wasbs://`` accepted). All name
the same place, so the engine accepts any and derives abfss:// for direct mode.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from engine.errors import ConfigError

AZURE_SCHEMES = ("az", "abfs", "abfss", "wasb", "wasbs")
DEFAULT_DFS_SUFFIX = "dfs.core.windows.net"
_CONTAINER_RE = re.compile(r"^(?:\$root|[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62})$")
_ACCOUNT_RE = re.compile(r"^[a-z0-9]{3,24}$")


@dataclass(frozen=True)
class AzureLocation:
    """Where a root points: container, a prefix inside it ("" for the container's top), maybe the account."""

    scheme: str
    container: str
    prefix: str
    account: str | None = None
    host_suffix: str | None = None  # e.g. "dfs.core.windows.net" when the URI named a host

    def join(self, rel_path: str) -> str:
        """The blob name (or prefix) of ``rel_path`` below this location, without a trailing slash."""
        return join_blob_path(self.prefix, rel_path)


def is_azure_uri(uri: str) -> bool:
    """True for the URI schemes the Azure backends handle."""
    scheme, sep, _ = uri.partition("://")
    return bool(sep) and scheme.lower() in AZURE_SCHEMES


def clean_rel_path(rel_path: str) -> str:
    """Normalise a storage-relative path and refuse ones that climb out of the root."""
    parts = [p for p in rel_path.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ConfigError(f"storage path '{rel_path}' must not contain '..'")
    return "/".join(parts)


def join_blob_path(prefix: str, rel_path: str) -> str:
    rel = clean_rel_path(rel_path)
    return "/".join(p for p in (prefix, rel) if p)


def shown_uri(uri: str) -> str:
    """``uri`` as a message may show it: a query or fragment (a SAS token rides there) and a password in the
    user info are replaced by ``***``."""
    parts = urlsplit(uri)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "",
                       "***" if parts.fragment else ""))


def parse_azure_uri(uri: str, default_container: str = "") -> AzureLocation:
    """Split an az://, abfs:// or abfss:// URI; ``default_container`` fills ``az:///prefix``.

    Raises ConfigError naming the URI when it is not one of the accepted forms.
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    uri = shown_uri(uri)  # every message below names it: never with a query (a SAS token) or user info
    if scheme not in AZURE_SCHEMES:
        raise ConfigError(f"'{uri}' is not an Azure storage URI; expected az://<container>/<prefix> "
                          f"or abfss://<container>@<account>.dfs.core.windows.net/<prefix>")
    if parts.query or parts.fragment:
        raise ConfigError(f"Azure storage URI '{uri}' must not carry a query or fragment")
    netloc = parts.netloc
    account: str | None = None
    host_suffix: str | None = None
    if "@" in netloc:
        container, host = netloc.split("@", 1)
        account, _, host_suffix = host.partition(".")
        if not _ACCOUNT_RE.match(account):
            raise ConfigError(f"Azure storage URI '{uri}': '{account}' is not a valid storage account name "
                              f"(3-24 lowercase letters and digits)")
        if host_suffix.startswith("blob."):  # wasbs://c@acct.blob.core.windows.net: same account, DFS host
            host_suffix = "dfs." + host_suffix[len("blob."):]
        host_suffix = host_suffix or None
    else:
        container = netloc
    container = container or default_container
    if not container:
        raise ConfigError(f"Azure storage URI '{uri}' names no container and [azure] container is not set")
    if not _CONTAINER_RE.match(container):
        raise ConfigError(f"Azure storage URI '{uri}': '{container}' is not a valid container name "
                          f"(3-63 lowercase letters, digits and single hyphens)")
    prefix = clean_rel_path(parts.path)
    return AzureLocation(scheme=scheme, container=container, prefix=prefix, account=account,
                         host_suffix=host_suffix)


def abfss_uri(account: str, container: str, path: str, dfs_suffix: str = DEFAULT_DFS_SUFFIX) -> str:
    """The abfss:// URI Spark's ABFS connector reads for ``path`` inside ``container``."""
    path = clean_rel_path(path)
    base = f"abfss://{container}@{account}.{dfs_suffix}"
    return f"{base}/{path}" if path else f"{base}/"


def account_from_endpoint(endpoint: str) -> str:
    """The account a blob endpoint serves: ``https://acct.blob.core.windows.net`` -> ``acct``; the emulator's
    path style ``http://127.0.0.1:10000/devstoreaccount1`` -> ``devstoreaccount1``; '' when it names none
    (a custom domain). A SAS connection string need not carry AccountName."""
    parts = urlsplit(endpoint)
    host = (parts.hostname or "").lower()
    if ".blob." in host:
        return host.split(".blob.", 1)[0]
    try:  # path-style URLs are what IP-address endpoints use (the emulator, Azure Stack)
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            return ""
    segments = [seg for seg in parts.path.split("/") if seg]
    return segments[0] if segments else ""


def dfs_suffix_for(account: str, endpoint: str, endpoint_suffix: str = "") -> str:
    """The DFS host suffix matching a blob endpoint (sovereign clouds), else the public cloud's.

    ``https://acct.blob.core.chinacloudapi.cn`` -> ``dfs.core.chinacloudapi.cn``; a connection string's
    EndpointSuffix (``core.windows.net``) -> ``dfs.core.windows.net``.
    """
    if endpoint:
        host = (urlsplit(endpoint).hostname or "").lower()
        head = f"{account}.blob."
        if host.startswith(head):
            return "dfs." + host[len(head):]
    if endpoint_suffix:
        return "dfs." + endpoint_suffix.strip(".")
    return DEFAULT_DFS_SUFFIX


EMULATOR_ACCOUNT = "devstoreaccount1"
EMULATOR_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class ConnectionStringParts:
    """The fields of an Azure Storage connection string the engine uses (secrets kept out of repr)."""

    account: str = ""
    account_key: str = ""
    sas_token: str = ""
    blob_endpoint: str = ""
    endpoint_suffix: str = ""
    protocol: str = "https"

    def __repr__(self) -> str:
        return (f"ConnectionStringParts(account={self.account!r}, blob_endpoint={self.blob_endpoint!r}, "
                f"endpoint_suffix={self.endpoint_suffix!r})")


def parse_connection_string(conn_str: str) -> ConnectionStringParts:
    """Read ``Key=Value;...``; raises ConfigError (without echoing the string: it holds the key)."""
    fields: dict[str, str] = {}
    for item in conn_str.strip().strip(";").split(";"):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError("[azure] connection_string is malformed: expected Key=Value pairs separated by ';'")
        fields[key.strip().lower()] = value.strip()
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        # the emulator's documented, public development account on its default port
        fields = {"accountname": EMULATOR_ACCOUNT, "accountkey": EMULATOR_KEY,
                  "blobendpoint": f"http://127.0.0.1:10000/{EMULATOR_ACCOUNT}", **fields}
    parts = ConnectionStringParts(
        account=fields.get("accountname", ""),
        account_key=fields.get("accountkey", ""),
        sas_token=fields.get("sharedaccesssignature", ""),
        blob_endpoint=fields.get("blobendpoint", "").rstrip("/"),
        endpoint_suffix=fields.get("endpointsuffix", ""),
        protocol=fields.get("defaultendpointsprotocol", "https"),
    )
    if not parts.account and not parts.blob_endpoint:
        raise ConfigError("[azure] connection_string names neither AccountName nor BlobEndpoint")
    return parts
