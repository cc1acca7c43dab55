#!/usr/bin/env python3
"""tickflow CLI: run, validate, plan and inspect YAML pipelines. See `run_pipeline.py --help`."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _continue_in_checkout_venv() -> None:
    """``python run_pipeline.py`` from an interpreter without the dependencies goes on in the checkout's .venv
    (where ``scripts/setup.sh`` installed them), as the wrappers do, instead of failing on every import."""
    venv = HERE / ".venv"
    python = venv / "bin" / "python"
    if importlib.util.find_spec("pyspark") is not None or not python.exists():
        return
    if Path(sys.prefix).resolve() == venv.resolve():
        return  # already there: let the import error speak
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


if __name__ == "__main__":
    _continue_in_checkout_venv()

sys.path.insert(0, str(HERE))
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

from engine.cli import leave, main  # noqa: E402

if __name__ == "__main__":
    leave(main())
