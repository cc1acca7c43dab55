#!/usr/bin/env python3
"""tickflow CLI: run, validate, plan and inspect YAML pipelines. See `run_pipeline.py --help`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

from engine.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
