"""How noisy is one measurement on this machine? Re-measure recorded configurations many times.

Takes the fastest configurations of a task from a log (and two from its slower quartile), builds
each once for the local CPU and times each ``--rounds`` times, interleaved (config 1, 2, ...,
then again), with the runner settings tuning uses (``tuning.measure.MeasureConfig``). For every
configuration: min, median and max of its times, and how often a single time lands within 5% of
the configuration's own best. The benchmark's target is 1.05x the best any run reached: when one
configuration's own times spread wider than that, reaching the target within a budget is partly
luck, whatever the search.

``--passes 1,3,5`` adds what interleaved timing passes (``chameleon tune --measure-passes``) would
have recorded: consecutive interleaved rounds grouped K at a time, each group keeping its fastest,
and the same spread taken over the groups. ``--series N`` also times the fastest configuration N
times back to back and plots the times against the clock (how long a level of the host's load lasts),
and tells from that series what 5 passes would record at each spacing of their starts (the benchmark's
``--pass-spacing``: the wait that rounds of few candidates pay).
Writes experiments/results/noise-<out>.{csv,md} (and noise-<out>-series.{csv,png}).
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

RESULTS = Path("experiments/results")
BAND = 1.05


def _picked(dataset_path: Path, task_part: str, top: int):
    from chameleon.simulate.dataset import load_dataset

    task = load_dataset(dataset_path).task(task_part)
    keys = sorted(task.valid_keys(), key=lambda k: task.latency[k])
    return task, keys[:top] + keys[len(keys) // 4 : len(keys) // 4 + 2]


def spread(times: list[float]) -> tuple[float, float]:
    """max/min of ``times``, and the share of them within 5% of the min."""
    best = min(times)
    return max(times) / best, sum(x <= BAND * best for x in times) / len(times)


def fastest_of_groups(times: list[float], k: int) -> list[float]:
    """What ``k`` interleaved passes record: consecutive groups of ``k`` times, each one's min."""
    return [min(times[j : j + k]) for j in range(0, len(times) - k + 1, k)]


def measure(dataset_path: Path, task_part: str, *, top: int, rounds: int) -> tuple[list[dict], dict]:
    from chameleon.hardware.targets import resolve_target
    from chameleon.tuning.confirm import remeasure

    task, picked = _picked(dataset_path, task_part, top)
    spec = resolve_target("llvm")
    traces = [task.traces[k] for k in picked]
    times = remeasure(task.workload, traces, rounds=rounds, spec=spec, target=spec.tvm_target())
    rows, series = [], {}
    for rank, (key, t) in enumerate(zip(picked, times, strict=True)):
        if not t:
            continue
        best = min(t)
        series[key] = t
        rows.append(
            {
                "task": task.name,
                "config": key,
                "recorded_rank": rank + 1 if rank < top else f"q1+{rank - top}",
                "recorded_ms": task.latency[key] * 1e3,
                "min_ms": best * 1e3,
                "median_ms": statistics.median(t) * 1e3,
                "max_ms": max(t) * 1e3,
                "max_over_min": spread(t)[0],
                "within_5pct": spread(t)[1],
                "times": len(t),
            }
        )
    return rows, series


def passes_table(series: dict[str, list[float]], passes: list[int]) -> list[str]:
    lines = [
        "",
        "What K interleaved timing passes would record (consecutive rounds grouped K at a time, each"
        " group's fastest; `chameleon tune --measure-passes K`), median over configurations:",
        "",
        "| passes K | values per configuration | max/min | within 5% of min |",
        "|---:|---:|---:|---:|",
    ]
    for k in passes:
        groups = [fastest_of_groups(t, k) for t in series.values()]
        if min(len(g) for g in groups) < 2:
            continue
        s = [spread(g) for g in groups]
        lines.append(
            f"| {k} | {min(len(g) for g in groups)} | {statistics.median(x[0] for x in s):.2f} |"
            f" {statistics.median(x[1] for x in s):.0%} |"
        )
    return lines


SPACINGS_S = (0.0, 0.25, 0.5, 1.0)


def fastest_spaced(points: list[tuple[float, float]], k: int, spacing_s: float) -> list[float]:
    """From a series of ``(t_s, time)``: for every start, the fastest of ``k`` times taken at least
    ``spacing_s`` apart (the first at or after the one before plus the spacing), as ``k`` timing
    passes that start ``spacing_s`` apart would record; starts too late for ``k`` times are left out."""
    out = []
    for i in range(len(points)):
        picked, due = [], points[i][0]
        for t, value in points[i:]:
            if t >= due:
                picked.append(value)
                due = t + spacing_s
                if len(picked) == k:
                    out.append(min(picked))
                    break
    return out


def spacing_table(points: list[tuple[float, float]], k: int = 5) -> list[str]:
    """What ``k`` passes record at each spacing of their starts (``--pass-spacing``), from one series."""
    floor = min(v for _, v in points)
    lines = [
        "",
        f"What {k} timing passes starting S seconds apart would record, from the series (every start;"
        " the fastest of its passes over the series' min):",
        "",
        "| spacing S | starts | median | 90th percentile | within 5% of the min |",
        "|---:|---:|---:|---:|---:|",
    ]
    for spacing in SPACINGS_S:
        ratios = sorted(v / floor for v in fastest_spaced(points, k, spacing))
        if ratios:
            p90 = ratios[int(0.9 * (len(ratios) - 1))]
            within = sum(r <= BAND for r in ratios) / len(ratios)
            lines.append(
                f"| {spacing:g} s | {len(ratios)} | {statistics.median(ratios):.3f} | {p90:.3f} | {within:.0%} |"
            )
    return lines


def time_series(dataset_path: Path, task_part: str, n: int, out: str) -> list[str]:
    """Times the fastest recorded configuration ``n`` times back to back; writes the series."""
    import time

    from chameleon.hardware.targets import resolve_target
    from chameleon.tuning.confirm import remeasure

    task, picked = _picked(dataset_path, task_part, 1)
    spec = resolve_target("llvm")
    stamps: list[tuple[float, float]] = []
    remeasure(
        task.workload,
        [task.traces[picked[0]]],
        rounds=n,
        spec=spec,
        target=spec.tvm_target(),
        on_time=lambda _, lat: stamps.append((time.perf_counter(), lat * 1e3)),
    )
    points = [(t - stamps[0][0], ms) for t, ms in stamps]
    with open(RESULTS / f"noise-{out}-series.csv", "w", newline="") as f:
        csv.writer(f).writerows([("t_s", "ms"), *((f"{t:.3f}", f"{v:.4f}") for t, v in points)])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.plot([p[0] for p in points], [p[1] for p in points], ".-", lw=0.6, ms=3)
    ax.set_xlabel("seconds since the first time")
    ax.set_ylabel("ms")
    ax.set_title(f"one configuration of {task.name[:40]}, timed {len(points)} times back to back")
    fig.tight_layout()
    fig.savefig(RESULTS / f"noise-{out}-series.png", dpi=120)
    times = [p[1] for p in points]
    ratio, within = spread(times)
    return [
        f"The fastest configuration timed {len(points)} times back to back over {points[-1][0]:.0f} s"
        f" (`noise-{out}-series.png`): min {min(times):.3f} ms, median {statistics.median(times):.3f},"
        f" max {max(times):.3f} (max/min {ratio:.2f}; {within:.0%} of the times within 5% of the min).",
        *spacing_table(points),
    ]


def write(rows: list[dict], out: str, *, dataset: Path, rounds: int, extra: list[str]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / f"noise-{out}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    ratio = statistics.median(r["max_over_min"] for r in rows)
    within = statistics.median(r["within_5pct"] for r in rows)
    from chameleon.hardware.host_cpu import host_llvm_cpu
    from chameleon.hardware.targets import host_cores

    lines = [
        f"# Measurement noise on this machine ({host_cores()} cores, LLVM cpu {host_llvm_cpu()})",
        "",
        f"Configurations of `{rows[0]['task']}` from `{dataset}`, each built once and timed {rounds} times,"
        " interleaved, with the tuning runner's settings. Median over configurations: max/min"
        f" {ratio:.2f}; a single time is within 5% of the configuration's own best {within:.0%} of"
        " the time.",
        "",
        "| recorded rank | recorded (ms) | min (ms) | median (ms) | max (ms) | max/min | within 5% of min |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['recorded_rank']} | {r['recorded_ms']:.3f} | {r['min_ms']:.3f} | {r['median_ms']:.3f} | "
        f"{r['max_ms']:.3f} | {r['max_over_min']:.2f} | {r['within_5pct']:.0%} |"
        for r in rows
    ]
    lines += extra
    (RESULTS / f"noise-{out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", type=Path, default=Path("experiments/datasets/resnet18-llvm.tar.gz"))
    parser.add_argument("--task", default="conv2d1_", help="task name or a unique part of it")
    parser.add_argument("--top", type=int, default=6, help="fastest recorded configurations to re-measure")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--out", default="host")
    parser.add_argument(
        "--passes", default="", help="comma-separated K: add what K interleaved timing passes would record"
    )
    parser.add_argument(
        "--series", type=int, default=0, metavar="N", help="also time the fastest N times back to back"
    )
    args = parser.parse_args()
    passes = [int(k) for k in args.passes.split(",") if k.strip()]
    rows, series = measure(args.dataset, args.task, top=args.top, rounds=args.rounds)
    if not rows:
        raise SystemExit("error: no configuration could be built and timed; see the log above")
    extra = passes_table(series, passes) if passes else []
    if args.series:
        extra += ["", *time_series(args.dataset, args.task, args.series, args.out)]
    write(rows, args.out, dataset=args.dataset, rounds=args.rounds, extra=extra)


if __name__ == "__main__":
    main()
