"""``chameleon tune`` through a real loopback farm (tracker + 2 servers)."""

from __future__ import annotations

import time

import pytest

from chameleon.errors import ChameleonError
from chameleon.tuning.measure import MeasureConfig
from chameleon.tuning.tune import TuneConfig, tune


@pytest.mark.slow
def test_tune_through_local_farm_keeps_every_record(tmp_path, tiny_log):  # tiny_log: TVM already warm
    from chameleon.farm.processes import LocalFarm
    from chameleon.logs.timeline import read_timeline

    with LocalFarm(n_servers=2, key="test-cpu", log_dir=tmp_path / "farm") as farm:
        host, port = farm.tracker
        summary = tune(
            TuneConfig(
                model="tiny_cnn",
                target="llvm",
                tasks=("conv2d1",),
                trials=8,
                trials_per_round=4,
                strategy="chameleon",
                log_dir=tmp_path / "log",
                measure=MeasureConfig(tracker=f"{host}:{port}", key=farm.key),
            )
        )
    assert summary.new_trials == 8
    timeline = read_timeline(tmp_path / "log")
    assert len(timeline) == 8
    assert sum(m.ok for m in timeline) >= 6
    assert summary.tasks[0].best_s is not None


def test_unreachable_tracker_fails_fast(tmp_path):
    start = time.monotonic()
    with pytest.raises(ChameleonError, match="tracker"):
        tune(
            TuneConfig(
                model="tiny_cnn",
                target="llvm",
                trials=4,
                log_dir=tmp_path / "log",
                measure=MeasureConfig(tracker="127.0.0.1:1"),
            )
        )
    assert time.monotonic() - start < 30
