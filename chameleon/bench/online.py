"""Online benchmark: strategies side by side on real hardware, same tasks, budget and seeds.

Every (task, strategy, seed) is an ordinary tuning run into its own log directory, so the
benchmark is resumable (a finished run is not measured again) and every run can be replayed,
reported or reused as a dataset.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chameleon.bench.metrics import RunCurve, strategy_variants
from chameleon.logs.metadata import read_run_file
from chameleon.logs.timeline import read_timeline
from chameleon.tuning.tune import TuneConfig, tune

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Preset:
    tasks: int | None
    """How many distinct conv2d tasks (largest first); None: all of them."""
    trials: int
    seeds: int


PRESETS = {
    "quick": Preset(tasks=2, trials=64, seeds=1),
    "full": Preset(tasks=None, trials=128, seeds=3),
}


def distinct_conv_tasks(names_flops: list[tuple[str, float]]) -> list[str]:
    """One task per distinct convolution (the ``conv2dN`` op), largest FLOP count first."""
    seen, out = set(), []
    for name, _ in sorted(names_flops, key=lambda x: -x[1]):
        m = re.search(r"conv2d\d*", name)
        if m and m.group(0) not in seen:
            seen.add(m.group(0))
            out.append(name)
    return out


def list_tasks(model: str, target: str) -> list[tuple[str, float]]:
    from chameleon.hardware.targets import resolve_target
    from chameleon.models.importer import load_network
    from chameleon.tvm_glue.pipeline import extract_tasks, prepack_default

    tgt = resolve_target(target).tvm_target()
    net = load_network(model)
    return [(t.name, t.flop) for t in extract_tasks(net.mod, tgt, prepack=prepack_default(tgt))]


def run_curve(log_dir: Path, *, strategy: str, task: str, seed: int, budget: int | None = None) -> RunCurve:
    """A run's best-latency curve from its timeline: its first ``budget`` measurements (all by
    default), so that runs resumed to a larger budget compare at the budget asked for."""
    measurements = [m for m in read_timeline(log_dir) if m.task == task][:budget]
    runs = read_run_file(log_dir)["runs"]
    search = sum(r.get("breakdown_s", {}).get("search", 0.0) for r in runs)
    rounds = sum(r.get("breakdown_s", {}).get("rounds", 0) for r in runs)  # 0: the run never finished
    # A resumed run's clock restarts; make times monotonic across its parts.
    times, offset, last_run, last_t = [], 0.0, None, 0.0
    for m in measurements:
        if last_run is not None and m.run != last_run:
            offset = last_t
        times.append(offset + m.t)
        last_run, last_t = m.run, offset + m.t
    return RunCurve(
        strategy=strategy,
        task=task,
        seed=seed,
        latencies=tuple(m.latency_s for m in measurements),
        times=tuple(times),
        search_s_per_round=search / rounds if rounds else None,
    )


def run_online(
    *,
    model: str,
    target: str,
    tasks: list[str],
    strategies: list[str],
    seeds: list[int],
    trials: int,
    out_dir: Path,
    trials_per_round: int = 16,
    on_run: Callable[[RunCurve], None] | None = None,
    measure: bool = True,
    warm_start: tuple[str, ...] = (),
) -> list[RunCurve]:
    """Tune every (task, seed, strategy); with ``measure=False`` only collect the runs already on
    disk that finished their budget.

    With ``warm_start`` log directories (typically another target's), a variant
    ``chameleon+warm`` is added: chameleon whose cost model is first trained on those logs.
    """
    variants = strategy_variants(strategies, warm_start)
    curves = []
    # Seed-major: a benchmark stopped early still covers every task and strategy with its first seeds.
    for seed in seeds:
        for task in tasks:
            for label, strategy, warm in variants:
                log_dir = run_dir(out_dir, task, label, seed)
                if not measure:
                    if (log_dir / "timeline.jsonl").exists():
                        curve = run_curve(log_dir, strategy=label, task=task, seed=seed, budget=trials)
                        if len(curve.latencies) >= trials:
                            curves.append(curve)
                        else:  # a run that was stopped: it would skew the medians
                            logger.warning(
                                "%s: %d of %d measurements, left out", log_dir, len(curve.latencies), trials
                            )
                    continue
                tune(
                    TuneConfig(
                        model=model,
                        target=target,
                        tasks=(task,),
                        trials=trials,
                        trials_per_round=trials_per_round,
                        strategy=strategy,
                        seed=seed,
                        log_dir=log_dir,
                        warm_start=warm,
                    )
                )
                curve = run_curve(log_dir, strategy=label, task=task, seed=seed, budget=trials)
                curves.append(curve)
                if on_run:
                    on_run(curve)
    return curves


def run_dir(out_dir: Path, task: str, label: str, seed: int) -> Path:
    """The log directory of one benchmark run."""
    return out_dir / _slug(task) / f"{label}-s{seed}"


def _slug(task: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", task)[:80]
