"""The benchmark, confirmed: every configuration that became a run's best, re-measured.

One measurement on a shared 2-core VM can be off by a third (experiments/results/noise-*.md), so
a run's best recorded latency is partly the luck of its best draw, and "the first measurement
within 1.05x of the best any run reached" mostly asks which run drew luckiest. Here every
configuration that improved a run's recorded best is built again and timed with the others of
its task (all runs, all strategies), round after round
(:func:`chameleon.tuning.confirm.remeasure`); the median of its times is its confirmed latency.

A run's *confirmed curve* keeps, at each measurement that improved its recorded best, that
configuration's confirmed latency (None elsewhere), so its best so far is the fastest confirmed
configuration among those it had found: what ``make tune``'s confirm step deploys. The usual
metric (../shared/DESIGN.md, "How search efficiency is measured") applied to these curves gives
the measurement, time and final-latency ratios without the luck of single draws.
"""

from __future__ import annotations

import logging
import statistics
from pathlib import Path

from chameleon.bench.metrics import RunCurve
from chameleon.errors import UsageError

logger = logging.getLogger(__name__)


def improvements(latencies, budget: int) -> list[int]:
    """Indices (0-based, within ``budget``) of the measurements that improved the best so far."""
    out, best = [], None
    for i, lat in enumerate(latencies[:budget]):
        if lat is not None and (best is None or lat < best):
            out.append(i)
            best = lat
    return out


def confirm_curves(
    runs: list[tuple[Path, RunCurve]], *, budget: int, rounds: int, target: str = "llvm"
) -> list[RunCurve]:
    """The confirmed curve of every run; ``runs`` pairs a run's log directory with its curve.
    A configuration found by several runs is measured once for all of them."""
    from chameleon.hardware.targets import resolve_target
    from chameleon.logs.timeline import read_timeline
    from chameleon.simulate.dataset import load_dataset
    from chameleon.tuning.confirm import measurers, remeasure

    spec = resolve_target(target)
    if spec.needs_farm:
        raise UsageError(f"the benchmark re-measures on this machine; target {target} is measured on a farm")

    by_task: dict[str, list[tuple[Path, RunCurve]]] = {}
    for log_dir, curve in runs:
        by_task.setdefault(curve.task, []).append((log_dir, curve))
    out: list[RunCurve] = []
    with measurers(spec) as (builder, runner):  # one worker pool and runner for every task
        for task, members in by_task.items():
            traces: dict[str, object] = {}  # key -> trace, in first-found order
            steps: list[list[tuple[int, str]]] = []  # per run: (index, key) of each improvement
            workload = None
            for log_dir, _ in members:
                measured = [m for m in read_timeline(log_dir) if m.task == task][:budget]
                found = [(i, measured[i].key) for i in improvements([m.latency_s for m in measured], budget)]
                steps.append(found)
                if found:
                    data = load_dataset(log_dir).task(task)
                    workload = data.workload
                    for _, key in found:
                        traces.setdefault(key, data.traces[key])
            confirmed: dict[str, float | None] = {}
            if traces:
                logger.info(
                    "%s: re-measuring %d configurations of %d runs, %d rounds",
                    task,
                    len(traces),
                    len(members),
                    rounds,
                )
                times = remeasure(
                    workload,
                    list(traces.values()),
                    rounds=rounds,
                    spec=spec,
                    target=spec.tvm_target(),
                    builder=builder,
                    runner=runner,
                )
                confirmed = {
                    key: statistics.median(t) if t else None for key, t in zip(traces, times, strict=True)
                }
            for (_, curve), found in zip(members, steps, strict=True):
                latencies: list[float | None] = [None] * min(budget, len(curve.latencies))
                for i, key in found:
                    latencies[i] = confirmed[key]
                out.append(
                    RunCurve(
                        strategy=curve.strategy,
                        task=task,
                        seed=curve.seed,
                        latencies=tuple(latencies),
                        times=curve.times,
                        search_s_per_round=curve.search_s_per_round,
                    )
                )
    return out


def luck(recorded: list[RunCurve], confirmed: list[RunCurve], *, budget: int) -> dict[str, float]:
    """Per strategy, the median over runs of (best recorded draw) / (that configuration's
    confirmed latency): how far below what it delivers a run's best single measurement sat."""
    ratios: dict[str, list[float]] = {}
    by_run = {(c.strategy, c.task, c.seed): c for c in confirmed}
    for r in recorded:
        c = by_run.get((r.strategy, r.task, r.seed))
        found = improvements(r.latencies, budget)
        if c is None or not found or c.latencies[found[-1]] is None:
            continue
        ratios.setdefault(r.strategy, []).append(r.latencies[found[-1]] / c.latencies[found[-1]])
    return {s: statistics.median(v) for s, v in ratios.items()}
