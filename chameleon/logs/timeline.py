"""The per-measurement timeline: one JSON line per measured candidate, appended as it happens.

Fields: ``task`` (name), ``task_index``, ``trial`` (1-based within the task, this run),
``n`` (1-based over the whole run), ``t`` (seconds since the run started), ``run`` (run number
in this log directory), ``latency_s`` (mean of the runner's repeats, or null), ``error`` (last
line of the build/run error, where TVM puts the reason, or null), ``key`` (:func:`chameleon.tvm_glue.keys.trace_key` of the
candidate, so a log doubles as a replay dataset). The file is append-only; a corrupt line is skipped with a
warning when read.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

from chameleon.tvm_glue.keys import trace_key

logger = logging.getLogger(__name__)

TIMELINE_FILE = "timeline.jsonl"


@dataclass(frozen=True)
class Measurement:
    task: str
    task_index: int
    trial: int
    n: int
    t: float
    run: int
    latency_s: float | None
    error: str | None
    key: str | None

    @property
    def ok(self) -> bool:
        return self.latency_s is not None


FAILED_RUN_S = 1e9
"""MetaSchedule stores a failed measurement as run_secs of 1e10 s: anything from here up is one."""


def mean_latency(run_secs) -> float | None:
    """Mean of a record's run times in seconds; None for no time, a failure or a non-finite time."""
    if not run_secs:
        return None
    vals = [float(x) for x in run_secs]
    value = sum(vals) / len(vals)
    return value if math.isfinite(value) and 0 < value < FAILED_RUN_S else None


def _first_line(msg: str | None) -> str | None:
    if msg is None:
        return None
    lines = [ln.strip() for ln in str(msg).strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "error")[:300]


@derived_object
class TimelineRecorder(PyMeasureCallback):
    """A MetaSchedule measure callback that appends to the timeline and notifies observers."""

    def __init__(
        self,
        *,
        path: Path | None,
        task_names: list[str],
        run: int,
        on_measure: Callable[[list[Measurement]], None] | None = None,
    ) -> None:
        super().__init__()
        self.path = Path(path) if path is not None else None
        self.measurements: list[Measurement] = []
        """Everything recorded by this callback, in measurement order."""
        self.task_names = task_names
        self.run = run
        self.on_measure = on_measure
        self.start = time.perf_counter()
        self.count = 0
        self.rounds = 0
        self.per_task: dict[int, int] = {}

    def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results) -> None:
        now = time.perf_counter() - self.start
        self.rounds += 1
        batch = []
        for cand, b, r in zip(measure_candidates, builder_results, runner_results, strict=False):
            self.count += 1
            self.per_task[task_id] = self.per_task.get(task_id, 0) + 1
            err = b.error_msg or r.error_msg
            lat = None if err else mean_latency(r.run_secs)
            if lat is None and err is None:
                err = "runner returned no valid time"
            batch.append(
                Measurement(
                    task=self.task_names[task_id],
                    task_index=int(task_id),
                    trial=self.per_task[task_id],
                    n=self.count,
                    t=round(now, 3),
                    run=self.run,
                    latency_s=lat,
                    error=_first_line(err),
                    key=trace_key(cand.sch.trace),
                )
            )
        self.measurements.extend(batch)
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as f:
                for m in batch:
                    f.write(json.dumps(m.__dict__, separators=(",", ":")) + "\n")
        if self.on_measure is not None:
            self.on_measure(batch)


def read_timeline(log_dir: str | Path) -> list[Measurement]:
    path = Path(log_dir) / TIMELINE_FILE
    return list(_iter(path))


def _iter(path: Path) -> Iterator[Measurement]:
    if not path.exists():
        return
    for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield Measurement(**json.loads(line))
        except (json.JSONDecodeError, TypeError):
            logger.warning("%s line %d is corrupt: skipped", path, i)
