"""Real processes against both backends: races, SIGKILL and lease takeover, SIGTERM, upstream waits."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.engine.tracker.conftest import Backend
from tests.engine.tracker.test_contract import wait_until

DRIVER = Path(__file__).with_name("driver.py")
DATE = dt.date(2020, 8, 6)
RACERS = 20
ROUNDS = 5


class Driver:
    """One driver process; stderr goes to a file so a test can poll it while the process runs."""

    def __init__(self, ini: Path, env: dict[str, str], tmp: Path, *args: str):
        self.err_path = tmp / f"driver-{time.monotonic_ns()}.err"
        self._err = self.err_path.open("w")
        self.proc = subprocess.Popen([sys.executable, str(DRIVER), "--config", str(ini), *args], env=env,
                                     stdout=subprocess.DEVNULL, stderr=self._err)

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._err.close()


def run(ini: Path, env: dict[str, str], tmp: Path, *args: str) -> tuple[int, str]:
    d = Driver(ini, env, tmp, *args)
    return d.wait(), d.stderr


def test_race_of_twenty_processes_lets_exactly_one_run(backend: Backend, clean_env: dict[str, str],
                                                       tmp_path: Path) -> None:
    ini = backend.ini()
    tracker = backend.tracker()
    for n in range(ROUNDS):
        date = (DATE + dt.timedelta(days=n)).isoformat()
        out, hold = tmp_path / f"side-effect-{n}.txt", tmp_path / f"hold-{n}"
        start_at = time.time() + 1.0  # every interpreter is up by then: they hit the table together
        racers = [Driver(ini, clean_env, tmp_path, "--pipeline", "preprocess", "--date", date, "--out", str(out),
                         "--hold-until", str(hold), "--start-at", f"{start_at:.3f}") for _ in range(RACERS)]
        wait_until(lambda r=racers: sum(d.proc.poll() is not None for d in r) >= RACERS - 1, 60,
                   "the losers to exit")
        hold.touch()
        codes = [d.wait() for d in racers]
        assert sorted(codes) == [0] + [4] * (RACERS - 1), [(c, d.stderr) for c, d in zip(codes, racers,
                                                                                          strict=True)]
        lines = out.read_text().splitlines()
        winner = next(d for c, d in zip(codes, racers, strict=True) if c == 0)
        assert lines == [str(winner.proc.pid)]
        for c, d in zip(codes, racers, strict=True):
            if c == 4:
                assert "is already running" in d.stderr and f"pid {winner.proc.pid}" in d.stderr, d.stderr
        row = tracker.get(f"preprocess_{date}")
        assert row is not None and (row.status, row.lock_id, row.holder_pid) == ("success", None,
                                                                                 winner.proc.pid)


def test_a_rerun_of_upstream_data_and_a_run_reading_it_started_together_never_both_run(
        backend: Backend, clean_env: dict[str, str], tmp_path: Path) -> None:
    """preprocess --force of a date and analyze of that date (which reads it), started at the same moment: the
    tracker's admission lets exactly one of them run. (Each locks its own row, so without it both saw the other
    unlocked and both ran, the rerun replacing the data the analyze run read.)"""
    ini = backend.ini()
    tracker = backend.tracker()
    per_side = 3
    for n in range(4):
        date = (DATE + dt.timedelta(days=n)).isoformat()
        tracker.set_status(f"preprocess_{date}", "success")
        out, hold = tmp_path / f"ran-{n}.txt", tmp_path / f"hold-{n}"
        start_at = time.time() + 1.0
        common = ("--date", date, "--out", str(out), "--hold-until", str(hold), "--start-at", f"{start_at:.3f}")
        reruns = [Driver(ini, clean_env, tmp_path, "--pipeline", "preprocess", "--force", *common)
                  for _ in range(per_side)]
        readers = [Driver(ini, clean_env, tmp_path, "--pipeline", "analyze", "--requires", "preprocess", *common)
                   for _ in range(per_side)]
        racers = reruns + readers
        try:
            wait_until(lambda r=racers: sum(d.proc.poll() is not None for d in r) >= len(r) - 1, 30,
                       "all racers but one to exit")
        finally:
            hold.touch()  # the winner (or, were the admission broken, the winners) may end
            codes = [d.wait() for d in racers]
        outcome = [(c, d.stderr.strip().splitlines()[-1:]) for c, d in zip(codes, racers, strict=True)]
        assert codes.count(0) == 1 and len(out.read_text().splitlines()) == 1, outcome
        if 0 in codes[:per_side]:  # the rerun went first: every reader waits for it (exit 3)
            assert codes[per_side:] == [3] * per_side, outcome
        else:  # a reader went first: the reruns are refused while it reads (exit 4)
            assert codes[:per_side] == [4] * per_side, outcome
            assert all("reads its data" in d.stderr for d in reruns), outcome


def test_sigkilled_holder_blocks_until_its_lease_expires_then_is_taken_over(
        backend: Backend, clean_env: dict[str, str], tmp_path: Path) -> None:
    ini = backend.ini(lease_seconds=3)
    tracker = backend.tracker()
    out, ready = tmp_path / "out.txt", tmp_path / "ready"
    job = ["--pipeline", "preprocess", "--date", DATE.isoformat(), "--out", str(out)]
    holder = Driver(ini, clean_env, tmp_path, *job, "--ready", str(ready), "--hold-until", str(tmp_path / "never"))
    wait_until(ready.exists, 20, "the holder to take the lock")
    holder.proc.send_signal(signal.SIGKILL)
    assert holder.wait() == -signal.SIGKILL

    code, err = run(ini, clean_env, tmp_path, *job)
    assert code == 4, err
    assert f"pid {holder.proc.pid}" in err and "lease expires" in err

    row = tracker.get(f"preprocess_{DATE}")
    assert row is not None and row.lease_expires is not None
    wait_until(lambda: tracker.now() > row.lease_expires, 10, "the killed holder's lease to expire")
    code, err = run(ini, clean_env, tmp_path, *job)
    assert code == 0, err
    assert "took over job preprocess_2020-08-06" in err and f"pid {holder.proc.pid}" in err
    assert len(out.read_text().splitlines()) == 2
    row = tracker.get(f"preprocess_{DATE}")
    assert row is not None and (row.status, row.lock_id) == ("success", None)


def test_sigterm_releases_the_lock_and_records_failed(backend: Backend, clean_env: dict[str, str],
                                                      tmp_path: Path) -> None:
    ini = backend.ini()
    tracker = backend.tracker()
    ready = tmp_path / "ready"
    holder = Driver(ini, clean_env, tmp_path, "--pipeline", "preprocess", "--date", DATE.isoformat(),
                    "--ready", str(ready), "--hold-until", str(tmp_path / "never"))
    wait_until(ready.exists, 20, "the holder to take the lock")
    sent = time.monotonic()
    holder.proc.send_signal(signal.SIGTERM)
    assert holder.wait(10) == 143, holder.stderr
    assert time.monotonic() - sent < 5
    row = tracker.get(f"preprocess_{DATE}")
    assert row is not None and (row.status, row.lock_id, row.message) == ("failed", None, "terminated by SIGTERM")


def test_upstream_missing_exits_3_naming_the_job(backend: Backend, clean_env: dict[str, str],
                                                 tmp_path: Path) -> None:
    code, err = run(backend.ini(), clean_env, tmp_path, "--pipeline", "analyze", "--date", DATE.isoformat(),
                    "--requires", "preprocess")
    assert code == 3, err
    # an empty tracker has no job of the pipeline at all: said so (perhaps the upstream's runs used another one)
    assert ("preprocess_2020-08-06 (status: missing; the tracker has no job of pipeline 'preprocess' at all) is "
            "not successful") in err and "Traceback" not in err
    # no row at all: the message names the tracker it looked in (a run from another folder reads another file)
    assert f"(looked in {backend.tracker().describe()})" in err, err


def test_wait_for_upstream_starts_when_a_concurrent_upstream_succeeds(backend: Backend,
                                                                    clean_env: dict[str, str],
                                                                    tmp_path: Path) -> None:
    ini = backend.ini()
    out = tmp_path / "analyze.txt"
    downstream = Driver(ini, clean_env, tmp_path, "--pipeline", "analyze", "--date", DATE.isoformat(),
                        "--requires", "preprocess", "--wait-for-upstream", "60", "--out", str(out))
    wait_until(lambda: "waiting up to 60 s for upstream job preprocess_2020-08-06" in downstream.stderr, 20,
               "the downstream run to start waiting")
    assert downstream.proc.poll() is None and not out.exists()
    code, err = run(ini, clean_env, tmp_path, "--pipeline", "preprocess", "--date", DATE.isoformat())
    assert code == 0, err
    assert downstream.wait(60) == 0, downstream.stderr
    assert len(out.read_text().splitlines()) == 1
    row = backend.tracker().get(f"analyze_{DATE}")
    assert row is not None and row.status == "success"
