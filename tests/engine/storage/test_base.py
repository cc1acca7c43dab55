"""The storage interface's shared parts (engine.storage.base): hidden paths, write modes, owners' file names and
the default commit of several writes."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from engine.errors import StorageError
from engine.storage.base import (
    FileStamp,
    PendingWrite,
    Storage,
    check_write_mode,
    is_hidden_path,
    is_owned,
    owned_name,
    owner_tag,
)
from engine.storage.local import LocalStorage


def test_owner_tags_never_collide_and_need_append(tmp_path):
    assert owner_tag("demo/a") != owner_tag("demo_a") and owner_tag("demo/a").startswith("demo_a.")
    assert is_owned("demo/a", owner_tag("demo/a") + "part-0.parquet")
    assert not is_owned("demo/a", owner_tag("demo/ab") + "part-0.parquet")
    assert not is_owned("a", "part-0.parquet") and not owner_tag("_x").startswith(("_", "."))
    with pytest.raises(StorageError, match="mode append"):
        LocalStorage(tmp_path).begin_write("quarantine", "r1", "overwrite_partitions", ("trade_dt",), owner="x")


def test_hidden_paths_are_those_with_a_component_starting_with_an_underscore_or_a_dot():
    assert is_hidden_path("_SUCCESS") and is_hidden_path("trade/_runs/x") and is_hidden_path("a/.b.crc")
    assert not is_hidden_path("trade/trade_dt=2020-08-06/part-0.parquet") and not is_hidden_path("a_b/c.d")


def test_write_modes_are_checked_and_an_owner_needs_append():
    for mode in ("overwrite_partitions", "overwrite", "append"):
        check_write_mode(mode)
    check_write_mode("append", owner="demo/a")
    with pytest.raises(StorageError, match="^unknown write mode 'replace'; expected one of overwrite_partitions, "
                                           "overwrite, append$"):
        check_write_mode("replace")
    with pytest.raises(StorageError, match="a write with an owner \\('x'\\) must use mode append, not overwrite$"):
        check_write_mode("overwrite", owner="x")


def test_an_owned_name_renames_the_file_and_keeps_its_folder():
    tag = owner_tag("demo/a")
    assert owned_name("demo/a", "part-0.parquet") == tag + "part-0.parquet"
    assert owned_name("demo/a", "d=1/part-0.parquet") == f"d=1/{tag}part-0.parquet"
    assert is_owned("demo/a", owned_name("demo/a", "part-0.parquet"))


class Recording(Storage):
    """Commits in memory; the commit of ``failing`` raises."""

    root = "mem"

    def __init__(self, failing: str = ""):
        self.failing = failing
        self.events: list[str] = []

    def commit(self, pending: PendingWrite) -> None:
        if pending.rel_path == self.failing:
            raise StorageError(f"cannot commit {pending.rel_path}")
        self.events.append(f"commit {pending.rel_path}")

    def abort(self, pending: PendingWrite) -> None:
        self.events.append(f"abort {pending.rel_path}")

    def begin_write(self, rel_path: str, run_id: str, mode: str, partition_by: Sequence[str], *,
                    owner: str = "") -> PendingWrite:
        return PendingWrite(rel_path, f"mem://{rel_path}", run_id, mode, tuple(partition_by), owner=owner)

    def describe(self) -> str:
        return "memory"

    def check(self) -> None:
        pass

    def exists(self, rel_path: str) -> bool:
        return False

    def list_dirs(self, rel_path: str) -> list[str]:
        return []

    def list_files(self, rel_path: str) -> list[FileStamp]:
        return []

    def read_uri(self, rel_path: str, partitions: Sequence[str] | None = None) -> str | None:
        return None

    def put_file(self, rel_path: str, local_file: str) -> None:
        pass


def test_the_default_commit_all_publishes_in_order_and_aborts_the_rest_when_one_fails():
    ok = Recording()
    ok.commit_all([ok.begin_write(rel, "r1", "overwrite", ()) for rel in ("trade", "quote")])
    assert ok.events == ["commit trade", "commit quote"]
    failing = Recording(failing="quote")
    with pytest.raises(StorageError, match="cannot commit quote"):
        failing.commit_all([failing.begin_write(rel, "r1", "overwrite", ()) for rel in ("trade", "quote", "bbo")])
    assert failing.events == ["commit trade", "abort bbo"]  # published stays published; the rest is discarded
