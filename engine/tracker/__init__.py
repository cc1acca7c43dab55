"""Job tracking: one run per job at a time, upstream dependencies, leases that survive crashes.

``open_tracker(config)`` gives a Tracker (PostgreSQL or SQLite); ``JobGuard`` is what the runner uses.
"""

from __future__ import annotations

from engine.tracker.base import (
    JobRow,
    Lease,
    LeaseLost,
    Terminated,
    Tracker,
    parse_job_id,
    pipeline_job_id,
    step_job_id,
)
from engine.tracker.factory import open_tracker
from engine.tracker.guard import JobGuard

__all__ = ["JobGuard", "JobRow", "Lease", "LeaseLost", "Terminated", "Tracker", "open_tracker",
           "parse_job_id", "pipeline_job_id", "step_job_id"]
