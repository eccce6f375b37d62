"""How well do chameleon's cost models rank configurations a run has not measured yet? On benchmark runs.

    python -m experiments.model_ranking --runs seed3-full --seed 3 [--after 16 --after 32 --after 64]

For every task under experiments/results/runs/<runs>/ with a chameleon run and an evolutionary run of
the seed: train the knob model (:class:`KnobCostModel`, the agent's reward) and MetaSchedule's
program-feature XGBoost (the shortlist's re-ranker) on the chameleon run's first n measurements, as
the search has them then, and score two test sets: the chameleon run's later measurements (what the
search went on to pick: a biased sample) and the evolutionary run's measurements (a broader sample
over the sketches). Scores: the knob model, the program model, and the search's blend (the mean of
their rank percentiles, ``program_model_weight`` 0.5) and a 0.8 blend. Metrics per test set: Spearman
correlation with throughput, and the best latency among the 5 top-scored over the set's best. Prints a
line per task and a table of medians over tasks.
"""

from __future__ import annotations

import argparse
import collections
import math
from pathlib import Path

import numpy as np

RUNS = Path("experiments/results/runs")
BLENDS = {"knob": 0.0, "program": 1.0, "blend 0.5": 0.5, "blend 0.8": 0.8}


def main() -> None:
    from chameleon.tvm_glue.intrinsics import import_tensor_intrinsics

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", required=True, help="run directory under experiments/results/runs")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--after", type=int, action="append", help="measurements to train on (repeatable)")
    args = parser.parse_args()
    import_tensor_intrinsics()
    results = collections.defaultdict(list)  # (n, test set, scorer) -> [(rho, top-5 ratio)]
    for task_dir in sorted((RUNS / args.runs).iterdir()):
        chameleon = sorted(task_dir.glob(f"chameleon:*-s{args.seed}")) + sorted(
            task_dir.glob(f"chameleon-s{args.seed}")
        )
        evolutionary = task_dir / f"evolutionary-s{args.seed}"
        if chameleon and evolutionary.exists():
            for key, value in _task(task_dir.name, chameleon[0], evolutionary, args.after or [16, 32, 64]):
                results[key].append(value)
    print("\n| after | test set | scorer | Spearman (median) | top-5 best / set best (median) | tasks |")
    print("|---:|---|---|---:|---:|---:|")
    for (n, test, scorer), values in sorted(results.items()):
        a = np.array(values)
        print(
            f"| {n} | {test} | {scorer} | {np.median(a[:, 0]):+.2f} | {np.median(a[:, 1]):.3f} | {len(a)} |"
        )


def _task(name: str, chameleon_dir: Path, evolutionary_dir: Path, afters: list[int]):
    from tvm.s_tir.meta_schedule.cost_model import XGBModel
    from tvm.s_tir.meta_schedule.runner import RunnerResult

    from chameleon.cost_model.knob_model import KnobCostModel
    from chameleon.logs.database import open_database
    from chameleon.search.chameleon_search import _percentile_ranks
    from chameleon.space.space import to_measure_candidate
    from experiments.run_sketches import run_space

    ctx, space, records = run_space(chameleon_dir)
    candidates: dict = {}

    def candidate(config):
        if config not in candidates:
            sch = space.materialize(config, seed=1)
            candidates[config] = None if sch is None else to_measure_candidate(sch)
        return candidates[config]

    ours = [m for m in _measured(chameleon_dir, space, records) if candidate(m[0]) is not None]
    evolutionary_records = open_database(evolutionary_dir).get_all_tuning_records()
    theirs = [
        m for m in _measured(evolutionary_dir, space, evolutionary_records) if candidate(m[0]) is not None
    ]
    short = name.split("_")[1]
    for n in afters:
        train = ours[:n]
        knob = KnobCostModel(seed=0)
        knob.fit(space.features([c for c, _ in train]), np.array([lat for _, lat in train]))
        program = XGBModel(num_warmup_samples=0, num_tuning_cores=1)
        program.update(
            ctx,
            [candidate(c) for c, _ in train],
            [
                RunnerResult([lat], None) if math.isfinite(lat) else RunnerResult(None, "failed")
                for _, lat in train
            ],
        )
        seen = {c for c, _ in train}
        for test_name, test in (("its later ones", ours[n:]), ("evolutionary's", theirs)):
            test = [(c, lat) for c, lat in test if c not in seen]
            if len(test) < 10:
                continue
            configs, lats = [c for c, _ in test], np.array([lat for _, lat in test])
            k = np.asarray(knob.predict(space.features(configs)), dtype=float)
            p = np.asarray(program.predict(ctx, [candidate(c) for c in configs]), dtype=float)
            for scorer, w in BLENDS.items():  # the search's blend (ChameleonSearch._rerank)
                rho, top5 = _metrics((1 - w) * _percentile_ranks(k) + w * _percentile_ranks(p), lats)
                print(
                    f"{short:9s} after {n:3d}  {test_name:15s} {scorer:9s} Spearman {rho:+.2f}  top-5 {top5:.3f}",
                    flush=True,
                )
                yield (n, test_name, scorer), (rho, top5)


def _measured(run_dir: Path, space, records) -> list[tuple]:
    """(configuration, latency; inf: failed) of a run's measurements in order; undecodable ones skipped."""
    from chameleon.logs.timeline import read_timeline
    from experiments.run_sketches import run_configs

    configs = run_configs(space, records)
    return [
        (configs[m.key], m.latency_s if m.ok else math.inf)
        for m in read_timeline(run_dir)
        if configs.get(m.key) is not None
    ]


def _metrics(scores: np.ndarray, lats: np.ndarray) -> tuple[float, float]:
    from scipy.stats import spearmanr

    ok = np.isfinite(lats)
    throughput = np.where(ok, 1.0 / np.where(ok, lats, 1.0), 0.0)
    top = np.argsort(-scores, kind="stable")[:5]
    return float(spearmanr(scores, throughput).statistic), float(lats[top].min() / lats[ok].min())


if __name__ == "__main__":
    main()
