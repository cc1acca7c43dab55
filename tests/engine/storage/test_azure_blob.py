"""The staged Azure backend against a real Azurite: round trips, ETag cache, commit modes, errors."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import logging
import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

from engine.errors import StorageError
from engine.storage.azure_access import RetrySettings
from engine.storage.azure_blob import AzureBlobStorage
from engine.storage.azure_manifest import MANIFEST_NAME, RUNS_DIR
from tests.azurite import ACCOUNT, ACCOUNT_KEY
from tests.engine.storage.blob_helpers import _storage, _tree

FAST_RETRY = RetrySettings(total=1, initial_backoff=0.05, increment_base=0.05, jitter=0.0, connection_timeout=2)


def _write_files(folder: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _commit(storage: AzureBlobStorage, rel: str, files: dict[str, str], mode: str = "overwrite_partitions",
            partition_by: tuple[str, ...] = ("d",), run_id: str = "run") -> None:
    pending = storage.begin_write(rel, run_id, mode, partition_by)
    _write_files(Path(pending.uri), files)
    storage.commit(pending)


def _trades(spark, day: dt.date, n: int, price0: float):
    rows = [(day, f"S{i % 3}", "NYSE", price0 + i * 0.0001, 100 + i) for i in range(n)]
    return spark.createDataFrame(rows, "trade_dt DATE, symbol STRING, exchange STRING, trade_pr DOUBLE, "
                                       "trade_size BIGINT")


def _spark_write(df, storage: AzureBlobStorage, rel: str, mode: str) -> None:
    pending = storage.begin_write(rel, "spark-run", mode, ["trade_dt"])
    df.write.mode("overwrite").partitionBy("trade_dt").parquet(pending.uri)
    storage.commit(pending)


def _rows(df) -> list[tuple]:
    return sorted(tuple(r) for r in df.select("trade_dt", "symbol", "exchange", "trade_pr", "trade_size")
                  .collect())


def test_spark_parquet_round_trip_and_partition_overwrite(spark, azure_config, container) -> None:
    storage = _storage(azure_config, container)
    d5, d6 = dt.date(2020, 8, 5), dt.date(2020, 8, 6)
    first = _trades(spark, d5, 20, 10.0).unionByName(_trades(spark, d6, 15, 20.0))
    _spark_write(first, storage, "trade", "overwrite_partitions")
    uri = storage.read_uri("trade")
    assert uri is not None and not uri.startswith("abfss")
    assert _rows(spark.read.parquet(uri)) == _rows(first)
    assert storage.list_dirs("trade") == ["trade_dt=2020-08-05", "trade_dt=2020-08-06"]

    # replace only 2020-08-06: 2020-08-05 must come back unchanged
    second = _trades(spark, d6, 7, 30.0)
    _spark_write(second, storage, "trade", "overwrite_partitions")
    expected = [r for r in _rows(first) if r[0] == d5] + _rows(second)
    assert _rows(spark.read.parquet(storage.read_uri("trade"))) == sorted(expected)
    only6 = storage.read_uri("trade", ["trade_dt=2020-08-06"])
    assert _rows(spark.read.parquet(only6)) == _rows(second)
    # no such partition: the smallest committed partition is staged for its schema; filtered, no rows
    none = spark.read.parquet(storage.read_uri("trade", ["trade_dt=1999-01-01"]))
    assert set(none.columns) == set(spark.read.parquet(only6).columns)
    assert none.where("trade_dt = '1999-01-01'").count() == 0
    assert storage.read_uri("no_such_dataset", ["trade_dt=1999-01-01"]) is None

    # a rerun of 2020-08-06 that writes no rows but owns the partition empties it
    empty = _trades(spark, d6, 7, 30.0).limit(0)
    pending = storage.begin_write("trade", "run-empty", "overwrite_partitions", ["trade_dt"])
    pending = dataclasses.replace(pending, replace_partitions=("trade_dt=2020-08-06",))
    empty.write.mode("overwrite").partitionBy("trade_dt").parquet(pending.uri)
    storage.commit(pending)
    kept = spark.read.parquet(storage.read_uri("trade"))
    assert _rows(kept) == [r for r in _rows(first) if r[0] == d5]
    _spark_write(second, storage, "trade", "overwrite_partitions")  # back as before for what follows

    # overwrite replaces everything
    third = _trades(spark, d5, 3, 40.0)
    _spark_write(third, storage, "trade", "overwrite")
    assert _rows(spark.read.parquet(storage.read_uri("trade"))) == _rows(third)
    # and superseded blobs were cleaned by the commit (grace 0): only referenced blobs remain
    manifest = storage.manifest("trade")
    blobs = {b.name for b in storage.access.list_blobs(f"wh/trade/{RUNS_DIR}/")}
    assert blobs == {f"wh/trade/{b}" for b in manifest.referenced_blobs()}


def test_second_read_downloads_nothing_and_changed_blob_is_fetched_again(azure_config, container,
                                                                          tmp_path) -> None:
    raw = _storage(azure_config, container, root=f"az://{container}/raw")
    files = {f"NYSE/part-{i:05d}.txt": f"line {i}\n" for i in range(12)} | {"NASDAQ/part-00000.txt": "q\n"}
    for rel, text in files.items():
        src = tmp_path / "src" / rel
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(text)
        raw.put_file(f"csv/2020-08-05/{rel}", str(src))
    assert raw.exists("csv/2020-08-05") and not raw.exists("csv/1999-01-01")
    assert raw.list_dirs("csv") == ["2020-08-05"]
    assert raw.list_dirs("csv/2020-08-05") == ["NASDAQ", "NYSE"]

    uri = raw.read_uri("csv/2020-08-05")
    assert _tree(uri) == files
    assert raw.stats.downloaded == len(files)

    before = raw.stats.downloaded
    assert _tree(raw.read_uri("csv/2020-08-05")) == files
    assert raw.stats.downloaded == before  # every ETag unchanged: nothing fetched
    assert raw.stats.unchanged == len(files)

    # a new storage object (a new process) reuses the on-disk cache index too
    again = _storage(azure_config, container, root=f"az://{container}/raw")
    again.read_uri("csv/2020-08-05")
    assert again.stats.downloaded == 0

    # the exchange re-delivers one file: exactly that blob is downloaded again
    changed = tmp_path / "changed.txt"
    changed.write_text("corrected line\n")
    raw.put_file("csv/2020-08-05/NYSE/part-00003.txt", str(changed))
    assert _tree(raw.read_uri("csv/2020-08-05"))["NYSE/part-00003.txt"] == "corrected line\n"
    assert raw.stats.downloaded == before + 1

    # what a step's raw stamp is made of: every file below, with the blob's ETag as its version
    stamps = raw.list_files("csv/2020-08-05")
    now = {**files, "NYSE/part-00003.txt": "corrected line\n"}
    assert [(f.name, f.size) for f in stamps] == [(rel, len(now[rel])) for rel in sorted(now)]
    assert raw.list_files("csv/2020-08-05/NASDAQ")[0].name == "part-00000.txt"
    changed.write_text("corrected line\n")
    raw.put_file("csv/2020-08-05/NYSE/part-00003.txt", str(changed))  # the same bytes, delivered again
    again = {f.name: f for f in raw.list_files("csv/2020-08-05")}
    assert again["NYSE/part-00003.txt"].version != {f.name: f for f in stamps}["NYSE/part-00003.txt"].version
    assert [again[f.name] for f in stamps if f.name != "NYSE/part-00003.txt"] == [
        f for f in stamps if f.name != "NYSE/part-00003.txt"]
    assert raw.list_files("csv/1999-01-01") == []

    # only named sub-folders
    assert set(_tree(raw.read_uri("csv/2020-08-05", ["NASDAQ"]))) == {"NASDAQ/part-00000.txt"}
    assert raw.read_uri("csv/1999-01-01") is None


def test_a_read_counts_its_own_downloads_while_another_step_reads(azure_config, container, tmp_path,
                                                                          caplog) -> None:
    """Two steps reading at once share the storage's stats: the line of each read counted the other's files."""
    raw = _storage(azure_config, container, root=f"az://{container}/raw")
    for n in range(3):
        src = tmp_path / f"p{n}.txt"
        src.write_text(f"line {n}\n")
        raw.put_file(f"csv/2020-08-05/NYSE/part-{n}.txt", str(src))
    real_fetch = raw.cache.fetch

    def fetch_beside_another_step(refs):
        got = real_fetch(refs)
        raw.stats.add(downloaded=7, unchanged=5)  # what a step reading beside this one adds meanwhile
        return got

    raw.cache.fetch = fetch_beside_another_step
    with caplog.at_level(logging.INFO, logger="engine.storage.azure_blob"):
        raw.read_uri("csv/2020-08-05")
        raw.read_uri("csv/2020-08-05")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("staged ")]
    assert [ln.split(", ")[:2] for ln in lines] == [["staged raw/csv/2020-08-05: 3 downloaded", "0 unchanged"],
                                                    ["staged raw/csv/2020-08-05: 0 downloaded", "3 unchanged"]]


def test_dataset_cache_survives_a_new_version_of_other_partitions(azure_config, container) -> None:
    storage = _storage(azure_config, container)
    _commit(storage, "ds", {"d=1/a.parquet": "1", "d=2/b.parquet": "2"})
    storage.read_uri("ds")
    _commit(storage, "ds", {"d=2/c.parquet": "3"})
    downloaded = storage.stats.downloaded
    assert _tree(storage.read_uri("ds")) == {"d=1/a.parquet": "1", "d=2/c.parquet": "3"}
    assert storage.stats.downloaded == downloaded + 1  # d=1 was cached, only the new file came


def test_append_abort_put_file_and_hidden_files(azure_config, container, tmp_path) -> None:
    storage = _storage(azure_config, container)
    _commit(storage, "ds", {"d=1/a.parquet": "1", "_SUCCESS": "", "d=1/.a.parquet.crc": "x"}, mode="append")
    _commit(storage, "ds", {"d=1/a.parquet": "2"}, mode="append")
    tree = _tree(storage.read_uri("ds"))
    assert sorted(tree.values()) == ["1", "2"] and len(tree) == 2  # hidden files never uploaded

    pending = storage.begin_write("ds", "doomed", "overwrite", ["d"])
    _write_files(Path(pending.uri), {"d=9/z.parquet": "9"})
    storage.abort(pending)
    assert not Path(pending.uri).exists()
    assert sorted(_tree(storage.read_uri("ds")).values()) == ["1", "2"]

    report = tmp_path / "report.json"
    report.write_text('{"ok": true}')
    storage.put_file("reports/run-1/report.json", str(report))
    assert storage.exists("reports/run-1")
    assert storage.access.get_bytes("wh/reports/run-1/report.json")[0] == b'{"ok": true}'
    assert not storage.exists("nothing/here")
    assert storage.list_dirs("nothing") == []


def test_owned_append_replaces_its_owners_files_only(azure_config, container) -> None:
    """A shared dataset (a quarantine): a writer's rerun replaces its own earlier files of the partitions it
    writes or replaces, and keeps the other writers' files and the other partitions."""
    storage = _storage(azure_config, container)

    def owned(owner: str, files: dict[str, str], replace: tuple[str, ...] = ()) -> None:
        pending = storage.begin_write("q", "run", "append", ["d"], owner=owner)
        _write_files(Path(pending.uri), {**files, "_SUCCESS": ""})  # Spark's marker: the folder is there
        storage.commit(dataclasses.replace(pending, replace_partitions=replace))

    _commit(storage, "q", {"d=1/part-0.parquet": "ingest"})
    owned("demo/a", {"d=1/part-1.parquet": "a1", "d=2/part-1.parquet": "a2"})
    owned("demo/b", {"d=1/part-1.parquet": "b1"})
    owned("demo/a", {"d=1/part-5.parquet": "a1 again"}, replace=("d=1",))

    def contents() -> dict[str, list[str]]:
        tree = _tree(storage.read_uri("q"))
        return {d: sorted(v for k, v in tree.items() if k.startswith(d + "/")) for d in sorted(
            {k.split("/")[0] for k in tree})}

    assert contents() == {"d=1": ["a1 again", "b1", "ingest"], "d=2": ["a2"]}
    owned("demo/a", {}, replace=("d=1", "d=2"))
    assert contents() == {"d=1": ["b1", "ingest"]}
    with pytest.raises(StorageError, match="mode append"):
        storage.begin_write("q", "run", "overwrite", ["d"], owner="demo/a")


def test_cleanup_respects_grace_and_walks_the_root(azure_config, container) -> None:
    patient = _storage(azure_config, container, cleanup_grace_seconds=3600)
    _commit(patient, "analytics/bars", {"d=1/a.parquet": "1"})
    leftover = "wh/analytics/bars/_runs/killed-0000/d=1/x.parquet"
    patient.access.client.upload_blob(leftover, b"half")
    patient.cleanup("")
    assert patient.access.blob_exists(leftover)  # younger than the grace period: kept
    eager = _storage(azure_config, container)
    eager.cleanup("")  # from the root, finds analytics/bars
    assert not eager.access.blob_exists(leftover)
    assert _tree(eager.read_uri("analytics/bars")) == {"d=1/a.parquet": "1"}


def test_connection_string_config(azure_config, azurite, container) -> None:
    config = azure_config(container, access_key="", storage_account="", endpoint="",
                          connection_string=azurite.connection_string)
    storage = AzureBlobStorage.from_config(f"abfs://{container}/cs", config, cleanup_grace_seconds=0)
    storage.check()
    _commit(storage, "ds", {"x.parquet": "1"}, partition_by=())
    assert _tree(storage.read_uri("ds")) == {"x.parquet": "1"}
    assert ACCOUNT_KEY not in repr(storage) and ACCOUNT_KEY not in storage.describe()


def _container_sas(container: str, **permissions: bool) -> str:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    expiry = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    return generate_container_sas(ACCOUNT, container, account_key=ACCOUNT_KEY,
                                  permission=ContainerSasPermissions(**permissions), expiry=expiry)


def _sas_config(azure_config, azurite, container: str, sas: str):
    return azure_config(container, access_key="", storage_account="", endpoint="",
                        connection_string=f"BlobEndpoint={azurite.endpoint};SharedAccessSignature={sas}")


def test_a_container_sas_is_enough(azure_config, azurite, container) -> None:
    """The least-privilege grant: a SAS for the one container (no account key, no AccountName)."""
    sas = _container_sas(container, read=True, write=True, delete=True, list=True)
    storage = AzureBlobStorage.from_config(f"az://{container}/wh", _sas_config(azure_config, azurite, container, sas),
                                           cleanup_grace_seconds=0)
    storage.check()
    storage.check_readable()
    _commit(storage, "ds", {"d=1/x.parquet": "1"})
    _commit(storage, "ds", {"d=1/y.parquet": "2"}, run_id="again")  # replaces the partition, deletes the old
    storage.cleanup("ds")
    assert _tree(storage.read_uri("ds")) == {"d=1/y.parquet": "2"}
    assert f"account={ACCOUNT}" in storage.describe()  # taken from the endpoint: the string names no account
    signature = sas.split("sig=", 1)[1].split("&", 1)[0]
    assert signature not in storage.describe() + repr(storage)


def test_a_sas_without_list_permission_is_refused_at_the_check(azure_config, azurite, container) -> None:
    sas = _container_sas(container, read=True, write=True)
    storage = AzureBlobStorage.from_config(f"az://{container}/wh", _sas_config(azure_config, azurite, container, sas),
                                           retry=FAST_RETRY)
    message = str(_one_line_error(storage))
    assert "permission missing (HTTP 403 AuthorizationPermissionMismatch)" in message, message
    assert f"account={ACCOUNT}" in message and "sig=" not in message
    with pytest.raises(StorageError, match="read the raw root's container failed: permission missing"):
        storage.check_readable()


def _one_line_error(storage: AzureBlobStorage) -> StorageError:
    with pytest.raises(StorageError) as info:
        storage.check()
    message = str(info.value)
    assert "\n" not in message and info.value.exit_code == 2
    return info.value


def test_wrong_key_is_one_line_and_never_leaks(azure_config, azurite, container, caplog, capsys) -> None:
    wrong = base64.b64encode(os.urandom(64)).decode()
    caplog.set_level(logging.DEBUG)
    storage = AzureBlobStorage.from_config(f"az://{container}/wh", azure_config(container, access_key=wrong),
                                           retry=FAST_RETRY)
    exc = _one_line_error(storage)
    message = str(exc)
    assert "access denied (HTTP 403" in message
    assert f"account={ACCOUNT}" in message and f"container={container}" in message
    assert azurite.endpoint in message
    with pytest.raises(StorageError) as info:
        storage.read_uri("trade")
    rendered = "".join(traceback.format_exception(info.value)) + "".join(traceback.format_exception(exc))
    out = capsys.readouterr()
    for text in (message, rendered, caplog.text, out.out, out.err, repr(storage), storage.describe()):
        assert wrong not in text


def test_wrong_key_in_a_separate_process_logging_everything(azure_config, azurite, container, repo_root) -> None:
    wrong = base64.b64encode(os.urandom(64)).decode()
    code = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.DEBUG)\n"
        "from engine.config import load_config\n"
        "from engine.storage.azure_access import RetrySettings\n"
        "from engine.storage.azure_blob import AzureBlobStorage\n"
        "from engine.errors import StorageError\n"
        "st = AzureBlobStorage.from_config(sys.argv[1], load_config(),\n"
        "    retry=RetrySettings(total=1, initial_backoff=0.05, increment_base=0.05, jitter=0.0))\n"
        "try:\n"
        "    st.check()\n"
        "except StorageError as exc:\n"
        "    logging.getLogger('t').exception('failed')\n"
        "    print(exc)\n"
        "    sys.exit(exc.exit_code)\n"
    )
    env = {**os.environ, "TICKFLOW_AZURE_STORAGE_ACCOUNT": ACCOUNT, "TICKFLOW_AZURE_ACCESS_KEY": wrong,
           "TICKFLOW_AZURE_ENDPOINT": azurite.endpoint, "TICKFLOW_AZURE_CONTAINER": container,
           "PYTHONPATH": str(repo_root)}
    env.pop("TICKFLOW_CONFIG", None)
    proc = subprocess.run([sys.executable, "-c", code, f"az://{container}/wh"], env=env, cwd=repo_root,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "access denied (HTTP 403" in proc.stdout and len(proc.stdout.strip().splitlines()) == 1
    assert wrong not in proc.stdout + proc.stderr
    assert "Authorization" in proc.stderr or "azure" in proc.stderr  # the SDK did log at DEBUG


def test_non_base64_key(azure_config, container) -> None:
    storage = AzureBlobStorage.from_config(f"az://{container}/wh",
                                           azure_config(container, access_key="not-a-key!"), retry=FAST_RETRY)
    assert "not a valid base64 account key" in str(_one_line_error(storage))


def test_missing_container(azure_config, azurite) -> None:
    storage = AzureBlobStorage.from_config("az://no-such-container/wh", azure_config("no-such-container"),
                                           retry=FAST_RETRY)
    message = str(_one_line_error(storage))
    assert "container 'no-such-container' does not exist" in message and azurite.endpoint in message


def test_unknown_account(azure_config, azurite, container) -> None:
    endpoint = azurite.endpoint.replace(ACCOUNT, "nosuchaccount")
    storage = AzureBlobStorage.from_config(
        f"az://{container}/wh", azure_config(container, storage_account="nosuchaccount", endpoint=endpoint),
        retry=FAST_RETRY)
    message = str(_one_line_error(storage))
    assert "account=nosuchaccount" in message and ("unknown account" in message or "denied" in message)


def test_unreachable_endpoint(azure_config, container) -> None:
    from tests.azurite import free_port

    endpoint = f"http://127.0.0.1:{free_port()}/{ACCOUNT}"
    storage = AzureBlobStorage.from_config(f"az://{container}/wh",
                                           azure_config(container, endpoint=endpoint), retry=FAST_RETRY)
    message = str(_one_line_error(storage))
    assert "cannot reach the endpoint" in message and endpoint in message


def test_manifest_is_the_commit_point(azure_config, container) -> None:
    """Blobs uploaded under _runs/ without a manifest are invisible to readers."""
    storage = _storage(azure_config, container, cleanup_grace_seconds=3600)
    storage.access.client.upload_blob(f"wh/ds/{RUNS_DIR}/w1/d=1/a.parquet", b"1")
    assert storage.read_uri("ds") is None and not storage.exists("ds")
    _commit(storage, "ds", {"d=2/b.parquet": "2"})
    assert _tree(storage.read_uri("ds")) == {"d=2/b.parquet": "2"}
    assert storage.access.blob_exists(f"wh/ds/{MANIFEST_NAME}")


def test_a_view_another_run_is_reading_never_changes_under_it(azure_config, container, tmp_path) -> None:
    """Two runs sharing one cache read one dataset: the second, after a newer commit, gets a view of its own. (The
    view used to be rebuilt in place: files the first run's Spark had listed went away under it.)"""
    writer = _storage(azure_config, container)
    _commit(writer, "ds", {"d=1/part-0.parquet": "v1", "d=2/part-0.parquet": "v1"})
    first = AzureBlobStorage.from_config(f"az://{container}/wh", azure_config(container, tmp_path / "shared"))
    second = AzureBlobStorage.from_config(f"az://{container}/wh", azure_config(container, tmp_path / "shared"))
    view1 = first.read_uri("ds")
    listed = _tree(view1)
    _commit(writer, "ds", {"d=1/part-1.parquet": "v2"})
    view2 = second.read_uri("ds")
    assert view2 != view1 and _tree(view2) == {"d=1/part-1.parquet": "v2", "d=2/part-0.parquet": "v1"}
    assert _tree(view1) == listed  # still what the first run listed
    assert second.read_uri("ds") == view2 and first.read_uri("ds") == view2  # one view per version, reused
