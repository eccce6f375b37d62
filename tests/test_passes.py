"""Interleaved timing passes (``tuning.passes``): the fastest pass counts, a failure in any pass is
an error, one pass is the plain runner, and a benchmark never mixes pass counts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.arg_info import ArgInfo
from tvm.s_tir.meta_schedule.runner import PyRunner, RunnerFuture, RunnerInput
from tvm.s_tir.meta_schedule.runner.local_runner import LocalRunnerFuture

from chameleon.bench.online import check_passes
from chameleon.errors import UsageError
from chameleon.hardware.targets import resolve_target
from chameleon.tuning.measure import MeasureConfig, make_runner
from chameleon.tuning.passes import FastestOfPasses
from tests.tvm_records import TARGET, matmul, tiled_schedule

FAIL = None


@derived_object
class ScriptedRunner(PyRunner):
    """Answers pass p for candidate i with ``script[p][i]``: seconds, or FAIL. Remembers which
    candidates (by artifact path) each pass timed."""

    def __init__(self, script: list[list[float | None]]) -> None:
        super().__init__()
        self.script = script
        self.timed: list[list[str]] = []

    def run(self, runner_inputs: list[RunnerInput]) -> list[RunnerFuture]:
        p = len(self.timed)
        self.timed.append([str(r.artifact_path) for r in runner_inputs])
        out = []
        for r in runner_inputs:
            t = self.script[p][int(str(r.artifact_path))]
            out.append(
                LocalRunnerFuture(res=None, error_message="LocalRunner: Timeout")
                if t is FAIL
                else LocalRunnerFuture(res=[t, t], error_message=None)
            )
        return out


def _inputs(n: int) -> list[RunnerInput]:
    return [RunnerInput(str(i), "cpu", []) for i in range(n)]


def _secs(result) -> list[float]:
    return [float(x) for x in result.run_secs]


def _run(script: list[list[float | None]]) -> tuple[list, ScriptedRunner]:
    inner = ScriptedRunner(script)
    results = [f.result() for f in FastestOfPasses(inner, len(script)).run(_inputs(len(script[0])))]
    return results, inner


def test_each_candidate_keeps_its_fastest_pass() -> None:
    results, _ = _run([[3e-3, 5e-3], [4e-3, 2e-3], [6e-3, 9e-3]])
    assert [r.error_msg for r in results] == [None, None]
    assert _secs(results[0]) == pytest.approx([3e-3, 3e-3])
    assert _secs(results[1]) == pytest.approx([2e-3, 2e-3])


def test_a_failure_in_any_pass_is_an_error_and_is_not_timed_again() -> None:
    results, inner = _run([[1e-3, 1e-3, 1e-3], [1e-3, FAIL, 1e-3], [1e-3, 1e-3, FAIL]])
    assert results[0].error_msg is None and _secs(results[0]) == pytest.approx([1e-3, 1e-3])
    assert "Timeout" in results[1].error_msg and "Timeout" in results[2].error_msg
    assert inner.timed == [["0", "1", "2"], ["0", "1", "2"], ["0", "2"]]


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda n: st.lists(
            st.lists(st.one_of(st.none(), st.floats(1e-6, 1.0)), min_size=n, max_size=n),
            min_size=1,
            max_size=5,
        )
    )
)
def test_the_result_is_the_fastest_pass_or_an_error(script: list[list[float | None]]) -> None:
    results, _ = _run(script)
    for i, r in enumerate(results):
        times = [p[i] for p in script]
        if FAIL in times:
            assert r.error_msg and r.run_secs is None
        else:
            assert r.error_msg is None and math.isclose(_secs(r)[0], min(times), rel_tol=1e-6)


def test_a_real_local_runner_times_a_real_kernel_in_passes() -> None:
    from chameleon.tvm_glue.builder import PersistentBuilder

    mod = matmul(32)
    sch = tiled_schedule(mod, 2)
    builder = PersistentBuilder(import_tensor_intrin=False)
    runner = make_runner(resolve_target("llvm"), MeasureConfig(passes=3, min_repeat_ms=5))
    try:
        assert isinstance(runner, FastestOfPasses)
        (built,) = builder.build([ms.builder.BuilderInput(sch.mod, TARGET)])
        assert built.error_msg is None
        args = ArgInfo.from_prim_func(mod["main"])
        (result,) = [f.result() for f in runner.run([RunnerInput(built.artifact_path, "cpu", args)])]
    finally:
        builder.shutdown()
        runner.shutdown()
    assert result.error_msg is None
    assert len(result.run_secs) == 1 and 0 < float(result.run_secs[0]) < 0.1


def test_one_pass_is_the_plain_runner_and_fewer_is_refused() -> None:
    spec = resolve_target("llvm")
    assert not isinstance(make_runner(spec, MeasureConfig()), FastestOfPasses)
    with pytest.raises(UsageError, match="--measure-passes must be at least 1"):
        make_runner(spec, MeasureConfig(passes=0))


def _run_file(log_dir: Path, measures: list[dict]) -> Path:
    log_dir.mkdir(parents=True)
    runs = [{"run": i + 1, "config": {"measure": m}} for i, m in enumerate(measures)]
    (log_dir / "run.json").write_text(json.dumps({"runs": runs}))
    return log_dir


def test_a_benchmark_run_directory_keeps_one_pass_count(tmp_path: Path) -> None:
    check_passes(tmp_path / "not-yet-run", 5)  # nothing measured there yet
    old = _run_file(tmp_path / "old", [{"number": 3}])  # before passes existed: 1
    check_passes(old, 1)
    with pytest.raises(UsageError, match=r"measured with 1 timing pass\(es\), not 5: .*--runs"):
        check_passes(old, 5)
    mixed = _run_file(tmp_path / "mixed", [{"passes": 5}, {"passes": 1}])
    with pytest.raises(UsageError, match="1/5"):
        check_passes(mixed, 5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1e-6, 1.0), min_size=1, max_size=30), st.integers(1, 6))
def test_the_noise_study_groups_rounds_as_passes_would(times: list[float], k: int) -> None:
    from experiments.noise import fastest_of_groups

    groups = fastest_of_groups(times, k)
    assert len(groups) == len(times) // k
    assert groups == [min(times[i * k : (i + 1) * k]) for i in range(len(groups))]
    assert fastest_of_groups(times, 1) == times
