"""Ctrl-C and SIGTERM are held back while a step publishes its outputs, then handled as before."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engine.deferred_signals import signals_deferred


def test_ctrl_c_inside_the_block_is_raised_once_the_block_ends() -> None:
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # (a SparkContext installs its own)
    done = []
    try:
        with pytest.raises(KeyboardInterrupt), signals_deferred():
            signal.raise_signal(signal.SIGINT)
            done.append("first")
            signal.raise_signal(signal.SIGINT)
            done.append("second")
        assert done == ["first", "second"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_sigterm_goes_to_the_handler_that_was_installed_and_the_handlers_come_back() -> None:
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with signals_deferred():
            signal.raise_signal(signal.SIGTERM)
            assert seen == []
        assert seen == [signal.SIGTERM]
        with signals_deferred():
            pass
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_signal_whose_default_ends_the_process_ends_it_after_the_block() -> None:
    script = """
import signal, sys
from engine.deferred_signals import signals_deferred
signal.signal(signal.SIGTERM, signal.SIG_DFL)
with signals_deferred():
    signal.raise_signal(signal.SIGTERM)
    print("finished the block", flush=True)
print("after the block", flush=True)
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGTERM
    assert proc.stdout == "finished the block\n"


def test_outside_the_main_thread_nothing_is_changed() -> None:
    handlers = []
    before = signal.getsignal(signal.SIGINT)

    def body() -> None:
        with signals_deferred():
            handlers.append(signal.getsignal(signal.SIGINT))

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert handlers == [before]
