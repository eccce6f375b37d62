"""The RPC farm: TVM's tracker and servers as real processes on 127.0.0.1, and the fault-tolerant runner.

Every farm is stopped by a fixture finalizer (or a ``with`` block), also when a test fails, and the
tests check that no process the farm started is left behind.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import psutil
import pytest
import tvm
from tvm import te
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.arg_info import TensorInfo
from tvm.s_tir.meta_schedule.runner import PyRunner, RunnerFuture, RunnerInput
from typer.testing import CliRunner

from chameleon.errors import ChameleonError, UsageError
from chameleon.farm.cli import app
from chameleon.farm.processes import LocalFarm, free_port, is_loopback, start_tracker, warn_if_exposed
from chameleon.farm.runner import FarmConfig, is_transient_error, make_farm_runner
from chameleon.farm.tracker import (
    check_reachable,
    farm_status,
    parse_tracker,
    status_from_summary,
    tracker_from_env,
    wait_for_devices,
)
from chameleon.tuning.measure import parallel_devices
from chameleon.tuning.passes import FastestOfPasses

TARGET = tvm.target.Target({"kind": "llvm", "num-cores": 1})
N = 64
GOOD_ARGS = [TensorInfo("float32", [N, N])] * 3
BAD_ARGS = [TensorInfo("float32", [N // 2, N // 2])] * 3  # the kernel rejects these shapes


def fast_build(mod: tvm.IRModule, target: tvm.target.Target, _params: object) -> tvm.runtime.Module:
    """LocalBuilder's default build without the ~25 s ``tvm.s_tir.tensor_intrin`` import."""
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm_build(mod, target=target)


# The builder's worker processes cannot import this test module: send the function itself.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def matmul_mod(n: int = N) -> tvm.IRModule:
    a = te.placeholder((n, n), name="A")
    b = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    c = te.compute((n, n), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    return tvm.IRModule({"main": te.create_prim_func([a, b, c])})


def leftovers(pgids: list[int]) -> list[str]:
    """Live (non-zombie) processes in any of the given process groups."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) in pgids:
                found.append(f"{proc.pid}: {' '.join(proc.info['cmdline'] or [])}")
        except (ProcessLookupError, psutil.Error):
            continue
    return found


def session_counts(farm: LocalFarm) -> list[int]:
    """Sessions each server has loaded a module in so far (from its log)."""
    return [
        p.log_path.read_text().count("load_module") if p.log_path and p.log_path.exists() else 0
        for p in farm.servers
    ]


def wait_for_new_session(farm: LocalFarm, baseline: list[int], timeout_s: float = 60.0) -> int:
    """Index of the first server that starts a session beyond ``baseline``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for i, count in enumerate(session_counts(farm)):
            if count > baseline[i]:
                return i
        time.sleep(0.02)
    raise AssertionError("no server started a measurement session")


def start_farm(log_dir: Path, n_servers: int = 2, key: str = "test-cpu") -> Iterator[LocalFarm]:
    farm = LocalFarm(n_servers=n_servers, key=key, log_dir=log_dir)
    try:
        farm.start()
        yield farm
    finally:
        farm.stop()
        assert not leftovers(farm.process_groups), "farm processes left running"


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFarm]:
    """A shared tracker + 2 servers; tests that break servers use ``fresh_farm``."""
    yield from start_farm(tmp_path_factory.mktemp("farm"))


@pytest.fixture
def fresh_farm(tmp_path: Path) -> Iterator[LocalFarm]:
    yield from start_farm(tmp_path / "farm")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The matmul compiled and exported the way MetaSchedule's builder exports candidates."""
    from tvm.support.tar import tar

    path = tmp_path_factory.mktemp("artifact") / "tvm_tmp_mod.tar"
    fast_build(matmul_mod(), TARGET, None).export_library(str(path), fcompile=tar)
    return str(path)


def take_input(directory: Path) -> RunnerInput:
    """A ``take`` along axis 0 of a (3, 32, 64) table by a scalar int64 index, in "fast" mode (no
    bounds check), as a transformer's exported graph has one; built like ``artifact``."""
    from tvm import topi
    from tvm.support.tar import tar

    table, index = te.placeholder((3, 32, 64), name="table"), te.placeholder((), "int64", name="index")
    out = topi.take(table, index, axis=0, mode="fast")
    path = directory / "tvm_tmp_mod.tar"
    fast_build(tvm.IRModule({"main": te.create_prim_func([table, index, out])}), TARGET, None).export_library(
        str(path), fcompile=tar
    )
    args = [TensorInfo("float32", [3, 32, 64]), TensorInfo("int64", []), TensorInfo("float32", [32, 64])]
    return RunnerInput(str(path), "cpu", args)


def config_for(farm: LocalFarm, **overrides: object) -> FarmConfig:
    host, port = farm.tracker
    values: dict = {"tracker_host": host, "tracker_port": port, "key": farm.key, "min_repeat_ms": 10}
    values.update(overrides)
    return FarmConfig(**values)


def inputs(artifact: str, n: int, args: list = GOOD_ARGS) -> list[RunnerInput]:
    return [RunnerInput(artifact, "cpu", args) for _ in range(n)]


# ---- addresses, configuration, error classification (no processes) ----------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9190", ("127.0.0.1", 9190)),
        ("jetson.lan:9000", ("jetson.lan", 9000)),
        ("[::1]:1", ("::1", 1)),
    ],
)
def test_parse_tracker_accepts_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_tracker(text) == expected


@pytest.mark.parametrize("text", ["", "9190", "host", "host:", ":9190", "host:port", "host:0", "host:70000"])
def test_parse_tracker_rejects_malformed(text: str) -> None:
    with pytest.raises(UsageError, match="HOST:PORT"):
        parse_tracker(text)


def test_tracker_from_env_uses_tvm_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TVM_TRACKER_HOST", raising=False)
    monkeypatch.delenv("TVM_TRACKER_PORT", raising=False)
    assert tracker_from_env() is None
    monkeypatch.setenv("TVM_TRACKER_HOST", "10.0.0.5")
    assert tracker_from_env() == ("10.0.0.5", 9190)
    monkeypatch.setenv("TVM_TRACKER_PORT", "9000")
    assert tracker_from_env() == ("10.0.0.5", 9000)
    monkeypatch.setenv("TVM_TRACKER_PORT", "x")
    with pytest.raises(UsageError, match="TVM_TRACKER_PORT"):
        tracker_from_env()


def test_farm_config_rejects_bad_values() -> None:
    with pytest.raises(UsageError, match="max_retries must be >= 0, got -1"):
        FarmConfig(max_retries=-1)
    with pytest.raises(UsageError, match="key"):
        FarmConfig(key="")
    with pytest.raises(TypeError):
        FarmConfig("127.0.0.1")  # type: ignore[misc]  # keyword-only


_KILLED = (
    'RPCRunner: An exception occurred\nTraceback ...\n  File "rpc_endpoint.cc", line 916\n'
    "tvm.error.InternalError: Check failed: (code == RPCCode::kReturn) is false: code=kShutdown\n"
)
_REMOTE = (
    "RPCRunner: An exception occurred\ntvm.error.RPCError: RPCError: Error caught from RPC call:\n"
    "Invalid A.shape[0] on argument #0"
)
_SESSION = (
    "RPCRunner: An exception occurred\ntvm.error.RPCSessionTimeoutError: RPCSessionTimeoutError: "
    'Your 8.0s session has expired, try to increase the "session_timeout" value.'
)


@pytest.mark.parametrize(
    ("message", "transient"),
    [
        (_KILLED, True),
        ("RPCRunner: Timeout, killed after 60 seconds", True),
        (
            "RPCRunner: An exception occurred\nConnectionResetError: [Errno 104] Connection reset by peer",
            True,
        ),
        (
            "RPCRunner: An exception occurred\nRuntimeError: Cannot request local after 5 retry, last_error:x",
            True,
        ),
        (_REMOTE, False),
        (_SESSION, False),
        ("RPCRunner: An exception occurred\nFileNotFoundError: [Errno 2] No such file", False),
        (None, False),
    ],
)
def test_only_device_failures_are_transient(message: str | None, transient: bool) -> None:
    assert is_transient_error(message) is transient


def test_status_from_summary_counts_busy_servers() -> None:
    summary = {
        "queue_info": {"orin": {"free": 1, "pending": 2}, "gone": {"free": 0, "pending": 0}},
        "server_info": [
            {"key": "server:orin", "addr": ["10.0.0.7", 9090]},
            {"key": "server:orin", "addr": ["10.0.0.8", 9090]},
        ],
    }
    status = status_from_summary(summary)
    assert list(status.keys) == ["orin"]
    assert (status.keys["orin"].total, status.keys["orin"].busy, status.keys["orin"].pending) == (2, 1, 2)
    assert [s.host for s in status.servers] == ["10.0.0.7", "10.0.0.8"]


def test_unreachable_tracker_fails_within_seconds() -> None:
    port = free_port()
    start = time.monotonic()
    with pytest.raises(ChameleonError, match=rf"cannot reach the RPC tracker at 127\.0\.0\.1:{port}"):
        make_farm_runner(FarmConfig(tracker_port=port, key="any"))
    assert time.monotonic() - start < 5


def test_silent_peer_is_not_taken_for_a_tracker() -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        start = time.monotonic()
        with pytest.raises(ChameleonError, match="is that port an RPC tracker"):
            check_reachable("127.0.0.1", port, timeout_s=1.0)
        assert time.monotonic() - start < 5


def test_binding_beyond_loopback_warns(caplog: pytest.LogCaptureFixture) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    with caplog.at_level(logging.WARNING, logger="chameleon.farm.processes"):
        warn_if_exposed("127.0.0.1", "the RPC tracker")
        assert not caplog.records
        warn_if_exposed("0.0.0.0", "the RPC tracker")
    assert "no authentication" in caplog.text and "SSH tunnel" in caplog.text


def test_tracker_on_a_busy_port_is_refused_at_once() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        with pytest.raises(ChameleonError, match=f"port {port} on 127.0.0.1 is in use"):
            start_tracker(port=port)


# ---- real tracker and servers -------------------------------------------------------------------


@pytest.mark.slow
def test_local_farm_registers_two_free_servers(farm: LocalFarm) -> None:
    status = farm_status(*farm.tracker)
    assert status.keys["test-cpu"].total == 2
    assert status.keys["test-cpu"].free == 2
    assert sorted(s.port for s in status.servers) == sorted(p.port for p in farm.servers)
    result = CliRunner().invoke(app, ["status", "--tracker", "{}:{}".format(*farm.tracker)])
    assert result.exit_code == 0, result.output
    assert "test-cpu" in result.output
    assert all(str(p.port) in result.output for p in farm.servers)


@pytest.mark.slow
def test_key_without_devices_fails_after_bounded_wait(farm: LocalFarm) -> None:
    start = time.monotonic()
    with pytest.raises(ChameleonError, match=r"no device with key 'jetson-orin' .*test-cpu \(2\)"):
        wait_for_devices(*farm.tracker, "jetson-orin", timeout_s=1.0)
    with pytest.raises(ChameleonError, match="no device with key 'jetson-orin'"):
        make_farm_runner(config_for(farm, key="jetson-orin", device_wait_s=1.0))
    assert time.monotonic() - start < 15


@pytest.mark.slow
def test_runner_measures_in_parallel_and_does_not_retry_kernel_errors(farm: LocalFarm, artifact: str) -> None:
    runner = make_farm_runner(config_for(farm))
    assert runner.max_workers == 2
    assert parallel_devices(runner) == parallel_devices(FastestOfPasses(runner, 2)) == 2
    results = [f.result() for f in runner.run(inputs(artifact, 3) + inputs(artifact, 1, BAD_ARGS))]
    assert all(r.error_msg is None and 0 < float(r.run_secs[0]) < 1 for r in results[:3])
    assert results[3].run_secs is None and "Error caught from RPC call" in results[3].error_msg
    assert (runner.stats.submitted, runner.stats.retries) == (4, 0)
    assert session_counts(farm)[0] > 0 and session_counts(farm)[1] > 0  # both devices were used


@pytest.mark.slow
def test_runner_feeds_index_tensors_valid_indices(farm: LocalFarm, tmp_path: Path) -> None:
    """A take with a random int64 index reads far outside its table and kills the server's
    session; the farm runner zeroes integer inputs (``tvm_glue.arguments``)."""
    (result,) = [f.result() for f in make_farm_runner(config_for(farm)).run([take_input(tmp_path)])]
    assert result.error_msg is None and 0 < float(result.run_secs[0]) < 1


def test_local_runner_feeds_index_tensors_valid_indices(tmp_path: Path) -> None:
    """The same take through the local runner ``chameleon tune`` uses (MetaSchedule's default
    random fill crashes its worker: "Subprocess terminated")."""
    from chameleon.hardware.targets import resolve_target
    from chameleon.tuning.measure import MeasureConfig, make_runner

    runner = make_runner(resolve_target("llvm"), MeasureConfig(min_repeat_ms=1))
    (result,) = [f.result() for f in runner.run([take_input(tmp_path)])]
    assert result.error_msg is None and 0 < float(result.run_secs[0]) < 1


@pytest.mark.slow
def test_runner_cooldown_holds_the_device(farm: LocalFarm, artifact: str) -> None:
    runner = make_farm_runner(config_for(farm, cooldown_s=1.5))
    futures = runner.run(inputs(artifact, 1))
    start = time.monotonic()
    while not futures[0].done():
        assert time.monotonic() - start < 60
        time.sleep(0.05)
    assert futures[0].result().error_msg is None
    before = session_counts(farm)
    start = time.monotonic()
    result = runner.run(inputs(artifact, 1))[0].result()  # warm worker: mostly the cooldown
    assert result.error_msg is None
    assert time.monotonic() - start >= 1.5
    assert sum(session_counts(farm)) == sum(before) + 1


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_runner_survives_dying_devices(fresh_farm: LocalFarm, artifact: str) -> None:
    config = config_for(
        fresh_farm, number=1, min_repeat_ms=1500, session_timeout_s=8, hang_grace_s=2, device_wait_s=2.0
    )
    runner = make_farm_runner(config)
    futures = runner.run(inputs(artifact, 4))
    victim = wait_for_new_session(fresh_farm, [0, 0])
    time.sleep(0.3)  # mid-measurement
    fresh_farm.kill(victim)
    results = [f.result() for f in futures]
    assert [r.error_msg for r in results] == [None] * 4
    assert runner.stats.retries >= 1
    assert farm_status(*fresh_farm.tracker).devices("test-cpu") == 1

    fresh_farm.kill(1 - victim)  # the last device goes: measurements come back as errors, promptly
    start = time.monotonic()
    results = [f.result() for f in runner.run(inputs(artifact, 3))]
    assert all(r.run_secs is None and "farm:" in r.error_msg for r in results)
    assert runner.stats.orphaned >= 1
    assert time.monotonic() - start < 60


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_runner_survives_a_hanging_device(fresh_farm: LocalFarm, artifact: str) -> None:
    runner = make_farm_runner(
        config_for(fresh_farm, number=1, min_repeat_ms=1500, session_timeout_s=8, hang_grace_s=2)
    )
    futures = runner.run(inputs(artifact, 2))
    victim = fresh_farm.servers[wait_for_new_session(fresh_farm, [0, 0])]
    os.killpg(victim.pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        results = [f.result() for f in futures]
        assert [r.error_msg for r in results] == [None, None]
        assert runner.stats.retries >= 1
        assert time.monotonic() - start < 60
    finally:
        os.killpg(victim.pid, signal.SIGCONT)


@pytest.mark.slow
def test_local_farm_stops_everything_on_interrupt(tmp_path: Path) -> None:
    pgids: list[int] = []
    with pytest.raises(KeyboardInterrupt), LocalFarm(n_servers=1, log_dir=tmp_path) as farm:
        pgids = farm.process_groups
        assert farm_status(*farm.tracker).devices("local-cpu") == 1
        raise KeyboardInterrupt
    assert len(pgids) == 2
    assert not leftovers(pgids)


def wait_for_tracker(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return check_reachable("127.0.0.1", port, timeout_s=1.0)
        except ChameleonError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cli_local_farm_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    cmd = [sys.executable, "-c", "from chameleon.farm.cli import app; app(prog_name='farm')"]
    args = ["local", "--servers", "1", "--key", "cli-cpu", "--port", str(port), "--log-dir", str(tmp_path)]
    # Started with SIGINT ignored, as a background job of a non-interactive shell is (and as this
    # test was once, inside the full suite): Ctrl-C must still stop the farm.
    proc = subprocess.Popen(
        cmd + args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    children: list[psutil.Process] = []
    output = ""
    try:
        wait_for_tracker(port, timeout_s=180)
        wait_for_devices("127.0.0.1", port, "cli-cpu", timeout_s=180)
        # tracker, server and their TVM popen workers; on loaded cores the workers come late
        deadline = time.monotonic() + 120
        while len(children := psutil.Process(proc.pid).children(recursive=True)) < 4:
            assert time.monotonic() < deadline, children
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            output, _ = proc.communicate(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
            for child in alive:
                child.kill()
    assert proc.returncode == 0, output
    assert "stopping the farm" in output
    assert not alive, alive


# ---- MetaSchedule tuning through the farm -------------------------------------------------------


def tune(work_dir: Path, runner: object) -> ms.Database:
    # pytest attaches unnamed capture handlers to MetaSchedule's non-propagating logger, and
    # MetaSchedule's logging setup then fails on the second tune_tir in the process.
    ms_logger = logging.getLogger("tvm.s_tir.meta_schedule")
    for handler in list(ms_logger.handlers):
        if handler.get_name() is None:
            ms_logger.removeHandler(handler)
    return ms.tune_tir(
        mod=matmul_mod(),
        target=TARGET,
        work_dir=str(work_dir),
        max_trials_global=8,
        num_trials_per_iter=4,
        builder=ms.builder.LocalBuilder(f_build=fast_build),
        runner=runner,
        strategy="replay-trace",
        cost_model="random",
        seed=1,
    )


def assert_valid_records(db: ms.Database, work_dir: Path, n: int) -> None:
    records = db.get_all_tuning_records()
    assert len(records) == n
    assert all(r.run_secs and 0 < float(r.run_secs[0]) < 1 for r in records)
    lines = (work_dir / "database_tuning_record.json").read_text().splitlines()
    assert len([line for line in lines if line.strip()]) == n


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_tune_tir_through_the_farm(farm: LocalFarm, tmp_path: Path) -> None:
    runner = make_farm_runner(config_for(farm))
    assert_valid_records(tune(tmp_path, runner), tmp_path, 8)
    assert runner.stats.submitted == 8


@derived_object
class KillDuringSecondBatch(PyRunner):
    """Passes batches to the farm runner; during the second one, kills the first server to get busy."""

    def __init__(self, *, inner: object, farm: LocalFarm) -> None:
        super().__init__()
        self.inner = inner
        self.farm = farm
        self.calls = 0
        self.killed: list[int] = []

    def run(self, runner_inputs: list[RunnerInput]) -> list[RunnerFuture]:
        self.calls += 1
        if self.calls == 2:
            baseline = session_counts(self.farm)
            threading.Thread(target=self._kill_when_busy, args=(baseline,), daemon=True).start()
        return self.inner.run(runner_inputs)

    def _kill_when_busy(self, baseline: list[int]) -> None:
        victim = wait_for_new_session(self.farm, baseline)
        time.sleep(0.3)  # mid-measurement
        self.farm.kill(victim)
        self.killed.append(victim)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_tune_tir_survives_a_server_killed_mid_run(fresh_farm: LocalFarm, tmp_path: Path) -> None:
    inner = make_farm_runner(config_for(fresh_farm, number=1, min_repeat_ms=1000))
    runner = KillDuringSecondBatch(inner=inner, farm=fresh_farm)
    db = tune(tmp_path, runner)
    assert len(runner.killed) == 1
    assert inner.stats.retries >= 1
    assert_valid_records(db, tmp_path, 8)
