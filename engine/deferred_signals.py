"""Ctrl-C and SIGTERM held back while a step publishes its outputs, then delivered.

A step's outputs are published by a few renames (or manifest writes) in a row (Storage.commit_all). An
interrupt between two of them would publish new trades beside old quotes; held back for those milliseconds,
it stops the run right after, with every output of the step in place.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

HELD = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def signals_deferred(signums: tuple[signal.Signals, ...] = HELD) -> Iterator[None]:
    """Within the block, the signals are recorded instead of handled; the first one recorded is handled as
    before (KeyboardInterrupt, the CLI's Terminated, the default action) once the block ends. Only the main
    thread receives signals: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[tuple[int, Any]] = []
    previous = {s: signal.getsignal(s) for s in signums}

    def hold(signum: int, frame: Any) -> None:
        received.append((signum, frame))

    for s in signums:
        signal.signal(s, hold)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if received:
            signum, frame = received[0]
            handler = previous[signal.Signals(signum)]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)
