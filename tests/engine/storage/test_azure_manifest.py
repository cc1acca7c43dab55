"""The manifest merge rules of the staged Azure backend (pure logic)."""

from __future__ import annotations

import pytest

from engine.errors import StorageError
from engine.storage.azure_manifest import Manifest, ManifestFile, next_manifest, partition_key
from engine.storage.base import owned_name


def _files(write_id: str, part: str, *names: str) -> list[ManifestFile]:
    prefix = f"{part}/" if part else ""
    return [ManifestFile(name=f"{prefix}{n}", blob=f"_runs/{write_id}/{prefix}{n}", size=1, etag=f"e-{n}")
            for n in names]


def _v1() -> Manifest:
    return next_manifest(None, {"d=1": _files("w1", "d=1", "a"), "d=2": _files("w1", "d=2", "b")},
                         "overwrite", "w1", ["d"], "ds")


def test_first_commit_is_version_1() -> None:
    m = _v1()
    assert m.version == 1 and sorted(m.partitions) == ["d=1", "d=2"] and m.top_dirs() == ["d=1", "d=2"]


def test_overwrite_partitions_replaces_only_written_partitions() -> None:
    m = next_manifest(_v1(), {"d=2": _files("w2", "d=2", "c"), "d=3": _files("w2", "d=3", "e")},
                      "overwrite_partitions", "w2", ["d"], "ds")
    assert m.version == 2
    assert {k: [f.blob for f in v] for k, v in m.partitions.items()} == {
        "d=1": ["_runs/w1/d=1/a"], "d=2": ["_runs/w2/d=2/c"], "d=3": ["_runs/w2/d=3/e"]}


def test_overwrite_replaces_everything() -> None:
    m = next_manifest(_v1(), {"d=3": _files("w2", "d=3", "e")}, "overwrite", "w2", ["d"], "ds")
    assert list(m.partitions) == ["d=3"]
    assert m.referenced_blobs() == {"_runs/w2/d=3/e"}


def test_append_adds_and_renames_clashing_names() -> None:
    m = next_manifest(_v1(), {"d=1": _files("w2", "d=1", "a", "z")}, "append", "w2", ["d"], "ds")
    assert [f.name for f in m.partitions["d=1"]] == ["d=1/a", "d=1/w2-a", "d=1/z"]
    assert len({f.blob for f in m.partitions["d=1"]}) == 3


def test_unpartitioned_overwrite_partitions_replaces_the_dataset() -> None:
    old = next_manifest(None, {"": _files("w1", "", "a", "b")}, "overwrite", "w1", [], "ds")
    m = next_manifest(old, {"": _files("w2", "", "c")}, "overwrite_partitions", "w2", [], "ds")
    assert [f.name for f in m.files()] == ["c"]


def test_partition_by_change_needs_overwrite() -> None:
    with pytest.raises(StorageError, match="partitioned by"):
        next_manifest(_v1(), {"e=1": _files("w2", "e=1", "a")}, "append", "w2", ["e"], "ds")


def test_files_selects_partitions_including_nested_levels() -> None:
    m = next_manifest(None, {"d=1/x=a": _files("w", "d=1/x=a", "f"), "d=1/x=b": _files("w", "d=1/x=b", "g"),
                             "d=2/x=a": _files("w", "d=2/x=a", "h")}, "overwrite", "w", ["d", "x"], "ds")
    assert [f.name for f in m.files(["d=1"])] == ["d=1/x=a/f", "d=1/x=b/g"]
    assert [f.name for f in m.files(["d=2/x=a", "d=9"])] == ["d=2/x=a/h"]
    assert len(m.files()) == 3


def test_json_round_trip_and_corrupt_manifest() -> None:
    m = _v1()
    assert Manifest.from_json(m.to_json(), "x") == m
    with pytest.raises(StorageError, match="unreadable"):
        Manifest.from_json("{not json", "'wh/ds/_manifest.json'")


def test_partition_key() -> None:
    assert partition_key("trade_dt=2020-08-05/part-0.parquet", ["trade_dt"], "trade") == "trade_dt=2020-08-05"
    assert partition_key("part-0.parquet", [], "trade") == ""
    with pytest.raises(StorageError, match="not partition column"):
        partition_key("other=1/part-0.parquet", ["trade_dt"], "trade")
    with pytest.raises(StorageError, match="not inside partition folders"):
        partition_key("part-0.parquet", ["trade_dt"], "trade")


def test_unknown_mode() -> None:
    with pytest.raises(StorageError, match="unknown write mode"):
        next_manifest(None, {}, "upsert", "w", [], "ds")


def test_owned_append_replaces_only_the_owners_files() -> None:
    def owned(owner: str, write_id: str, part: str, *names: str) -> list[ManifestFile]:
        return _files(write_id, part, *(owned_name(owner, n) for n in names))

    m = next_manifest(_v1(), {"d=1": owned("x", "w2", "d=1", "p"), "d=2": owned("x", "w2", "d=2", "q")},
                      "append", "w2", ["d"], "ds", "x")
    m = next_manifest(m, {"d=1": owned("y", "w3", "d=1", "p")}, "append", "w3", ["d"], "ds", "y")
    assert {k: len(v) for k, v in m.partitions.items()} == {"d=1": 3, "d=2": 2}
    m = next_manifest(m, {"d=1": owned("x", "w4", "d=1", "r"), "d=2": []}, "append", "w4", ["d"], "ds", "x")
    assert {k: [f.blob for f in v] for k, v in m.partitions.items()} == {
        "d=1": ["_runs/w1/d=1/a", f"_runs/w3/d=1/{owned_name('y', 'p')}", f"_runs/w4/d=1/{owned_name('x', 'r')}"],
        "d=2": ["_runs/w1/d=2/b"]}
    m = next_manifest(m, {"d=3": owned("x", "w5", "d=3", "s")}, "append", "w5", ["d"], "ds", "x")
    m = next_manifest(m, {"d=3": []}, "append", "w6", ["d"], "ds", "x")
    assert "d=3" not in m.partitions  # it held only the owner's files: the partition goes
