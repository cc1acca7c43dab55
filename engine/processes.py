"""Whether a process of this host still runs: the one fact behind 'abandoned' staging folders and locks."""

from __future__ import annotations

import os
import socket


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists on this host (also when it belongs to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _here(host: str | None, pid: int | None) -> bool:
    """A holder this machine can judge: named by this host's name, with a real pid (0 and below are groups)."""
    return bool(host) and host == socket.gethostname() and pid is not None and int(pid) > 0


def gone_here(host: str | None, pid: int | None) -> bool:
    """True when ``host`` is this machine and process ``pid`` no longer runs on it (another host: unknown)."""
    return _here(host, pid) and not pid_alive(int(pid))  # type: ignore[arg-type]


def alive_here(host: str | None, pid: int | None) -> bool:
    """True when ``host`` is this machine and process ``pid`` still runs on it: a lock it holds belongs to a
    working run (or to whatever reused its pid), so clearing it lets a second run start beside it. Another
    host: False (unknown)."""
    return _here(host, pid) and pid_alive(int(pid))  # type: ignore[arg-type]


def descendants(pid: int | None = None) -> set[int]:
    """The processes below ``pid`` (default: this one), from /proc; empty where /proc is not there."""
    root = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return set()
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue  # ended meanwhile
        parent = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def kill_new_descendants(before: set[int]) -> None:
    """SIGKILL every process below this one that is not in ``before`` (what a start that failed left running)."""
    import signal

    for pid in descendants() - before:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
