"""What a command prints for its user: secrets masked, and a reader that went away ends the output quietly.

Command results (summaries, plans, validation problems, tables) can quote values a spec or an error carried,
so they pass the same masking as the logs. ``run_pipeline.py status | head -1`` closes the pipe early; the
command still finishes (a run's outcome and exit code do not depend on who reads its summary), its further
output is dropped, and Python's exit does not print a BrokenPipeError.
"""

from __future__ import annotations

import os
from typing import TextIO

from engine.logs import SecretMasker


class ConsoleOut:
    """A text stream wrapper: masks each write, drops everything once the reader has gone."""

    def __init__(self, stream: TextIO, masker: SecretMasker | None = None):
        self._stream = stream
        self._masker = masker or SecretMasker()
        self.reader_gone = False

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                self._stream.write(self._masker.mask(text))
            except BrokenPipeError:
                self._reader_left()
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._reader_left()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def _reader_left(self) -> None:
        self.reader_gone = True
        try:  # the interpreter flushes stdout at exit: point its descriptor at /dev/null so that flush is silent
            fd = self._stream.fileno()
        except (AttributeError, OSError, ValueError):
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)


def clip(text: str, width: int = 80) -> str:
    """The first line of ``text`` in at most ``width`` characters, with '…' where it was cut (table columns)."""
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= width else line[:width - 1] + "…"
