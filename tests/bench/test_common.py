from __future__ import annotations

import subprocess
import sys

from bench import common


def test_tree_rss_counts_a_child_with_memory_of_its_own() -> None:
    # the child holds 300 MB it has written to, then waits for its stdin to close
    code = "import sys; b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); print(1, flush=True); " \
           "sys.stdin.read()"
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline().strip() == b"1"
        assert common.tree_rss(child.pid) >= 300 * 2**20
    finally:
        child.stdin.close()
        child.wait()


def test_tree_rss_counts_a_child_showing_its_parents_exact_figures_once(monkeypatch) -> None:
    # a vfork child before exec shows its parent's statm: the same memory, counted once
    figures = {1: (500, 400, 10), 2: (500, 400, 10), 3: (50, 30, 5)}
    parents = {1: 0, 2: 1, 3: 1}
    monkeypatch.setattr(common, "_parents", lambda: parents)
    monkeypatch.setattr(common, "_statm", lambda pid: figures.get(pid))
    assert common.tree_rss(1) == (400 + 30) * common.PAGE
