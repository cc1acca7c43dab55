"""A class-data-sharing (CDS) archive of Spark's classes, so that every short-lived driver JVM starts sooner.

A run is one JVM that loads about 18,000 classes from Spark's jars before its first task. Built once per Java
and PySpark installation (``scripts/setup.sh`` runs ``python -m engine.jvm_archive``), the archive holds them
parsed and verified; later JVMs map it instead (measured: Spark start 8-10 s -> 4.3 s, a 1M-event preprocess
76-78 s -> 65-70 s on a slow 2-core machine). It must match the JVM's class path exactly: a JVM given a stale
archive silently runs without it (``-Xshare:auto``), and a changed installation gets a new archive name.

Building one also removes the archives of other installations that no run used for 30 days.

Usage: python -m engine.jvm_archive [--force] [--check]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CACHE_ENV = "TICKFLOW_CACHE_DIR"
KEEP_UNUSED_DAYS = 30  # archives of other installations unused this long are removed when one is built
_DAY = 86400.0


class ArchiveError(RuntimeError):
    """The archive could not be built (the pipelines still run, only without it)."""


def cache_dir() -> Path:
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tickflow"


def java_home() -> Path | None:
    home = os.environ.get("JAVA_HOME")
    if home:
        return Path(home).resolve()
    java = shutil.which("java")
    return Path(java).resolve().parent.parent if java else None


def installation_key(spark_home: Path, jdk: Path | None) -> str:
    """Changes whenever a jar of Spark or the JDK's class library changes (both are baked into an archive)."""
    digest = hashlib.sha256()
    jars = spark_home / "jars"
    for jar in sorted(jars.glob("*.jar")) if jars.is_dir() else []:
        st = jar.stat()
        digest.update(f"{jar.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    if jdk is not None:
        modules = jdk / "lib" / "modules"
        st = modules.stat() if modules.exists() else None
        digest.update(f"{jdk}:{st.st_size if st else 0}:{st.st_mtime_ns if st else 0}\n".encode())
    return digest.hexdigest()[:16]


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def archive_path() -> Path:
    return cache_dir() / f"spark-classes-{installation_key(spark_home(), java_home())}.jsa"


def java_options() -> str:
    """The driver JVM options that use the archive, or '' when none was built for this installation."""
    try:
        path = archive_path()
    except OSError:
        return ""
    if not path.is_file():
        return ""
    _mark_used(path)
    return f"-XX:SharedArchiveFile={path} -Xshare:auto"


def _mark_used(path: Path) -> None:
    """Record a run's use in the archive's mtime (at most daily): what pruning other installations looks at."""
    with contextlib.suppress(OSError):  # a read-only cache still serves the archive
        if path.stat().st_mtime < time.time() - _DAY:
            os.utime(path)


def prune_unused(keep: Path, days: float = KEEP_UNUSED_DAYS) -> list[Path]:
    """Remove the archives beside ``keep`` that no run used for ``days`` (other or former installations).

    Several checkouts may share the cache, each with its own archive; each run marks its own as used, so only
    archives of installations that stopped running (an upgraded PySpark or JDK, a deleted checkout) go.
    """
    cutoff = time.time() - days * _DAY
    removed = []
    for other in sorted(keep.parent.glob("spark-classes-*.jsa")):
        if other == keep:
            continue
        try:
            if other.stat().st_mtime < cutoff:
                other.unlink()
                removed.append(other)
        except OSError:
            continue
    return removed


def _workload(spark, folder: Path) -> None:
    """Touch what pipelines use (text, JSON, Parquet, joins, windows, aggregates, cache) so its classes load."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    text = folder / "lines.txt"
    text.write_text("".join(f'{{"k": "k{i % 7}", "v": "{i}.5", "t": "2020-01-0{1 + i % 5} 10:00:0{i % 10}.1"}}\n'
                            for i in range(200)))
    lines = spark.read.text(str(text)).select(
        F.from_json("value", "array<map<string,string>>").alias("a"), F.split("value", ",").alias("s"),
        F.col("value").rlike("^[{].*$").alias("ok"), F.monotonically_increasing_id().alias("id"))
    parsed = F.from_json(F.col("value"), "k string, v string, t string")
    df = spark.read.text(str(text)).select(parsed.alias("r")).select(
        "r.k", F.col("r.v").try_cast("double").alias("v"), F.col("r.t").try_cast("timestamp_ntz").alias("t"),
        F.xxhash64("r.k").alias("h"))
    df = df.persist()
    w = Window.partitionBy("k").orderBy("t")
    out = (df.withColumn("rn", F.row_number().over(w)).withColumn("run", F.sum("v").over(w))
           .join(F.broadcast(df.groupBy("k").agg(F.max_by("v", "t").alias("last"))), "k")
           .join(df.groupBy("h").count(), "h", "full_outer"))
    out.write.mode("overwrite").partitionBy("k").parquet(str(folder / "out"))
    back = spark.read.parquet(str(folder / "out"))
    back.groupBy("k").agg(F.count(F.lit(1)), F.avg("v"), F.min_by("run", "t")).collect()
    lines.groupBy("ok").count().collect()
    df.unpersist()


def build(force: bool = False) -> Path:
    """Record the classes a small Spark workload loads, then dump them into the archive (about a minute)."""
    from engine.spark import build_session

    target = archive_path()
    if target.is_file() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tickflow-cds-") as tmp:
        work = Path(tmp)
        classes = work / "classes.lst"
        spark = build_session("local[1]", app_name="tickflow-class-archive",
                              java_options=f"-XX:DumpLoadedClassList={classes}", use_archive=False)
        try:
            jvm = spark.sparkContext._jvm
            class_path = str(jvm.java.lang.System.getProperty("java.class.path"))
            runtime = jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
            args = [str(a) for a in runtime.getInputArguments()]
            java = Path(str(jvm.java.lang.System.getProperty("java.home"))) / "bin" / "java"
            _workload(spark, work)
        finally:
            spark.stop()
        modules = [a for a in args if a.startswith("--add-modules")]
        staged = work / "classes.jsa"
        cmd = [str(java), "-Xshare:dump", f"-XX:SharedClassListFile={classes}", f"-XX:SharedArchiveFile={staged}",
               *modules, "-cp", class_path]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not staged.is_file():
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
            raise ArchiveError(f"java -Xshare:dump failed with exit {proc.returncode}: {tail}")
        shutil.move(str(staged), str(target.with_suffix(".tmp")))
        os.replace(target.with_suffix(".tmp"), target)
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.jvm_archive", description=__doc__.split("\n\n")[0])
    ap.add_argument("--force", action="store_true", help="rebuild even when an archive for this installation exists")
    ap.add_argument("--check", action="store_true", help="only print the archive's path and whether it exists")
    args = ap.parse_args(argv)
    if args.check:
        path = archive_path()
        print(f"{path} ({'present' if path.is_file() else 'missing'})")
        return 0 if path.is_file() else 1
    try:
        path = build(force=args.force)
    except ArchiveError as exc:
        print(f"class archive not built (runs work without it, start slower): {exc}", file=sys.stderr)
        return 1
    print(f"class archive: {path} ({path.stat().st_size / 2**20:.0f} MB)")
    for old in prune_unused(path):
        print(f"removed the class archive {old.name}: no run used it for {KEEP_UNUSED_DAYS} days")
    return 0


if __name__ == "__main__":
    sys.exit(main())
