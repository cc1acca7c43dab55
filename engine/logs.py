"""Logging for one run: a detailed log file, a terse console, and secrets masked everywhere.

Every handler installed here carries a SecretFilter, so a password that reaches a log message or an
exception's text (e.g. a connection string in a driver error) is replaced by ``***`` before it is written.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

PRODUCT_LOGGER = "tickflow"
MASK = "***"
# our own code logs in full detail to the file
DETAILED_LOGGERS = (PRODUCT_LOGGER, "engine", "transforms", "datagen")
# libraries whose INFO/DEBUG chatter drowns a run's log
NOISY_LOGGERS = ("py4j", "pyspark", "azure", "urllib3", "matplotlib", "PIL", "asyncio", "filelock")
FILE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(threadName)s] %(message)s"
CONSOLE_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"

_MARK = "_tickflow_handler"
# set by a live progress bar so console log lines do not collide with the bar being redrawn
_console_hooks: dict[str, Callable[[], None] | None] = {"before": None, "after": None}
# Log records marked with this attribute (extra={STEP_EVENT: True}) announce a step starting or finishing. While
# a progress display prints its own line for each such event, the console leaves them out (the file keeps them).
STEP_EVENT = "tickflow_step_event"
# a record with this attribute set goes to the log file only (what the console already showed another way)
FILE_ONLY = "tickflow_file_only"
_progress_shows_steps = {"on": False}
_console_muted: dict[str, frozenset[str]] = {"names": frozenset()}  # see mute_console


# How a secret's characters may be written by what we use: percent-encoded (quote with or without '/' safe,
# upper- or lower-case hex, '+' for a space), JSON-escaped, HTML/XML-escaped (markupsafe: &#34; &#39;,
# html.escape: &quot; &#x27;, SVG writers: &apos;) and escaped for HTML-safe JSON (\u0026).
_HTML_STYLES = (
    str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;"}),
    str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"}),
    str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}),
)
_HTML_SPECIAL = frozenset("&<>\"'")
# Where a text was shortened (error_lines.essential_line, the tracker's message column, console table cells): a
# secret cut there leaves a prefix the whole-secret match misses. Prefixes this long are masked.
CUT_MARKS = ("...", "…")
MIN_CUT_PREFIX = 4


def _char_forms(char: str) -> tuple[str, ...]:
    """Every way one character of a secret may be written, longest first."""
    forms = {char, json.dumps(char)[1:-1], json.dumps(char, ensure_ascii=False)[1:-1]}
    encoded = quote(char, safe="")
    if encoded != char:
        forms |= {encoded, encoded.lower()}
    if char == " ":
        forms.add("+")
    if char in _HTML_SPECIAL:
        forms.add(f"\\u{ord(char):04x}")
    for form in list(forms):
        if _HTML_SPECIAL & set(form):
            forms |= {form.translate(style) for style in _HTML_STYLES}
    return tuple(sorted(forms, key=lambda f: (-len(f), f)))


def _pattern(atoms: list[tuple[str, ...]]) -> str:
    return "".join(re.escape(forms[0]) if len(forms) == 1 else f"(?:{'|'.join(map(re.escape, forms))})"
                   for forms in atoms)


def _cut_prefix_end(text: str, start: int, atoms: list[tuple[str, ...]]) -> int | None:
    """Where a proper prefix of the secret (at least MIN_CUT_PREFIX characters) starting at ``start`` ends right
    before a cut mark, else None."""
    positions, end = {start}, None
    for count, forms in enumerate(atoms[:-1], start=1):
        positions = {p + len(f) for p in positions for f in forms if text.startswith(f, p)}
        if not positions:
            break
        if count >= MIN_CUT_PREFIX:
            end = max((p for p in positions if text.startswith(CUT_MARKS, p)), default=end)
    return end


class SecretMasker:
    """Replaces every configured secret in a text, in any form we may write it (raw, URL-encoded, JSON- or
    HTML-escaped), and a secret's prefix left where a text was cut short ("...")."""

    def __init__(self, secrets: Iterable[str] = ()):
        # a value read from a wrapped INI line keeps its leading newline; what reaches a message does not
        unique = {s.strip() for s in secrets if isinstance(s, str) and s.strip()}
        self._secrets = [[_char_forms(c) for c in s] for s in sorted(unique, key=len, reverse=True)]
        patterns = [_pattern(atoms) for atoms in self._secrets]  # longest first: no partial leftovers
        self._pattern = re.compile("|".join(patterns)) if patterns else None
        self._heads = [(re.compile(f"(?={_pattern(atoms[:MIN_CUT_PREFIX])})"), atoms)
                       for atoms in self._secrets if len(atoms) > MIN_CUT_PREFIX]

    def mask(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._mask_cut_prefixes(self._pattern.sub(MASK, text))

    def _mask_cut_prefixes(self, text: str) -> str:
        if not any(mark in text for mark in CUT_MARKS):
            return text
        spans = [(m.start(), end) for head, atoms in self._heads for m in head.finditer(text)
                 if (end := _cut_prefix_end(text, m.start(), atoms)) is not None]
        out, done = [], 0
        for start, end in sorted(spans):
            if start >= done:
                out += [text[done:start], MASK]
            done = max(done, end)
        return "".join(out) + text[done:]

    def __bool__(self) -> bool:
        return self._pattern is not None


class SecretFilter(logging.Filter):
    """Masks secrets in the formatted message, the exception text and the stack info of each record."""

    def __init__(self, masker: SecretMasker):
        super().__init__()
        self.masker = masker

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.masker:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = self.masker.mask(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.masker.mask(record.exc_text)
            # formatters re-render exc_info only when exc_text is empty, so the masked text is what is written
        if record.stack_info:
            record.stack_info = self.masker.mask(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for schedulers and log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


class ConsoleHandler(logging.StreamHandler):
    """A stream handler that lets a live progress bar step aside while a line is written."""

    def emit(self, record: logging.LogRecord) -> None:
        if (_progress_shows_steps["on"] and getattr(record, STEP_EVENT, False)
                and record.levelno < logging.WARNING):
            return
        if getattr(record, FILE_ONLY, False) or any(record.name == n or record.name.startswith(n + ".")
                                                    for n in _console_muted["names"]):
            return
        before, after = _console_hooks["before"], _console_hooks["after"]
        if before:
            before()
        try:
            super().emit(record)
        finally:
            if after:
                after()


def mute_console(*names: str) -> None:
    """From now on the records of these loggers (and their children) go to the log file only.

    For what a run that has stopped still hears: the JVM's errors about the jobs an interrupt cancelled, and
    whatever it says while it shuts down after the run's last line. Expected, not news; the file keeps them.
    The next setup_logging unmutes.
    """
    _console_muted["names"] = _console_muted["names"] | frozenset(names)


def set_console_hooks(before: Callable[[], None] | None, after: Callable[[], None] | None) -> None:
    """Called by engine.progress: ``before`` clears the bar line, ``after`` redraws it."""
    _console_hooks["before"], _console_hooks["after"] = before, after


def set_progress_shows_steps(on: bool) -> None:
    """Called by engine.progress while it prints a line for every step start and finish."""
    _progress_shows_steps["on"] = on


def _safe_name(run_name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", run_name).strip("._")
    return name or "run"


def _remove_previous(root: logging.Logger) -> None:
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
            handler.close()


class LibraryRootFilter(logging.Filter):
    """py4j logs through the root logger (``logging.info(...)``, ``logging.exception(...)``), so it cannot be
    quietened by name: its records (a full traceback for each call to a JVM that has gone away) stay out of the
    console, and the file keeps them. What such a call means for the run is reported by the run itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "root" and f"{os.sep}py4j{os.sep}" in record.pathname)


def setup_logging(log_dir: Path, run_name: str, *, quiet: bool, fmt: str = "text", secrets: list[str],
                  stream: IO[str] | None = None) -> Path:
    """Install the run's handlers on the root logger and return the log file's path.

    File: DEBUG and up from tickflow's own loggers, INFO from others, WARNING from Spark/py4j and other noisy
    libraries. Console (stderr by default): INFO, or WARNING when ``quiet``; JSON lines when ``fmt == 'json'``.
    Calling it again (next date of a backfill) replaces the previous run's handlers.
    """
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', got {fmt!r}")
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{_safe_name(run_name)}.log"
    masker = SecretMasker(secrets)

    root = logging.getLogger()
    _remove_previous(root)
    _console_muted["names"] = frozenset()
    root.setLevel(logging.INFO)
    for name in DETAILED_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)

    file_handler = logging.FileHandler(log_file, encoding="utf-8")
    file_handler.setLevel(logging.DEBUG)
    file_handler.setFormatter(logging.Formatter(FILE_FORMAT))
    console = ConsoleHandler(stream if stream is not None else sys.stderr)
    console.setLevel(logging.WARNING if quiet else logging.INFO)
    console.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(CONSOLE_FORMAT, "%H:%M:%S"))
    console.addFilter(LibraryRootFilter())
    for handler in (file_handler, console):
        handler.addFilter(SecretFilter(masker))
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    logging.captureWarnings(True)
    logging.getLogger(PRODUCT_LOGGER).debug("logging to %s", log_file)
    return log_file


def close_logging() -> None:
    """Flush and remove the handlers installed by setup_logging (end of a run, tests).

    A NullHandler stays: a library calling ``logging.info(...)`` on a root logger without handlers (py4j does,
    with a traceback, when Spark is stopped after its JVM ended) would install a console handler of its own.
    """
    root = logging.getLogger()
    _remove_previous(root)
    if not root.handlers:
        root.addHandler(logging.NullHandler())
