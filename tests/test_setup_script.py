"""scripts/setup.sh installs only what is missing: its install stamps, checked in a scratch checkout.

The script runs for real (bash) in a temporary directory holding a copy of it and of pyproject.toml, with a
stand-in ``.venv`` whose ``python`` and ``pip`` only record how they were called, and stand-ins for ``java``
and ``chromium`` first on PATH (so nothing is installed from apt) and for Azurite under ``node_modules`` (so
nothing from npm). No network; the real ``.venv`` is not touched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RECORDER = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "{log}"
{extra}
exit 0
"""


def _executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A scratch checkout: setup.sh and pyproject.toml, a recording .venv, stand-ins for what the script would
    otherwise install (Java, Chromium from apt; Azurite from npm)."""
    (tmp_path / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    log = tmp_path / "calls.log"
    # the last line of setup.sh prints pyspark's version through the venv's python
    _executable(tmp_path / ".venv" / "bin" / "python",
                RECORDER.format(log=log, extra='[[ "$*" == *"import pyspark"* ]] && echo "pyspark 0.0-stand-in"'))
    _executable(tmp_path / ".venv" / "bin" / "pip", RECORDER.format(log=log, extra=""))
    for tool in ("java", "chromium", "apt-get", "npm", "sudo"):
        _executable(tmp_path / "stand-ins" / tool, RECORDER.format(log=log, extra=""))
    _executable(tmp_path / "node_modules" / ".bin" / "azurite-blob", "#!/bin/sh\n")
    return tmp_path


def stamp(checkout: Path, dev: int) -> Path:
    digest = hashlib.sha1((checkout / "pyproject.toml").read_bytes()).hexdigest()[:12]
    return checkout / ".venv" / f".tickflow-installed-{dev}-{digest}"


def setup(checkout: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the copied setup.sh; its output and the stand-ins' calls, one line each."""
    env = {**os.environ, "PATH": f"{checkout / 'stand-ins'}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    out = subprocess.run(["bash", str(checkout / "scripts" / "setup.sh"), *args], capture_output=True, text=True,
                         env=env, cwd=checkout, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    log = checkout / "calls.log"
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return out, calls


def pip_calls(calls: list[str]) -> list[str]:
    return [c for c in calls if c.startswith("pip ") or c.startswith("python -m pip")]


def test_a_plain_setup_after_a_dev_setup_installs_nothing(checkout: Path) -> None:
    """./demo.sh (plain) on a machine where ./run_tests.sh (--dev) already installed everything."""
    stamp(checkout, 1).touch()
    out, calls = setup(checkout)
    assert pip_calls(calls) == [], calls
    assert "installing Python packages" not in out.stdout
    assert out.stdout.rstrip().endswith("setup: ready (pyspark 0.0-stand-in)")
    assert not stamp(checkout, 0).exists()


def test_a_dev_setup_after_a_plain_setup_installs_the_dev_extras(checkout: Path) -> None:
    stamp(checkout, 0).touch()
    out, calls = setup(checkout, "--dev")
    assert pip_calls(calls) == ["python -m pip install -q --upgrade pip", "pip install -q -e .[dev]"], calls
    assert stamp(checkout, 1).exists()
    _, calls = setup(checkout, "--dev")  # and only once
    assert pip_calls(calls) == []


def test_a_fresh_or_changed_checkout_installs(checkout: Path) -> None:
    out, calls = setup(checkout)
    assert pip_calls(calls) == ["python -m pip install -q --upgrade pip", "pip install -q -e ."], calls
    assert "installing Python packages" in out.stdout and stamp(checkout, 0).exists()
    assert not any(c.split()[0] in ("apt-get", "npm", "sudo") for c in calls), calls
    # a dev stamp of another pyproject.toml (dependencies changed since) does not count
    stamp(checkout, 0).unlink()
    stamp(checkout, 1).touch()
    with (checkout / "pyproject.toml").open("a") as fh:
        fh.write("\n# changed\n")
    _, calls = setup(checkout)
    assert pip_calls(calls) == ["python -m pip install -q --upgrade pip", "pip install -q -e ."], calls
