"""Interleaved timing passes (``tuning.passes``): the fastest pass counts, a failure in any pass is
an error, one pass is the plain runner, and a benchmark never mixes pass counts."""

from __future__ import annotations

import itertools
import json
import math
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.arg_info import ArgInfo, TensorInfo
from tvm.s_tir.meta_schedule.runner import PyRunner, RunnerFuture, RunnerInput
from tvm.s_tir.meta_schedule.runner.local_runner import LocalRunnerFuture

from chameleon.bench.online import check_passes
from chameleon.errors import UsageError
from chameleon.hardware.targets import resolve_target
from chameleon.tuning.measure import MeasureConfig, make_runner, parallel_devices
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
        self.started: list[float] = []

    def run(self, runner_inputs: list[RunnerInput]) -> list[RunnerFuture]:
        p = len(self.timed) % len(self.script)
        self.started.append(time.monotonic())
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


def _inputs(n: int, shape: tuple[int, ...] = (4, 4)) -> list[RunnerInput]:
    return [RunnerInput(str(i), "cpu", [TensorInfo("float32", list(shape))]) for i in range(n)]


def _secs(result) -> list[float]:
    return [float(x) for x in result.run_secs]


def _run(script: list[list[float | None]], margin: float = math.inf) -> tuple[list, ScriptedRunner]:
    inner = ScriptedRunner(script)
    runner = FastestOfPasses(inner, len(script), margin, spacing_s=0.0)
    results = [f.result() for f in runner.run(_inputs(len(script[0])))]
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


def test_later_passes_race_only_the_candidates_near_the_fastest() -> None:
    # candidate 1 is 3x the fastest after pass 1; candidate 2 is left over 2x behind by pass 2
    results, inner = _run([[1e-3, 3e-3, 1.5e-3], [0.6e-3, 3e-3, 2e-3], [0.7e-3, 3e-3, 0.1e-3]], margin=2.0)
    assert inner.timed == [["0", "1", "2"], ["0", "2"], ["0"]]
    assert [_secs(r)[0] for r in results] == pytest.approx([0.6e-3, 3e-3, 1.5e-3])


def test_the_race_remembers_each_tasks_fastest_across_rounds() -> None:
    inner = ScriptedRunner([[1e-3, 1e-3], [1e-3, 1e-3]])
    runner = FastestOfPasses(inner, 2, 2.0, spacing_s=0.0)
    runner.run(_inputs(1, (4, 4)))  # task A: 1 ms
    inner.script = [[3e-3, 3e-3], [3e-3, 3e-3]]
    runner.run(_inputs(2, (4, 4)))  # task A again: 3 ms is over 2x its 1 ms
    runner.run(_inputs(2, (2, 8)))  # task A, its layout rewritten (CPU prepacking): same elements
    runner.run(_inputs(2, (8, 8)))  # task B: its own first round, so both are contenders
    assert inner.timed[2:] == [["0", "1"], ["0", "1"], ["0", "1"], ["0", "1"]]
    assert runner.timed == 2 + 2 + 2 + 4


def test_passes_are_spaced_in_time() -> None:
    inner = ScriptedRunner([[1e-3], [1e-3], [1e-3]])
    FastestOfPasses(inner, 3, spacing_s=0.2).run(_inputs(1))
    assert min(b - a for a, b in itertools.pairwise(inner.started)) >= 0.2


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
    assert runner.timed == 3  # a lone candidate is always within 2x of its own best


@pytest.mark.slow
def test_a_resumed_tuning_run_measures_in_passes_and_says_how_many(
    tiny_log_copy: Path, tiny_tune_config
) -> None:
    from dataclasses import replace

    from chameleon.logs.metadata import read_run_file
    from chameleon.tuning.tune import tune

    config = replace(tiny_tune_config(tiny_log_copy, trials=16), measure=MeasureConfig(passes=3))
    summary = tune(config)
    assert summary.new_trials == 4
    assert 1 <= summary.breakdown_s["passes_per_candidate"] <= 3
    run = read_run_file(tiny_log_copy)["runs"][-1]
    assert run["config"]["measure"]["passes"] == 3
    assert run["breakdown_s"]["passes_per_candidate"] == summary.breakdown_s["passes_per_candidate"]


def test_one_pass_is_the_plain_runner_and_fewer_is_refused() -> None:
    spec = resolve_target("llvm")
    assert not isinstance(make_runner(spec, MeasureConfig()), FastestOfPasses)
    assert parallel_devices(make_runner(spec, MeasureConfig())) == 1  # the local CPU
    assert parallel_devices(make_runner(spec, MeasureConfig(passes=3))) == 1
    with pytest.raises(UsageError, match="--measure-passes must be at least 1"):
        make_runner(spec, MeasureConfig(passes=0))
    with pytest.raises(UsageError, match="margin must be at least 1"):
        make_runner(spec, MeasureConfig(passes=3, pass_margin=0.5))
    with pytest.raises(UsageError, match="spacing must be 0 s or more"):
        make_runner(spec, MeasureConfig(passes=3, pass_spacing_s=-1.0))
    assert make_runner(spec, MeasureConfig(passes=3, pass_spacing_s=0.25)).spacing_s == 0.25


def _run_file(log_dir: Path, measures: list[dict]) -> Path:
    log_dir.mkdir(parents=True)
    runs = [{"run": i + 1, "config": {"measure": m}} for i, m in enumerate(measures)]
    (log_dir / "run.json").write_text(json.dumps({"runs": runs}))
    return log_dir


def test_a_benchmark_run_directory_keeps_one_way_of_measuring(tmp_path: Path) -> None:
    five = MeasureConfig(passes=5)
    check_passes(tmp_path / "not-yet-run", five)  # nothing measured there yet
    old = _run_file(tmp_path / "old", [{"number": 3}])  # before passes existed: 1
    check_passes(old, MeasureConfig())
    check_passes(old, MeasureConfig(pass_margin=3.0))  # the margin means nothing with one pass
    with pytest.raises(
        UsageError, match=r"measured with 1 timing pass, not 5 timing passes \(margin 2.0\): .*--runs"
    ):
        check_passes(old, five)
    before_racing = _run_file(tmp_path / "all", [{"passes": 5}])  # every candidate took every pass
    check_passes(before_racing, MeasureConfig(passes=5, pass_margin=math.inf))
    with pytest.raises(UsageError, match=r"margin inf\), not 5 timing passes \(margin 2.0"):
        check_passes(before_racing, five)
    mixed = _run_file(tmp_path / "mixed", [{"passes": 5, "pass_margin": 2.0}, {"passes": 1}])
    with pytest.raises(UsageError, match="1 timing pass and 5 timing passes"):
        check_passes(mixed, five)
    spaced = _run_file(tmp_path / "spaced", [{"passes": 5, "pass_margin": 2.0, "pass_spacing_s": 1.0}])
    check_passes(spaced, five)  # 1 s: the spacing of runs from before it was an option
    closer = MeasureConfig(passes=5, pass_spacing_s=0.25)
    with pytest.raises(UsageError, match=r"margin 2.0\), not 5 timing passes \(margin 2.0, 0.25 s apart\)"):
        check_passes(spaced, closer)
    check_passes(
        _run_file(tmp_path / "close", [{"passes": 5, "pass_margin": 2.0, "pass_spacing_s": 0.25}]), closer
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(1e-6, 1.0), min_size=1, max_size=30),
    st.sampled_from([0.03125, 0.0625, 0.125, 0.25, 0.5]),  # exact in binary: no rounding at the spacing
    st.integers(1, 6),
    st.sampled_from([0.0, 0.25, 1.0]),
)
def test_the_noise_study_spaces_passes_as_the_runner_would(
    times: list[float], step: float, k: int, spacing: float
) -> None:
    from experiments.noise import fastest_spaced

    points = [(i * step, v) for i, v in enumerate(times)]
    got = fastest_spaced(points, k, spacing)
    every = max(1, math.ceil(spacing / step - 1e-9))  # samples from one pass's start to the next's
    want = [min(times[i : i + k * every : every]) for i in range(len(times) - (k - 1) * every)]
    assert got == pytest.approx(want)
    if spacing == 0.0:
        assert len(got) == max(0, len(times) - k + 1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1e-6, 1.0), min_size=1, max_size=30), st.integers(1, 6))
def test_the_noise_study_groups_rounds_as_passes_would(times: list[float], k: int) -> None:
    from experiments.noise import fastest_of_groups

    groups = fastest_of_groups(times, k)
    assert len(groups) == len(times) // k
    assert groups == [min(times[i * k : (i + 1) * k]) for i in range(len(groups))]
    assert fastest_of_groups(times, 1) == times
