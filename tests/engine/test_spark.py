"""The session every pipeline runs on: settings that results and the console depend on."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
from pyspark.errors import AnalysisException
from pyspark.sql import functions as F


def test_analysis_errors_do_not_print_pyspark_json_lines(spark, capfd):
    # PySpark logs these errors as JSON on handlers of its own; the runner reports the error itself, once
    with pytest.raises(AnalysisException):
        spark.range(1).select(F.col("no_such_column")).collect()
    with pytest.raises(AnalysisException):
        spark.sql("SELECT no_such_column FROM range(1)").collect()
    err = capfd.readouterr().err
    assert "QueryContextLogger" not in err and '"errorClass"' not in err


def test_timestamps_are_zone_less(spark):
    row = spark.sql("SELECT TIMESTAMP '2024-01-04 09:30:00.123' AS t").schema["t"]
    assert row.dataType.typeName() == "timestamp_ntz"


def test_credential_settings_are_redacted(spark):
    """Spark's default redaction misses fs.azure.account.key.<host> or myservice.api.key: event logs and the UI
    would show them. Every key name tickflow counts as a secret is redacted, Spark's default ones still are."""
    from engine.config import is_secret_key
    from engine.spark import CREDENTIAL_SETTINGS, SPARK_REDACTION_DEFAULT, redaction_regex

    regex = spark.sparkContext.getConf().get("spark.redaction.regex")
    assert regex == redaction_regex()
    java = spark.sparkContext._jvm.java.util.regex.Pattern.compile(regex)  # Spark matches with Java's regex
    for name in ("fs.azure.account.key.acct01.dfs.core.windows.net",
                 "spark.hadoop.fs.azure.account.key.acct01.dfs.core.windows.net",
                 "fs.azure.sas.fixed.token.acct01.dfs.core.windows.net", "spark.hadoop.fs.s3a.access.key",
                 "spark.hadoop.myservice.api.key", "spark.hadoop.db.passwd", "spark.hadoop.svc.Credential",
                 "spark.hadoop.x.connection.string", "spark.hadoop.pg.dsn", "spark.authenticate.secret"):
        assert is_secret_key(name) and java.matcher(name).find(), name
    for name in ("fs.azure.account.auth.type.acct01.dfs.core.windows.net", "spark.sql.shuffle.partitions"):
        assert not is_secret_key(name) and not java.matcher(name).find(), name
    assert redaction_regex() == f"{SPARK_REDACTION_DEFAULT}|{CREDENTIAL_SETTINGS}"  # Spark's own kept
    assert redaction_regex("mine") == f"mine|{CREDENTIAL_SETTINGS}"  # a configured one kept, extended
    assert redaction_regex(redaction_regex("mine")) == redaction_regex("mine")


def test_sql_text_cannot_read_the_environment(spark):
    """``${env:VAR}`` in SQL would read any environment variable (PGPASSWORD...), past the spec's filtered env."""
    row = spark.sql("SELECT '${env:HOME}' AS home, '${system:user.name}' AS user").first()
    assert (row.home, row.user) == ("${env:HOME}", "${system:user.name}")


@pytest.fixture
def fake_start(monkeypatch) -> SimpleNamespace:
    """build_session without a JVM: records what the builder and the context are given (``started``) and what
    goes into the session's Hadoop configuration (``hadoop``)."""
    from pyspark.sql import SparkSession

    from engine import spark as spark_module

    seen = SimpleNamespace(started={}, hadoop={})
    hconf = SimpleNamespace(set=seen.hadoop.__setitem__)
    session = SimpleNamespace(sparkContext=SimpleNamespace(_jsc=SimpleNamespace(hadoopConfiguration=lambda: hconf),
                                                           setLogLevel=lambda _level: None))

    class Builder:
        """Records what the SparkSession builder is given; hands out the stand-in session."""

        def master(self, _master: str) -> Builder:
            return self

        appName = master  # noqa: N815 - PySpark's name

        def config(self, key: str, value: str) -> Builder:
            seen.started[key] = value
            return self

        def getOrCreate(self) -> SimpleNamespace:  # noqa: N802 - PySpark's name
            return session

    monkeypatch.setattr(SparkSession, "builder", Builder())
    monkeypatch.setattr(spark_module, "_start_context", lambda _m, _a, conf: seen.started.update(conf))
    return seen


def test_hadoop_credentials_stay_off_the_jvm_command_line(fake_start):
    """PySpark passes every SparkConf setting as a --conf argument of the driver JVM (``ps`` shows it): a
    spark.hadoop.* credential goes into the running session's Hadoop configuration instead."""
    from engine import spark as spark_module

    spark_module.build_session("local[1]", {"spark.hadoop.myservice.api.key": "k3yV4lue",
                                            "spark.hadoop.fs.s3a.endpoint": "s3.local"}, use_archive=False)
    assert "k3yV4lue" not in fake_start.started.values()
    assert fake_start.started["spark.hadoop.fs.s3a.endpoint"] == "s3.local"
    assert fake_start.hadoop == {"myservice.api.key": "k3yV4lue"}


def test_python_workers_run_the_driver_s_interpreter(fake_start, monkeypatch):
    """PySpark's default for its workers is ``python3`` from PATH, often another installation (without pyarrow
    or the plugin's packages): a UDF then failed at run time. A choice of the user's is kept, the setting first
    (as Spark ranks them)."""
    import os
    import sys

    from engine import spark as spark_module

    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    spark_module.build_session("local[1]", use_archive=False)
    assert os.environ["PYSPARK_PYTHON"] == sys.executable
    monkeypatch.setenv("PYSPARK_PYTHON", "/opt/team/bin/python")
    spark_module.build_session("local[1]", use_archive=False)
    assert os.environ["PYSPARK_PYTHON"] == "/opt/team/bin/python"
    spark_module.build_session("local[1]", {"spark.pyspark.python": "/opt/conf/bin/python"}, use_archive=False)
    assert os.environ["PYSPARK_PYTHON"] == "/opt/conf/bin/python"
    assert fake_start.started["spark.pyspark.python"] == "/opt/conf/bin/python"


def test_a_python_udf_runs_on_the_session(spark):
    """Worker code (UDFs, mapInPandas) runs in the interpreter of the driver, with its packages."""
    import sys

    from pyspark.sql.types import StringType

    assert spark.sparkContext.pythonExec == sys.executable
    tag = F.udf(lambda n: f"n{n}", StringType())
    assert [r.t for r in spark.range(3).select(tag("id").alias("t")).collect()] == ["n0", "n1", "n2"]


def test_hadoop_settings_reach_the_running_session(spark):
    from engine.spark import set_hadoop_settings

    set_hadoop_settings(spark, {"tickflow.test.api.key": "k3yV4lue"})
    assert spark.sparkContext._jsc.hadoopConfiguration().get("tickflow.test.api.key") == "k3yV4lue"


def test_stop_jvm_returns_once_the_jvm_s_last_lines_are_logged(monkeypatch, caplog):
    """What the JVM writes while it stops (a cancelled write's "Aborting job") must reach the run's log, which
    closes right after stop_jvm: the stderr reader is drained first. A child stands in for the JVM: like
    Spark's gateway it ends when its stdin closes, and it writes its last words then, all at once (the pipe is
    made large enough), so that the reader still has most of them to log when the child has exited."""
    import fcntl
    import logging
    import os
    import subprocess
    import sys

    from pyspark import SparkContext

    from engine import jvm_stderr
    from engine import spark as spark_module

    caplog.set_level(logging.WARNING, logger="spark")
    words = 20_000
    jvm_fd, reader = jvm_stderr.start()
    fcntl.fcntl(jvm_fd, fcntl.F_SETPIPE_SZ, 1 << 20)
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read(); "
         f"sys.stderr.write(''.join('WARN spark X: last words %d\\n' % i for i in range({words})))"],
        stdin=subprocess.PIPE, stderr=jvm_fd)
    os.close(jvm_fd)  # the child holds its own copy

    class Gateway:
        proc = child

        def shutdown(self) -> None:
            pass

    monkeypatch.setattr(SparkContext, "_gateway", Gateway())
    monkeypatch.setattr(SparkContext, "_jvm", None)
    monkeypatch.setattr(spark_module, "_STDERR_READER", [reader])
    spark_module.stop_jvm()
    said = [r.getMessage() for r in caplog.records if r.name == "spark"]
    assert child.poll() == 0 and not reader.is_alive()
    assert len(said) == words and said[-1] == f"spark X: last words {words - 1}"


def test_every_sql_setting_of_the_base_conf_is_one_spark_knows(spark):
    """Spark accepts any key without a word: a misspelt setting (maxConcurrentOutputFiles for
    maxConcurrentOutputFileWriters once made every partitioned write sort its rows) silently does nothing."""
    from engine.spark import BASE_CONF, unknown_sql_settings

    assert unknown_sql_settings(spark, BASE_CONF) == []
    # internal settings are known too; catalogs are named freely; other families are not spark.sql
    assert unknown_sql_settings(spark, ["spark.sql.maxConcurrentOutputFiles", "spark.sql.shuffle.partitions",
                                        "spark.sql.shuffle.partition", "spark.sql.catalog.lake.uri",
                                        "spark.driver.memory", "spark.sql.optimizer.plannedWrite.enabled"]) == [
        "spark.sql.maxConcurrentOutputFiles", "spark.sql.shuffle.partition"]


def _running_with(marker: str) -> list[int]:
    """Processes (not zombies) whose command line holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if marker in cmdline and stat[stat.rindex(")") + 2] != "Z":
            found.append(int(entry.name))
    return found


def test_an_interrupt_while_the_jvm_starts_leaves_no_jvm_behind(tmp_path):
    """Ctrl-C (here: an alarm raising KeyboardInterrupt) half a second into the JVM's start: the command ended,
    and its JVM, re-parented to init, ran on for good."""
    import subprocess
    import sys
    import uuid

    from tests.engine.tracker.test_contract import wait_until

    marker = f"tickflow-orphan-{uuid.uuid4().hex[:8]}"
    code = ("import signal, sys\nfrom engine.spark import build_session\n"
            "def interrupt(*_):\n    raise KeyboardInterrupt\n"
            "signal.signal(signal.SIGALRM, interrupt)\nsignal.setitimer(signal.ITIMER_REAL, 0.5)\n"
            "try:\n    build_session('local[1]', app_name=sys.argv[1], use_archive=False)\n"
            "except KeyboardInterrupt:\n    print('interrupted while starting')\n")
    out = subprocess.run([sys.executable, "-c", code, marker], cwd=Path(__file__).resolve().parents[2],
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "interrupted while starting", out.stdout + out.stderr
    try:
        wait_until(lambda: not _running_with(marker), 30, "the half-started JVM to end")
    finally:
        for pid in _running_with(marker):
            os.kill(pid, signal.SIGKILL)
