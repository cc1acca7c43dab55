"""The one line a user reads about an error, kept apart from the runner: the run command, the plan and the runner
all report failures with it, and none of them should need a runner (or Spark) to cut an error to its line."""

from __future__ import annotations

import re
from typing import Any

from engine.errors import TransformError

_PYTHON_ERROR = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)(?::|$)")
# the Java exception's line of a py4j error: ": java.lang.X: ..." (Py4JJavaError) or, after "... Trace:", a bare
# "py4j.Py4JException: ..." (Py4JError: a call py4j itself could not make, e.g. a method with the wrong types)
_JAVA_CAUSE = re.compile(r"^(?::\s*)?(?:[\w$]+\.)*([\w$]+(?:Exception|Error)):\s*(.*)$")
# Spark's advice on an ANSI overflow (try_add, or ANSI mode off) would have the data written wrapped or as NULL
_OVERFLOW_ADVICE = re.compile(r"\s*Use '?try_\w+'? to tolerate overflow.*$")
OVERFLOW_HINT = ("a sum or product left the range of its column's type (64-bit integers end at about 9.2e18): some "
                 "input value is out of any plausible range; turning spark.sql.ansi.enabled off would write "
                 "wrapped, wrong numbers instead")


def is_analysis_error(exc: BaseException) -> bool:
    """pyspark's AnalysisException (ParseException is one): a query Spark could not resolve. Told by the class's
    name, so that telling needs no pyspark import."""
    return any(kind.__name__ == "AnalysisException" for kind in type(exc).__mro__)


def essential_line(exc: BaseException) -> str:
    """The one line of an error worth showing: class and first message line (no JVM stack).

    A TransformError's message is written for the user (it names the date, file or rule): it stands alone.
    The line is masked where it is written (log, tracker, report, console), after this cut: the masker also
    masks a secret's prefix of 4+ characters left before the "..." (engine.logs.CUT_MARKS).
    """
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    first = lines[0] if lines else ""
    if first.startswith(("JVM stacktrace", "at ")):
        first = ""
    name = type(exc).__name__
    py4j_call = first.startswith("An error occurred while calling") and len(lines) > 1
    java = _JAVA_CAUSE.match(lines[1]) if py4j_call else None
    if java:  # py4j's first line only names the call: the Java exception's own line says what went wrong
        name, first = java.group(1), java.group(2)
    if "from the Python worker" in first:  # the worker's own error is the traceback's last line (a UDF's)
        end = next((i for i, ln in enumerate(lines) if ln.startswith("JVM stacktrace")), len(lines))
        raised = [ln for ln in lines[1:end] if _PYTHON_ERROR.match(ln)]
        if raised:
            first = f"{first.rstrip(':. ')}: {raised[-1]}"
    if "[ARITHMETIC_OVERFLOW]" in first:
        first = f"{_OVERFLOW_ADVICE.sub('', first).rstrip('. ')}: {OVERFLOW_HINT}"
    line = f"{name}: {first}" if first and not isinstance(exc, TransformError) else first or name
    cause = os_cause(exc) or (root_cause(exc) if "FAILED_READ_FILE" in first else None)
    suffix = f" (cause: {cause})" if cause and cause not in line else ""
    if len(line) + len(suffix) <= 400:
        return line + suffix
    return line[:397 - len(suffix)] + "..." + suffix


# Operating-system errors that a JVM error's top line hides ("[TASK_WRITE_FAILED] Task failed while writing
# rows to ...") and that tell the operator what to do: found in the cause chain, they are added to the line.
OS_CAUSES = ("No space left on device", "Disk quota exceeded", "Read-only file system", "Permission denied",
             "Too many open files")


def os_cause(exc: BaseException) -> str | None:
    """The first of OS_CAUSES named by ``exc`` or its causes (Python's chain, and PySpark's converted JVM causes
    in ``_cause``, whose text is ``_desc``), else None."""
    todo: list[Any] = [exc]
    seen: set[int] = set()
    while todo:
        err = todo.pop(0)
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        desc = getattr(err, "_desc", None)
        try:
            text = desc if isinstance(desc, str) else str(err)
        except Exception:  # noqa: BLE001 - a py4j error's text asks the JVM, which may be gone
            text = ""
        found = next((c for c in OS_CAUSES if c in text), None)
        if found:
            return found
        todo += [getattr(err, "_cause", None), err.__cause__, err.__context__]
    return None


def root_cause(exc: BaseException) -> str | None:
    """The innermost Java cause of a Spark error (``ChecksumException: Checksum error: ...``): for errors whose
    own line only names the file ("Encountered error while reading file ..."), the reason is down there."""
    try:
        err = getattr(exc, "_origin", None) or getattr(exc, "java_exception", None)
        for _ in range(50):
            if err is None or err.getCause() is None:
                break
            err = err.getCause()
        if err is None:
            return None
        message = str(err.getMessage() or "").strip().splitlines()
        return f"{err.getClass().getSimpleName()}: {message[0] if message else ''}".rstrip(": ")
    except Exception:  # noqa: BLE001 - asks the JVM, which may be gone
        return None
