"""A rich progress bar for a tuning run (trials done / budget, current task, best latency).

Where the output is not a terminal (``nohup``, CI, a pipe) rich draws the bar only once, at the
end; there the same status is printed as one plain line per round instead.
"""

from __future__ import annotations

import math
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from chameleon.logs.timeline import Measurement
from chameleon.tuning.tune import TuneObserver


class ProgressObserver(TuneObserver):
    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]tuning"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.best: dict[str, float] = {}
        self.errors = 0
        self.bar = None
        self.searched: set[str] = set()
        self.measured = False
        self.plain = not console.is_terminal
        """Print a line per round: a bar that is never redrawn shows nothing for the whole run."""
        self.started = time.monotonic()
        self.done = 0
        self.budget = 0

    def __enter__(self) -> ProgressObserver:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def on_start(self, *, tasks: list, budget: int, already: int) -> None:
        self.done, self.budget = min(already, budget), budget
        status = f"{len(tasks)} tasks, starting..."
        self.bar = self.progress.add_task("tune", total=budget, completed=self.done, status=status)
        self._line(status)

    def _line(self, status: str) -> None:
        if self.plain:
            elapsed = time.monotonic() - self.started
            self.progress.console.print(
                f"tuning {self.done}/{self.budget}  {status}  [{elapsed:.0f} s]",
                highlight=False,
                soft_wrap=True,
            )

    def on_search(self, task: str) -> None:
        # Until the first results arrive (after a first round of every task), say where it is.
        self.searched.add(task)
        if not self.measured and self.bar is not None:
            status = f"first rounds: {len(self.searched)} tasks searched, now {task[:40]}"
            self.progress.update(self.bar, status=status)
            self._line(status)

    def on_measure(self, batch: list[Measurement]) -> None:
        self.measured = True
        for m in batch:
            if m.ok:
                self.best[m.task] = min(self.best.get(m.task, math.inf), m.latency_s)
            else:
                self.errors += 1
        last = batch[-1]
        best = self.best.get(last.task)
        best_txt = f"{best * 1e3:.3f} ms" if best else "-"
        status = f"{last.task[:40]}  best {best_txt}  errors {self.errors}"
        self.done += len(batch)
        self.progress.update(self.bar, advance=len(batch), status=status)
        self._line(status)
