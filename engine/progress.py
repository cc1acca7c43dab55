"""Live progress on the console: current step, steps done of total, elapsed time, Spark task progress.

A daemon thread polls Spark's status tracker (no listener jars needed) and prints either a bar rewritten
in place (terminal), plain periodic lines (CI, logs), JSON lines (schedulers) or nothing (quiet).
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

MODES = ("bar", "lines", "quiet", "json")
DEFAULT_INTERVAL = {"bar": 0.5, "lines": 10.0, "json": 10.0, "quiet": 1.0}
_STEP_MARK = {"success": "ok", "failed": "FAILED", "skipped": "skipped"}


@dataclass(frozen=True)
class TaskProgress:
    """Spark task counts summed over the active stages at one instant."""

    stages: int = 0
    total: int = 0
    completed: int = 0
    active: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Snapshot:
    elapsed_s: float
    done: int
    total: int
    running: tuple[str, ...]
    tasks: TaskProgress = field(default_factory=TaskProgress)


def poll_tasks(tracker: Any) -> TaskProgress:
    """Sum task counts over ``tracker``'s active stages (a pyspark StatusTracker or a look-alike)."""
    if tracker is None:
        return TaskProgress()
    stages = total = completed = active = failed = 0
    for stage_id in tracker.getActiveStageIds() or []:
        info = tracker.getStageInfo(stage_id)
        if info is None:  # finished between the two calls
            continue
        stages += 1
        total += int(info.numTasks)
        completed += int(info.numCompletedTasks)
        active += int(info.numActiveTasks)
        failed += int(getattr(info, "numFailedTasks", 0) or 0)
    return TaskProgress(stages, total, completed, active, failed)


def format_elapsed(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, sec = divmod(rest, 60)
    return f"{hours:d}:{minutes:02d}:{sec:02d}"


def _steps_text(snap: Snapshot) -> str:
    if not snap.running:
        return "-"
    return ", ".join(snap.running) if len(snap.running) <= 2 else f"{snap.running[0]} +{len(snap.running) - 1}"


def render_bar(snap: Snapshot, width: int = 100) -> str:
    """One line: [#####.....] 3/7 steps | step | tasks 12/40 | 0:01:23 (fits in ``width`` columns)."""
    frac = snap.done / snap.total if snap.total else 0.0
    if snap.tasks.total and snap.running:  # within the running step, count its task progress as a fraction
        frac += (snap.tasks.completed / snap.tasks.total) / max(snap.total, 1)
    frac = min(frac, 1.0)
    tasks = (f"tasks {snap.tasks.completed}/{snap.tasks.total}" if snap.tasks.total else "tasks -")
    tail = f" {snap.done}/{snap.total} steps | {_steps_text(snap)} | {tasks} | {format_elapsed(snap.elapsed_s)}"
    bar_w = max(10, min(30, width - len(tail) - 3))
    filled = int(round(frac * bar_w))
    line = f"[{'#' * filled}{'.' * (bar_w - filled)}]{tail}"
    return line[: max(width - 1, 20)]


def render_line(snap: Snapshot) -> str:
    """A plain progress line for logs and CI."""
    tasks = (f"tasks {snap.tasks.completed}/{snap.tasks.total} in {snap.tasks.stages} stage(s)"
             if snap.tasks.total else "no Spark tasks running")
    return (f"[{format_elapsed(snap.elapsed_s)}] {snap.done}/{snap.total} steps done; "
            f"running: {_steps_text(snap)}; {tasks}")


def snapshot_json(snap: Snapshot, event: str = "progress", **extra: Any) -> str:
    out: dict[str, Any] = {"event": event, "elapsed_s": round(snap.elapsed_s, 3), "steps_done": snap.done,
                           "steps_total": snap.total, "running": list(snap.running)}
    if event == "progress":
        out["tasks"] = {"stages": snap.tasks.stages, "total": snap.tasks.total,
                        "completed": snap.tasks.completed, "active": snap.tasks.active}
    out.update(extra)
    return json.dumps(out, default=str)


class Progress:
    """Console progress for one run; safe to call from the runner's threads (steps may run concurrently).

    ``mode`` 'bar' falls back to 'lines' when the stream is not a terminal. ``interval_s`` is how often the
    thread polls and prints (default 0.5 s for the bar, 10 s for lines and JSON).
    """

    def __init__(self, total_steps: int, stream: IO[str], mode: str = "bar", interval_s: float | None = None,
                 spark_context: Any = None, *, clock: Callable[[], float] = time.monotonic,
                 width: int | None = None, labels: Mapping[str, str] | None = None):
        if mode not in MODES:
            raise ValueError(f"progress mode must be one of {', '.join(MODES)}, got {mode!r}")
        is_tty = bool(getattr(stream, "isatty", lambda: False)())
        self.mode = "lines" if mode == "bar" and not is_tty else mode
        self.stream = stream
        self.total = total_steps
        self.interval_s = interval_s if interval_s is not None else DEFAULT_INTERVAL[self.mode]
        self._tracker = spark_context.statusTracker() if spark_context is not None else None
        self._clock = clock
        self._width = width
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0: float | None = None
        self._done = 0
        self._running: dict[str, int] = {}
        self._bar_shown = False
        self._last_tasks = TaskProgress()
        self.max_tasks_seen = 0  # the largest task total observed in one poll (tests, summaries)
        # fields every JSON event carries (the pipeline and date: a catch-up's events are told apart by them)
        self._labels = dict(labels or {})

    # ---------------------------------------------------------------- state
    def snapshot(self, *, poll: bool = True) -> Snapshot:
        """The current state; ``poll`` asks Spark for task counts (else the last counts are reused)."""
        tasks = poll_tasks(self._tracker) if poll else self._last_tasks
        with self._lock:
            self._last_tasks = tasks
            self.max_tasks_seen = max(self.max_tasks_seen, tasks.total)
            elapsed = self._clock() - self._t0 if self._t0 is not None else 0.0
            running = tuple(sorted(self._running, key=self._running.__getitem__))
            return Snapshot(elapsed, self._done, self.total, running, tasks)

    # ---------------------------------------------------------------- output
    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (ValueError, OSError):  # stream closed under us at interpreter exit
            pass

    def _term_width(self) -> int:
        return self._width or shutil.get_terminal_size((100, 20)).columns

    def _clear_bar(self) -> None:
        with self._lock:
            if self._bar_shown:
                self._write("\r\x1b[K")
                self._bar_shown = False

    def _draw_bar(self, poll: bool = True) -> None:
        if self._stop.is_set():
            return
        snap = self.snapshot(poll=poll)
        with self._lock:
            self._write("\r" + render_bar(snap, self._term_width()) + "\x1b[K")
            self._bar_shown = True

    def _event(self, text_line: str, event: str, **extra: Any) -> None:
        """A step event: a permanent line in every mode except quiet."""
        if self.mode == "quiet":
            return
        snap = self.snapshot()
        with self._lock:
            if self.mode == "json":
                self._write(snapshot_json(snap, event, **self._labels, **extra) + "\n")
                return
            self._clear_bar()
            self._write(f"[{format_elapsed(snap.elapsed_s)}] {text_line}\n")
            if self.mode == "bar":
                self._draw_bar(poll=False)

    def tick(self) -> None:
        """One poll-and-print, as the thread does every interval (public so tests need no sleeping)."""
        if self.mode == "quiet":
            return
        if self.mode == "bar":
            self._draw_bar()
            return
        snap = self.snapshot()
        if not snap.running and not snap.tasks.total:
            return  # nothing running: no heartbeat noise between steps
        self._write((snapshot_json(snap, **self._labels) if self.mode == "json" else render_line(snap)) + "\n")

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        with self._lock:
            self._t0 = self._clock()
        if self.mode == "quiet":
            return
        from engine.logs import set_console_hooks, set_progress_shows_steps

        set_progress_shows_steps(True)
        if self.mode == "bar":
            set_console_hooks(self._clear_bar, lambda: self._draw_bar(poll=False))
        self._thread = threading.Thread(target=self._run, name="tickflow-progress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except Exception:  # progress must never break a run (e.g. the JVM is shutting down)
                if self._stop.is_set():
                    return

    def step_started(self, name: str, index: int) -> None:
        with self._lock:
            self._running[name] = index
        self._event(f"step {index}/{self.total} {name} started", "step_started", step=name, index=index)

    def step_finished(self, name: str, status: str, rows: dict[str, int | None] | None = None) -> None:
        with self._lock:
            self._running.pop(name, None)
            self._done += 1
        rows = rows or {}
        rows_text = ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in rows.items())
        noun = "row" if list(rows.values()) == [1] else "rows"
        self._event(f"step {name} {_STEP_MARK.get(status, status)}" + (f" ({rows_text} {noun})" if rows else ""),
                    "step_finished", step=name, status=status, rows=rows)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        from engine.logs import set_console_hooks, set_progress_shows_steps

        set_progress_shows_steps(False)
        if self.mode == "bar":
            set_console_hooks(None, None)
            self._clear_bar()
        if self.mode == "json":
            snap = self.snapshot()
            self._write(snapshot_json(snap, "finished", **self._labels) + "\n")

    def __enter__(self) -> Progress:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
