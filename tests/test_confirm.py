"""Re-measuring a run's best configuration (the benchmark's confirmed final latency)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chameleon.bench.confirmed import confirm_curves, improvements, luck
from chameleon.bench.metrics import RunCurve, summarize, task_stats
from chameleon.errors import UsageError


@pytest.mark.slow
def test_every_improving_configuration_of_a_real_run_is_rebuilt_and_timed(
    tiny_log: Path, tmp_path: Path, monkeypatch
):
    from chameleon.bench.online import run_curve
    from chameleon.logs.timeline import read_timeline

    task = read_timeline(tiny_log)[0].task
    curve = run_curve(tiny_log, strategy="random", task=task, seed=0)
    # The build workers (started inside) put their artifacts here, not beside other tuners' in /tmp.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    from tvm.s_tir.meta_schedule import utils

    removed: list[str] = []
    remove = utils.remove_build_dir
    monkeypatch.setattr(utils, "remove_build_dir", lambda path: (removed.append(path), remove(path)))
    twin = RunCurve(strategy="twin", task=task, seed=0, latencies=curve.latencies)  # same configurations
    mine, other = confirm_curves([(tiny_log, curve), (tiny_log, twin)], budget=12, rounds=3)
    assert removed and all(Path(p).is_relative_to(tmp_path) for p in removed)
    assert not list(tmp_path.glob("chameleon-build-*"))  # artifacts removed
    found = improvements(curve.latencies, 12)
    assert [i for i, v in enumerate(mine.latencies) if v is not None] == found
    assert mine.latencies == other.latencies  # one configuration, one confirmed latency for both runs
    # The same kernels on the same machine. Not a tight bound: this 0.1 ms kernel on 2 threads once
    # timed 7.6x slower while a benchmark kept both cores busy.
    for i in found:
        assert curve.latencies[i] / 20 < mine.latencies[i] < curve.latencies[i] * 20


def test_improvements_are_the_measurements_that_lowered_the_best_so_far():
    assert improvements([None, 3.0, 4.0, 2.0, 2.0, 1.0, 0.5], budget=6) == [1, 3, 5]
    assert improvements([None, None], budget=2) == []


def _curve(strategy: str, latencies) -> RunCurve:
    return RunCurve(strategy=strategy, task="t", seed=0, latencies=tuple(latencies))


def test_the_metric_on_confirmed_curves_ignores_a_lucky_draw():
    # Recorded: `lucky` drew 0.8 at measurement 2 for a configuration that delivers 1.2; `steady`
    # found a configuration that delivers 1.0 at measurement 4.
    recorded = [_curve("lucky", [1.5, 0.8, 1.1, 1.0]), _curve("steady", [2.0, 1.6, 1.4, 0.95])]
    confirmed = [_curve("lucky", [1.6, 1.2, None, None]), _curve("steady", [2.1, 1.5, 1.3, 1.0])]
    on_recorded = {s.strategy: s for s in summarize(task_stats(recorded, budget=4), baseline="steady")}
    on_confirmed = {s.strategy: s for s in summarize(task_stats(confirmed, budget=4), baseline="steady")}
    assert on_recorded["lucky"].measurement_ratio == 8 / 2  # steady never came within 1.05 x 0.8
    assert on_confirmed["lucky"].measurement_ratio == 4 / 8  # lucky's pick never came within 1.05 x 1.0
    assert luck(recorded, confirmed, budget=4) == {"lucky": 0.8 / 1.2, "steady": 0.95 / 1.0}


def test_benchmark_confirmation_refuses_a_farm_target():
    with pytest.raises(UsageError, match="farm"):
        confirm_curves([], budget=1, rounds=1, target="jetson")


@pytest.mark.slow
def test_confirm_rewrites_nothing_and_replay_then_tune_use_it_right(tiny_log_copy: Path, tiny_tune_config):
    from chameleon.logs.database import RECORD_FILE, WORKLOAD_FILE
    from chameleon.logs.replay import replay
    from chameleon.tuning.confirm import confirm_log, confirmed_dir
    from chameleon.tuning.tune import tune
    from tests.conftest import TINY_TRIALS

    log = tiny_log_copy
    before = (log / RECORD_FILE).read_text()
    (result,) = confirm_log(log, top=3, rounds=3)
    assert len(result.recorded_s) == len(result.confirmed_s) == 3
    assert result.recorded_s == sorted(result.recorded_s)
    assert all(t is not None and t > 0 for t in result.confirmed_s)
    assert (log / RECORD_FILE).read_text() == before  # the log itself is untouched
    confirmed = confirmed_dir(log)
    assert (confirmed / WORKLOAD_FILE).exists()
    assert len((confirmed / RECORD_FILE).read_text().splitlines()) == 3

    assert replay(log, measure=False, library_path=log / "x.so").confirmed

    tune(tiny_tune_config(log, trials=TINY_TRIALS))  # nothing new to measure: still confirmed
    assert confirmed.exists()
    tune(tiny_tune_config(log, trials=TINY_TRIALS + 2))  # new records: the confirmation is stale
    assert not confirmed.exists()
    assert not replay(log, measure=False, library_path=log / "x.so").confirmed


@pytest.mark.slow
def test_a_task_whose_records_all_fail_to_remeasure_keeps_its_logged_records(
    tiny_log_copy: Path, monkeypatch
):
    from chameleon.logs.database import RECORD_FILE
    from chameleon.tuning import confirm

    monkeypatch.setattr(confirm, "remeasure", lambda workload, traces, **kw: [[] for _ in traces])
    seen = []
    (result,) = confirm.confirm_log(tiny_log_copy, top=2, rounds=1, on_task=lambda *a: seen.append(a))
    assert result.confirmed_s == [None, None] and not result.changed
    assert [(i, n) for i, n, _ in seen] == [(0, 1)]
    lines = (confirm.confirmed_dir(tiny_log_copy) / RECORD_FILE).read_text().splitlines()
    assert len(lines) == 2  # replay still finds a schedule for the task


@pytest.mark.slow
def test_remeasure_reports_each_time_as_it_arrives(tiny_log: Path):
    from chameleon.hardware.targets import resolve_target
    from chameleon.simulate.dataset import load_dataset
    from chameleon.tuning.confirm import remeasure

    (task,) = load_dataset(tiny_log).tasks.values()
    traces = list(task.traces.values())[:2]
    spec = resolve_target("llvm")
    seen: list[tuple[int, float]] = []
    times = remeasure(
        task.workload,
        traces,
        rounds=3,
        spec=spec,
        target=spec.tvm_target(),
        on_time=lambda i, t: seen.append((i, t)),
    )
    assert [len(t) for t in times] == [3, 3]
    assert seen == [(i, times[i][r]) for r in range(3) for i in range(2)]  # interleaved, in arrival order
