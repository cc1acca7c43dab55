"""The one line a user reads about an error: the Java exception of a py4j error, an OS cause from deep in the
chain, the innermost Java cause of a file Spark cannot read."""

from __future__ import annotations

import pytest

from engine.error_lines import essential_line


def test_essential_line_takes_the_java_exception_of_a_py4j_error():
    class Py4JJavaError(Exception):
        pass

    call = "An error occurred while calling o81.parquet.\n"
    cancelled = Py4JJavaError(call + ": org.apache.spark.SparkException: [SPARK_JOB_CANCELLED] Job 1 cancelled "
                                     "as part of cancellation of all jobs SQLSTATE: XXKDA\n\tat org.apache.spark.X")
    assert essential_line(cancelled) == ("SparkException: [SPARK_JOB_CANCELLED] Job 1 cancelled as part of "
                                         "cancellation of all jobs SQLSTATE: XXKDA")
    assert essential_line(Py4JJavaError(call + "no Java line")) == "Py4JJavaError: " + call.strip()
    assert essential_line(ValueError("bad value\nsecond line")) == "ValueError: bad value"


def test_essential_line_takes_the_py4j_exception_of_a_call_py4j_could_not_make():
    """A Py4JError (a transform passed a str where Java wants an int) starts with "... Trace:": the line after it
    says what went wrong."""

    class Py4JError(Exception):
        pass

    error = Py4JError("An error occurred while calling o98.limit. Trace:\npy4j.Py4JException: Method "
                      "limit([class java.lang.String]) does not exist\n\tat py4j.reflection.ReflectionEngine.x\n")
    assert essential_line(error) == "Py4JException: Method limit([class java.lang.String]) does not exist"


def test_essential_line_adds_an_operating_system_cause_from_deep_in_the_chain():
    """A full disk surfaces as Spark's "[TASK_WRITE_FAILED] Task failed while writing rows"; the reason sits in
    a cause several levels down (PySpark keeps converted JVM causes in ``_cause``, their text in ``_desc``)."""

    class Converted(Exception):  # the shape of pyspark's CapturedException
        def __init__(self, desc: str, cause: Exception | None = None):
            super().__init__(desc)
            self._desc, self._cause = desc, cause

    disk = Converted("java.io.IOException: No space left on device")
    top = Converted("[TASK_WRITE_FAILED] Task failed while writing rows to file:/wh/.tickflow_staging/x" + "z" * 400,
                    Converted("org.apache.spark.SparkException: Job aborted", disk))
    line = essential_line(top)
    assert line.startswith("Converted: [TASK_WRITE_FAILED] Task failed while writing rows")
    assert line.endswith("... (cause: No space left on device)") and len(line) == 400
    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError as exc:
            raise RuntimeError("could not stage the output") from exc
    except RuntimeError as exc:
        assert essential_line(exc) == "RuntimeError: could not stage the output (cause: No space left on device)"
    assert essential_line(RuntimeError("Permission denied: /wh")) == "RuntimeError: Permission denied: /wh"
    assert essential_line(RuntimeError("plain")) == "RuntimeError: plain"


def test_a_file_spark_cannot_read_is_named_with_the_reason_from_the_bottom_of_the_java_causes(spark, tmp_path):
    """Spark's own line names the file only ("Encountered error while reading file ..."); the reason (here a stale
    Hadoop checksum file beside it) was only in the JVM stack of the log."""
    import struct
    import zlib

    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "part-0.txt").write_text("hello\nworld\n")
    stale = struct.pack(">I", zlib.crc32(b"hellO\nworld\n"))
    (folder / ".part-0.txt.crc").write_bytes(b"crc\0" + struct.pack(">i", 512) + stale)
    with pytest.raises(Exception) as info:  # noqa: PT011 - whatever PySpark raises: its line is what counts
        spark.read.text(str(folder)).write.mode("overwrite").parquet(str(tmp_path / "out"))
    line = essential_line(info.value)
    assert "FAILED_READ_FILE" in line and "part-0.txt" in line, line
    assert line.endswith(")") and "(cause: ChecksumException: Checksum error: " in line, line


def test_an_overflow_says_what_happened_instead_of_advising_ansi_mode_off(spark):
    """Two valid sizes summing past 2^63 failed a step with Spark's advice to turn ANSI mode off, which would
    write a wrapped, negative total."""
    from pyspark.sql import functions as F

    sizes = spark.createDataFrame([(5 * 10**18,), (5 * 10**18,)], "size long")
    with pytest.raises(Exception) as info:
        sizes.agg(F.sum("size")).collect()
    line = essential_line(info.value)
    assert "[ARITHMETIC_OVERFLOW]" in line and "left the range of its column's type" in line, line
    assert "try_add" not in line and "to \"false\"" not in line and len(line) <= 400, line
