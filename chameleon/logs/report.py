"""Per-task results and tuning curves, computed from a log directory alone (pure functions)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from chameleon.logs.metadata import read_run_file
from chameleon.logs.timeline import Measurement, read_timeline


@dataclass(frozen=True)
class TaskRow:
    name: str
    weight: int
    flop: float
    best_s: float | None
    trials: int
    errors: int

    @property
    def gflops(self) -> float | None:
        return self.flop / self.best_s / 1e9 if self.best_s and self.flop else None


@dataclass(frozen=True)
class LogReport:
    log_dir: Path
    network: str
    target: str
    rows: list[TaskRow]
    measurements: list[Measurement]

    @property
    def estimated_latency_s(self) -> float | None:
        """Sum of weight x best kernel latency over tasks; None until every task has one."""
        if not self.rows or any(r.best_s is None for r in self.rows):
            return None
        return sum(r.weight * r.best_s for r in self.rows)


def build_report(log_dir: str | Path) -> LogReport:
    log_dir = Path(log_dir)
    run = read_run_file(log_dir)
    timeline = read_timeline(log_dir)
    rows = []
    for task in run.get("tasks", []):
        mine = [m for m in timeline if m.task == task["name"]]
        ok = [m.latency_s for m in mine if m.ok]
        rows.append(
            TaskRow(
                name=task["name"],
                weight=int(task["weight"]),
                flop=float(task["flop"]),
                best_s=min(ok) if ok else None,
                trials=len(mine),
                errors=len(mine) - len(ok),
            )
        )
    return LogReport(log_dir, run.get("network", "?"), run.get("target", "?"), rows, timeline)


def best_so_far(latencies: list[float | None]) -> list[float]:
    """Running minimum; NaN until the first valid measurement."""
    out, best = [], math.inf
    for lat in latencies:
        if lat is not None and lat < best:
            best = lat
        out.append(best if math.isfinite(best) else math.nan)
    return out


def network_curve(report: LogReport) -> tuple[list[int], list[float]]:
    """Estimated network latency (sum of weight x best) after each measurement, in log order.

    Tasks not measured yet contribute nothing, so the curve starts once every tuned task has a
    valid measurement.
    """
    weights = {r.name: r.weight for r in report.rows if r.trials}
    best: dict[str, float] = {}
    xs, ys = [], []
    for i, m in enumerate(report.measurements, start=1):
        if m.ok and m.latency_s < best.get(m.task, math.inf):
            best[m.task] = m.latency_s
        if weights and len(best) == len(weights):
            xs.append(i)
            ys.append(sum(weights[t] * v for t, v in best.items()))
    return xs, ys


def plot_report(report: LogReport, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    xs, ys = network_curve(report)
    ax1.plot(xs, [y * 1e3 for y in ys], color="tab:blue")
    ax1.set_xlabel("measurements")
    ax1.set_ylabel("sum of weight x best kernel latency (ms)")
    ax1.set_title(f"{report.network} on {report.target}")
    ax1.grid(alpha=0.3)
    for row in sorted(report.rows, key=lambda r: -(r.flop * r.weight))[:8]:
        lats = [m.latency_s for m in report.measurements if m.task == row.name]
        curve = best_so_far(lats)
        if lats and row.best_s:
            ax2.plot(range(1, len(curve) + 1), [c / row.best_s for c in curve], label=row.name[:32])
    ax2.set_xlabel("measurements of the task")
    ax2.set_ylabel("best latency / final best")
    ax2.set_yscale("log")
    ax2.set_title("largest tasks")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=6)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
