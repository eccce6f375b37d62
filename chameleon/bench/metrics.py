"""Search-efficiency metrics (pure functions), as defined in DESIGN.md.

Per task, all runs share a budget B. L_ref is the best latency any run of any strategy reached;
the target is T = 1.05 x L_ref. For a run, m is the first measurement (1-based) at or below T; a
run that never gets there counts as 2B. Per strategy and task the median m over seeds is taken;
the measurement ratio of a strategy is m_baseline / m_strategy (> 1: fewer measurements than the
baseline). The same with the wall-clock second at which T was reached gives the time ratio.

A second view asks how soon a strategy matches the baseline's result: with T_b = the baseline's
median best latency after B over seeds (the slower middle one for an even count), m_b is the first
measurement at or below T_b (2B if never), and the match ratio is m_b(baseline) / m_b(strategy).
It does not depend on how good the best run of any strategy was, so adding runs does not move it.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class RunCurve:
    """One run of one strategy on one task with one seed."""

    strategy: str
    task: str
    seed: int
    latencies: tuple[float | None, ...]
    """Latency of each measurement in order (None: failed)."""
    times: tuple[float, ...] | None = None
    """Seconds since the run started at which each measurement finished (None offline)."""
    search_s_per_round: float | None = None
    machine: str | None = None
    """What the run was timed on, as its target resolved (:func:`machine_label`); None if unknown."""

    @property
    def best(self) -> float | None:
        ok = [v for v in self.latencies if v is not None]
        return min(ok) if ok else None


def machine_label(target_json: dict) -> str:
    """A resolved target in one line, e.g. ``llvm mcpu=znver4 num-cores=2``: the kind, then its
    other plain attributes in name order. Runs of one task compare only on the same machine."""
    plain = {k: v for k, v in target_json.items() if k != "kind" and isinstance(v, (str, int, float, bool))}
    return " ".join([str(target_json.get("kind", "?"))] + [f"{k}={v}" for k, v in sorted(plain.items())])


def mixed_machines(runs: list[RunCurve]) -> dict[str, list[str]]:
    """Tasks whose runs were timed on more than one machine (unknown machines left aside), with
    those machines: such runs share no latency scale, so no target can be taken over them."""
    machines: dict[str, set[str]] = defaultdict(set)
    for r in runs:
        if r.machine is not None:
            machines[r.task].add(r.machine)
    return {t: sorted(m) for t, m in machines.items() if len(m) > 1}


def first_reach(latencies, threshold: float) -> int | None:
    for i, v in enumerate(latencies, start=1):
        if v is not None and v <= threshold:
            return i
    return None


@dataclass(frozen=True)
class StrategyTaskStats:
    strategy: str
    task: str
    median_m: float
    median_t: float | None
    reached: int
    runs: int
    median_best: float | None
    search_s_per_round: float | None
    median_match_m: float | None = None
    """Median first measurement at or below the baseline's median best (2 x budget if never);
    None without a baseline."""
    m_by_seed: tuple[tuple[int, int | None], ...] = ()
    """``(seed, m)`` of each run in seed order, m None where the run never reached the target: the
    spread behind ``median_m`` (with few seeds, one run decides the median)."""


def task_stats(
    runs: list[RunCurve], *, budget: int, tolerance: float = 1.05, baseline: str | None = None
) -> dict[tuple[str, str], StrategyTaskStats]:
    by_task: dict[str, list[RunCurve]] = defaultdict(list)
    for r in runs:
        by_task[r.task].append(r)
    out = {}
    for task, task_runs in by_task.items():
        bests = [r.best for r in task_runs if r.best is not None]
        if not bests:
            continue
        threshold = tolerance * min(bests)
        by_strategy: dict[str, list[RunCurve]] = defaultdict(list)
        for r in task_runs:
            by_strategy[r.strategy].append(r)
        base_bests = [r.best for r in by_strategy.get(baseline, []) if r.best is not None]
        # median_high: with an even number of seeds, the slower middle run, which each of the
        # baseline's middle runs reaches within the budget
        match = statistics.median_high(base_bests) if base_bests else None
        for strategy, srs in by_strategy.items():
            ms, ts, reached, m_by_seed = [], [], 0, []
            for r in srs:
                m = first_reach(r.latencies, threshold)
                reached += m is not None
                m_by_seed.append((r.seed, m))
                ms.append(m if m is not None else 2 * budget)
                if r.times:
                    total = r.times[-1] if r.times else 0.0
                    ts.append(r.times[m - 1] if m is not None else 2 * total)
            best = [r.best for r in srs if r.best is not None]
            search = [r.search_s_per_round for r in srs if r.search_s_per_round is not None]
            out[(strategy, task)] = StrategyTaskStats(
                strategy=strategy,
                task=task,
                median_m=statistics.median(ms),
                median_t=statistics.median(ts) if ts else None,
                reached=reached,
                runs=len(srs),
                median_best=statistics.median(best) if best else None,
                search_s_per_round=statistics.median(search) if search else None,
                median_match_m=None
                if match is None
                else statistics.median(_reach_or(r.latencies, match, 2 * budget) for r in srs),
                m_by_seed=tuple(sorted(m_by_seed, key=lambda sm: sm[0])),
            )
    return out


def _reach_or(latencies, threshold: float, never: int) -> int:
    m = first_reach(latencies, threshold)
    return never if m is None else m


@dataclass(frozen=True)
class StrategySummary:
    strategy: str
    measurement_ratio: float
    """Median over tasks of m_baseline / m_strategy."""
    time_ratio: float | None
    final_latency_ratio: float
    """Median over tasks of median best (strategy) / median best (baseline): < 1 is faster code."""
    reached: int
    runs: int
    search_s_per_round: float | None
    match_ratio: float | None = None
    """Median over tasks of m_b(baseline) / m_b(strategy), if the stats carry them."""


def summarize(stats: dict[tuple[str, str], StrategyTaskStats], *, baseline: str) -> list[StrategySummary]:
    strategies = sorted({s for s, _ in stats}, key=lambda s: (s != baseline, s))
    tasks = sorted({t for _, t in stats})
    out = []
    for s in strategies:
        m_ratios, t_ratios, l_ratios, match_ratios, reached, runs, search = [], [], [], [], 0, 0, []
        for t in tasks:
            mine, base = stats.get((s, t)), stats.get((baseline, t))
            if mine is None or base is None:
                continue
            m_ratios.append(base.median_m / mine.median_m)
            if mine.median_match_m and base.median_match_m:
                match_ratios.append(base.median_match_m / mine.median_match_m)
            if mine.median_t and base.median_t:
                t_ratios.append(base.median_t / mine.median_t)
            if mine.median_best and base.median_best:
                l_ratios.append(mine.median_best / base.median_best)
            reached += mine.reached
            runs += mine.runs
            if mine.search_s_per_round is not None:
                search.append(mine.search_s_per_round)
        if not m_ratios:
            continue
        out.append(
            StrategySummary(
                strategy=s,
                measurement_ratio=statistics.median(m_ratios),
                time_ratio=statistics.median(t_ratios) if t_ratios else None,
                final_latency_ratio=statistics.median(l_ratios) if l_ratios else math.nan,
                reached=reached,
                runs=runs,
                search_s_per_round=statistics.median(search) if search else None,
                match_ratio=statistics.median(match_ratios) if match_ratios else None,
            )
        )
    return out


def median_curve(runs: list[RunCurve], budget: int) -> list[float]:
    """Best-so-far latency after each measurement, median over the given runs (NaN before any)."""
    curves = []
    for r in runs:
        best, c = math.inf, []
        for i in range(budget):
            v = r.latencies[i] if i < len(r.latencies) else None
            if v is not None and v < best:
                best = v
            c.append(best)
        curves.append(c)
    out = []
    for i in range(budget):
        vals = [c[i] for c in curves]
        med = statistics.median(vals)
        out.append(med if math.isfinite(med) else math.nan)
    return out


def budget_points(budget: int) -> list[int]:
    """The measurement counts a curve is read at: powers of two from 4 below the budget, then the budget."""
    points, n = [], 4
    while n < budget:
        points.append(n)
        n *= 2
    return [*points, budget]


@dataclass(frozen=True)
class BestRatioAt:
    """A strategy's best latency so far against the baseline's after ``n`` measurements."""

    n: int
    median_ratio: float
    """Median over tasks of median best-so-far (strategy) / median best-so-far (baseline), medians
    over seeds: < 1 is faster code found by then."""
    ahead: int
    """Tasks where the strategy's median best-so-far is lower than the baseline's."""
    tasks: int
    """Tasks where both had a valid measurement by then."""


def best_ratios_at(
    runs: list[RunCurve], *, budget: int, baseline: str, points: list[int]
) -> dict[str, list[BestRatioAt]]:
    """Per strategy other than the baseline, its :class:`BestRatioAt` at each of ``points``: the
    curves compared at fixed budgets, which the measurement ratio (one target per task) does not show."""
    groups: dict[tuple[str, str], list[RunCurve]] = defaultdict(list)
    for r in runs:
        groups[(r.strategy, r.task)].append(r)
    curves = {key: median_curve(rs, budget) for key, rs in groups.items()}
    out: dict[str, list[BestRatioAt]] = {}
    for strategy in sorted({s for s, _ in groups} - {baseline}):
        pairs = [
            (curve, curves[(baseline, task)])
            for (s, task), curve in curves.items()
            if s == strategy and (baseline, task) in curves
        ]
        rows = []
        for n in points:
            ratios = [
                mine[n - 1] / base[n - 1]
                for mine, base in pairs
                if not (math.isnan(mine[n - 1]) or math.isnan(base[n - 1]))
            ]
            if ratios:
                rows.append(
                    BestRatioAt(n, statistics.median(ratios), sum(r < 1 for r in ratios), len(ratios))
                )
        if rows:
            out[strategy] = rows
    return out


def strategy_variants(
    strategies: list[str], warm_start: tuple[str, ...] = ()
) -> list[tuple[str, str, tuple[str, ...]]]:
    """``(label, strategy, warm-start logs)`` per benchmarked variant: each strategy as is, and with
    ``warm_start`` logs also ``<strategy>+warm`` for each that pre-trains its cost models on them
    (all but random search), so a transfer is compared against the same transfer given to the
    baseline; ``chameleon+warm`` alone when no listed strategy can use them."""
    warm = tuple(str(w) for w in warm_start)
    variants = [(s, s, ()) for s in strategies]
    if warm:
        startable = [s for s in strategies if s.partition(":")[0] not in _COLD_ONLY]
        variants += [(f"{s}+warm", s, warm) for s in startable or ["chameleon"]]
    return variants


_COLD_ONLY = {"random"}
"""Strategies without a cost model to pre-train (a warm start would change nothing)."""
