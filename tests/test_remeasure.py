"""Re-measuring a run's best configuration (the benchmark's confirmed final latency)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chameleon.bench.remeasure import Confirmed, confirm_bests, remeasure, write_confirmed
from chameleon.errors import UsageError


@pytest.mark.slow
def test_best_of_a_real_run_is_rebuilt_and_timed(tiny_log: Path):
    from chameleon.bench.online import run_curve
    from chameleon.logs.timeline import read_timeline

    task = read_timeline(tiny_log)[0].task
    curve = run_curve(tiny_log, strategy="random", task=task, seed=0)
    (confirmed,) = confirm_bests([(tiny_log, curve)], budget=12, rounds=3)
    assert confirmed.recorded_s == curve.best
    # The same kernel on the same machine: within a factor of 3 of what tuning recorded.
    assert confirmed.confirmed_s is not None and curve.best / 3 < confirmed.confirmed_s < curve.best * 3


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


def test_remeasure_refuses_a_remote_target():
    with pytest.raises(UsageError, match="not one"):
        remeasure(None, [], rounds=1, target="jetson")
