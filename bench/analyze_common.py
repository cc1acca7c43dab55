"""Benchmark helpers: run a command while sampling the peak RSS of its whole process tree (via /proc).

Kept separate from any other benchmark's helpers so bench_analyze.py has no dependency on them.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class RunResult:
    returncode: int
    wall_s: float
    peak_rss_bytes: int
    output_tail: str


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_rss(root_pid: int) -> int:
    """Sum of resident memory of a process and all its descendants, in bytes."""
    tree, todo, total = _children(), [root_pid], 0
    while todo:
        pid = todo.pop()
        todo.extend(tree.get(pid, []))
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
    return total


def run_measured(cmd: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None,
                 interval_s: float = 0.2) -> RunResult:
    """Run ``cmd`` to completion; wall time and the peak summed RSS of its process tree."""
    start = time.monotonic()
    proc = subprocess.Popen(list(cmd), env=dict(env) if env else None, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss(proc.pid))
            stop.wait(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    stop.set()
    sampler.join()
    return RunResult(proc.returncode, time.monotonic() - start, peak, out[-4000:])
