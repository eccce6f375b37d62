"""``make bench-offline``: every strategy over many seeds on the committed datasets (simulated).

Writes experiments/results/offline.{csv,md,png}. When an online benchmark result exists
(experiments/results/online.csv), also reports whether the offline ranking of the strategies
agrees with the online one on the tasks both cover.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from chameleon.bench.offline import run_offline
from chameleon.bench.output import write_all
from chameleon.bench.ranking import ranking_agreement
from chameleon.search.registry import strategy_names

RESULTS = Path("experiments/results")
DATASETS = Path("experiments/datasets")


def default_datasets() -> list[Path]:
    """Every ``.tar.gz`` under experiments/datasets, plus log directories that are not an unpacked
    copy of one of them (``resnet18-llvm/`` next to ``resnet18-llvm.tar.gz`` is the same data)."""
    archives = sorted(DATASETS.glob("*.tar.gz"))
    stems = {p.name.removesuffix(".tar.gz") for p in archives}
    return archives + sorted(p for p in DATASETS.iterdir() if p.is_dir() and p.name not in stems)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--dataset", action="append", type=Path, help="default: every dataset under experiments/datasets"
    )
    parser.add_argument("--strategy", action="append", help="default: all registered strategies")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--trials-per-round", type=int, default=16)
    parser.add_argument("--task", action="append")
    parser.add_argument("--pool-only", action="store_true")
    parser.add_argument("--out", default="offline")
    parser.add_argument("--baseline", default="evolutionary", help="the strategy ratios are taken against")
    parser.add_argument(
        "--warm-start",
        action="append",
        default=[],
        help="log dir(s): adds a <strategy>+warm variant of each strategy but random",
    )
    parser.add_argument(
        "--merge",
        action="append",
        type=Path,
        help="simulate nothing: merge these result CSVs (e.g. of runs split by task) into --out",
    )
    args = parser.parse_args()
    if args.merge:
        merge(args.merge, out=args.out, baseline=args.baseline)
        return
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("chameleon.bench").setLevel(logging.INFO)

    datasets = args.dataset or default_datasets()
    strategies = args.strategy or strategy_names()
    result = run_offline(
        datasets=datasets,
        strategies=strategies,
        seeds=list(range(args.seeds)),
        trials=args.trials,
        trials_per_round=args.trials_per_round,
        pool_only=args.pool_only,
        tasks=args.task,
        warm_start=tuple(args.warm_start),
        on_run=lambda r: print(
            f"  {r.strategy:18s} {r.task[:48]:48s} seed {r.seed}: best {1e3 * (r.best or float('nan')):.4f} ms, "
            f"{r.search_s_per_round:.2f} s/round",
            flush=True,
        ),
    )
    notes = [
        "Simulated: hits return the recorded latency; misses "
        + ("are refused (pool-only)." if args.pool_only else "are answered by the surrogate:"),
    ]
    for task, q in result.surrogates.items():
        notes.append(
            f"- surrogate for `{task}`: held-out Spearman {q.spearman:.3f}, median relative error {100 * q.median_rel_error:.1f}% ({q.n_train} train / {q.n_test} test)"
        )
    write_results(result.runs, budget=args.trials, stem=args.out, notes=notes, baseline=args.baseline)


def merge(paths: list[Path], *, out: str, baseline: str = "evolutionary") -> None:
    """One table, plot and ranking check from several offline result CSVs."""
    from chameleon.bench.output import read_curves

    runs, budget = [], 0
    for path in paths:
        curves, b = read_curves(path)
        runs += curves
        budget = max(budget, b)
    notes = [f"Merged from {', '.join(p.name for p in paths)} (surrogate quality: in their .md files)."]
    write_results(runs, budget=budget, stem=out, notes=notes, baseline=baseline)


def write_results(runs: list, *, budget: int, stem: str, notes: list[str], baseline: str) -> None:
    """CSV, plot and table under experiments/results, with the ranking check against the online
    benchmark's result when there is one; prints the table."""
    online = next((p for p in (RESULTS / "online.csv", RESULTS / "online-quick.csv") if p.exists()), None)
    if online is not None:
        notes = [*notes, "", ranking_agreement(runs, online, budget=budget)]
    text = write_all(
        runs,
        out_dir=RESULTS,
        stem=stem,
        budget=budget,
        baseline=baseline,
        title=f"Offline benchmark ({budget} simulated measurements per run)",
        notes=notes,
    )
    print(text)


if __name__ == "__main__":
    main()
