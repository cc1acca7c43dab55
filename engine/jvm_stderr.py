"""The driver JVM's stderr, read line by line into Python logging.

What the JVM writes (log4j's console appender, a crash report, the reason a start failed) then goes where
every other record of the run goes: the run's log file, the console in the chosen format (``--log-format
json`` stays one JSON object per line), past the progress bar, and through the secret masking. One line is
dropped: Spark's launcher adds ``--add-modules=jdk.incubator.vector`` to every driver JVM (hard-coded in
spark-launcher's JavaModuleOptions), and the JVM then prints "WARNING: Using incubator modules" on every
start, which no setting turns off and no user can act on.

A failing task's records (an executor's "Exception in task", "Aborting task", the committer's cleanup warnings,
each with a Java trace) go to the log file only: about 20 lines per failed task that the failing step's one-line
verdict already sums up. Everything else the JVM says, a start-up failure or a crash report, still reaches the
console.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable

from engine.logs import FILE_ONLY

log = logging.getLogger("spark")

NOTICES: frozenset[bytes] = frozenset({b"WARNING: Using incubator modules: jdk.incubator.vector"})
# engine/log4j2.properties writes "<LEVEL> spark <class>: <message>"; stack trace lines follow unprefixed
_LOG4J_LINE = re.compile(r"^(TRACE|DEBUG|INFO|WARN|ERROR|FATAL) (spark \S+: .*)$", re.S)
# records of one task failing, or of the write it aborts: the step's error says what failed ("spark <class>: ...")
_TASK_RECORD = re.compile(r"^spark (?:Executor|TaskSetManager|FileFormatWriter|FileOutputCommitter|"
                          r"SparkHadoopMapRedUtil|SparkHadoopWriter|DataWritingSparkTask|TaskContextImpl): |"
                          r"^spark Utils: Aborting task")
# the lines of a Java trace that follows a record: its exception, frames, causes
_TRACE_LINE = re.compile(r"^\s+at |^\s*\.\.\. \d+ (?:more|common frames omitted)|^\s*(?:Caused by|Suppressed): |"
                         r"^(?:[\w$]+\.)+[\w$]*(?:Exception|Error|Throwable)\b")
_LEVELS = {"TRACE": logging.DEBUG, "DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING,
           "ERROR": logging.ERROR, "FATAL": logging.CRITICAL}


class LogLines:
    """JVM lines as records of the ``spark`` logger, at log4j's level.

    A line without log4j's prefix (a stack trace line, the JVM's own message) gets the level of the record it
    follows when that is an error, else WARNING: a trace stays with its error, and nothing the JVM says on its
    own is hidden below the console's level.
    """

    def __init__(self) -> None:
        self._level = logging.WARNING
        self._task_record = False  # the last record was a task's failure: its trace goes where it went

    def __call__(self, line: bytes) -> None:
        text = line.decode("utf-8", errors="replace").rstrip("\r\n")
        if not text.strip():
            return
        parsed = _LOG4J_LINE.match(text)
        if parsed:
            level = _LEVELS[parsed.group(1)]
            self._level = max(level, logging.WARNING)
            self._task_record = bool(_TASK_RECORD.match(parsed.group(2)))
            log.log(level, "%s", parsed.group(2), extra={FILE_ONLY: self._task_record})
        else:
            # only a trace line follows a task's record to the file: anything else the JVM says is shown
            self._task_record = self._task_record and bool(_TRACE_LINE.match(text))
            log.log(self._level, "%s", text, extra={FILE_ONLY: self._task_record})


def forward(read_fd: int, emit: Callable[[bytes], None]) -> None:
    """Pass each line of ``read_fd`` to ``emit`` until end of file, dropping the known notices."""
    with open(read_fd, "rb", closefd=True) as source:  # buffered: a line at a time, as soon as it is written
        for line in source:
            if line.rstrip(b"\r\n") in NOTICES:
                continue
            try:
                emit(line)
            except Exception:  # a failing handler must not stop the draining: the JVM would block on a full pipe
                continue


def start(emit: Callable[[bytes], None] | None = None) -> tuple[int, threading.Thread]:
    """A pipe whose lines a daemon thread passes to ``emit`` (default: LogLines): (the JVM's end, the thread).

    The caller hands the write end to the child process and then closes its own copy, so that the thread sees
    end of file when the JVM exits. Reading starts before the JVM does: a JVM that fails to start still gets
    its reason to the user.
    """
    read_fd, jvm_fd = os.pipe()
    thread = threading.Thread(target=forward, args=(read_fd, emit or LogLines()), name="jvm-stderr", daemon=True)
    thread.start()
    return jvm_fd, thread
