"""A stand-in for run_pipeline.py in process tests: config file -> tracker -> JobGuard -> side effect.

Exit codes are the engine's (0 ok or already done, 2 tracker error, 3 upstream, 4 running); 143 on SIGTERM.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from engine.config import load_config  # noqa: E402
from engine.errors import TickflowError  # noqa: E402
from engine.tracker import JobGuard, Terminated, open_tracker  # noqa: E402


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True)
    p.add_argument("--pipeline", required=True)
    p.add_argument("--date", required=True, type=dt.date.fromisoformat)
    p.add_argument("--requires", nargs="*", default=[])
    p.add_argument("--out", help="append one line (our pid) here when we run")
    p.add_argument("--ready", help="create this file once the lock is ours")
    p.add_argument("--hold-until", help="keep the lock until this file exists")
    p.add_argument("--start-at", type=float, default=0.0, help="epoch time to start at (a start barrier)")
    p.add_argument("--wait-for-upstream", type=float, default=0.0)
    p.add_argument("--force", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    log = logging.getLogger("driver")
    config = load_config(args.config)
    while time.time() < args.start_at:
        time.sleep(0.005)
    try:
        tracker = open_tracker(config)
        with JobGuard(tracker, args.pipeline, args.date, args.requires, force=args.force,
                      wait_for_upstream=args.wait_for_upstream, lease_seconds=config.tracker.lease_seconds,
                      log=log) as guard:
            if guard.already_succeeded:
                return 0
            if args.out:
                with open(args.out, "a") as fh:
                    fh.write(f"{os.getpid()}\n")
            if args.ready:
                Path(args.ready).touch()
            while args.hold_until and not Path(args.hold_until).exists():
                time.sleep(0.02)
        return 0
    except TickflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Terminated:
        return 143


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
