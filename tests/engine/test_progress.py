"""Live progress: rendering logic with a fake status tracker, and one real Spark job polled while it runs."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import pytest

from engine.progress import Progress, Snapshot, TaskProgress, poll_tasks, render_bar, render_line


@dataclass
class FakeStage:
    numTasks: int
    numCompletedTasks: int
    numActiveTasks: int
    numFailedTasks: int = 0


class FakeTracker:
    """Mimics pyspark's StatusTracker: stage ids, and stage info that may vanish between the calls."""

    def __init__(self, stages: dict[int, FakeStage | None]):
        self.stages = stages

    def getActiveStageIds(self):
        return list(self.stages)

    def getStageInfo(self, stage_id):
        return self.stages[stage_id]


class FakeContext:
    def __init__(self, tracker):
        self.tracker = tracker

    def statusTracker(self):
        return self.tracker


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class TtyBuffer(io.StringIO):
    def isatty(self):
        return True


def test_poll_tasks_sums_active_stages_and_skips_vanished():
    tracker = FakeTracker({1: FakeStage(10, 4, 2), 2: FakeStage(6, 1, 2, 1), 3: None})
    assert poll_tasks(tracker) == TaskProgress(stages=2, total=16, completed=5, active=4, failed=1)
    assert poll_tasks(None) == TaskProgress()


def test_render_bar_and_line():
    snap = Snapshot(elapsed_s=83.4, done=3, total=7, running=("trade_ma",), tasks=TaskProgress(1, 40, 12, 2))
    bar = render_bar(snap, width=100)
    assert "3/7 steps" in bar and "trade_ma" in bar and "tasks 12/40" in bar and "0:01:23" in bar
    assert len(bar) <= 99
    filled = bar[1:bar.index("]")].count("#")
    width = bar.index("]") - 1
    assert filled == round((3 + 12 / 40) / 7 * width)
    line = render_line(snap)
    assert line.startswith("[0:01:23] 3/7 steps done; running: trade_ma; tasks 12/40 in 1 stage(s)")


def test_lines_mode_when_not_a_terminal():
    clock = FakeClock()
    tracker = FakeTracker({5: FakeStage(8, 2, 2)})
    out = io.StringIO()
    p = Progress(2, out, mode="bar", interval_s=60, spark_context=FakeContext(tracker), clock=clock)
    assert p.mode == "lines"  # not a TTY
    p.start()
    p.step_started("load", 1)
    clock.now += 5
    p.tick()
    tracker.stages = {}
    p.step_finished("load", "success", {"trade": 1234})
    p.tick()  # nothing running: no line
    p.stop()
    lines = out.getvalue().splitlines()
    assert lines[0] == "[0:00:00] step 1/2 load started"
    assert lines[1] == "[0:00:05] 0/2 steps done; running: load; tasks 2/8 in 1 stage(s)"
    assert lines[2] == "[0:00:05] step load ok (trade=1,234 rows)"
    assert len(lines) == 3


def test_bar_mode_rewrites_in_place_on_a_tty():
    clock = FakeClock()
    tracker = FakeTracker({1: FakeStage(4, 1, 2)})
    out = TtyBuffer()
    p = Progress(3, out, mode="bar", interval_s=60, spark_context=FakeContext(tracker), clock=clock, width=90)
    p.start()
    p.step_started("a", 1)
    p.tick()
    tracker.stages[1] = FakeStage(4, 3, 1)
    p.tick()
    p.stop()
    text = out.getvalue()
    assert "\n" in text and text.count("\r") >= 3  # bar redrawn with carriage returns, events on own lines
    assert "tasks 1/4" in text and "tasks 3/4" in text
    assert text.endswith("\r\x1b[K")  # the bar is cleared at the end


def test_json_mode_emits_one_object_per_line():
    clock = FakeClock()
    tracker = FakeTracker({1: FakeStage(4, 1, 2)})
    out = io.StringIO()
    p = Progress(1, out, mode="json", interval_s=60, spark_context=FakeContext(tracker), clock=clock,
                 labels={"pipeline": "analyze", "date": "2024-01-05"})
    p.start()
    p.step_started("a", 1)
    clock.now += 2
    p.tick()
    p.step_finished("a", "failed", {})
    p.stop()
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["step_started", "progress", "step_finished", "finished"]
    assert events[1]["tasks"] == {"stages": 1, "total": 4, "completed": 1, "active": 2}
    assert events[2]["status"] == "failed" and events[3]["steps_done"] == 1
    assert events[1]["elapsed_s"] == 2.0
    # a catch-up's events are told apart by their pipeline and date
    assert all((e["pipeline"], e["date"]) == ("analyze", "2024-01-05") for e in events)


def test_quiet_prints_nothing():
    out = TtyBuffer()
    p = Progress(1, out, mode="quiet", spark_context=FakeContext(FakeTracker({1: FakeStage(1, 0, 1)})))
    p.start()
    p.step_started("a", 1)
    p.tick()
    p.step_finished("a", "success", {"x": 1})
    p.stop()
    assert out.getvalue() == ""


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="progress mode"):
        Progress(1, io.StringIO(), mode="fancy")


def test_polls_a_real_spark_job(spark):
    """The thread polls Spark's real status tracker while a job with 8 slow tasks runs."""
    out = io.StringIO()
    progress = Progress(1, out, mode="lines", interval_s=0.05, spark_context=spark.sparkContext)
    progress.start()
    progress.step_started("slow_step", 1)
    # each task sleeps 300 ms in the JVM (a built-in SQL function, no Python UDF): >= 1.2 s on 2 cores
    rows = (spark.range(0, 8, 1, 8)
            .selectExpr("id", "reflect('java.lang.Thread', 'sleep', cast(300 as bigint)) AS slept").collect())
    progress.step_finished("slow_step", "success", {"out": len(rows)})
    progress.stop()
    assert len(rows) == 8
    assert progress.max_tasks_seen == 8
    text = out.getvalue()
    assert "running: slow_step; tasks" in text and "/8 in 1 stage(s)" in text
    assert text.splitlines()[-1].endswith("step slow_step ok (out=8 rows)")
