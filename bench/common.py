"""Benchmark helpers: run a command and sample the peak RSS of its whole process tree (JVM included).

``/usr/bin/time`` reports only the largest single process it waited for, and misses a JVM that Python
starts; summing the RSS of every process of the tree at each sample is what the machine actually holds.
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
class Measured:
    returncode: int
    wall_s: float
    peak_rss_bytes: int
    output_tail: str


def _parents() -> dict[int, int]:
    """Every process's parent, from /proc/<pid>/stat."""
    out: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        out[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
    return out


def _tree(root: int, parents: dict[int, int]) -> list[int]:
    """``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _statm(pid: int) -> tuple[int, ...] | None:
    try:
        return tuple(int(v) for v in Path(f"/proc/{pid}/statm").read_text().split())
    except (OSError, ValueError):
        return None


def tree_rss(root: int) -> int:
    """Summed RSS of the tree, each memory counted once.

    The JVM starts helpers (Hadoop's local file system runs ``chmod``) through vfork: until the child execs, it
    runs in its parent's memory and /proc shows it with the parent's exact figures. Such a child is skipped, so
    that a sample taken in that instant does not count the JVM twice.
    """
    parents = _parents()
    total = 0
    for pid in _tree(root, parents):
        statm = _statm(pid)
        if statm is None or len(statm) < 2:
            continue
        if statm == _statm(parents.get(pid, -1)):
            continue
        total += statm[1] * PAGE
    return total


def run_measured(cmd: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None,
                 interval: float = 0.2) -> Measured:
    """Run ``cmd`` to completion; wall seconds and the peak summed RSS of its process tree."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(cmd), env=dict(env) if env is not None else None, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(proc.pid))
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = proc.communicate()
    done.set()
    sampler.join()
    return Measured(proc.returncode, time.perf_counter() - start, peak, output[-3000:])


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0
