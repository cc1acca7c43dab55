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


def gone_here(host: str | None, pid: int | None) -> bool:
    """True when ``host`` is this machine and process ``pid`` no longer runs on it (another host: unknown)."""
    return bool(host) and host == socket.gethostname() and pid is not None and not pid_alive(int(pid))
