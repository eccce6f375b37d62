"""Strategy conformance (every registered strategy, through the simulator) and the tuning wiring.

The conformance suite runs each strategy against a dataset read from the session's real tuning
log, with a fake surrogate answering configurations the log never measured and every third
measurement failing (a timeout or a NaN time). Evolutionary search runs with a 32-candidate
population instead of 512 so that a run takes seconds: its code paths are the same.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.runner import RunnerResult
from tvm_records import write_matmul_log

import chameleon.simulate.run as sim_run
from chameleon.errors import ChameleonError, UsageError
from chameleon.hardware.targets import resolve_target, target_names
from chameleon.logs.timeline import Measurement, TimelineRecorder
from chameleon.search import registry
from chameleon.simulate.dataset import TaskData, load_dataset
from chameleon.simulate.device import SimulatedDevice
from chameleon.tuning.measure import MeasureConfig, make_runner
from chameleon.tuning.tune import round_size, select_tasks, time_breakdown

STRATEGIES = registry.strategy_names()
WARM = {"chameleon+warm": "chameleon:pretrained_first_round=true,rerank_pool=16"}
"""Conformance variants whose cost models are first trained on another task's log (a matmul's).
Evolutionary's warm start differs from its cold run only in the XGBoost object it is given.
``rerank_pool=16``: the ranked first round draws 16 random valid configurations, not 128 (still
more than a round); materialising 128 a run made this the suite's slowest fixture (~170 s)."""
TRIALS = 7
"""Budget of a simulated run: not a multiple of the round size, so the last round is cut short."""
ROUND = 3
TIMEOUT = "timeout (injected)"


# --------------------------------------------------------------------------- registry
def test_builtin_strategies_are_registered() -> None:
    assert {"evolutionary", "random", "chameleon"} <= set(STRATEGIES)
    assert len(STRATEGIES) == len(set(STRATEGIES))
    for name in STRATEGIES:
        entry = registry.get_entry(name)
        assert entry.name == name and entry.help


def test_unknown_strategy_lists_the_valid_names() -> None:
    with pytest.raises(UsageError) as info:
        registry.get_entry("simulated-annealing")
    msg = str(info.value)
    assert "simulated-annealing" in msg and "\n" not in msg
    assert all(name in msg for name in STRATEGIES)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_factory_builds_a_search_setup(name: str) -> None:
    options = registry.StrategyOptions(seed=3, target_json={"kind": "llvm", "num-cores": 2})
    setup = registry.create(name, options)
    assert isinstance(setup, registry.SearchSetup)
    assert hasattr(setup.strategy, "generate_measure_candidates")
    assert setup.cost_model is not None


def test_a_spec_overrides_the_strategy_config() -> None:
    entry = registry.get_entry("chameleon:representative=best, plan_size=32,adaptive_sampling=false")
    assert entry.name.startswith("chameleon:")
    setup = entry.factory(registry.StrategyOptions(seed=1))
    config = setup.strategy.config
    assert (config.representative, config.plan_size, config.adaptive_sampling) == ("best", 32, False)
    assert registry.create("chameleon", registry.StrategyOptions()).strategy.config.plan_size == 64


@pytest.mark.parametrize(
    ("spec", "devices", "agent_round"),
    [
        ("chameleon", 1, 2),
        ("chameleon", 2, 2),
        ("chameleon", 4, 4),
        ("chameleon", 8, 8),  # one measurement per farm device, none waits
        ("chameleon:agent_round=4", 8, 4),  # what the spec sets stays
        ("chameleon:agent_round=0", 8, 0),  # the tuner's round size
    ],
)
def test_agent_rounds_measure_one_configuration_per_farm_device(
    spec: str, devices: int, agent_round: int
) -> None:
    setup = registry.create(spec, registry.StrategyOptions(devices=devices))
    assert setup.strategy.config.agent_round == agent_round


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("chameleon:no_such=1", "unknown setting 'no_such'"),
        ("chameleon:plan_size=many", "bad value 'many' for 'plan_size'"),
        ("chameleon:adaptive_sampling=maybe", "bad value 'maybe'"),
        ("chameleon:representative=worst", "representative must be"),
        ("chameleon:search_threads=-1", "search_threads must be 0"),
        ("chameleon:plan_size", "write name:field=value"),
        ("chameleon:ppo=1", "cannot be set"),
        ("evolutionary:population=8", "takes no settings"),
    ],
)
def test_a_bad_spec_is_a_one_line_usage_error(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        registry.get_entry(spec)
    assert "\n" not in str(info.value)


def test_registering_a_strategy(monkeypatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    sentinel = registry.SearchSetup(strategy="s", cost_model="c")
    registry.register("mine", "my strategy")(lambda options: sentinel)
    assert "mine" in registry.strategy_names()
    assert registry.create("mine", registry.StrategyOptions()) is sentinel
    with pytest.raises(UsageError, match="mine"):
        registry.get_entry("yours")


def test_simulate_refuses_an_unknown_strategy() -> None:
    with pytest.raises(UsageError, match="unknown strategy"):
        sim_run.simulate(
            dataset=None, task=None, strategy="nope", trials=1, seed=0, surrogate=None, pool_only=True
        )


# --------------------------------------------------------------------------- round size
def test_round_size_gives_every_untuned_task_a_first_round() -> None:
    assert round_size(None, 600, 22) == 16  # ResNet-18 at make tune's budget: the default
    assert round_size(None, 400, 33) == 12  # MobileNet-V2 at 400 trials: 33 rounds of 12 fit
    assert round_size(None, 400, 0) == 16  # a resumed log whose tasks all have records
    assert round_size(None, 20, 33) == 4  # never below 4
    assert round_size(8, 10, 100) == 8  # what the user asked for


@given(remaining=st.integers(1, 5000), untuned=st.integers(0, 200))
def test_round_size_fits_the_first_pass_when_it_can(remaining: int, untuned: int) -> None:
    size = round_size(None, remaining, untuned)
    assert 4 <= size <= 16
    if untuned and remaining >= 4 * untuned:
        assert size * untuned <= remaining
    if untuned == 0 or remaining >= 16 * untuned:
        assert size == 16


# --------------------------------------------------------------------------- select_tasks
TASKS = [
    SimpleNamespace(name=n) for n in ("fused_conv2d_relu", "fused_conv2d1_add", "fused_matmul", "softmax")
]


def test_select_tasks_by_name_and_index() -> None:
    assert select_tasks(TASKS, ()) is TASKS
    assert [t.name for t in select_tasks(TASKS, ("conv2d",))] == ["fused_conv2d_relu", "fused_conv2d1_add"]
    assert [t.name for t in select_tasks(TASKS, ("conv2d1",))] == ["fused_conv2d1_add"]
    assert [t.name for t in select_tasks(TASKS, ("3", "matmul"))] == ["fused_matmul", "softmax"]
    assert [t.name for t in select_tasks(TASKS, ("0", "0"))] == ["fused_conv2d_relu"]


def test_select_tasks_without_a_match_lists_the_tasks() -> None:
    with pytest.raises(UsageError) as info:
        select_tasks(TASKS, ("dense", "9"))
    msg = str(info.value)
    assert "dense" in msg and "0:fused_conv2d_relu" in msg and "3:softmax" in msg


@given(st.lists(st.one_of(st.sampled_from(["conv", "fused", "1", "x", "mat"]), st.integers(0, 5).map(str))))
def test_select_tasks_keeps_order_and_only_matching_tasks(patterns: list[str]) -> None:
    def matches(i: int, name: str) -> bool:
        return any(int(p) == i if p.isdigit() else p in name for p in patterns)

    expected = [t for i, t in enumerate(TASKS) if matches(i, t.name)] if patterns else TASKS
    if patterns and not expected:
        with pytest.raises(UsageError):
            select_tasks(TASKS, tuple(patterns))
    else:
        assert select_tasks(TASKS, tuple(patterns)) == expected


# --------------------------------------------------------------------------- time_breakdown
def test_time_breakdown_from_profiler_scopes() -> None:
    scopes = {
        "SendToBuilder": 4.0,
        "SendToRunner": 2.0,
        "JoinRunnerFutures": 1.0,
        "InitializeTask": 0.5,
        "MeasureCallback/AddToDatabase": 0.25,
        "MeasureCallback/UpdateCostModel": 0.25,
        "GenerateMeasureCandidates": 1.5,  # search time: what is left of the wall clock
    }
    assert time_breakdown(scopes, 10.0) == {
        "total": 10.0,
        "search": 2.0,
        "build": 4.0,
        "run": 3.0,
        "other": 1.0,
    }
    assert time_breakdown({}, 3.0) == {"total": 3.0, "search": 3.0, "build": 0.0, "run": 0.0, "other": 0.0}


def test_time_breakdown_never_reports_negative_search() -> None:
    assert time_breakdown({"SendToBuilder": 5.0}, 1.0)["search"] == 0.0


@given(
    st.dictionaries(
        st.sampled_from(
            ["SendToBuilder", "SendToRunner", "JoinRunnerFutures", "InitializeTask", "MeasureCallback/X"]
        ),
        st.floats(min_value=0, max_value=100),
    ),
    st.floats(min_value=0, max_value=1000),
)
def test_time_breakdown_parts_add_up(scopes: dict, extra: float) -> None:
    wall = sum(scopes.values()) + extra
    out = time_breakdown(scopes, wall)
    assert all(v >= 0 for v in out.values())
    assert out["search"] + out["build"] + out["run"] + out["other"] == pytest.approx(out["total"], abs=0.03)


# --------------------------------------------------------------------------- targets and runners
def test_llvm_target_names_the_host_cpu() -> None:
    spec = resolve_target("llvm")
    assert spec.target_json["kind"] == "llvm"
    assert spec.target_json["num-cores"] >= 1 and spec.target_json["mcpu"]
    assert spec.kind == "cpu" and not spec.needs_farm
    assert str(spec.tvm_target())  # TVM accepts it
    assert resolve_target(" CPU ") == spec


def test_jetson_alias_resolves_to_the_orin_nano_tag() -> None:
    spec = resolve_target("jetson")
    assert spec.name == "jetson-orin-nano"
    assert spec.target_json["tag"] == "nvidia/jetson-orin-nano"
    assert spec.target_json["kind"] == "cuda"
    assert spec.needs_farm and spec.kind == "gpu"
    assert spec.tvm_target().kind.name == "cuda"


def test_unknown_target_lists_the_valid_names() -> None:
    with pytest.raises(UsageError) as info:
        resolve_target("tpu-v9")
    assert "tpu-v9" in str(info.value)
    assert all(name in str(info.value) for name in target_names())


def test_remote_target_without_tracker_asks_for_one(monkeypatch) -> None:
    monkeypatch.delenv("TVM_TRACKER_HOST", raising=False)
    monkeypatch.delenv("TVM_TRACKER_PORT", raising=False)
    with pytest.raises(UsageError, match="--tracker"):
        make_runner(resolve_target("jetson"), MeasureConfig())


def test_malformed_tracker_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="HOST:PORT"):
        make_runner(resolve_target("jetson"), MeasureConfig(tracker="no-port-here"))


def test_unreachable_tracker_is_a_chameleon_error() -> None:
    with pytest.raises(ChameleonError):
        make_runner(resolve_target("jetson"), MeasureConfig(tracker="127.0.0.1:1"))


def test_local_target_gets_a_local_runner(monkeypatch) -> None:
    monkeypatch.delenv("TVM_TRACKER_HOST", raising=False)
    monkeypatch.delenv("TVM_TRACKER_PORT", raising=False)
    assert isinstance(make_runner(resolve_target("llvm"), MeasureConfig()), ms.runner.LocalRunner)


# --------------------------------------------------------------------------- conformance (simulated)
class FakeSurrogate:
    """Answers misses with a deterministic, candidate-dependent positive latency."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        return 1e-4 * (1.0 + np.abs(X).sum(axis=1) % 7.0)


@dataclass
class Runs:
    first: list[Measurement]
    """Seed 0, every third measurement failing, exactly as the library does it."""
    first_sim: sim_run.SimRun
    second: list[Measurement]
    """The same run again: same seed, same proposals."""
    pool_only: list[Measurement]
    """Pool-only run over a pool that holds the first round of ``first``."""
    pool_only_sim: sim_run.SimRun
    pool: dict[str, float]


@pytest.fixture(scope="module")
def simulator(tiny_log: Path, tmp_path_factory):
    """``run(strategy, task, *, pool_only, warm=()) -> (measurements, SimRun)`` on the tiny log,
    seed 0, warm-started from the ``warm`` logs (another task's for the ``WARM`` variants).

    Every third measurement fails (alternately a timeout and a NaN time). No help for
    reproducibility: the simulator itself searches on one thread and seeds numpy's global RNG
    (which TVM's XGBoost model uses).
    """
    dataset = load_dataset(tiny_log)
    (task,) = dataset.tasks.values()
    recorders: list = []
    other_task_log = write_matmul_log(tmp_path_factory.mktemp("matmul") / "log", {16: 10, 32: 10})

    def recorder(**kwargs):
        r = TimelineRecorder(**kwargs)
        recorders.append(r)
        return r

    original_answer = SimulatedDevice.answer

    def answer(self, ident: int) -> RunnerResult:
        if ident % 3 == 2:
            return RunnerResult(None, TIMEOUT) if ident % 2 else RunnerResult([math.nan], None)
        return original_answer(self, ident)

    def run(strategy: str, task_data: TaskData, *, pool_only: bool, warm: tuple[str, ...] = ()):
        warm = (str(other_task_log),) if strategy in WARM else warm
        sim = sim_run.simulate(
            dataset=dataset,
            task=task_data,
            strategy=WARM.get(strategy, strategy),
            options=registry.StrategyOptions(seed=0, target_json=dataset.target_json, warm_start=warm),
            trials=TRIALS,
            seed=0,
            surrogate=FakeSurrogate(),
            pool_only=pool_only,
            trials_per_round=ROUND,
        )
        return list(recorders[-1].measurements), sim

    with pytest.MonkeyPatch.context() as mp:
        # A small evolutionary search: the conformance properties do not depend on the population
        # or the number of genetic iterations (1 instead of 4 took its two variants 125 -> 85 s).
        small = functools.partial(
            ms.search_strategy.EvolutionarySearch,
            population_size=32,
            init_min_unmeasured=8,
            genetic_num_iters=1,
        )
        mp.setattr(ms.search_strategy, "EvolutionarySearch", small)
        mp.setattr(sim_run, "TimelineRecorder", recorder)
        mp.setattr(SimulatedDevice, "answer", answer)
        yield SimpleNamespace(run=run, task=task)


@pytest.fixture(scope="module", params=[*STRATEGIES, *WARM])
def runs(request, simulator) -> Runs:
    strategy, task = request.param, simulator.task
    first, first_sim = simulator.run(strategy, task, pool_only=False)
    second, _ = simulator.run(strategy, task, pool_only=False)
    pool = dict(task.latency)
    pool.update({m.key: 1e-5 * (i + 1) for i, m in enumerate(first[:ROUND])})
    pooled = TaskData(task.name, task.workload, task.weight, task.flop, latency=pool, traces=task.traces)
    pool_only, pool_only_sim = simulator.run(strategy, pooled, pool_only=True)
    return Runs(first, first_sim, second, pool_only, pool_only_sim, pool)


def _sequence(measurements: list[Measurement]) -> list[tuple]:
    return [(m.key, m.latency_s, m.error) for m in measurements]


@pytest.mark.slow
def test_same_seed_gives_the_same_proposals(runs: Runs) -> None:
    assert _sequence(runs.first) == _sequence(runs.second)


@pytest.mark.slow
def test_never_measures_a_configuration_twice(runs: Runs) -> None:
    for measurements in (runs.first, runs.second):
        keys = [m.key for m in measurements]
        assert all(keys) and len(set(keys)) == len(keys)


@pytest.mark.slow
def test_stops_exactly_at_the_budget(runs: Runs) -> None:
    assert len(runs.first) == TRIALS
    assert len(runs.first_sim.latencies) == TRIALS
    assert len(runs.second) == TRIALS
    assert len(runs.pool_only) <= TRIALS


@pytest.mark.slow
def test_survives_failed_measurements(runs: Runs) -> None:
    failed_in_pool = {k for k, v in runs.pool.items() if not math.isfinite(v)}
    for i, m in enumerate(runs.first):
        if i % 3 == 2:
            assert m.latency_s is None and m.error
        else:
            assert m.ok or m.key in failed_in_pool
    errors = {m.error for i, m in enumerate(runs.first) if i % 3 == 2}
    assert errors == {TIMEOUT, "runner returned no valid time"}
    assert runs.first_sim.latencies == [m.latency_s for m in runs.first]


@pytest.mark.slow
def test_pool_only_answers_only_recorded_configurations(runs: Runs) -> None:
    assert runs.pool_only, "the first round of the seed-0 run is in the pool: something must be measured"
    for m in runs.pool_only:
        assert m.key in runs.pool
        if m.latency_s is not None:
            assert m.latency_s == pytest.approx(runs.pool[m.key], rel=1e-12)
        else:
            assert m.error
    assert runs.pool_only_sim.misses == 0
    assert runs.pool_only_sim.hits == len(runs.pool_only)


def _round_calls(monkeypatch, method: str) -> list[tuple[int, int]]:
    """(budget asked, configurations chosen) of each call to one of chameleon's round methods
    (``_agent_round``, ``_ranked_random_round``), in order, filled as runs go."""
    from chameleon.search.chameleon_search import ChameleonSearch

    calls: list[tuple[int, int]] = []
    search_class = ChameleonSearch._cls  # the Python class behind TVM's derived object
    original = getattr(search_class, method)

    def spy(self, budget: int):
        chosen = original(self, budget)
        calls.append((budget, len(chosen)))
        return chosen

    monkeypatch.setattr(search_class, method, spy)
    return calls


@pytest.mark.slow
def test_a_pretrained_program_model_ranks_chameleons_first_round(simulator, monkeypatch) -> None:
    """Warm-started on another task's log, chameleon's first round is the program model's pick
    among random valid configurations; a cold chameleon's is plain random."""
    calls = _round_calls(monkeypatch, "_ranked_random_round")
    simulator.run("chameleon", simulator.task, pool_only=False)
    assert calls == []
    simulator.run("chameleon+warm", simulator.task, pool_only=False)
    assert calls and calls[0] == (ROUND, ROUND)


@pytest.mark.slow
def test_chameleons_agent_round_caps_the_rounds_after_the_first(simulator, monkeypatch) -> None:
    """``agent_round=2``: every round the agent plans is given at most 2 measurements, and the run
    still spends its whole budget."""
    calls = _round_calls(monkeypatch, "_agent_round")
    measurements, _ = simulator.run("chameleon:agent_round=2", simulator.task, pool_only=False)
    budgets = [budget for budget, _ in calls]
    assert budgets and all(b <= 2 for b in budgets)
    assert len(measurements) == TRIALS


def test_cli_lists_strategies_and_which_take_settings() -> None:
    from typer.testing import CliRunner

    from chameleon.cli.app import app

    result = CliRunner().invoke(app, ["strategies"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert all(name in result.output for name in STRATEGIES)
    assert "chameleon, chameleon-no-as, chameleon-no-bp take settings" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("warm_first_round", [0, 3])
def test_a_warm_starts_first_agent_round_measures_warm_first_round(
    simulator, tiny_log: Path, monkeypatch, warm_first_round: int
) -> None:
    """Warm-started on the same task's log, the knob model predicts before anything is measured,
    so the first round is the agent's: ``warm_first_round`` configurations (0: ``agent_round``),
    every later round at most ``agent_round``; the budget is spent either way."""
    calls = _round_calls(monkeypatch, "_agent_round")
    spec = f"chameleon:agent_round=2,warm_first_round={warm_first_round}"
    measurements, _ = simulator.run(spec, simulator.task, pool_only=False, warm=(str(tiny_log),))
    budgets = [budget for budget, _ in calls]
    assert budgets[0] == (warm_first_round or 2)
    assert all(b <= 2 for b in budgets[1:])
    assert len(measurements) == TRIALS


def test_warm_first_round_must_not_be_negative() -> None:
    from chameleon.search.chameleon_search import ChameleonConfig

    with pytest.raises(UsageError, match="warm_first_round"):
        ChameleonConfig(warm_first_round=-1)
