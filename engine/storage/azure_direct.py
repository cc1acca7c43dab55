"""Azure direct mode: Spark reads and writes abfss:// URIs itself (clusters with hadoop-azure).

The engine only translates the root into abfss:// URIs and ``[azure]`` into the ABFS connector's Hadoop
settings (``spark.hadoop.fs.azure.account.key.<account>.dfs.core.windows.net``...). Atomicity is Spark's
output committer's: data is written under ``_temporary``/``.spark-staging-*`` and moved into place at job
commit, which then writes ``_SUCCESS``; readers treat a dataset as committed only when ``_SUCCESS`` is
there, and ``commit`` verifies it. Metadata calls (exists, list_dirs, check, put_file) use the Blob SDK.

Credentials never go into the SparkConf (the driver JVM's command line, the event log's environment): the
session starts with the connector's non-secret settings and ``configure_spark`` puts the key (or SAS token)
into the running session's Hadoop configuration.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.config import Config, is_secret_key
from engine.errors import ConfigError, StorageError
from engine.storage.azure_access import AzureTarget, BlobAccess, RetrySettings, is_folder_marker, resolve_target
from engine.storage.azure_errors import scrub
from engine.storage.azure_manifest import new_write_id
from engine.storage.azure_uri import abfss_uri, clean_rel_path, dfs_suffix_for, parse_connection_string
from engine.storage.base import (
    FileStamp,
    PendingWrite,
    Storage,
    check_write_mode,
    is_hidden_path,
    is_owned,
    owned_name,
)

log = logging.getLogger(__name__)

SUCCESS_MARKER = "_SUCCESS"
LEFTOVER_DIRS = ("_temporary/", ".spark-staging-")
# A write with an owner goes to <dataset>/_owned/<write_id>/ first (hidden from Spark's readers), and commit
# copies its files into the partitions under the owner's names: Spark cannot name the files it writes.
OWNED_STAGING = "_owned"
# The ABFS connector's artifact (jar file or Maven coordinate); hadoop-azure-datalake is the older adl:// one
_CONNECTOR_RE = re.compile(r"hadoop-azure(?!-datalake)", re.IGNORECASE)
# [spark] settings that put jars on the driver's class path (spark-submit's --jars, --packages...)
CLASSPATH_SETTINGS = ("spark.jars", "spark.jars.packages", "spark.driver.extraClassPath")
# Environment variables spark-submit adds to the class path or its arguments
CLASSPATH_ENV = ("SPARK_DIST_CLASSPATH", "SPARK_CLASSPATH", "PYSPARK_SUBMIT_ARGS")


@dataclass(frozen=True)
class ConnectorSearch:
    """Where the hadoop-azure connector was found for Spark's driver ("" when not), and where we looked."""

    found: str
    looked: tuple[str, ...]


def _jars_in(entry: str) -> list[str]:
    """Jar names a class path entry stands for: a jar, a folder (``dir`` or ``dir/*``) holding jars."""
    path = Path(entry[:-2] if entry.endswith(("/*", "\\*")) else entry).expanduser()
    if path.is_dir():
        try:
            return sorted(p.name for p in path.iterdir() if p.name.endswith(".jar"))
        except OSError:
            return []
    return [path.name]


def _names_connector(value: str, separators: str) -> str:
    """The first entry of a jar/package/class path list that is (or holds) hadoop-azure, else ""."""
    for entry in re.split(f"[{re.escape(separators)}]", value):
        entry = entry.strip()
        if entry and (_CONNECTOR_RE.search(entry) or any(_CONNECTOR_RE.search(j) for j in _jars_in(entry))):
            return entry
    return ""


def _spark_defaults(spark_home: Path, env: Mapping[str, str]) -> tuple[Path, dict[str, str]]:
    """spark-submit's spark-defaults.conf (SPARK_CONF_DIR, else SPARK_HOME/conf) and its settings."""
    path = Path(env.get("SPARK_CONF_DIR") or spark_home / "conf") / "spark-defaults.conf"
    settings: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return path, settings
    for line in lines:
        key, _, value = line.strip().replace("=", " ", 1).partition(" ")
        if key and not key.startswith("#"):
            settings[key] = value.strip()
    return path, settings


def spark_home(env: Mapping[str, str] | None = None) -> Path:
    """The Spark installation spark-submit runs from, as pyspark finds it: $SPARK_HOME, else pyspark's folder."""
    env = os.environ if env is None else env
    if env.get("SPARK_HOME"):
        return Path(env["SPARK_HOME"])
    spec = importlib.util.find_spec("pyspark")
    return Path(spec.origin).parent if spec and spec.origin else Path("pyspark")


def find_abfs_connector(spark_conf: Mapping[str, str], home: Path, env: Mapping[str, str]) -> ConnectorSearch:
    """Look for hadoop-azure where the driver JVM that spark-submit starts gets its classes from.

    Generous on purpose (any jar, package or class path entry naming hadoop-azure counts): the point is to
    stop a run that surely cannot open abfss:// before it locks the job and starts Spark, never to refuse a
    Spark that has the connector.
    """
    jars_dir = home / "jars"
    looked = [f"{'Spark' if env.get('SPARK_HOME') else 'pyspark'}'s jars folder {jars_dir}"]
    if jars := [j for j in _jars_in(str(jars_dir)) if _CONNECTOR_RE.search(j)]:
        return ConnectorSearch(f"{jars_dir}/{jars[0]}", tuple(looked))
    defaults_file, defaults = _spark_defaults(home, env)
    configured = False
    for source, settings in (("[spark]", spark_conf), (str(defaults_file), defaults)):
        for key in CLASSPATH_SETTINGS:
            if settings.get(key):  # names only: a jar URL may carry a token
                configured = True
                looked.append(f"{source} {key}")
                if jar := _names_connector(settings[key], ":;" if key.endswith("ClassPath") else ",;"):
                    return ConnectorSearch(f"{source} {key} ({jar})", tuple(looked))
    if not configured:
        looked.append(f"[spark] (no {', '.join(CLASSPATH_SETTINGS)} set)")
    for var in CLASSPATH_ENV:
        if env.get(var):
            looked.append(f"${var}")
            if jar := _names_connector(env[var], " \t,=:;\"'" if var == "PYSPARK_SUBMIT_ARGS" else ":;"):
                return ConnectorSearch(f"${var} ({jar})", tuple(looked))
    return ConnectorSearch("", tuple(looked))


def _hadoop_version(home: Path) -> str:
    """The Hadoop version Spark was built with (from its hadoop-client jar), for the suggested package."""
    for name in _jars_in(str(home / "jars")):
        if m := re.fullmatch(r"hadoop-client-(?:api|runtime)-(\d[\w.-]*)\.jar", name):
            return m.group(1)
    return "<Spark's Hadoop version>"


def require_abfs_connector(spark_conf: Mapping[str, str], env: Mapping[str, str] | None = None) -> None:
    """StorageError (exit 2) when direct mode's Spark surely lacks hadoop-azure.

    Without it the run would lock the job, start Spark and fail its first step with a ClassNotFoundException.
    A JVM that is already running (spark-submit, Databricks, a notebook) got its class path elsewhere: its
    own settings decide, so nothing is checked then.
    """
    env = os.environ if env is None else env
    if env.get("PYSPARK_GATEWAY_PORT"):
        return
    home = spark_home(env)
    search = find_abfs_connector(spark_conf, home, env)
    if search.found:
        log.debug("direct mode: hadoop-azure found in %s", search.found)
        return
    raise StorageError(
        "Azure storage: [storage] mode = direct needs the hadoop-azure connector (abfss://, "
        "org.apache.hadoop.fs.azurebfs) on Spark's class path, and none was found (looked in: "
        f"{'; '.join(search.looked)}); add it (e.g. [spark] spark.jars.packages = "
        f"org.apache.hadoop:hadoop-azure:{_hadoop_version(home)}, or spark.jars = /path/to/hadoop-azure.jar) "
        "or set [storage] mode = staged (the engine downloads and uploads; Spark needs no connector)")


def direct_credentials(config: Config) -> tuple[str, str]:
    """(account key, SAS token) from ``[azure]``: access_key, or the connection string's parts."""
    az = config.azure
    if az is None:
        return "", ""
    if az.access_key:
        return az.access_key, ""
    if az.connection_string:
        parts = parse_connection_string(az.connection_string)
        return parts.account_key, parts.sas_token.lstrip("?")
    return "", ""


def abfs_hadoop_conf(account: str, dfs_suffix: str, account_key: str, sas_token: str) -> dict[str, str]:
    """The ABFS connector's settings for one account (shared key, else a fixed SAS token)."""
    host = f"{account}.{dfs_suffix}"
    if account_key:
        conf = {f"fs.azure.account.auth.type.{host}": "SharedKey", f"fs.azure.account.key.{host}": account_key}
    elif sas_token:
        conf = {f"fs.azure.account.auth.type.{host}": "SAS", f"fs.azure.sas.fixed.token.{host}": sas_token}
    else:
        raise ConfigError(f"[storage] mode = direct needs [azure] access_key, or a connection_string with "
                          f"AccountKey or SharedAccessSignature, for account '{account}'")
    conf["mapreduce.fileoutputcommitter.marksuccessfuljobs"] = "true"  # the _SUCCESS readers wait for
    return conf


def _spark_written(name: str) -> bool:
    """Entries only Spark writes: partition folders, committer work folders, parquet parts."""
    return "=" in name or name.startswith(LEFTOVER_DIRS[0].rstrip("/")) or name.startswith(LEFTOVER_DIRS[1]) \
        or name.endswith(".parquet")


class AzureDirectStorage(Storage):
    """Hands abfss:// URIs to Spark; the committer publishes, ``_SUCCESS`` marks a committed dataset."""

    def __init__(self, root_uri: str, target: AzureTarget, dfs_suffix: str, hadoop_conf: dict[str, str], *,
                 retry: RetrySettings | None = None, api_version: str | None = None,
                 cleanup_grace_seconds: float = 3600.0, spark_settings: Mapping[str, str] | None = None,
                 check_connector: bool = True):
        self.root = root_uri
        self.target = target
        self.dfs_suffix = dfs_suffix
        self._hadoop_conf = dict(hadoop_conf)
        self.cleanup_grace_seconds = cleanup_grace_seconds
        self._retry = retry
        self._api_version = api_version
        self._access: BlobAccess | None = None
        self._spark_settings = dict(spark_settings or {})  # [spark]: where check() looks for hadoop-azure
        self.check_connector = check_connector

    @classmethod
    def from_config(cls, root_uri: str, config: Config, **options: Any) -> AzureDirectStorage:
        target = resolve_target(root_uri, config.azure)
        if not target.account:
            raise ConfigError(f"storage root '{root_uri}': direct mode needs the storage account name")
        az = config.azure
        suffix = target.location.host_suffix if target.location and target.location.host_suffix else ""
        if not suffix:
            endpoint_suffix = ""
            if az is not None and az.connection_string:
                endpoint_suffix = parse_connection_string(az.connection_string).endpoint_suffix
            suffix = dfs_suffix_for(target.account, az.endpoint if az else "", endpoint_suffix)
        key, sas = direct_credentials(config)
        options.setdefault("spark_settings", config.spark.conf)
        return cls(root_uri, target, suffix, abfs_hadoop_conf(target.account, suffix, key, sas), **options)

    # -- what Spark gets

    @property
    def access(self) -> BlobAccess:
        """The Blob SDK client for metadata calls, created on first use (URIs need no network)."""
        if self._access is None:
            self._access = BlobAccess(self.target, self._retry, self._api_version)
        return self._access

    def uri(self, rel_path: str) -> str:
        return abfss_uri(self.target.account, self.target.container, self.target.blob_path(rel_path),
                         self.dfs_suffix)

    def hadoop_conf(self) -> dict[str, str]:
        """Hadoop settings for the ABFS connector (contain the key: never log them)."""
        return dict(self._hadoop_conf)

    def spark_conf(self) -> dict[str, str]:
        """The non-secret settings as ``spark.hadoop.*``, for the SparkSession builder.

        The SparkConf becomes the driver JVM's command line (``ps`` shows it to every local user) and the
        event log's environment: the key goes in through ``configure_spark`` once the session runs.
        """
        return {f"spark.hadoop.{k}": v for k, v in self._hadoop_conf.items() if not is_secret_key(k)}

    def configure_spark(self, spark: Any) -> None:
        """Put every setting, the credential included, into the running session's Hadoop configuration.

        Spark SQL jobs copy it to their tasks, so abfss:// reads and writes authenticate.
        """
        from engine.spark import set_hadoop_settings

        set_hadoop_settings(spark, self._hadoop_conf)

    # -- Storage API

    def describe(self) -> str:
        return f"{self.uri('')} (direct; {self.target.where})"

    def check(self, action: str = "check the container") -> None:
        """Spark must have the ABFS connector (checked locally, first), and the container must answer."""
        if self.check_connector:
            require_abfs_connector(self._spark_settings)
        self.access.check(action)

    def check_readable(self) -> None:
        self.check("read the raw root's container")  # Spark reads the raw root through the connector too

    def _committed(self, rel_path: str) -> bool:
        return self.access.blob_exists(f"{self.target.blob_path(rel_path)}/{SUCCESS_MARKER}")

    def exists(self, rel_path: str) -> bool:
        """A Spark dataset counts once ``_SUCCESS`` is there; a plain folder (raw files) when not empty."""
        if self._committed(rel_path):
            return True
        prefix = self.target.blob_path(rel_path)
        start = prefix + "/" if prefix else ""
        names = [n[len(start):].strip("/") for n in self.access.walk_names(start)]
        if any(_spark_written(n) for n in names):
            return False  # a dataset whose job has not committed (or was killed): not readable
        return any(not is_hidden_path(n) for n in names)

    def list_dirs(self, rel_path: str) -> list[str]:
        return self.access.list_dirs(self.target.blob_path(rel_path))

    def list_files(self, rel_path: str) -> list[FileStamp]:
        return self.access.file_stamps(self.target.blob_path(rel_path))

    def read_uri(self, rel_path: str, partitions: Sequence[str] | None = None) -> str | None:
        """The dataset's abfss:// URI (Spark prunes partitions from the filter), None if absent."""
        return self.uri(rel_path) if self.exists(rel_path) else None

    def begin_write(self, rel_path: str, run_id: str, mode: str, partition_by: Sequence[str], *,
                    owner: str = "") -> PendingWrite:
        check_write_mode(mode, owner)
        rel = clean_rel_path(rel_path)
        uri = self.uri(rel)
        if owner:
            write_id = new_write_id(run_id)
            uri = self.uri(f"{rel}/{OWNED_STAGING}/{write_id}" if rel else f"{OWNED_STAGING}/{write_id}")
        return PendingWrite(rel_path=rel, uri=uri, run_id=run_id, mode=mode, partition_by=tuple(partition_by),
                            owner=owner)

    def _staging(self, pending: PendingWrite) -> str:
        """The blob prefix an owned write was staged under (``<dataset>/_owned/<write_id>``)."""
        return self.target.blob_path(f"{pending.rel_path}/{OWNED_STAGING}/{pending.uri.rsplit('/', 1)[1]}")

    def commit(self, pending: PendingWrite) -> None:
        """Spark's committer already published; verify it finished (``_SUCCESS``)."""
        if pending.owner:
            self._commit_owned(pending)
        elif not self._committed(pending.rel_path):
            raise StorageError(f"Azure storage: write of '{pending.rel_path}' has no {SUCCESS_MARKER} marker: "
                               f"Spark's output committer did not finish ({self.target.where})")
        self.cleanup(pending.rel_path)

    def _commit_owned(self, pending: PendingWrite) -> None:
        """Copy the staged files in under the owner's names, then remove the owner's earlier files from the
        partitions written and replaced (a crash in between leaves both; the next rerun clears them)."""
        staging = self._staging(pending)
        if not self.access.blob_exists(f"{staging}/{SUCCESS_MARKER}"):
            raise StorageError(f"Azure storage: write of '{pending.rel_path}' has no {SUCCESS_MARKER} marker: "
                               f"Spark's output committer did not finish ({self.target.where})")
        dataset = self.target.blob_path(pending.rel_path)
        added: set[str] = set()
        folders = {p.strip("/") for p in pending.replace_partitions}
        for blob in self.access.list_blobs(f"{staging}/", metadata=True):
            rel = blob.name[len(staging) + 1:]
            if is_hidden_path(rel) or is_folder_marker(blob):
                continue
            dest = f"{dataset}/{owned_name(pending.owner, rel)}"
            self.access.copy(blob.name, dest)
            added.add(dest)
            folders.add(rel.rpartition("/")[0])
        doomed = []
        for folder in folders:
            start = f"{dataset}/{folder}/" if folder else f"{dataset}/"
            doomed += [b.name for b in self.access.list_blobs(start)
                       if "/" not in b.name[len(start):] and b.name not in added
                       and is_owned(pending.owner, b.name[len(start):])]
        if doomed:
            self.access.delete(doomed, workers=4)
        if not self._committed(pending.rel_path):  # the dataset's first write: readers wait for the marker
            self.access.put_bytes(f"{dataset}/{SUCCESS_MARKER}", b"")
        self._remove_staging(pending)
        log.info("committed %s for %s: %d file(s) added, %d earlier one(s) replaced", pending.rel_path,
                 pending.owner, len(added), len(doomed))

    def _remove_staging(self, pending: PendingWrite) -> None:
        names = sorted((b.name for b in self.access.list_blobs(f"{self._staging(pending)}/")),
                       key=lambda n: n.count("/"), reverse=True)
        if names:
            self.access.delete(names, workers=4)

    def abort(self, pending: PendingWrite) -> None:
        """Spark's job abort removes its ``_temporary`` output; an owned write's staged files go here."""
        if pending.owner:
            self._remove_staging(pending)
        log.info("aborted direct write to %s", pending.uri)

    def put_file(self, rel_path: str, local_file: str) -> None:
        self.access.upload_file(self.target.blob_path(rel_path), local_file)

    def cleanup(self, rel_path: str) -> None:
        """Delete leftovers of killed jobs (``_temporary/``, ``.spark-staging-*``, ``_owned/``) past the grace."""
        dataset = self.target.blob_path(rel_path)
        now = datetime.now(UTC)
        doomed = []
        for start in (*LEFTOVER_DIRS, f"{OWNED_STAGING}/"):
            for b in self.access.list_blobs(f"{dataset}/{start}"):
                age = (now - b.last_modified).total_seconds() if b.last_modified else 0.0
                if age >= self.cleanup_grace_seconds:
                    doomed.append(b.name)
        # deepest first, so folder markers of hierarchical-namespace accounts go after their contents
        doomed.sort(key=lambda n: n.count("/"), reverse=True)
        if doomed:
            self.access.delete(doomed, workers=1)
            log.info("cleaned %d committer leftover(s) under %s", len(doomed), dataset)

    def __repr__(self) -> str:
        return f"AzureDirectStorage({scrub(self.describe(), self.target.secrets)})"
