"""Re-measuring a run's best configuration (the benchmark's confirmed final latency)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from chameleon.bench.confirmed import Confirmed, confirm_bests, write_confirmed
from chameleon.errors import UsageError


@pytest.mark.slow
def test_best_of_a_real_run_is_rebuilt_and_timed(tiny_log: Path):
    from chameleon.bench.online import run_curve
    from chameleon.logs.timeline import read_timeline

    task = read_timeline(tiny_log)[0].task
    curve = run_curve(tiny_log, strategy="random", task=task, seed=0)
    build_dirs = set(Path(tempfile.gettempdir()).glob("chameleon-build-*"))
    (confirmed,) = confirm_bests([(tiny_log, curve)], budget=12, rounds=3)
    assert set(Path(tempfile.gettempdir()).glob("chameleon-build-*")) <= build_dirs  # artifacts removed
    assert confirmed.recorded_s == curve.best
    # The same kernel on the same machine. Not a tight bound: this 0.1 ms kernel on 2 threads once
    # timed 7.6x slower while a benchmark kept both cores busy.
    assert confirmed.confirmed_s is not None and curve.best / 20 < confirmed.confirmed_s < curve.best * 20


def test_report_compares_each_strategy_with_the_baseline(tmp_path: Path):
    rows = [
        Confirmed(strategy="base", task="t1", seed=0, recorded_s=1.0, confirmed_s=2.0),
        Confirmed(strategy="new", task="t1", seed=0, recorded_s=0.5, confirmed_s=1.0),
        Confirmed(strategy="base", task="t2", seed=0, recorded_s=1.0, confirmed_s=1.0),
        Confirmed(strategy="new", task="t2", seed=0, recorded_s=1.0, confirmed_s=None),
    ]
    text = write_confirmed(rows, path_stem=tmp_path / "x", baseline="base", rounds=5)
    assert "| new | 0.500 | 0.500 |" in text  # t2 has no confirmed time for `new`: left out
    assert "| base | 1.000 | 0.750 |" in text
    assert (tmp_path / "x-confirmed.csv").read_text().count("\n") == 5


def test_benchmark_confirmation_refuses_a_farm_target():
    with pytest.raises(UsageError, match="farm"):
        confirm_bests([], budget=1, rounds=1, target="jetson")


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
