"""``chameleon simulate``: run strategies against a recorded dataset instead of hardware."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def simulate(
    dataset: Path = typer.Option(..., help="A dataset: a chameleon log directory or a .tar.gz of one."),
    strategy: list[str] = typer.Option(["chameleon"], help="Strategy to simulate (repeatable)."),
    trials: int = typer.Option(200, help="Simulated measurements per run."),
    seeds: int = typer.Option(3, help="Runs per strategy and task (seeds 0..K-1)."),
    task: list[str] = typer.Option([], help="Task name (substring); default: every task of the dataset."),
    pool_only: bool = typer.Option(
        False, help="Only recorded configurations: misses are refused, not predicted."
    ),
    trials_per_round: int = typer.Option(16),
) -> None:
    """Answer each measurement from the dataset (surrogate model for misses); no builds, no hardware."""
    from chameleon.bench.offline import run_offline
    from chameleon.bench.output import markdown
    from chameleon.search.registry import get_entry

    for name in strategy:
        get_entry(name)
    table = Table(title=f"simulated on {dataset}")
    for col in ("strategy", "task", "seed", "best (ms)", "measurements", "s/round"):
        table.add_column(col, justify="left" if col in ("strategy", "task") else "right")

    def show(run) -> None:
        best = f"{run.best * 1e3:.4f}" if run.best else "-"
        console.print(f"  {run.strategy} seed {run.seed} {run.task[:50]}: best {best} ms")
        table.add_row(
            run.strategy,
            run.task[:50],
            str(run.seed),
            best,
            str(len(run.latencies)),
            f"{run.search_s_per_round:.2f}",
        )

    result = run_offline(
        datasets=[dataset],
        strategies=list(strategy),
        seeds=list(range(seeds)),
        trials=trials,
        trials_per_round=trials_per_round,
        pool_only=pool_only,
        tasks=list(task) or None,
        on_run=show,
    )
    console.print(table)
    for name, q in result.surrogates.items():
        console.print(
            f"surrogate {name}: held-out Spearman {q.spearman:.3f}, median relative error "
            f"{100 * q.median_rel_error:.1f}% ({q.n_train} train / {q.n_test} test)"
        )
    if len(strategy) > 1:
        baseline = "evolutionary" if "evolutionary" in strategy else strategy[0]
        text, _, _ = markdown(result.runs, budget=trials, baseline=baseline, title="simulated comparison")
        console.print(text)
