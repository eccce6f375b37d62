"""Replay datasets, the simulated device and the surrogate model.

Fast tests use hand-made :class:`TaskData`; tests marked ``slow`` read the session's real tuning
log (``tiny_log``) as a dataset.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

import chameleon.simulate.device as device_mod
from chameleon.errors import ChameleonError, UsageError
from chameleon.logs.database import RECORD_FILE, WORKLOAD_FILE
from chameleon.logs.metadata import RUN_FILE
from chameleon.logs.timeline import read_timeline
from chameleon.simulate.dataset import FAILED, Dataset, TaskData, load_dataset, valid_latencies
from chameleon.simulate.device import NOT_IN_POOL, SimulatedDevice
from chameleon.simulate.surrogate import Surrogate, pool_features

LLVM = {"kind": "llvm", "num-cores": 2}


def task_data() -> TaskData:
    return TaskData(
        name="fused_conv2d1_relu",
        workload=None,
        weight=2,
        flop=1e6,
        latency={"a": 1e-3, "b": 2e-3, "bad": FAILED},
    )


class ConstantSurrogate:
    """Stands in for a fitted :class:`Surrogate`: predicts ``value`` for every row."""

    def __init__(self, value: float) -> None:
        self.value = value
        self.calls = 0

    def predict(self, X: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.full(len(X), self.value)


def ask(device: SimulatedDevice, keys: list[str]):
    """Queue keys as one batch, then build and run them in order, like the simulated builder/runner."""
    device.expect(object(), [object() for _ in keys], keys)
    return [device.answer(device.take()) for _ in keys]


@pytest.fixture
def fake_features(monkeypatch):
    """Program features without TVM: one zero row per candidate."""
    monkeypatch.setattr(device_mod, "program_features", lambda ctx, cands: np.zeros((len(cands), 3)))


# --------------------------------------------------------------------------- simulated device
@pytest.mark.parametrize("pool_only", [True, False])
def test_device_answers_recorded_configurations_exactly(pool_only: bool) -> None:
    device = SimulatedDevice(task=task_data(), surrogate=None, pool_only=pool_only)
    a, bad, b = ask(device, ["a", "bad", "b"])
    assert [float(x) for x in a.run_secs] == [1e-3] and a.error_msg is None
    assert [float(x) for x in b.run_secs] == [2e-3]
    assert bad.run_secs is None and "failed" in bad.error_msg
    assert (device.hits, device.misses) == (3, 0)
    assert device.in_pool("a") and not device.in_pool("zzz")


def test_pool_only_device_refuses_misses_even_with_a_surrogate(fake_features) -> None:
    surrogate = ConstantSurrogate(5e-3)
    device = SimulatedDevice(task=task_data(), surrogate=surrogate, pool_only=True)
    hit, miss = ask(device, ["a", "zzz"])
    assert [float(x) for x in hit.run_secs] == [1e-3]
    assert miss.run_secs is None and miss.error_msg == NOT_IN_POOL
    assert surrogate.calls == 0
    assert (device.hits, device.misses) == (1, 1)


def test_device_predicts_misses_with_the_surrogate(fake_features) -> None:
    surrogate = ConstantSurrogate(5e-3)
    device = SimulatedDevice(task=task_data(), surrogate=surrogate, pool_only=False)
    miss1, hit, miss2 = ask(device, ["x", "b", "y"])
    assert [float(r.run_secs[0]) for r in (miss1, hit, miss2)] == [5e-3, 2e-3, 5e-3]
    assert surrogate.calls == 1  # one batch, one prediction call
    assert (device.hits, device.misses) == (1, 2)


def test_device_without_surrogate_reports_misses_as_errors() -> None:
    device = SimulatedDevice(task=task_data(), surrogate=None, pool_only=False)
    (miss,) = ask(device, ["nope"])
    assert miss.error_msg == NOT_IN_POOL


def test_device_answers_by_id_whatever_the_run_order() -> None:
    device = SimulatedDevice(task=task_data(), surrogate=None, pool_only=True)
    device.expect(None, [None, None], ["a", "b"])
    first, second = device.take(), device.take()
    assert float(device.answer(second).run_secs[0]) == 2e-3
    assert float(device.answer(first).run_secs[0]) == 1e-3


# --------------------------------------------------------------------------- dataset objects
def test_task_data_best_and_valid_keys() -> None:
    t = task_data()
    assert t.best == 1e-3
    assert sorted(t.valid_keys()) == ["a", "b"]
    assert sorted(valid_latencies(t)) == [1e-3, 2e-3]
    assert TaskData("e", None, 1, 0.0).best == FAILED


def test_dataset_task_lookup() -> None:
    ds = Dataset(Path("d"), "net", LLVM, {"fused_conv2d1_relu": task_data(), "fused_dense": task_data()})
    assert ds.task("fused_dense") is ds.tasks["fused_dense"]
    assert ds.task("conv2d1") is ds.tasks["fused_conv2d1_relu"]
    with pytest.raises(UsageError, match="fused_conv2d1_relu, fused_dense"):
        ds.task("matmul")
    with pytest.raises(UsageError):
        ds.task("fused")  # ambiguous: both names contain it
    with pytest.raises(UsageError, match="ambiguous"):
        ds.task("fused_")


def test_dataset_check_target() -> None:
    ds = Dataset(Path("d"), "net", LLVM, {})
    ds.check_target({"kind": "llvm", "num-cores": 2})
    with pytest.raises(ChameleonError, match="record a dataset"):
        ds.check_target({"kind": "llvm", "num-cores": 4})


# --------------------------------------------------------------------------- unreadable datasets
@pytest.fixture
def private_tmpdir(tmp_path: Path, monkeypatch) -> Path:
    """Archives are unpacked under tempfile.gettempdir(): keep that inside the test's directory."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp))
    return tmp


def test_missing_dataset_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ChameleonError, match="does not exist"):
        load_dataset(tmp_path / "nope")


def test_file_that_is_not_an_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text("{}")
    with pytest.raises(ChameleonError, match="neither a log directory nor a .tar.gz"):
        load_dataset(path)


def test_garbage_tar_gz_is_refused(tmp_path: Path, private_tmpdir: Path) -> None:
    path = tmp_path / "data.tar.gz"
    path.write_bytes(b"\x1f\x8b this is not gzip data at all" * 10)
    with pytest.raises(ChameleonError, match="not a readable .tar.gz"):
        load_dataset(path)


def test_readable_tar_gz_without_a_log_is_refused(tmp_path: Path, private_tmpdir: Path) -> None:
    path = tmp_path / "other.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        data = b"hello"
        info = tarfile.TarInfo("notes/readme.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ChameleonError):
        load_dataset(path)


def test_directory_without_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / RUN_FILE).write_text(json.dumps({"target_json": LLVM, "tasks": []}))
    with pytest.raises(ChameleonError, match=f"no {WORKLOAD_FILE}"):
        load_dataset(tmp_path)


# --------------------------------------------------------------------------- surrogate
def test_pool_features_shape() -> None:
    rows = pool_features([np.ones((3, 164), dtype=np.float32), np.zeros((0, 164), dtype=np.float32)])
    assert rows.shape == (2, 2 * 164 + 1) and rows.dtype == np.float32
    assert rows[0, 0] == 1.0 and rows[0, -1] == pytest.approx(np.log1p(3))
    assert not rows[1].any()


def learnable(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, size=(n, 6))
    log_latency = -7 + 2.0 * X[:, 0] - 1.5 * X[:, 1] ** 2 + np.sin(3 * X[:, 2])
    return X, np.exp(log_latency)


def test_surrogate_learns_a_learnable_function() -> None:
    X, y = learnable(300, seed=0)
    surrogate = Surrogate(seed=0)
    quality = surrogate.fit(X, y)
    assert quality.n_train + quality.n_test == 300 and quality.n_test == 60
    assert quality.spearman > 0.9
    assert quality.median_rel_error < 0.2
    X_new, y_new = learnable(200, seed=1)
    pred = surrogate.predict(X_new)
    assert np.all(pred > 0) and np.all(np.isfinite(pred))
    assert spearmanr(pred, y_new).statistic > 0.9


def test_surrogate_on_tiny_data_has_no_held_out_quality() -> None:
    X, y = learnable(8, seed=0)
    quality = Surrogate().fit(X, y)
    assert quality.n_test == 0 and quality.n_train == 8
    assert math.isnan(quality.spearman)


def test_unfitted_surrogate_refuses_to_predict() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        Surrogate().predict(np.zeros((1, 3)))


# --------------------------------------------------------------------------- the real log
@pytest.mark.slow
def test_load_dataset_of_a_tuning_log(tiny_log: Path) -> None:
    ds = load_dataset(tiny_log)
    assert ds.network == "tiny_cnn" and ds.target_json["kind"] == "llvm"
    assert len(ds.tasks) == 1
    (task,) = ds.tasks.values()
    assert "conv2d1" in task.name and task.weight >= 1 and task.flop > 0
    timeline = read_timeline(tiny_log)
    assert set(task.latency) == {m.key for m in timeline}
    assert set(task.traces) == set(task.latency)
    for m in timeline:
        if m.ok:
            assert task.latency[m.key] <= m.latency_s * (1 + 1e-9)
    assert task.best == pytest.approx(min(m.latency_s for m in timeline if m.ok), rel=1e-9)
    ds.check_target(ds.target_json)
    assert ds.task("conv2d1") is task


@pytest.mark.slow
def test_exact_hit_returns_the_recorded_latency(tiny_log: Path) -> None:
    (task,) = load_dataset(tiny_log).tasks.values()
    key = task.valid_keys()[0]
    recorded = {m.key: m.latency_s for m in read_timeline(tiny_log) if m.ok}
    device = SimulatedDevice(task=task, surrogate=None, pool_only=True)
    (result,) = ask(device, [key])
    assert float(result.run_secs[0]) == pytest.approx(recorded[key], rel=1e-9)
    assert device.hits == 1


def _edit_run_file(log: Path, edit) -> None:
    data = json.loads((log / RUN_FILE).read_text())
    edit(data)
    (log / RUN_FILE).write_text(json.dumps(data))


@pytest.mark.slow
def test_dataset_with_foreign_workload_hash_is_refused(tiny_log_copy: Path) -> None:
    def edit(data):
        for t in data["tasks"]:
            t["workload_hash"] = "123"

    _edit_run_file(tiny_log_copy, edit)
    with pytest.raises(ChameleonError, match="does not list"):
        load_dataset(tiny_log_copy)


@pytest.mark.slow
def test_dataset_with_other_target_is_refused(tiny_log_copy: Path) -> None:
    _edit_run_file(tiny_log_copy, lambda d: d["target_json"].update({"num-cores": 7}))
    with pytest.raises(ChameleonError, match="measured on"):
        load_dataset(tiny_log_copy)


@pytest.mark.slow
def test_dataset_without_metadata_is_refused(tiny_log_copy: Path) -> None:
    _edit_run_file(tiny_log_copy, lambda d: d.pop("tasks"))
    with pytest.raises(ChameleonError, match="lacks target_json/tasks"):
        load_dataset(tiny_log_copy)
    (tiny_log_copy / RUN_FILE).unlink()
    with pytest.raises(ChameleonError, match="no run.json"):
        load_dataset(tiny_log_copy)


@pytest.mark.slow
def test_dataset_without_records_is_refused(tiny_log_copy: Path) -> None:
    (tiny_log_copy / RECORD_FILE).write_text("")
    with pytest.raises(ChameleonError, match="no records"):
        load_dataset(tiny_log_copy)


@pytest.mark.slow
def test_tar_gz_of_a_log_loads_like_the_directory(tiny_log: Path, tmp_path: Path, private_tmpdir) -> None:
    archive = Path(shutil.make_archive(str(tmp_path / "tiny"), "gztar", tiny_log.parent, tiny_log.name))
    assert archive.name == "tiny.tar.gz"
    from_dir, from_tar = load_dataset(tiny_log), load_dataset(archive)
    assert from_tar.path.is_relative_to(private_tmpdir)
    assert {n: t.latency for n, t in from_tar.tasks.items()} == {
        n: t.latency for n, t in from_dir.tasks.items()
    }
    again = load_dataset(archive)  # the unpacked copy is reused
    assert again.path == from_tar.path
