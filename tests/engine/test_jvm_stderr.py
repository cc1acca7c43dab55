from __future__ import annotations

import io
import logging
import os
import threading

from engine import jvm_stderr
from engine.logs import close_logging, setup_logging

NOTICE = b"WARNING: Using incubator modules: jdk.incubator.vector\n"


def _forwarded(data: bytes) -> list[bytes]:
    lines: list[bytes] = []
    jvm_fd, thread = jvm_stderr.start(lines.append)
    os.write(jvm_fd, data)
    os.close(jvm_fd)  # the "JVM" exits: the reader sees end of file
    thread.join(30)
    assert not thread.is_alive()
    return lines


def test_the_notice_is_dropped_and_every_other_line_passes() -> None:
    lines = [b"WARN spark Foo: something a user should see\n", NOTICE, b"not a notice: " + NOTICE,
             b"\xff\xfe not UTF-8\r\n", NOTICE.rstrip(b"\n") + b"\r\n", b"last line without a newline"]
    assert _forwarded(b"".join(lines)) == [lines[i] for i in (0, 2, 3, 5)]


def test_a_burst_larger_than_the_pipe_is_read_whole() -> None:
    # far more than a pipe's buffer (64 KiB): written while the reader drains it
    data = [b"line %d %s\n" % (i, b"x" * 100) for i in range(20_000)]
    assert _forwarded(b"".join(data) + NOTICE) == data


def test_a_failing_handler_does_not_stop_the_reading() -> None:
    seen: list[bytes] = []

    def emit(line: bytes) -> None:
        seen.append(line)
        raise RuntimeError("handler broke")

    jvm_fd, thread = jvm_stderr.start(emit)
    os.write(jvm_fd, b"a\nb\nc\n")
    os.close(jvm_fd)
    thread.join(30)
    assert not thread.is_alive()
    assert seen == [b"a\n", b"b\n", b"c\n"]


def test_log4j_lines_keep_their_level_and_a_trace_stays_with_its_error(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="spark")
    emit = jvm_stderr.LogLines()
    for line in (b"Error: A JNI error has occurred\n", b"ERROR spark Executor: Exception in task 0.0\n",
                 b"org.apache.spark.SparkRuntimeException: boom\n", b"\tat org.apache.Foo.bar(Foo.java:1)\n",
                 b"WARN spark TaskSetManager: Lost task 1.0\n", b"\tat org.apache.Foo.baz(Foo.java:2)\n",
                 b"INFO spark X: started\n", b"\n", b"JVM says\n"):
        emit(line)
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("spark", logging.WARNING, "Error: A JNI error has occurred"),
        ("spark", logging.ERROR, "spark Executor: Exception in task 0.0"),
        ("spark", logging.ERROR, "org.apache.spark.SparkRuntimeException: boom"),
        ("spark", logging.ERROR, "\tat org.apache.Foo.bar(Foo.java:1)"),
        ("spark", logging.WARNING, "spark TaskSetManager: Lost task 1.0"),
        ("spark", logging.WARNING, "\tat org.apache.Foo.baz(Foo.java:2)"),
        ("spark", logging.INFO, "spark X: started"),
        ("spark", logging.WARNING, "JVM says"),
    ]


def test_the_session_jvm_stderr_reaches_python_logging(spark) -> None:
    # (that a real run's stderr holds no notice: tests/transforms/analytics/test_sample.py)
    arrived = threading.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "tickflow-jvm-stderr-marker" in record.getMessage():
                arrived.set()

    watch = Watch(logging.WARNING)
    logging.getLogger("spark").addHandler(watch)
    try:
        spark._jvm.java.lang.System.err.println("tickflow-jvm-stderr-marker")
        assert arrived.wait(30), "the JVM's line never reached the spark logger"
    finally:
        logging.getLogger("spark").removeHandler(watch)


def test_a_secret_in_a_spark_line_is_masked_on_the_console_and_in_the_file(tmp_path) -> None:
    console = io.StringIO()
    log_file = setup_logging(tmp_path, "masking", quiet=True, secrets=["s3cr3t-key"], stream=console)
    try:
        jvm_stderr.LogLines()(b"WARN spark AzureFS: auth failed for key s3cr3t-key\n")
    finally:
        close_logging()
    assert "auth failed for key ***" in console.getvalue() and "s3cr3t" not in console.getvalue()
    text = log_file.read_text()
    assert "spark AzureFS: auth failed for key ***" in text and "s3cr3t" not in text


def test_a_failing_tasks_records_go_to_the_file_only(tmp_path) -> None:
    """About 20 lines per failed task reached the console even with --quiet; the step's verdict sums them up.
    What is not a task's record, or not the trace of one, is still shown."""
    console = io.StringIO()
    log_file = setup_logging(tmp_path, "task", quiet=True, secrets=[], stream=console)
    task = [b"ERROR spark Utils: Aborting task\n",
            b"org.apache.spark.SparkRuntimeException: [USER_RAISED_EXCEPTION] size must be negative\n",
            b"\tat org.apache.spark.sql.errors.QueryExecutionErrors$.raiseError(QueryExecutionErrors.scala:3082)\n",
            b"WARN spark FileOutputCommitter: Could not delete file:/wh/_temporary/0/_temporary/attempt_1\n",
            b"ERROR spark FileFormatWriter: Job: job_1, Task: task_1, Task attempt attempt_1 aborted.\n",
            b"ERROR spark Executor: Exception in task 1.0 in stage 5.0 (TID 7)\n",
            b"ERROR spark TaskSetManager: Task 0 in stage 5.0 failed 1 times; aborting job\n"]
    shown = [b"JVM says this on its own\n", b"ERROR spark Utils: Service 'sparkDriver' could not bind\n",
             b"java.net.BindException: Address already in use\n"]
    emit = jvm_stderr.LogLines()
    try:
        for line in [*task, *shown]:
            emit(line)
    finally:
        close_logging()
    assert [line.split(None, 2)[2] for line in console.getvalue().splitlines()] == [
        "JVM says this on its own", "spark Utils: Service 'sparkDriver' could not bind",
        "java.net.BindException: Address already in use"]
    text = log_file.read_text()
    assert "spark Utils: Aborting task" in text and "QueryExecutionErrors.scala:3082" in text
    assert "spark TaskSetManager: Task 0 in stage 5.0 failed 1 times" in text
