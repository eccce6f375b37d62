"""Offline benchmark: every strategy, many seeds, answered by recorded datasets."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chameleon.bench.metrics import RunCurve, strategy_variants
from chameleon.simulate.dataset import load_dataset
from chameleon.simulate.run import fit_surrogate, simulate
from chameleon.simulate.surrogate import SurrogateQuality

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OfflineResult:
    runs: list[RunCurve]
    surrogates: dict[str, SurrogateQuality]
    """Held-out quality of each task's surrogate (what answers misses)."""


def run_offline(
    *,
    datasets: list[Path],
    strategies: list[str],
    seeds: list[int],
    trials: int,
    trials_per_round: int = 16,
    pool_only: bool = False,
    tasks: list[str] | None = None,
    on_run: Callable[[RunCurve], None] | None = None,
    warm_start: tuple[str, ...] = (),
) -> OfflineResult:
    """Simulate every strategy x seed on every task of the datasets.

    With ``warm_start`` log directories, each strategy but random also runs as ``<strategy>+warm``,
    its cost models first trained on those logs (transfer).
    """
    from chameleon.search.registry import StrategyOptions

    variants = strategy_variants(strategies, warm_start)
    runs: list[RunCurve] = []
    qualities: dict[str, SurrogateQuality] = {}
    for path in datasets:
        dataset = load_dataset(path)
        names = [dataset.task(t).name for t in tasks] if tasks else list(dataset.tasks)
        for name in names:
            task = dataset.tasks[name]
            surrogate, qualities[name] = (None, None) if pool_only else fit_surrogate(dataset, task)
            for label, strategy, warm in variants:
                for seed in seeds:
                    options = StrategyOptions(seed=seed, target_json=dataset.target_json, warm_start=warm)
                    sim = simulate(
                        dataset=dataset,
                        task=task,
                        strategy=strategy,
                        options=options,
                        trials=trials,
                        seed=seed,
                        surrogate=surrogate,
                        pool_only=pool_only,
                        trials_per_round=trials_per_round,
                    )
                    rounds = max(1, -(-len(sim.latencies) // trials_per_round))
                    curve = RunCurve(
                        strategy=label,
                        task=name,
                        seed=seed,
                        latencies=tuple(sim.latencies),
                        search_s_per_round=sim.wall_s / rounds,
                    )
                    runs.append(curve)
                    if on_run:
                        on_run(curve)
    return OfflineResult(runs, {k: v for k, v in qualities.items() if v is not None})
