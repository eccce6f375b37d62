"""Shared fixtures: one real (tiny) tuning log per test session.

``tiny_log`` tunes one conv task of the ``tiny_cnn`` zoo network on the host CPU with MetaSchedule's
random search: 12 real builds and measurements (a minute or two on 2 cores, most of it TVM's
one-time setup). Tests that use it are end-to-end tests and are marked ``slow``. The fixture's
directory is shared: a test that writes into a log (resume, replay, corruption) takes
``tiny_log_copy`` instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

TINY_TRIALS = 12
TINY_ROUND = 4
TINY_TASK = "conv2d1"


@pytest.fixture(scope="session", autouse=True)
def _fast_tensor_intrinsics() -> None:
    """Tests create TuneContexts directly; the first would import TVM's tensor intrinsics the slow way."""
    from chameleon.tvm_glue.intrinsics import import_tensor_intrinsics

    import_tensor_intrinsics()


def _tiny_config(log_dir: Path, *, trials: int = TINY_TRIALS):
    from chameleon.tuning.tune import TuneConfig

    return TuneConfig(
        model="tiny_cnn",
        target="llvm",
        trials=trials,
        trials_per_round=TINY_ROUND,
        strategy="random",
        tasks=(TINY_TASK,),
        log_dir=log_dir,
    )


@pytest.fixture(scope="session")
def tiny_log(tmp_path_factory) -> Path:
    """A real chameleon log: tiny_cnn, llvm, random search, 12 trials of the conv2d1 task."""
    from chameleon.tuning.tune import tune

    log_dir = tmp_path_factory.mktemp("tiny_log") / "tiny_cnn-llvm"
    summary = tune(_tiny_config(log_dir))
    assert summary.new_trials == TINY_TRIALS
    assert [t.trials for t in summary.tasks] == [TINY_TRIALS]
    return log_dir


@pytest.fixture(scope="session")
def tiny_tune_config():
    """``f(log_dir, trials=12) -> TuneConfig``: the settings ``tiny_log`` was tuned with."""
    return _tiny_config


@pytest.fixture
def tiny_log_copy(tiny_log: Path, tmp_path: Path) -> Path:
    """A private copy of ``tiny_log`` that a test may modify."""
    dst = tmp_path / "log"
    shutil.copytree(tiny_log, dst, ignore=shutil.ignore_patterns("logs", "deploy"))
    return dst
