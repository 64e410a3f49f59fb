"""Progress in records, per stage: a pass-through step counts what the stage's first step yields (records read, or
made by a source) into one small file per task; the runner sums the files into a bar with rate and ETA.

Files, not queues: every executor (local pool, Slurm, Ray) shares the logging folder, and a finished task's count
stays for a rerun that resumes it.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from datatrove.pipeline.base import PipelineStep

PROGRESS_DIR = "progress"
_EVERY_S = 0.5  # a count file is rewritten at most this often per task


class CountRecords(PipelineStep):
    """Yields every document unchanged; writes how many went by to `<folder>/{rank:05d}`."""

    name = "progress"
    type = "📈 - PROGRESS"

    def __init__(self, folder: str):
        super().__init__()
        self.folder = folder

    def _write(self, rank: int, n: int) -> None:
        path = Path(self.folder) / f"{rank:05d}"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(str(n))
        os.replace(tmp, path)  # the reader never sees half a number

    def run(self, data, rank: int = 0, world_size: int = 1):
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        n, last = 0, time.monotonic()
        self._write(rank, 0)
        for doc in data:
            n += 1
            if time.monotonic() - last >= _EVERY_S:
                self._write(rank, n)
                last = time.monotonic()
            yield doc
        self._write(rank, n)


def counted(folder: Path) -> int:
    """Records counted so far by every task of a stage."""
    total = 0
    for p in folder.glob("[0-9]*") if folder.is_dir() else ():
        try:
            total += int(p.read_text() or 0)
        except (OSError, ValueError):  # a task rewriting its file right now: next poll
            pass
    return total


def completed_tasks(logging_dir: Path) -> int:
    folder = logging_dir / "completions"
    return sum(1 for _ in folder.iterdir()) if folder.is_dir() else 0


class StageProgress:
    """One bar per stage on `console` (stderr): records (of `total` when known) with rate and ETA, and tasks
    done. Without a console (not a terminal, --quiet) it does nothing."""

    def __init__(self, console, label: str, tasks: int, logging_dir: Path, total: int | None, counting: bool):
        self.console, self.label, self.tasks, self.logging_dir = console, label, tasks, logging_dir
        self.total, self.counting = total, counting
        self._stop = threading.Event()

    def _fields(self) -> dict:
        done = completed_tasks(self.logging_dir)
        return {"completed": counted(self.logging_dir / PROGRESS_DIR) if self.counting else done, "tasks_done": done}

    def __enter__(self):
        if self.console is None:
            return self
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        unit = "records" if self.counting else "tasks"
        tasks = [TextColumn("{task.fields[tasks_done]}/" + str(self.tasks) + " tasks")] if self.counting else []
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                             TaskProgressColumn(), TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), *tasks,
                             TimeElapsedColumn(), console=self.console)
        total = self.total if self.counting else self.tasks
        self._start = time.monotonic()
        self._task = self._bar.add_task(self.label, total=total, rate="", **self._fields())
        self._first = self._fields()["completed"]  # what a resumed run had done before: not part of the rate
        self._bar.start()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _update(self, final: bool = False) -> None:
        fields = self._fields()
        if final and self.total is None:  # the count is the total now: a full bar, not a pulsing one
            self._bar.update(self._task, total=max(fields["completed"], 1))
        elapsed = time.monotonic() - self._start
        rate = (fields["completed"] - self._first) / elapsed if elapsed > 0 else 0.0
        self._bar.update(self._task, rate=f"{human(rate)} {'rec' if self.counting else 'tasks'}/s", **fields)

    def _poll(self):
        while not self._stop.wait(0.2):
            self._update()

    def __exit__(self, *exc):
        if self.console is not None:
            self._stop.set()
            self._thread.join()
            self._update(final=True)
            self._bar.stop()


def human(value: float) -> str:
    """A counter as people read it: 11,125,200 (never 1.11252e+07); fractions with up to 3 significant digits."""
    if value == int(value) and abs(value) < 1e18:
        return f"{int(value):,}"
    return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
