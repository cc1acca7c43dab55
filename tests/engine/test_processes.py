"""engine/processes.py: which holders this host can judge alive or gone (locks, staging folders)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from engine.processes import alive_here, gone_here


def ended_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a real process of this host that has ended (its pid is not reused this quickly)
    return child.pid


def test_alive_here_is_a_running_process_of_this_host() -> None:
    here = socket.gethostname()
    assert alive_here(here, os.getpid()) and not gone_here(here, os.getpid())
    dead = ended_pid()
    assert not alive_here(here, dead) and gone_here(here, dead)


def test_a_holder_this_host_cannot_judge_is_neither_alive_nor_gone() -> None:
    here = socket.gethostname()
    for host, pid in (("another-host", os.getpid()), (None, os.getpid()), ("", os.getpid()), (here, None),
                      (here, 0), (here, -1)):  # kill(0 or -1, 0) would ask about a group, not a process
        assert not alive_here(host, pid) and not gone_here(host, pid), (host, pid)
