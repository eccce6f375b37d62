"""Does the offline (simulated) ranking of strategies agree with the online one?"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from chameleon.bench.metrics import RunCurve, summarize, task_stats


def read_curves(path: Path) -> tuple[list[RunCurve], int]:
    rows: dict[tuple[str, str, int], list] = defaultdict(list)
    times: dict[tuple[str, str, int], list] = defaultdict(list)
    with path.open() as f:
        for row in csv.DictReader(f):
            key = (row["strategy"], row["task"], int(row["seed"]))
            rows[key].append(float(row["latency_s"]) if row["latency_s"] else None)
            times[key].append(float(row["time_s"]) if row.get("time_s") else None)
    curves = [
        RunCurve(
            strategy=s,
            task=t,
            seed=k,
            latencies=tuple(v),
            times=tuple(times[(s, t, k)]) if all(times[(s, t, k)]) else None,
        )
        for (s, t, k), v in rows.items()
    ]
    budget = max((len(c.latencies) for c in curves), default=0)
    return curves, budget


def ranking_agreement(
    offline: list[RunCurve], online_csv: Path, *, budget: int, baseline: str = "evolutionary"
) -> str:
    online, online_budget = read_curves(online_csv)
    shared = {r.task for r in online} & {r.task for r in offline}
    if not shared:
        return "Ranking check: the online benchmark covers none of the offline tasks; no comparison."

    def order(runs, b):
        summary = summarize(task_stats([r for r in runs if r.task in shared], budget=b), baseline=baseline)
        return [s.strategy for s in sorted(summary, key=lambda s: -s.measurement_ratio)]

    off, on = order(offline, budget), order(online, online_budget)
    common = [s for s in off if s in on]
    off, on = [s for s in off if s in common], [s for s in on if s in common]
    verdict = "agree" if off == on else "DISAGREE"
    return (
        f"Ranking check on {len(shared)} shared task(s), by measurement ratio: offline {off}, online {on}: "
        f"the rankings {verdict}."
    )
