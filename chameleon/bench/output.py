"""Benchmark outputs: CSV of every measurement, a markdown table, and a PNG of median curves."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

from chameleon.bench.metrics import (
    RunCurve,
    StrategySummary,
    StrategyTaskStats,
    best_ratios_at,
    budget_points,
    median_curve,
    summarize,
    task_stats,
)


def write_csv(runs: list[RunCurve], path: Path) -> None:
    """One row per measurement; ``read_curves`` reads it back."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "strategy",
                "task",
                "seed",
                "trial",
                "latency_s",
                "best_s",
                "time_s",
                "search_s_per_round",
                "machine",
            ]
        )
        for r in runs:
            best = math.inf
            search = "" if r.search_s_per_round is None else f"{r.search_s_per_round:.6g}"
            for i, lat in enumerate(r.latencies):
                if lat is not None:
                    best = min(best, lat)
                t = r.times[i] if r.times else ""
                w.writerow(
                    [
                        r.strategy,
                        r.task,
                        r.seed,
                        i + 1,
                        "" if lat is None else f"{lat:.6g}",
                        f"{best:.6g}",
                        t,
                        search,
                        r.machine or "",
                    ]
                )


def read_curves(path: Path) -> tuple[list[RunCurve], int]:
    """The runs of a CSV written by ``write_csv`` (older files lack ``search_s_per_round`` and
    ``machine``), and the longest run's length (the budget they ran with)."""
    rows: dict[tuple[str, str, int], list] = defaultdict(list)
    times: dict[tuple[str, str, int], list] = defaultdict(list)
    search: dict[tuple[str, str, int], float | None] = {}
    machine: dict[tuple[str, str, int], str | None] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            key = (row["strategy"], row["task"], int(row["seed"]))
            rows[key].append(float(row["latency_s"]) if row["latency_s"] else None)
            times[key].append(float(row["time_s"]) if row.get("time_s") else None)
            search[key] = float(row["search_s_per_round"]) if row.get("search_s_per_round") else None
            machine[key] = row.get("machine") or None
    curves = [
        RunCurve(
            strategy=s,
            task=t,
            seed=k,
            latencies=tuple(v),
            times=tuple(times[(s, t, k)]) if None not in times[(s, t, k)] else None,
            search_s_per_round=search[(s, t, k)],
            machine=machine[(s, t, k)],
        )
        for (s, t, k), v in rows.items()
    ]
    budget = max((len(c.latencies) for c in curves), default=0)
    return curves, budget


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def markdown(
    runs: list[RunCurve], *, budget: int, baseline: str, title: str, notes: list[str] = ()
) -> tuple[str, list[StrategySummary], dict[tuple[str, str], StrategyTaskStats]]:
    stats = task_stats(runs, budget=budget, baseline=baseline)
    summary = summarize(stats, baseline=baseline)
    seeds = sorted({r.seed for r in runs})
    lines = [f"# {title}", ""]
    lines.append(
        f"Budget {budget} measurements per task and run; seeds {seeds}; baseline `{baseline}`. "
        "Target latency per task: 1.05 x the best any run reached. m = first measurement at or below "
        "the target (2 x budget if never). Ratios are baseline / strategy (> 1 is better); final latency "
        "is strategy / baseline (< 1 is faster code). Medians over seeds, then over tasks. Match ratio: "
        "the same ratio of measurements, to reach the baseline's own median final latency instead."
    )
    lines += ["", *notes, ""] if notes else [""]
    lines.append(
        "| strategy | measurement ratio | time ratio | final latency ratio | runs reaching target "
        "| search s/round | match ratio |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    for s in summary:
        lines.append(
            f"| {s.strategy} | {_fmt(s.measurement_ratio)} | {_fmt(s.time_ratio)} | "
            f"{_fmt(s.final_latency_ratio, '.3f')} | {s.reached}/{s.runs} | {_fmt(s.search_s_per_round)} | "
            f"{_fmt(s.match_ratio)} |"
        )
    lines += _best_at_table(runs, budget=budget, baseline=baseline)
    lines += ["", "Per task: median m (measurements to target) and median best latency (ms).", ""]
    strategies = [s.strategy for s in summary]
    tasks = sorted({t for _, t in stats})
    lines += _task_table(tasks, strategies, stats, _median_cell)
    if len(seeds) > 1:
        lines += [
            "",
            "Per task and seed: m of each run, in seed order (never: did not reach the target).",
            "",
        ]
        lines += _task_table(tasks, strategies, stats, _seed_ms)
    return "\n".join(lines) + "\n", summary, stats


def _best_at_table(runs: list[RunCurve], *, budget: int, baseline: str) -> list[str]:
    """Each strategy's best latency so far against the baseline's at a few budgets (none: [])."""
    points = budget_points(budget)
    ratios = best_ratios_at(runs, budget=budget, baseline=baseline, points=points)
    if not ratios:
        return []
    lines = [
        "",
        f"Best latency so far after n measurements, strategy / `{baseline}` (median over tasks of the "
        "median over seeds; in brackets, the tasks where the strategy is ahead):",
        "",
        "| strategy | " + " | ".join(f"n = {n}" for n in points) + " |",
        "|---|" + "---:|" * len(points),
    ]
    for strategy, rows in ratios.items():
        cells = {r.n: f"{r.median_ratio:.3f} ({r.ahead}/{r.tasks})" for r in rows}
        lines.append(f"| {strategy} | " + " | ".join(cells.get(n, "-") for n in points) + " |")
    return lines


def _task_table(tasks, strategies, stats, cell) -> list[str]:
    """A markdown table with a row per task and a column per strategy; ``cell`` writes a strategy's
    stats on the task ("-" where it has none)."""
    rows = ["| task | " + " | ".join(strategies) + " |", "|---|" + "---:|" * len(strategies)]
    for t in tasks:
        cells = ["-" if (s, t) not in stats else cell(stats[(s, t)]) for s in strategies]
        rows.append(f"| {t} | " + " | ".join(cells) + " |")
    return rows


def _median_cell(stats: StrategyTaskStats) -> str:
    """``72 / 2.878``: median m and median best latency (ms)."""
    best = stats.median_best * 1e3 if stats.median_best else None
    return f"{stats.median_m:g} / {_fmt(best, '.3f')}"


def _seed_ms(stats: StrategyTaskStats) -> str:
    """``s1: 72, s2: never`` for a strategy's runs of one task."""
    return ", ".join(f"s{seed}: {'never' if m is None else m}" for seed, m in stats.m_by_seed)


def plot_curves(runs: list[RunCurve], *, budget: int, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_task: dict[str, dict[str, list[RunCurve]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        by_task[r.task][r.strategy].append(r)
    tasks = sorted(by_task)
    cols = min(2, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4 * rows), squeeze=False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        best = min((r.best for rs in by_task[task].values() for r in rs if r.best), default=None)
        for strategy, rs in sorted(by_task[task].items()):
            curve = median_curve(rs, budget)
            if best:
                ax.plot(range(1, budget + 1), [c / best for c in curve], label=strategy)
        ax.axhline(1.05, color="grey", linestyle=":", linewidth=1)
        ax.set_title(task[:60], fontsize=8)
        ax.set_xlabel("measurements")
        ax.set_ylabel("median best / best of all runs")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(tasks) :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(
    runs: list[RunCurve], *, out_dir: Path, stem: str, budget: int, baseline: str, title: str, notes=()
) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(runs, out_dir / f"{stem}.csv")
    text, _, _ = markdown(runs, budget=budget, baseline=baseline, title=title, notes=list(notes))
    (out_dir / f"{stem}.md").write_text(text)
    plot_curves(runs, budget=budget, path=out_dir / f"{stem}.png", title=title)
    return text
