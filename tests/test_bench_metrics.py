"""Search-efficiency metrics (DESIGN.md, "How search efficiency is measured") and benchmark outputs."""

from __future__ import annotations

import csv
import dataclasses
import math
import statistics
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chameleon.bench.metrics import (
    RunCurve,
    best_ratios_at,
    budget_points,
    first_reach,
    median_curve,
    summarize,
    task_stats,
)
from chameleon.bench.output import markdown, write_all

B = 10
"""Budget of the hand-made runs."""


def run(strategy: str, seed: int, lats, *, task: str = "t", times=None, search=None) -> RunCurve:
    return RunCurve(
        strategy=strategy,
        task=task,
        seed=seed,
        latencies=tuple(lats),
        times=None if times is None else tuple(times),
        search_s_per_round=search,
    )


# --------------------------------------------------------------------------- first_reach
def test_first_reach_examples() -> None:
    assert first_reach([5.0, None, 3.0, 1.0], 3.0) == 3  # at or below the threshold, 1-based
    assert first_reach([5.0, None, 3.0, 1.0], 2.9) == 4
    assert first_reach([None, None], 1.0) is None
    assert first_reach([], 1.0) is None
    assert first_reach([2.0], 1.0) is None


@given(
    st.lists(st.one_of(st.none(), st.floats(min_value=0.1, max_value=10.0)), max_size=30),
    st.floats(min_value=0.1, max_value=10.0),
)
def test_first_reach_is_the_first_index_at_or_below(lats, threshold) -> None:
    m = first_reach(lats, threshold)
    hits = [i + 1 for i, v in enumerate(lats) if v is not None and v <= threshold]
    assert m == (hits[0] if hits else None)


# --------------------------------------------------------------------------- task_stats
def test_task_stats_counts_never_reaching_runs_as_twice_the_budget() -> None:
    runs = [
        # L_ref = 1.0 (reached by "base" seed 0), target T = 1.05.
        run("base", 0, [3.0, 2.0, 1.0]),
        run("base", 1, [3.0, 1.04, 2.0, 2.0, 2.0]),
        run("base", 2, [3.0, 2.0, 2.0, 2.0, 1.05]),
        run("new", 0, [1.02]),
        run("new", 1, [2.0, 2.0]),  # never reaches T: counts as 2B = 20
        run("new", 2, [None, 1.0]),
    ]
    stats = task_stats(runs, budget=B)
    base, new = stats[("base", "t")], stats[("new", "t")]
    assert base.median_m == 3  # m = 3, 2, 5
    assert (base.reached, base.runs) == (3, 3)
    assert new.median_m == 2  # m = 1, 20, 2
    assert (new.reached, new.runs) == (2, 3)
    assert base.median_best == 1.04
    assert new.median_best == 1.02  # bests 1.02, 2.0, 1.0
    assert base.m_by_seed == ((0, 3), (1, 2), (2, 5))
    assert new.m_by_seed == ((0, 1), (1, None), (2, 2))
    assert base.median_t is None and base.search_s_per_round is None


def test_task_stats_never_reaching_all_runs() -> None:
    runs = [run("base", 0, [1.0]), run("x", 0, [2.0, None]), run("x", 1, [3.0])]
    x = task_stats(runs, budget=B)[("x", "t")]
    assert x.median_m == 2 * B and x.reached == 0


def test_task_stats_times_and_search_cost() -> None:
    runs = [
        run("base", 0, [2.0, 1.0, 1.0], times=[1.0, 2.0, 3.0], search=0.5),
        run("x", 0, [1.0, 2.0], times=[4.0, 8.0], search=0.25),
        run("x", 1, [2.0, 2.0], times=[4.0, 8.0], search=0.75),  # never: 2 x its total time
    ]
    stats = task_stats(runs, budget=B)
    assert stats[("base", "t")].median_t == 2.0
    assert stats[("x", "t")].median_t == (4.0 + 16.0) / 2
    assert stats[("x", "t")].search_s_per_round == 0.5


def test_task_stats_skips_a_task_without_any_valid_measurement() -> None:
    stats = task_stats([run("a", 0, [None]), run("a", 0, [1.0], task="u")], budget=B)
    assert set(stats) == {("a", "u")}


def test_task_stats_separates_tasks() -> None:
    runs = [run("a", 0, [1.0], task="t1"), run("a", 0, [100.0, 50.0], task="t2")]
    stats = task_stats(runs, budget=B)
    assert stats[("a", "t1")].median_m == 1 and stats[("a", "t2")].median_m == 2


# --------------------------------------------------------------------------- summarize
def test_summarize_ratios_on_hand_made_curves() -> None:
    runs = [
        # task t1: base reaches T at m = 4, fast at m = 2: ratio 2
        run("base", 0, [4.0, 3.0, 2.0, 1.0], task="t1", times=[1, 2, 3, 4]),
        run("fast", 0, [4.0, 1.0], task="t1", times=[2, 4]),
        # task t2: base at m = 1, fast at m = 4 (its best 1.05 is just within T): ratio 0.25
        run("base", 0, [1.0, 5.0], task="t2", times=[1, 2]),
        run("fast", 0, [5.0, 5.0, 5.0, 1.05], task="t2", times=[1, 2, 3, 4]),
        # task t3: only base ran; it does not enter fast's medians.
        run("base", 0, [1.0], task="t3"),
    ]
    summary = summarize(task_stats(runs, budget=B), baseline="base")
    assert [s.strategy for s in summary] == ["base", "fast"]  # baseline first
    base, fast = summary
    assert base.measurement_ratio == 1.0 and base.final_latency_ratio == 1.0
    assert fast.measurement_ratio == pytest.approx((2.0 + 0.25) / 2)
    assert fast.time_ratio == pytest.approx((4 / 4 + 1 / 4) / 2)
    assert fast.final_latency_ratio == pytest.approx((1.0 + 1.05) / 2)
    assert (fast.reached, fast.runs) == (2, 2)
    assert (base.reached, base.runs) == (3, 3)


def test_match_ratio_counts_measurements_to_the_baselines_own_final_latency() -> None:
    runs = [
        # t1: base ends at 2.0 (both seeds), first there at m = 3; fast is at or below 2.0 at m = 1
        run("base", 0, [4.0, 3.0, 2.0], task="t1"),
        run("base", 1, [5.0, 4.0, 2.0], task="t1"),
        run("fast", 0, [2.0, 1.0], task="t1"),
        run("fast", 1, [1.5], task="t1"),
        # t2: base's median best is the slower middle run's, 2.0 (seeds 1.0 and 2.0); slow never
        # gets there: 2 x B
        run("base", 0, [3.0, 1.0], task="t2"),
        run("base", 1, [2.0], task="t2"),
        run("slow", 0, [2.1], task="t2"),
        # another strategy's much better run moves the main metric's target, not the match ratio
        run("best", 0, [0.1], task="t2"),
    ]
    stats = task_stats(runs, budget=B, baseline="base")
    assert stats[("base", "t1")].median_match_m == 3
    assert stats[("fast", "t1")].median_match_m == 1
    assert stats[("base", "t2")].median_match_m == statistics.median([2, 1])
    assert stats[("slow", "t2")].median_match_m == 2 * B
    summary = {s.strategy: s for s in summarize(stats, baseline="base")}
    assert summary["base"].match_ratio == 1.0
    assert summary["fast"].match_ratio == pytest.approx(3.0)
    assert summary["slow"].match_ratio == pytest.approx(1.5 / (2 * B))
    assert summarize(task_stats(runs, budget=B), baseline="base")[0].match_ratio is None


def test_summarize_drops_a_strategy_without_common_tasks() -> None:
    runs = [run("base", 0, [1.0], task="t1"), run("other", 0, [1.0], task="t2")]
    assert [s.strategy for s in summarize(task_stats(runs, budget=B), baseline="base")] == ["base"]


lat = st.one_of(st.none(), st.floats(min_value=1e-3, max_value=1.0))
curves = st.lists(st.lists(lat, min_size=1, max_size=B), min_size=1, max_size=4)


@settings(max_examples=60)
@given(curves, st.lists(st.lists(lat, min_size=1, max_size=B), min_size=1, max_size=3))
def test_ratio_of_a_strategy_against_itself_is_one(seeds, other_task) -> None:
    runs = []
    for name in ("base", "copy"):
        runs += [run(name, s, lats, task="t1") for s, lats in enumerate(seeds)]
        runs += [run(name, s, lats, task="t2") for s, lats in enumerate(other_task)]
    summary = {s.strategy: s for s in summarize(task_stats(runs, budget=B, baseline="base"), baseline="base")}
    for s in summary.values():
        assert s.measurement_ratio == 1.0
        assert s.match_ratio in (None, 1.0)
        assert math.isnan(s.final_latency_ratio) or s.final_latency_ratio == 1.0
    assert set(summary) in (set(), {"base", "copy"})  # empty when no run measured anything
    if summary:
        assert summary["copy"].reached == summary["base"].reached


# --------------------------------------------------------------------------- best so far at n
def test_budget_points_are_powers_of_two_from_four_then_the_budget() -> None:
    assert budget_points(128) == [4, 8, 16, 32, 64, 128]
    assert budget_points(100) == [4, 8, 16, 32, 64, 100]
    assert budget_points(4) == [4] and budget_points(2) == [2]


def test_best_ratios_at_compares_median_curves_per_task() -> None:
    runs = [
        # t1: base's best so far 4, 4, 2, 2 (one seed); fast's median over two seeds 2, 1, 1, 1
        run("base", 0, [4.0, 5.0, 2.0, 3.0], task="t1"),
        run("fast", 0, [2.0, 1.0], task="t1"),
        run("fast", 1, [3.0, 1.0], task="t1"),
        # t2: fast has nothing valid before its second measurement, then it is behind
        run("base", 0, [1.0, 1.0], task="t2"),
        run("fast", 0, [None, 3.0], task="t2"),
        # t3: only fast ran it: not compared
        run("fast", 0, [0.1], task="t3"),
    ]
    ratios = best_ratios_at(runs, budget=4, baseline="base", points=[1, 2, 4])
    assert set(ratios) == {"fast"}
    at = {r.n: r for r in ratios["fast"]}
    assert (at[1].median_ratio, at[1].ahead, at[1].tasks) == (2.5 / 4, 1, 1)
    assert at[2].median_ratio == pytest.approx((1 / 4 + 3 / 1) / 2) and (at[2].ahead, at[2].tasks) == (1, 2)
    assert at[4].median_ratio == pytest.approx((1 / 2 + 3 / 1) / 2)


@settings(max_examples=40)
@given(curves)
def test_best_ratio_of_a_strategy_against_itself_is_one(seeds) -> None:
    runs = [run(name, s, lats) for name in ("base", "copy") for s, lats in enumerate(seeds)]
    for r in best_ratios_at(runs, budget=B, baseline="base", points=budget_points(B)).get("copy", []):
        assert r.median_ratio == 1.0 and r.ahead == 0 and r.tasks == 1


# --------------------------------------------------------------------------- median_curve
def test_median_curve_examples() -> None:
    runs = [run("a", 0, [3.0, 2.0, None, 1.0]), run("a", 1, [None, 4.0]), run("a", 2, [5.0])]
    curve = median_curve(runs, 5)
    # per run best-so-far: [3,2,2,1,1], [inf,4,4,4,4], [5,5,5,5,5]
    assert curve == [5.0, 4.0, 4.0, 4.0, 4.0]
    assert all(math.isnan(v) for v in median_curve([run("a", 0, [None, 1.0]), run("a", 1, [None])], 2))


@given(curves, st.integers(1, 2 * B))
def test_median_curve_is_non_increasing_once_finite(seeds, budget) -> None:
    curve = median_curve([run("a", s, lats) for s, lats in enumerate(seeds)], budget)
    assert len(curve) == budget
    finite = [i for i, v in enumerate(curve) if not math.isnan(v)]
    if finite:
        tail = curve[finite[0] :]
        assert not any(math.isnan(v) for v in tail)
        assert all(b <= a for a, b in zip(tail, tail[1:], strict=False))


# --------------------------------------------------------------------------- outputs
def test_write_all_writes_csv_markdown_and_png(tmp_path: Path) -> None:
    runs = [
        run("evolutionary", 0, [3.0, None, 1.0], task="t1", times=[1, 2, 3]),
        run("evolutionary", 1, [2.0, 2.0], task="t1", times=[1, 2]),
        run("chameleon", 0, [1.0, 2.0, 3.0], task="t1", times=[1, 2, 3]),
        run("chameleon", 0, [1.0], task="t2"),
        run("evolutionary", 0, [1.5], task="t2"),
    ]
    out = tmp_path / "bench"
    text = write_all(
        runs, out_dir=out, stem="cmp", budget=3, baseline="evolutionary", title="T", notes=["a note"]
    )
    assert sorted(p.name for p in out.iterdir()) == ["cmp.csv", "cmp.md", "cmp.png"]
    assert (out / "cmp.md").read_text() == text
    assert text.startswith("# T\n") and "a note" in text
    assert "| evolutionary |" in text and "| chameleon |" in text
    assert text.index("| evolutionary |") < text.index("| chameleon |")
    with (out / "cmp.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == sum(len(r.latencies) for r in runs)
    first = [r for r in rows if r["strategy"] == "evolutionary" and r["seed"] == "0" and r["task"] == "t1"]
    assert [r["latency_s"] for r in first] == ["3", "", "1"]
    assert [float(r["best_s"]) for r in first] == [3.0, 3.0, 1.0]
    assert (out / "cmp.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


_lat = st.one_of(st.none(), st.floats(1e-6, 10.0))


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(_lat, min_size=1, max_size=6),
            st.booleans(),
            st.one_of(st.none(), st.floats(0, 99)),
            st.sampled_from([None, "llvm mcpu=znver4 num-cores=2", "cuda arch=sm_90"]),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_read_curves_reads_back_what_write_csv_wrote(tmp_path_factory, specs) -> None:
    from chameleon.bench.output import read_curves, write_csv

    runs = [
        dataclasses.replace(
            run("s", seed, lats, times=[0.5 * i for i in range(len(lats))] if timed else None, search=search),
            machine=machine,
        )
        for seed, (lats, timed, search, machine) in enumerate(specs)
    ]
    path = tmp_path_factory.mktemp("csv") / "runs.csv"
    write_csv(runs, path)
    back, budget = read_curves(path)
    assert budget == max(len(r.latencies) for r in runs)
    assert len(back) == len(runs)
    for want, got in zip(runs, back, strict=True):
        assert (got.strategy, got.task, got.seed, got.times, got.machine) == (
            want.strategy,
            want.task,
            want.seed,
            want.times,
            want.machine,
        )
        assert got.latencies == tuple(map(_six_digits, want.latencies))
        assert got.search_s_per_round == _six_digits(want.search_s_per_round)


def _six_digits(v: float | None) -> float | None:
    """What the CSV keeps of a value."""
    return None if v is None else float(f"{v:.6g}")


def test_read_curves_reads_a_csv_written_before_search_time_was_kept(tmp_path: Path) -> None:
    from chameleon.bench.output import read_curves

    path = tmp_path / "old.csv"
    path.write_text(
        "strategy,task,seed,trial,latency_s,best_s,time_s\nc,t,0,1,0.5,0.5,2.0\nc,t,0,2,,0.5,3.0\n"
    )
    (curve,), budget = read_curves(path)
    assert (curve.latencies, curve.times, curve.search_s_per_round, budget) == (
        (0.5, None),
        (2.0, 3.0),
        None,
        2,
    )
    assert curve.machine is None


def test_machine_label_names_the_kind_then_plain_attributes_in_order() -> None:
    from chameleon.bench.metrics import machine_label

    assert machine_label({"mcpu": "znver4", "kind": "llvm", "num-cores": 2}) == "llvm mcpu=znver4 num-cores=2"
    assert machine_label({"kind": "cuda", "arch": "sm_90", "host": {"kind": "llvm"}}) == "cuda arch=sm_90"


def test_mixed_machines_names_each_task_timed_on_two_machines() -> None:
    from chameleon.bench.metrics import mixed_machines

    def on(machine, task="t", seed=0):
        return dataclasses.replace(run("s", seed, [1.0], task=task), machine=machine)

    assert mixed_machines([on("a"), on("a", seed=1), on(None, seed=2), on("b", task="u")]) == {}
    assert mixed_machines([on("a"), on("b", seed=1), on("a", task="u")]) == {"t": ["a", "b"]}


@pytest.mark.parametrize("no_run", [True, False])
def test_bench_refuses_runs_of_one_task_timed_on_two_machines(tmp_path: Path, monkeypatch, no_run) -> None:
    """Summarising: two CSVs whose runs of a task name different machines. Before running: a CSV
    timed elsewhere than here is refused before anything is measured."""
    import sys

    from chameleon.bench.output import write_csv
    from experiments.bench import main

    paths = []
    for seed, machine in enumerate(["cpu-a", "cpu-b"]):
        paths += ["--with-csv", str(tmp_path / f"{machine}.csv")]
        write_csv(
            [dataclasses.replace(run("chameleon", seed, [1.0], task="t"), machine=machine)], Path(paths[-1])
        )
    args = [
        "--task",
        "t",
        "--strategy",
        "chameleon",
        "--baseline",
        "chameleon",
        "--trials",
        "1",
        "--seed",
        "2",
    ]
    args += ["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), *paths]
    monkeypatch.setattr(sys, "argv", ["bench", *args, *(["--no-run"] if no_run else [])])
    expected = "timed on cpu-a and on cpu-b" if no_run else "timed on cpu-a, cpu-b, not on this machine"
    with pytest.raises(SystemExit, match=expected):
        main()
    assert not (tmp_path / "runs").exists()


def test_earlier_curves_keep_the_first_csvs_run_cut_to_the_budget(tmp_path: Path) -> None:
    from chameleon.bench.output import write_csv
    from experiments.bench import earlier_curves

    old = [
        run("a", 0, [3.0, 2.0, 1.0], task="t1"),
        run("a", 1, [4.0, 4.0, 4.0], task="t1"),
        run("b", 0, [2.0, 2.0, 2.0], task="t1"),
        run("a", 0, [1.0, 1.0, 1.0], task="other"),
    ]
    path = tmp_path / "old.csv"
    write_csv(old, path)
    again = tmp_path / "again.csv"
    write_csv([run("a", 0, [9.0, 9.0], task="t1")], again)
    added = earlier_curves([path, again], tasks=["t1"], labels={"a"}, trials=2)
    assert [(c.strategy, c.task, c.seed, c.latencies) for c in added] == [
        ("a", "t1", 0, (3.0, 2.0)),
        ("a", "t1", 1, (4.0, 4.0)),
    ]
    with pytest.raises(SystemExit, match="fewer than --trials 4"):
        earlier_curves([path], tasks=["t1"], labels={"a"}, trials=4)
    with pytest.raises(SystemExit, match="no such file"):
        earlier_curves([tmp_path / "missing.csv"], tasks=["t1"], labels={"a"}, trials=2)


def test_markdown_reports_the_same_numbers_as_summarize() -> None:
    runs = [run("base", 0, [2.0, 1.0]), run("x", 0, [1.0])]
    text, summary, stats = markdown(runs, budget=B, baseline="base", title="t")
    assert [s.strategy for s in summary] == ["base", "x"]
    assert "| x | 2.00 |" in text
    later, _, _ = markdown([run("base", 0, [2.0] * 5 + [1.0]), runs[1]], budget=B, baseline="base", title="t")
    assert "| x | 0.500 (1/1) | 1.000 (0/1) | 1.000 (0/1) |" in later  # best so far at n = 4, 8, 10
    assert stats[("x", "t")].median_m == 1


def test_markdown_lists_each_seeds_m_when_there_are_several_seeds() -> None:
    runs = [run("base", 2, [2.0, 1.0]), run("base", 1, [3.0] * 3), run("x", 1, [1.0]), run("x", 2, [4.0])]
    text, _, _ = markdown(runs, budget=B, baseline="base", title="t")
    assert "| t | s1: never, s2: 2 | s1: 1, s2: never |" in text
    one_seed, _, _ = markdown(runs[:1], budget=B, baseline="base", title="t")
    assert "Per task and seed" not in one_seed


def _ranked_runs(finals: dict[str, float], task: str = "t") -> list[RunCurve]:
    """One run per strategy that reaches ``finals[strategy]`` at measurement 4 of 8."""
    return [run(s, 0, [5.0, 4.0, 3.0, f, f, f, f, f], task=task) for s, f in finals.items()]


def test_ranking_agreement_agrees_and_disagrees(tmp_path: Path) -> None:
    from chameleon.bench.output import write_csv
    from chameleon.bench.ranking import ranking_agreement

    online = tmp_path / "online.csv"
    write_csv(_ranked_runs({"evolutionary": 2.0, "a": 1.0, "b": 1.5}), online)
    same = ranking_agreement(_ranked_runs({"evolutionary": 2.2, "a": 1.1, "b": 1.6}), online, budget=8)
    assert "final latency ratio" in same and "Kendall tau 1.00: the rankings agree" in same
    flipped = ranking_agreement(_ranked_runs({"evolutionary": 1.0, "a": 2.0, "b": 1.5}), online, budget=8)
    assert "Kendall tau -1.00: the rankings DISAGREE" in flipped
    tied = ranking_agreement(_ranked_runs({"evolutionary": 2.0, "a": 2.0, "b": 2.0}), online, budget=8)
    assert "cannot be compared" in tied
    other = ranking_agreement(_ranked_runs({"evolutionary": 1.0, "a": 2.0}, task="u"), online, budget=8)
    assert "covers none of the offline tasks" in other


# --------------------------------------------------------------------------- collecting runs
def _write_run(log_dir: Path, task: str, latencies: list[float]) -> None:
    import json

    from chameleon.logs import metadata
    from chameleon.logs.timeline import TIMELINE_FILE, Measurement

    log_dir.mkdir(parents=True)
    runs = [{"run": 1, "breakdown_s": {"search": 2.0 * len(latencies), "rounds": len(latencies)}}]
    target_json = {"kind": "llvm", "mcpu": "znver4", "num-cores": 2}
    metadata.write_run_file(
        log_dir, {"network": "net", "target": "llvm", "target_json": target_json, "tasks": [], "runs": runs}
    )
    with (log_dir / TIMELINE_FILE).open("w") as f:
        for n, lat in enumerate(latencies, start=1):
            f.write(json.dumps(Measurement(task, 0, n, n, float(n), 1, lat, None, f"k{n}").__dict__) + "\n")


def test_collecting_runs_leaves_out_a_stopped_run(tmp_path: Path) -> None:
    from chameleon.bench.online import _slug, run_online

    task = "fused_conv2d_x"
    _write_run(tmp_path / _slug(task) / "chameleon-s0", task, [3e-3, 2e-3, 1e-3, 1e-3])
    _write_run(tmp_path / _slug(task) / "evolutionary-s0", task, [3e-3, 2e-3])  # stopped at 2 of 4
    curves = run_online(
        model="resnet18",
        target="llvm",
        tasks=[task],
        strategies=["chameleon", "evolutionary", "random"],
        seeds=[0],
        trials=4,
        out_dir=tmp_path,
        measure=False,
    )
    assert [(c.strategy, c.latencies, c.search_s_per_round, c.machine) for c in curves] == [
        ("chameleon", (3e-3, 2e-3, 1e-3, 1e-3), 2.0, "llvm mcpu=znver4 num-cores=2")
    ]
    done = frozenset({("chameleon", task, 0)})  # e.g. from an earlier benchmark's CSV
    kwargs = dict(model="resnet18", target="llvm", tasks=[task], seeds=[0], trials=4, out_dir=tmp_path)
    assert run_online(strategies=["chameleon"], measure=False, done=done, **kwargs) == []
    # nothing to tune either: every run asked for is done
    assert run_online(strategies=["chameleon"], measure=True, done=done, **kwargs) == []


def test_run_curve_stops_at_the_budget(tmp_path):
    import json

    from chameleon.bench.online import run_curve

    lines = [
        {
            "task": "t",
            "task_index": 0,
            "trial": i,
            "n": i,
            "t": float(i),
            "run": 1,
            "latency_s": 1.0 / (i + 1),
            "error": None,
            "key": str(i),
        }
        for i in range(10)
    ]
    (tmp_path / "timeline.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (tmp_path / "run.json").write_text(json.dumps({"runs": [{"breakdown_s": {"search": 4.0, "rounds": 2}}]}))
    full = run_curve(tmp_path, strategy="s", task="t", seed=0)
    cut = run_curve(tmp_path, strategy="s", task="t", seed=0, budget=4)
    assert len(full.latencies) == 10 and full.latencies[:4] == cut.latencies
    assert len(cut.times) == 4 and cut.search_s_per_round == 2.0


# --------------------------------------------------------------------------- warm-start variants
def test_warm_start_adds_a_warm_variant_of_each_strategy_but_random() -> None:
    from chameleon.bench.metrics import strategy_variants

    assert strategy_variants(["chameleon", "random"]) == [
        ("chameleon", "chameleon", ()),
        ("random", "random", ()),
    ]
    assert strategy_variants(["chameleon:plan_size=32", "evolutionary", "random"], ("w",)) == [
        ("chameleon:plan_size=32", "chameleon:plan_size=32", ()),
        ("evolutionary", "evolutionary", ()),
        ("random", "random", ()),
        ("chameleon:plan_size=32+warm", "chameleon:plan_size=32", ("w",)),
        ("evolutionary+warm", "evolutionary", ("w",)),
    ]
    assert strategy_variants(["random"], ("w",))[-1] == ("chameleon+warm", "chameleon", ("w",))


def test_leave_task_out_skips_only_the_logs_that_tuned_the_task(tmp_path: Path) -> None:
    from chameleon.bench.online import run_online, tuned_tasks
    from chameleon.errors import UsageError
    from chameleon.logs import metadata

    for name, tuned in (("a", "conv_a"), ("b", "conv_b")):
        (tmp_path / name).mkdir()
        tasks = [
            {"name": "conv_a", "tuned": tuned == "conv_a"},
            {"name": "conv_b", "tuned": tuned == "conv_b"},
        ]
        metadata.write_run_file(tmp_path / name, {"target_json": {"kind": "llvm"}, "tasks": tasks})
    assert tuned_tasks(str(tmp_path / "a")) == {"conv_a"}
    with pytest.raises(UsageError, match="every warm-start log tuned conv_a"):
        run_online(
            model="m",
            target="llvm",
            tasks=["conv_a"],
            strategies=["chameleon"],
            seeds=[0],
            trials=4,
            out_dir=tmp_path / "runs",
            warm_start=(str(tmp_path / "a"),),
            leave_task_out=True,
        )


def test_run_curve_times_count_each_parts_strategy_setup(tmp_path):
    """A warm start pre-trains before the timeline's clock starts; the curve's times include it, for
    the first part of a run and for a resumed one."""
    import json

    from chameleon.bench.online import run_curve

    lines = [
        {
            "task": "t",
            "task_index": 0,
            "trial": i,
            "n": i,
            "t": float(i % 3 + 1),
            "run": 1 + i // 3,
            "latency_s": 1.0,
            "error": None,
            "key": str(i),
        }
        for i in range(6)
    ]
    (tmp_path / "timeline.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    runs = [
        {"run": 1, "breakdown_s": {"search": 1.0, "rounds": 1, "strategy_setup": 10.0}},
        {"run": 2, "breakdown_s": {"search": 1.0, "rounds": 1, "strategy_setup": 100.0}},
    ]
    (tmp_path / "run.json").write_text(json.dumps({"runs": runs}))
    curve = run_curve(tmp_path, strategy="s", task="t", seed=0)
    assert curve.times == (11.0, 12.0, 13.0, 114.0, 115.0, 116.0)
