"""Does the offline (simulated) ranking of strategies agree with the online one?"""

from __future__ import annotations

import math
from pathlib import Path

from chameleon.bench.metrics import RunCurve, summarize, task_stats
from chameleon.bench.output import read_curves


def ranking_agreement(
    offline: list[RunCurve], online_csv: Path, *, budget: int, baseline: str = "evolutionary"
) -> str:
    """One paragraph: the strategies ranked offline and online on the tasks both cover, by final
    latency ratio (lower is better) and by measurement ratio (higher is better), with Kendall's tau
    for each (1: same order, -1: reversed) and a plain verdict."""
    online, online_budget = read_curves(online_csv)
    shared = {r.task for r in online} & {r.task for r in offline}
    if not shared:
        return "Ranking check: the online benchmark covers none of the offline tasks; no comparison."
    off = _summary(offline, shared, budget, baseline)
    on = _summary(online, shared, online_budget, baseline)
    common = sorted(set(off) & set(on))
    if len(common) < 2:
        return f"Ranking check: fewer than two strategies in both benchmarks ({common}); no comparison."
    lines = [f"Ranking check on {len(shared)} shared task(s) and strategies {common} ({online_csv.name}):"]
    for metric, sign in (("final latency ratio", 1.0), ("measurement ratio", -1.0)):
        key_off = {s: sign * getattr(off[s], _FIELDS[metric]) for s in common}
        key_on = {s: sign * getattr(on[s], _FIELDS[metric]) for s in common}
        a, b = [key_off[s] for s in common], [key_on[s] for s in common]
        tau = _kendall(a, b)
        if len(set(a)) == 1 or len(set(b)) == 1:
            verdict = "cannot be compared (one side ties every strategy)"
        else:
            verdict = "agree" if tau >= 0.999 else ("mostly agree" if tau > 0.3 else "DISAGREE")
        lines.append(
            f"- by {metric}: offline {sorted(common, key=key_off.get)}, online {sorted(common, key=key_on.get)}; "
            f"Kendall tau {tau:.2f}: the rankings {verdict}."
        )
    return "\n".join(lines)


_FIELDS = {"final latency ratio": "final_latency_ratio", "measurement ratio": "measurement_ratio"}


def _summary(runs: list[RunCurve], tasks: set[str], budget: int, baseline: str) -> dict:
    stats = task_stats([r for r in runs if r.task in tasks], budget=budget)
    return {s.strategy: s for s in summarize(stats, baseline=baseline)}


def _kendall(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b; 0 when either side has no spread (all ties)."""
    from scipy.stats import kendalltau

    tau = kendalltau(a, b).statistic
    return 0.0 if tau is None or math.isnan(tau) else float(tau)
