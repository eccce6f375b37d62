"""The benchmark's confirmed final latency: every run's best configuration, re-measured.

One measurement on a shared 2-core VM can be off by a third (experiments/results/noise-*.md), so
a run's best recorded latency is partly the luck of its best draw. Re-measuring the bests of all
runs of a task together, round after round (:func:`chameleon.tuning.confirm.remeasure`), gives
each the same conditions; the median of its times is what the confirmed final latency compares.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass
from pathlib import Path

from chameleon.bench.metrics import RunCurve
from chameleon.errors import UsageError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Confirmed:
    strategy: str
    task: str
    seed: int
    recorded_s: float
    """The run's best recorded latency within the budget."""
    confirmed_s: float | None
    """Median of the re-measured times of that configuration (None: it failed to build or run)."""


def confirm_bests(
    runs: list[tuple[Path, RunCurve]], *, budget: int, rounds: int, target: str = "llvm"
) -> list[Confirmed]:
    """Re-measure the best configuration of every run (within ``budget``), per task all runs'
    bests together; ``runs`` pairs a run's log directory with its curve."""
    from chameleon.hardware.targets import resolve_target
    from chameleon.logs.timeline import read_timeline
    from chameleon.simulate.dataset import load_dataset
    from chameleon.tuning.confirm import remeasure

    spec = resolve_target(target)
    if spec.needs_farm:
        raise UsageError(f"the benchmark re-measures on this machine; target {target} is measured on a farm")

    by_task: dict[str, list[tuple[Path, RunCurve]]] = {}
    for log_dir, curve in runs:
        if curve.best is not None:
            by_task.setdefault(curve.task, []).append((log_dir, curve))
    out: list[Confirmed] = []
    for task, members in by_task.items():
        traces, workload = [], None
        for log_dir, _ in members:
            measured = [m for m in read_timeline(log_dir) if m.task == task][:budget]
            best = min((m for m in measured if m.latency_s is not None), key=lambda m: m.latency_s)
            data = load_dataset(log_dir).task(task)
            workload = data.workload
            traces.append(data.traces[best.key])
        logger.info("%s: re-measuring the best of %d runs, %d rounds", task, len(members), rounds)
        times = remeasure(workload, traces, rounds=rounds, spec=spec, target=spec.tvm_target())
        for (_, curve), t in zip(members, times, strict=True):
            out.append(
                Confirmed(
                    strategy=curve.strategy,
                    task=task,
                    seed=curve.seed,
                    recorded_s=curve.best,
                    confirmed_s=statistics.median(t) if t else None,
                )
            )
    return out


def write_confirmed(confirmed: list[Confirmed], *, path_stem: Path, baseline: str, rounds: int) -> str:
    """``<stem>-confirmed.csv`` and a markdown section (returned): per strategy, the median over
    tasks of (median confirmed latency over seeds) / the baseline's, and how far the recorded best
    sat below its own confirmed latency."""
    import csv

    with open(f"{path_stem}-confirmed.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["strategy", "task", "seed", "recorded_s", "confirmed_s"])
        w.writerows([c.strategy, c.task, c.seed, c.recorded_s, c.confirmed_s] for c in confirmed)
    ok = [c for c in confirmed if c.confirmed_s is not None]
    strategies = list(dict.fromkeys(c.strategy for c in ok))
    tasks = list(dict.fromkeys(c.task for c in ok))
    per_task = {
        (s, t): statistics.median([c.confirmed_s for c in ok if c.strategy == s and c.task == t])
        for s in strategies
        for t in tasks
        if any(c.strategy == s and c.task == t for c in ok)
    }
    lines = [
        "",
        f"## Confirmed final latency ({rounds} re-measurements of each run's best, interleaved per task)",
        "",
        "Each run's best configuration within the budget is built again and timed with the other runs'"
        " bests of its task, round after round; its confirmed latency is the median of its times."
        f" Ratio: strategy / `{baseline}` per task (medians over seeds), then the median over tasks."
        " Recorded / confirmed: how far below its own confirmed latency the run's best draw was.",
        "",
        "| strategy | confirmed final latency vs baseline | recorded / confirmed |",
        "|---|---:|---:|",
    ]
    for s in strategies:
        ratios = [
            per_task[s, t] / per_task[baseline, t]
            for t in tasks
            if (s, t) in per_task and (baseline, t) in per_task
        ]
        luck = statistics.median([c.recorded_s / c.confirmed_s for c in ok if c.strategy == s])
        ratio = f"{statistics.median(ratios):.3f}" if ratios else "-"
        lines.append(f"| {s} | {ratio} | {luck:.3f} |")
    lines += ["", "Per task: median confirmed latency over seeds (ms).", ""]
    lines += ["| task | " + " | ".join(strategies) + " |", "|---|" + "---:|" * len(strategies)]
    for t in tasks:
        cells = [f"{1e3 * per_task[s, t]:.3f}" if (s, t) in per_task else "-" for s in strategies]
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
