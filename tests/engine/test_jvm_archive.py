"""The JVM class archive: which file an installation uses, and that the real driver JVM maps a valid one."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from engine import jvm_archive


def _install(root: Path, jars: dict[str, bytes]) -> tuple[Path, Path]:
    spark_home, jdk = root / "pyspark", root / "jdk"
    (spark_home / "jars").mkdir(parents=True)
    (jdk / "lib").mkdir(parents=True)
    (jdk / "lib" / "modules").write_bytes(b"jdk classes")
    for name, data in jars.items():
        (spark_home / "jars" / name).write_bytes(data)
    return spark_home, jdk


def test_key_changes_with_any_jar_or_the_jdk(tmp_path):
    spark_home, jdk = _install(tmp_path, {"a.jar": b"1", "b.jar": b"22"})
    key = jvm_archive.installation_key(spark_home, jdk)
    assert key == jvm_archive.installation_key(spark_home, jdk)
    (spark_home / "jars" / "b.jar").write_bytes(b"333")
    changed_jar = jvm_archive.installation_key(spark_home, jdk)
    (spark_home / "jars" / "c.jar").write_bytes(b"")
    added_jar = jvm_archive.installation_key(spark_home, jdk)
    (jdk / "lib" / "modules").write_bytes(b"updated jdk classes")
    new_jdk = jvm_archive.installation_key(spark_home, jdk)
    assert len({key, changed_jar, added_jar, new_jdk}) == 4


def test_options_name_the_archive_only_when_it_exists(tmp_path, monkeypatch):
    monkeypatch.setenv(jvm_archive.CACHE_ENV, str(tmp_path / "cache"))
    assert jvm_archive.java_options() == ""
    path = jvm_archive.archive_path()
    assert path.parent == tmp_path / "cache"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"archive")
    assert jvm_archive.java_options() == f"-XX:SharedArchiveFile={path} -Xshare:auto"


def test_a_run_marks_its_archive_used_and_building_prunes_archives_unused_for_30_days(tmp_path, monkeypatch,
                                                                                      capsys):
    monkeypatch.setenv(jvm_archive.CACHE_ENV, str(tmp_path))
    mine = jvm_archive.archive_path()
    ages = {mine: 40, tmp_path / "spark-classes-0000000000000001.jsa": 40,
            tmp_path / "spark-classes-0000000000000002.jsa": 29, tmp_path / "notes.jsa": 99}
    for path, days in ages.items():
        path.write_bytes(b"archive")
        os.utime(path, (time.time() - days * 86400,) * 2)
    jvm_archive.java_options()  # a run maps the archive: it counts as used today
    assert time.time() - mine.stat().st_mtime < 60
    assert jvm_archive.main([]) == 0  # setup's build step: the archive exists, so only the pruning happens
    assert "removed the class archive spark-classes-0000000000000001.jsa" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [mine.name, "spark-classes-0000000000000002.jsa", "notes.jsa"])


def test_check_exits_non_zero_without_an_archive(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(jvm_archive.CACHE_ENV, str(tmp_path))
    assert jvm_archive.main(["--check"]) == 1
    assert "missing" in capsys.readouterr().out


def test_driver_jvm_maps_a_valid_archive(spark):
    """setup builds the archive (CI runs setup); the session's JVM got it and it matches the JVM's class path:
    with -Xshare:on a JVM refuses to start on an archive that does not match."""
    path = jvm_archive.archive_path()
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"no class archive at {path}: scripts/setup.sh should have built it")
        pytest.skip("no class archive built here (run: python -m engine.jvm_archive)")
    jvm = spark.sparkContext._jvm
    args = [str(a) for a in jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()]
    assert f"-XX:SharedArchiveFile={path}" in args
    java = Path(str(jvm.java.lang.System.getProperty("java.home"))) / "bin" / "java"
    class_path = str(jvm.java.lang.System.getProperty("java.class.path"))
    modules = [a for a in args if a.startswith("--add-modules")]
    ok = subprocess.run([str(java), f"-XX:SharedArchiveFile={path}", "-Xshare:on", *modules, "-cp", class_path,
                         "-version"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-2000:]
    stale = subprocess.run([str(java), f"-XX:SharedArchiveFile={path}", "-Xshare:on", "-cp", str(Path.cwd()),
                            "-version"], capture_output=True, text=True)
    assert stale.returncode != 0
