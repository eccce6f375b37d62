"""How noisy is one measurement on this machine? Re-measure recorded configurations many times.

Takes the fastest configurations of a task from a log (and two from its slower quartile), builds
each once for the local CPU and times each ``--rounds`` times, interleaved (config 1, 2, ...,
then again), with the runner settings tuning uses (``tuning.measure.MeasureConfig``). For every
configuration: min, median and max of its times, and how often a single time lands within 5% of
the configuration's own best. The benchmark's target is 1.05x the best any run reached: when one
configuration's own times spread wider than that, reaching the target within a budget is partly
luck, whatever the search.
Writes experiments/results/noise-<out>.{csv,md}.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

RESULTS = Path("experiments/results")
BAND = 1.05


def measure(dataset_path: Path, task_part: str, *, top: int, rounds: int) -> list[dict]:
    from chameleon.hardware.targets import resolve_target
    from chameleon.simulate.dataset import load_dataset
    from chameleon.tuning.confirm import remeasure

    task = load_dataset(dataset_path).task(task_part)
    keys = sorted(task.valid_keys(), key=lambda k: task.latency[k])
    picked = keys[:top] + keys[len(keys) // 4 : len(keys) // 4 + 2]
    spec = resolve_target("llvm")
    traces = [task.traces[k] for k in picked]
    times = remeasure(task.workload, traces, rounds=rounds, spec=spec, target=spec.tvm_target())
    rows = []
    for rank, (key, t) in enumerate(zip(picked, times, strict=True)):
        if not t:
            continue
        best = min(t)
        rows.append(
            {
                "task": task.name,
                "config": key,
                "recorded_rank": rank + 1 if rank < top else f"q1+{rank - top}",
                "recorded_ms": task.latency[key] * 1e3,
                "min_ms": best * 1e3,
                "median_ms": statistics.median(t) * 1e3,
                "max_ms": max(t) * 1e3,
                "max_over_min": max(t) / best,
                "within_5pct": sum(x <= BAND * best for x in t) / len(t),
                "times": len(t),
            }
        )
    return rows


def write(rows: list[dict], out: str, *, dataset: Path, rounds: int) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / f"noise-{out}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    spread = statistics.median(r["max_over_min"] for r in rows)
    within = statistics.median(r["within_5pct"] for r in rows)
    from chameleon.hardware.host_cpu import host_llvm_cpu
    from chameleon.hardware.targets import host_cores

    lines = [
        f"# Measurement noise on this machine ({host_cores()} cores, LLVM cpu {host_llvm_cpu()})",
        "",
        f"Configurations of `{rows[0]['task']}` from `{dataset}`, each built once and timed {rounds} times,"
        " interleaved, with the tuning runner's settings. Median over configurations: max/min"
        f" {spread:.2f}; a single time is within 5% of the configuration's own best {within:.0%} of"
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
    args = parser.parse_args()
    rows = measure(args.dataset, args.task, top=args.top, rounds=args.rounds)
    if not rows:
        raise SystemExit("error: no configuration could be built and timed; see the log above")
    write(rows, args.out, dataset=args.dataset, rounds=args.rounds)


if __name__ == "__main__":
    main()
