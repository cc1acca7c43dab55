"""Run logging: file detail levels, console levels and formats, secrets masked everywhere."""

from __future__ import annotations

import html
import io
import json
import logging
import re
from urllib.parse import quote, quote_plus

import markupsafe
import pytest

from engine.logs import MASK, SecretMasker, close_logging, setup_logging

SECRET = "s3cr3t+Key/with=chars"



def _flush() -> None:
    """What the handlers hold reaches the file and the console stream before a test reads them."""
    for h in logging.getLogger().handlers:
        h.flush()

@pytest.fixture
def console():
    stream = io.StringIO()
    yield stream
    close_logging()


def test_masker_covers_plain_url_and_json_forms():
    m = SecretMasker([SECRET, "", "  "])
    text = f"a {SECRET} b s3cr3t%2BKey%2Fwith%3Dchars c"
    assert m.mask(text) == f"a {MASK} b {MASK} c"
    assert not SecretMasker([])
    assert SecretMasker([]).mask("x") == "x"


# a SAS token holds '&'; a password may hold any of the characters HTML escapes
SAS = "sv=2022-11-02&ss=b&srt=co&sig=Ab<c>d\"e'f/g%2F=="


@pytest.mark.parametrize("shown", [
    SAS, html.escape(SAS), html.escape(SAS, quote=False), str(markupsafe.escape(SAS)),
    SAS.replace("'", "&apos;").replace("&s", "&amp;s"),  # an SVG writer's escape, mixed with unescaped quotes
    json.dumps(SAS)[1:-1], quote(SAS, safe=""), quote(SAS), quote_plus(SAS),
    re.sub("%..", lambda m: m[0].lower(), quote(SAS, safe="")),
])
def test_masker_covers_escaped_and_encoded_forms(shown):
    """A report escapes what it shows (&amp; &#39; or &#x27; &quot;); links carry it URL-encoded, with or
    without '/' kept and in either case of hex."""
    assert SecretMasker([SAS]).mask(f"a {shown} b") == f"a {MASK} b"


def test_masker_finds_a_secret_read_with_a_leading_newline():
    """``password =`` with the value on the next (indented) line reads as '\\nvalue'; messages hold 'value'."""
    assert SecretMasker(["\n  hunter2pw"]).mask("login hunter2pw failed") == f"login {MASK} failed"


def test_a_secret_cut_short_leaves_no_prefix_of_it():
    """A long error is cut to one line of 400 characters before it is masked: a password straddling the cut
    must not leave its first characters, wherever the text was cut ('...', or a table cell's '…')."""
    from engine.error_lines import essential_line

    password = "Hunter2Secret!"
    for kept in (4, 9, 13):
        line = essential_line(RuntimeError("x" * (397 - len("RuntimeError: ") - kept) + password + " and more"))
        assert line.endswith(password[:kept] + "...")
        assert SecretMasker([password]).mask(line).endswith(f"x{MASK}..."), kept
    masker = SecretMasker([password, SAS])
    assert masker.mask("login Hunt… failed") == f"login {MASK}… failed"
    assert masker.mask(f"url {html.escape(SAS[:20])}... b") == f"url {MASK}... b"
    assert masker.mask("Hun... and a Hunter2 sentence...") == "Hun... and a Hunter2 sentence..."  # short, or not cut


def test_file_gets_detail_console_gets_info(tmp_path, console):
    path = setup_logging(tmp_path / "logs", "analyze 2020-08-06/run:1", quiet=False, fmt="text", secrets=[],
                         stream=console)
    assert path.parent == tmp_path / "logs" and path.name == "analyze_2020-08-06_run_1.log"
    logging.getLogger("tickflow.runner").debug("debug detail")
    logging.getLogger("tickflow.runner").info("step started")
    logging.getLogger("py4j.clientserver").info("py4j chatter")
    logging.getLogger("py4j.clientserver").warning("py4j trouble")
    _flush()
    text = path.read_text()
    assert "debug detail" in text and "step started" in text and "py4j trouble" in text
    assert "py4j chatter" not in text
    assert "step started" in console.getvalue() and "debug detail" not in console.getvalue()


def test_quiet_console_shows_warnings_only(tmp_path, console):
    setup_logging(tmp_path, "r", quiet=True, fmt="text", secrets=[], stream=console)
    logging.getLogger("tickflow").info("hello")
    logging.getLogger("tickflow").warning("careful")
    assert "hello" not in console.getvalue() and "careful" in console.getvalue()


def test_json_console_lines(tmp_path, console):
    setup_logging(tmp_path, "r", quiet=False, fmt="json", secrets=[SECRET], stream=console)
    logging.getLogger("tickflow.x").info("rows=%d key=%s", 5, SECRET)
    [line] = console.getvalue().splitlines()
    obj = json.loads(line)
    assert obj["level"] == "INFO" and obj["logger"] == "tickflow.x" and obj["message"] == f"rows=5 key={MASK}"


def test_secrets_masked_in_messages_args_and_exception_text(tmp_path, console):
    path = setup_logging(tmp_path, "r", quiet=False, fmt="text", secrets=[SECRET, "pgpass"], stream=console)
    log = logging.getLogger("tickflow.tracker")
    log.info("connecting with password=%s", "pgpass")
    log.error("connection string AccountKey=" + SECRET)
    try:
        raise RuntimeError(f"auth failed for key {SECRET} (password pgpass)")
    except RuntimeError:
        log.exception("could not open the tracker")
    # a library logger outside tickflow is masked too
    logging.getLogger("azure.core").error("url ...?sig=%s", "s3cr3t%2BKey%2Fwith%3Dchars")
    _flush()
    for text in (path.read_text(), console.getvalue()):
        assert SECRET not in text and "pgpass" not in text and "s3cr3t%2B" not in text
        assert "RuntimeError: auth failed for key ***" in text  # the traceback is still there, masked
        assert text.count(MASK) >= 5


def test_second_setup_replaces_handlers(tmp_path, console):
    first = setup_logging(tmp_path, "one", quiet=False, fmt="text", secrets=[], stream=console)
    second = setup_logging(tmp_path, "two", quiet=False, fmt="text", secrets=[], stream=console)
    logging.getLogger("tickflow").info("only in two")
    _flush()
    assert "only in two" in second.read_text() and "only in two" not in first.read_text()
    assert console.getvalue().count("only in two") == 1


def test_bad_format_rejected(tmp_path):
    with pytest.raises(ValueError, match="log format"):
        setup_logging(tmp_path, "r", quiet=False, fmt="xml", secrets=[])


@pytest.mark.parametrize("mode, on_console", [("lines", False), ("json", False), ("quiet", True)])
def test_step_lines_appear_once_on_the_console(tmp_path, console, mode, on_console):
    """A progress display prints its own line per step event: the console log leaves those out, the file not."""
    from engine.logs import STEP_EVENT
    from engine.progress import Progress

    path = setup_logging(tmp_path, "r", quiet=False, fmt="text", secrets=[], stream=console)
    progress = Progress(1, io.StringIO(), mode=mode, interval_s=60)
    progress.start()
    log = logging.getLogger("tickflow.runner")
    log.info("step load: done in 1.0s", extra={STEP_EVENT: True})
    log.info("other news")
    log.error("step load failed", extra={STEP_EVENT: True})  # warnings and errors always reach the console
    progress.stop()
    log.info("step after: done in 2.0s", extra={STEP_EVENT: True})
    shown = console.getvalue()
    assert ("step load: done" in shown) is on_console
    assert "other news" in shown and "step after: done" in shown and "step load failed" in shown
    _flush()
    assert "step load: done" in path.read_text()


def test_py4j_chatter_through_the_root_logger_stays_off_the_console(tmp_path):
    """py4j logs a traceback with logging.info() on the root logger for each call to a JVM that has ended."""
    import io
    import os

    from engine.logs import close_logging, setup_logging

    stream = io.StringIO()
    setup_logging(tmp_path, "run", quiet=False, secrets=[], stream=stream)
    try:
        py4j_file = f"{os.sep}venv{os.sep}py4j{os.sep}java_gateway.py"
        for level, text in ((logging.INFO, "Exception while sending command."), (logging.ERROR, "py4j errs")):
            record = logging.LogRecord("root", level, py4j_file, 1, text, None, None)
            logging.getLogger().handle(record)
        logging.getLogger().info("our own root-level line")
    finally:
        close_logging()
    console = stream.getvalue()
    assert "Exception while sending command." not in console
    assert "py4j errs" not in console and "our own root-level line" in console
    assert "Exception while sending command." in (tmp_path / "run.log").read_text()  # the file keeps it
    # after the run, logging.info() on a root logger without handlers would install a console handler
    import subprocess
    import sys

    code = ("import logging, sys; from engine.logs import setup_logging, close_logging; "
            f"setup_logging({str(tmp_path)!r}, 'again', quiet=False, secrets=[], stream=sys.stdout); "
            "close_logging(); logging.info('after the run')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "after the run" not in done.stdout + done.stderr, done.stderr


def test_muted_loggers_reach_the_file_only_until_the_next_run(tmp_path, console):
    from engine.logs import mute_console

    path = setup_logging(tmp_path / "logs", "one", quiet=False, fmt="text", secrets=[], stream=console)
    mute_console("spark")
    logging.getLogger("spark").error("spark FileFormatWriter: Aborting job 7")
    logging.getLogger("spark.child").error("a child of spark")
    logging.getLogger("sparkling").error("another logger")
    logging.getLogger("tickflow.runner").warning("step x failed: cancelled")
    _flush()
    shown = console.getvalue()
    assert "Aborting job 7" not in shown and "a child of spark" not in shown
    assert "another logger" in shown and "cancelled" in shown
    kept = path.read_text()
    assert "Aborting job 7" in kept and "a child of spark" in kept
    setup_logging(tmp_path / "logs", "two", quiet=False, fmt="text", secrets=[], stream=console)
    logging.getLogger("spark").error("the next run's spark error")
    assert "the next run's spark error" in console.getvalue()


def test_a_python_workers_error_is_named_not_cut_at_its_colon() -> None:
    """A UDF's failure read "PythonException: An exception was thrown from the Python worker:" and no more."""
    from engine.error_lines import essential_line

    class PythonException(Exception):
        pass

    text = ("\n  An exception was thrown from the Python worker. Please see the stack trace below.\n"
            "Traceback (most recent call last):\n  File \"/x/worker.py\", line 1, in main\n"
            "    import pyarrow\nModuleNotFoundError: No module named 'pyarrow'\n\nJVM stacktrace:\n"
            "org.apache.spark.api.python.PythonException: Traceback\n\tat org.apache.X(X.scala:1)\n")
    assert essential_line(PythonException(text)) == (
        "PythonException: An exception was thrown from the Python worker. Please see the stack trace below: "
        "ModuleNotFoundError: No module named 'pyarrow'")
