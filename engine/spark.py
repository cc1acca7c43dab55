"""Builds the SparkSession with the settings every pipeline relies on."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from engine import jvm_stderr
from engine.config import SECRET_NAME_PATTERN, is_secret_key
from engine.processes import descendants, kill_new_descendants

LOG4J_CONF = Path(__file__).resolve().parent / "log4j2.properties"
# PySpark's loggers of analysis errors (from SQL text, from DataFrame calls), each with its own JSON handler
QUERY_CONTEXT_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")

# Timestamps in the raw files are exchange wall-clock without a zone: keep them zone-less everywhere.
BASE_CONF: Mapping[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.parquet.compression.codec": "snappy",
    "spark.driver.memory": "2g",
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
    # Persisted step results are read once or twice within a run: building the compressed columnar cache
    # (per-batch dictionary statistics on boxed values) costs more CPU than the memory it saves.
    "spark.sql.inMemoryColumnarStorage.compressed": "false",
    # A run writes each output's date partition from every task: let a task keep its few partition files open
    # instead of sorting all its rows by the partition columns first.
    "spark.sql.optimizer.plannedWrite.enabled": "false",
    "spark.sql.maxConcurrentOutputFileWriters": "16",
    # SQL text must not read the environment: ${env:PGPASSWORD} (or ${system:...}) would bypass the spec's
    # filtered `env` and put a credential into results, errors, logs and reports.
    "spark.sql.variable.substitute": "false",
}

# Spark's default spark.redaction.regex misses settings holding credentials such as fs.azure.account.key.<host>
# or myservice.api.key: the event log's environment and the UI show what the regex does not match. It is
# extended by the names engine.config counts as secrets (a superset of Spark's default), so what tickflow masks
# in its own output Spark redacts.
SPARK_REDACTION_DEFAULT = r"(?i)secret|password|token|access[.]?key"
CREDENTIAL_SETTINGS = f"(?i:{SECRET_NAME_PATTERN})"
HADOOP_PREFIX = "spark.hadoop."
# The thread passing the driver JVM's stderr into logging: stop_jvm waits for it to read the JVM's last lines.
_STDERR_READER: list[threading.Thread] = []


def redaction_regex(configured: str = "") -> str:
    """The configured ``spark.redaction.regex`` (else Spark's default), also matching every secret key name."""
    base = configured or SPARK_REDACTION_DEFAULT
    return base if CREDENTIAL_SETTINGS in base else f"{base}|{CREDENTIAL_SETTINGS}"


# A run is one short-lived JVM on few cores, where the JIT compiler threads take about a third of the CPU:
# - wide generated validation code exceeds the JIT's huge-method limit: compile it anyway (else interpreted);
# - a batch run wants throughput, not short pauses: the parallel collector (5M-event benchmarks 10-13% faster
#   than G1);
# - the optimising compiler (C2) starts later (5x the default call counts): fewer methods compiled twice,
#   5-9% less CPU in the 5M-event benchmarks (measured 15k..40k calls; 15k was best).
JVM_FLAGS = ("-XX:-DontCompileHugeMethods -XX:+UseParallelGC -XX:Tier4InvocationThreshold=15000 "
             "-XX:Tier4CompileThreshold=30000 -XX:Tier4BackEdgeThreshold=100000")


def hidden_settings(conf: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(settings for the SparkConf, Hadoop settings holding a secret).

    PySpark starts the driver JVM with every SparkConf setting on its command line, which ``ps`` shows to every
    local user: a ``spark.hadoop.*`` credential goes into the running session's Hadoop configuration instead
    (as engine.storage.azure_direct does with the account key), keyed without the ``spark.hadoop.`` prefix.
    """
    visible = {k: v for k, v in conf.items() if not (k.startswith(HADOOP_PREFIX) and is_secret_key(k))}
    hidden = {k.removeprefix(HADOOP_PREFIX): v for k, v in conf.items() if k not in visible}
    return visible, hidden


def set_hadoop_settings(spark: Any, settings: Mapping[str, str]) -> None:
    """Put settings into the running session's Hadoop configuration, which Spark SQL jobs copy to their tasks."""
    hconf = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in settings.items():
        hconf.set(key, value)


def _start_context(master: str, app_name: str, conf: Mapping[str, str]) -> None:
    """Start the process's SparkContext with the driver JVM's stderr passed through engine.jvm_stderr.

    The builder would start the same context, with the JVM writing straight to our stderr; it reuses this one.
    """
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    if SparkContext._gateway is not None or SparkContext._active_spark_context is not None:
        return  # this process already has its JVM (a stopped session keeps it): the builder reuses it
    spark_conf = SparkConf(loadDefaults=False).setMaster(master).setAppName(app_name).setAll(list(conf.items()))
    stderr, reader = jvm_stderr.start()
    _STDERR_READER[:] = [reader]
    before = descendants()
    try:
        gateway = launch_gateway(spark_conf, popen_kwargs={"stderr": stderr})
    except BaseException:
        # Ctrl-C or SIGTERM while the JVM starts: pyspark keeps no handle on the process it launched, which then
        # outlived the command (for good: it was not yet watching its stdin)
        kill_new_descendants(before)
        raise
    finally:
        os.close(stderr)  # the JVM holds its own copy; the forwarder ends when the JVM exits
    SparkContext(conf=spark_conf, gateway=gateway)


PYTHON_SETTING = "spark.pyspark.python"


def worker_python(conf: Mapping[str, str], environ: Mapping[str, str] = os.environ) -> str:
    """The interpreter Spark's Python workers (UDFs, ``mapInPandas``, RDD lambdas) run: the one chosen by the
    user (``[spark] spark.pyspark.python``, which Spark ranks above ``PYSPARK_PYTHON``), else this process's.

    PySpark's own default, ``python3`` from PATH, is often another installation without pyarrow or the
    plugin's packages (or of another minor version, which Spark refuses), so worker code would fail at run time.
    """
    return conf.get(PYTHON_SETTING) or environ.get("PYSPARK_PYTHON") or sys.executable


def build_session(master: str = "local[*]", conf: Mapping[str, str] | None = None, app_name: str = "tickflow",
                  *, java_options: str = "", use_archive: bool = True):
    """Create (or reuse) the process's SparkSession; ``conf`` overrides the base settings.

    The driver JVM maps the class archive of ``engine.jvm_archive`` when one was built for this installation.
    """
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName(app_name)
    merged = dict(BASE_CONF)
    if master.startswith("local"):
        merged.setdefault("spark.driver.host", "127.0.0.1")
        merged.setdefault("spark.driver.bindAddress", "127.0.0.1")
    archive = ""
    if use_archive:
        from engine.jvm_archive import java_options as archive_options

        archive = archive_options()
    options = (f"-Dlog4j.configurationFile=file:{LOG4J_CONF}", JVM_FLAGS, archive, java_options)
    merged["spark.driver.extraJavaOptions"] = " ".join(o for o in options if o)
    merged.update(conf or {})
    # PySpark's context takes the workers' interpreter from the environment only (the setting counts for
    # spark-submit): both say the same
    os.environ["PYSPARK_PYTHON"] = worker_python(merged)
    merged["spark.redaction.regex"] = redaction_regex(merged.get("spark.redaction.regex", ""))
    merged, hadoop_secrets = hidden_settings(merged)
    for key, value in merged.items():
        builder = builder.config(key, value)
    _start_context(master, app_name, merged)
    spark = builder.getOrCreate()
    set_hadoop_settings(spark, hadoop_secrets)
    spark.sparkContext.setLogLevel("WARN")
    # PySpark logs every analysis error as JSON on its own handler; the runner reports errors itself.
    from pyspark.logger import PySparkLogger

    for name in QUERY_CONTEXT_LOGGERS:
        noisy = PySparkLogger.getLogger(name)
        noisy.handlers.clear()
        noisy.disabled = True
    return spark


# spark.sql settings that are free-form, or registered by modules SQLConf does not know about
_FREE_FORM_SQL = ("spark.sql.catalog.", "spark.sql.hive.", "spark.sql.connect.")


def unknown_sql_settings(spark: Any, keys: Iterable[str]) -> list[str]:
    """The ``spark.sql.*`` keys that this Spark does not register, in order.

    Spark takes any key without a word, so a misspelt setting silently does nothing; SQLConf's registry holds
    every setting, the internal ones included (``SET -v`` lists only the public ones). A Spark whose registry
    cannot be asked (another version, a remote session) gives none: the check must never stop a run.
    """
    try:
        registry = getattr(getattr(spark.sparkContext._jvm.org.apache.spark.sql.internal, "SQLConf$"), "MODULE$")
        return [key for key in keys if key.startswith("spark.sql.") and not key.startswith(_FREE_FORM_SQL)
                and not registry.containsConfigKey(key)]
    except Exception:
        return []


def stop_jvm(timeout: float = 30.0) -> None:
    """End this process's driver JVM and wait until it has exited.

    Without this the JVM outlives the Python process by a moment (it exits when its stdin closes), and a task
    killed by a cancel can still write into the warehouse after the command has returned. A run is over only
    when nothing of it runs any more, and when its last words (a cancelled write's "Aborting job") have reached
    the log.
    """
    import subprocess

    from pyspark import SparkContext

    gateway = SparkContext._gateway
    proc = getattr(gateway, "proc", None)
    if gateway is None or proc is None:  # no JVM, or one this process did not start (spark-submit)
        return
    SparkContext._gateway = SparkContext._jvm = None
    with contextlib.suppress(Exception):  # a broken connection must not hide the run's own outcome
        gateway.shutdown()
    if proc.stdin is not None:
        proc.stdin.close()  # Spark's gateway server exits when its stdin ends
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    # what the JVM wrote just before it exited may still sit in the pipe: read it before the run's log closes
    for reader in _STDERR_READER:
        reader.join(timeout)
    _STDERR_READER.clear()
