"""Which running jobs read which jobs' data, so that no run rewrites data a live run of another job reads.

A run of a job that requires others (analyze requires preprocess) records in its locked row what it reads
(``Reads``): the data of its required pipelines' jobs of its date and, when it reads earlier dates too (a prior
close looks back), of every earlier date. A run of such an upstream job is refused while that reader holds a
live lock (``readers_of``), and a reader does not start while such an upstream job is being run
(``running_upstream``). Both decisions are taken under the tracker's admission lock (``Tracker.acquire`` with
``admit``), so of two runs starting at the same moment the later one sees the earlier one's lock.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from engine.tracker.base import JobRow, fmt_time, parse_job_id

# (host, pid) -> the holder is a process of this host that no longer runs (engine.processes.gone_here)
GoneCheck = Callable[[str | None, int | None], bool]


@dataclass(frozen=True)
class Reads:
    """The jobs whose data a run reads: those of ``pipelines`` for ``date`` and, with ``earlier``, before it."""

    pipelines: tuple[str, ...]
    date: dt.date
    earlier: bool = False

    def text(self) -> str:
        """The ``reads`` column's value (JSON, so ``status --json`` shows it as data)."""
        return json.dumps({"pipelines": list(self.pipelines), "date": self.date.isoformat(),
                           "earlier": self.earlier}, separators=(",", ":"))

    @classmethod
    def parse(cls, text: str | None) -> Reads | None:
        """The value ``text`` wrote; None for none, or for a value this version cannot read."""
        if not text:
            return None
        try:
            data = json.loads(text)
            pipelines = tuple(str(p) for p in data["pipelines"])
            return cls(pipelines, dt.date.fromisoformat(str(data["date"])), bool(data.get("earlier", False)))
        except (ValueError, KeyError, TypeError):
            return None

    def covers(self, job_id: str) -> bool:
        """The job (a pipeline's run for one date, not a step) is one whose data this run reads."""
        key = parse_job_id(job_id)
        if key is None or key.step is not None or key.pipeline not in self.pipelines:
            return False
        return key.date == self.date or (self.earlier and key.date < self.date)

    def describe(self) -> str:
        jobs = ", ".join(self.pipelines)
        dates = f"{self.date.isoformat()} and every earlier date" if self.earlier else self.date.isoformat()
        return f"the data of {jobs} for {dates}"


def reads_of(requires: Sequence[str], date: dt.date, earlier: bool) -> Reads | None:
    """What a run of a job requiring ``requires`` reads (None: it requires nothing, so it reads no job's data)."""
    return Reads(tuple(requires), date, earlier) if requires else None


def live(row: JobRow, now: dt.datetime, gone: GoneCheck) -> bool:
    """The row's lock is held by a run that may still be running: not expired, and not a process of this host
    that is gone (a killed run reads and writes nothing any more)."""
    return row.locked and not row.lease_expired(now) and not gone(row.holder_host, row.holder_pid)


def readers_of(locked: Iterable[JobRow], job_id: str, now: dt.datetime, gone: GoneCheck) -> list[JobRow]:
    """The live runs reading ``job_id``'s data: a run of ``job_id`` would change it under them."""
    out = []
    for row in locked:
        reads = Reads.parse(row.reads)
        if row.job_id != job_id and reads is not None and reads.covers(job_id) and live(row, now, gone):
            out.append(row)
    return sorted(out, key=lambda r: r.job_id)


def running_upstream(locked: Iterable[JobRow], reads: Reads, now: dt.datetime, gone: GoneCheck) -> list[JobRow]:
    """The live runs of jobs whose data a run with ``reads`` would read: it would read them half rewritten."""
    return sorted((row for row in locked if reads.covers(row.job_id) and live(row, now, gone)),
                  key=lambda r: r.job_id)


def run_line(row: JobRow) -> str:
    """``analyze_2020-08-06 (run on host (pid 12), since ...; lease until ...)``: a live run, for messages."""
    since = fmt_time(row.started_time or row.updated_time)
    lease = f"; its lease expires at {fmt_time(row.lease_expires)}" if row.lease_expires is not None else ""
    return f"{row.job_id} (running on {row.holder()} since {since}{lease})"
