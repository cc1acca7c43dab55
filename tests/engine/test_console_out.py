"""What commands print: masked, ended quietly when the reader goes away, table cells clipped visibly."""

from __future__ import annotations

import io

from engine.console_out import ConsoleOut, clip
from engine.logs import SecretMasker


class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_writes_are_masked():
    sink = io.StringIO()
    out = ConsoleOut(sink, SecretMasker(["hunter2"]))
    print("password hunter2 in a message", file=out)
    assert sink.getvalue() == "password *** in a message\n"


def test_a_reader_that_went_away_drops_the_rest_without_raising():
    out = ConsoleOut(_ClosedPipe())
    print("first line", file=out)
    print("second line", file=out)
    out.flush()
    assert out.reader_gone


def test_clip_keeps_the_first_line_and_marks_a_cut():
    assert clip("short\nsecond line") == "short"
    assert clip("x" * 80) == "x" * 80
    assert clip("x" * 81) == "x" * 79 + "…" and len(clip("y" * 200)) == 80
    assert clip("") == ""
