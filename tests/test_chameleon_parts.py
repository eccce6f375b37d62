"""Chameleon's own parts around the agent: knob cost model, blueprint priors, warm start."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chameleon.cost_model.knob_model import KnobCostModel, KnobModelConfig
from chameleon.hardware.blueprints import get_blueprint


@given(st.lists(st.one_of(st.floats(1e-6, 1.0), st.just(math.inf)), min_size=1, max_size=50))
@settings(max_examples=50, deadline=None)
def test_targets_are_normalised_throughput(latencies):
    y = KnobCostModel.targets(np.array(latencies))
    assert y.shape == (len(latencies),)
    assert np.all((y >= 0) & (y <= 1.0 + 1e-6))
    finite = [v for v in latencies if math.isfinite(v)]
    if finite:
        assert math.isclose(float(y.max()), 1.0, rel_tol=1e-6)
    for v, t in zip(latencies, y, strict=True):
        if not math.isfinite(v):
            assert t == 0.0


def test_knob_model_learns_a_ranking():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(300, 6)).astype(np.float32)
    latency = 1e-3 * (1.0 + 3.0 * X[:, 0] + X[:, 1] ** 2)
    model = KnobCostModel(config=KnobModelConfig(n_estimators=80), seed=0)
    assert not model.fitted and np.all(model.predict(X) == 0)
    assert model.fit(X[:200], latency[:200])
    pred = model.predict(X[200:])
    from scipy.stats import spearmanr

    # Higher predicted throughput must mean lower latency.
    assert spearmanr(pred, -latency[200:]).statistic > 0.8


def test_knob_model_needs_minimum_samples_unless_prior():
    model = KnobCostModel(config=KnobModelConfig(min_samples=4))
    X = np.zeros((2, 3), dtype=np.float32)
    assert not model.fit(X, np.array([1e-3, 2e-3]))
    model.set_prior(np.ones((10, 3), dtype=np.float32), np.linspace(0, 1, 10).astype(np.float32))
    assert model.fit(X, np.array([1e-3, 2e-3]))


def test_warm_model_is_corrected_by_local_measurements():
    """The base model (other device) ranks by x0; this device's latency grows with x0 instead.
    Boosted on top of the base model, enough local data overrides what transferred."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(1)
    X = rng.uniform(size=(400, 4)).astype(np.float32)
    model = KnobCostModel(config=KnobModelConfig(n_estimators=80), seed=0)
    model.set_prior(X[:200], X[:200, 0])
    assert model.fitted and spearmanr(model.predict(X[200:]), X[200:, 0]).statistic > 0.8
    local_latency = 1e-3 * (1.0 + 3.0 * X[:, 0])
    assert model.fit(X[200:350], local_latency[200:350])
    assert spearmanr(model.predict(X[350:]), -local_latency[350:]).statistic > 0.8


def test_each_refit_continues_the_base_model_once():
    """Every round refits on top of the base model: the base model stays as it was and the local
    model holds its trees plus one fit's worth, however many rounds came before."""
    rng = np.random.default_rng(2)
    X = rng.uniform(size=(120, 3)).astype(np.float32)
    model = KnobCostModel(config=KnobModelConfig(n_estimators=10), seed=0)
    model.set_prior(X, X[:, 1])
    before = model.base_model.predict(X)
    for n in (20, 40, 60):
        assert model.fit(X[:n], 1e-3 * (1.0 + X[:n, 2]))
        assert model.model.get_booster().num_boosted_rounds() == 20
    np.testing.assert_array_equal(model.base_model.predict(X), before)


class _Knob:
    def __init__(self, options, kind="tile"):
        self.options = options
        self.kind = kind


class _Sketch:
    def __init__(self, knobs):
        self.knobs = knobs
        self.num_knobs = len(knobs)
        self.option_counts = np.array([len(k.options) for k in knobs], dtype=np.int64)


class _Space:
    def __init__(self, sketches):
        self.sketches = sketches

    def as_arrays(self, configs):
        ids = np.array([c[0] for c in configs])
        idx = np.array([c[1] for c in configs])
        return ids, idx


def test_cpu_prior_prefers_full_simd_vectors():
    from chameleon.hardware.priors import BlueprintPrior

    avx512 = get_blueprint("x86-avx512-server")  # 16 fp32 lanes
    tile = _Knob([(1, 1, 1, 16), (1, 1, 2, 8), (1, 1, 16, 1), (1, 1, 1, 48)])
    red = _Knob([(4, 4), (16, 1)])
    space = _Space([_Sketch([tile, red])])
    prior = BlueprintPrior(space=space, blueprint=avx512)
    ids = np.zeros(4, dtype=np.int64)
    idx = np.array([[0, 0], [1, 0], [2, 0], [3, 1]])
    scores = prior.score(ids, idx)
    assert scores[0] == 0.0  # 16 lanes: one full register
    assert scores[1] == -0.25  # 8 lanes: half a register, log2(1/2) / log2(16)
    assert scores[2] == -1.0  # scalar loop
    assert scores[3] == 0.0  # 48 = 3 full registers; the reduction tile has no prior
    pool = [(0, (0, 0)), (0, (2, 0)), (0, (2, 0)), (0, (1, 1)), (0, (3, 1))]
    chosen = prior.choose(pool, 3, np.random.default_rng(0))
    assert len(set(chosen)) == 3 and set(chosen) <= set(pool)
    picks = [prior.choose(pool, 1, np.random.default_rng(s))[0] for s in range(400)]
    assert (
        picks.count((0, (0, 0))) > picks.count((0, (2, 0))) / 2
    )  # full vectors win against a tail twice as common


def test_prior_of_a_sketch_without_knobs_is_zero():
    from chameleon.hardware.priors import BlueprintPrior

    for name in ("x86-avx512-server", "jetson-orin-nano"):
        space = _Space([_Sketch([]), _Sketch([_Knob([(1, 1, 1, 16), (1, 1, 16, 1)])])])
        prior = BlueprintPrior(space=space, blueprint=get_blueprint(name))
        scores = prior.score(np.array([0, 0]), np.zeros((2, 1), dtype=np.int64))
        assert scores.tolist() == [0.0, 0.0]


def test_gpu_prior_scores_block_size():
    from chameleon.hardware.priors import BlueprintPrior

    orin = get_blueprint("jetson-orin-nano")
    tx = _Knob([(1, 1, 32, 1, 1), (1, 1, 3, 1, 1), (1, 1, 64, 1, 1)])
    ty = _Knob([(1, 1, 1, 1, 1), (1, 1, 32, 1, 1)])
    space = _Space([_Sketch([tx, ty])])
    prior = BlueprintPrior(space=space, blueprint=orin)
    idx = np.array([[0, 0], [1, 0], [2, 1]])  # 32 threads, 3 threads, 2048 threads
    scores = prior.score(np.zeros(3, dtype=np.int64), idx)
    assert scores.tolist() == [0.0, -1.0, -3.0]


DENSE_LOG = Path(__file__).resolve().parent / "data" / "resnet18-dense-llvm.tar.gz"
"""ResNet-18's dense layer on this project's AVX-512 CPU: 1010 real measurements (a one-task cut
of experiments/datasets/resnet18-llvm.tar.gz)."""


@pytest.mark.slow
def test_warm_start_model_beats_cold_on_held_out_records():
    """Trained first on half of the records of a log committed under tests/, the model ranks the
    other half well; a cold model (nothing to learn from) predicts a constant."""
    import json

    import tvm
    from scipy.stats import spearmanr
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.database import Workload

    from chameleon.logs.database import WORKLOAD_FILE
    from chameleon.logs.metadata import read_run_file
    from chameleon.search.transfer import warm_start_records
    from chameleon.simulate.dataset import log_directory
    from chameleon.space.space import KnobSpace

    log_dir = log_directory(DENSE_LOG)  # not load_dataset: it replays all 1010 traces (~30 s)
    (line,) = (log_dir / WORKLOAD_FILE).read_text().splitlines()
    workload = Workload.from_json(json.loads(line)).mod
    target = tvm.target.Target(read_run_file(log_dir)["target_json"])
    ctx = ms.TuneContext(mod=workload, target=target, space_generator="post-order-apply", task_name="dense")
    space = KnobSpace.from_design_spaces(
        mod=workload,
        design_spaces=ctx.generate_design_space(),
        postprocs=list(ctx.space_generator.postprocs),
    )
    X, y = warm_start_records(space, workload, (str(log_dir),), with_embedding=True)
    assert len(y) >= 500 and X.shape[0] == len(y)
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[: len(y) // 2], order[len(y) // 2 :]
    warm = KnobCostModel(seed=0)
    warm.set_prior(X[train], y[train])
    assert warm.fit(X[:0], np.zeros(0))
    rho = spearmanr(warm.predict(X[test]), y[test]).statistic
    cold = KnobCostModel(seed=0)
    assert not cold.fit(X[:0], np.zeros(0))
    assert np.ptp(cold.predict(X[test])) == 0
    assert rho > 0.5


@given(st.lists(st.floats(-1e6, 1e6), min_size=0, max_size=40))
@settings(max_examples=60, deadline=None)
def test_percentile_ranks_are_monotone_and_in_unit_range(values):
    from chameleon.search.chameleon_search import _percentile_ranks

    v = np.array(values)
    r = _percentile_ranks(v)
    assert r.shape == v.shape
    if len(v):
        assert np.all((r >= 0) & (r <= 1))
    for i in range(len(v)):
        for j in range(len(v)):
            if v[i] < v[j]:
                assert r[i] < r[j]


@pytest.fixture(scope="module")
def dense_search():
    """A ChameleonSearch wired to a small dense task's knob space, without a tuning run."""
    import tvm
    from tvm import te, topi
    from tvm.s_tir import meta_schedule as ms

    from chameleon.search.chameleon_search import ChameleonConfig, ChameleonSearch
    from chameleon.space.space import KnobSpace

    a, b = te.placeholder((32, 64), name="A"), te.placeholder((48, 64), name="B")
    mod = tvm.IRModule({"main": te.create_prim_func([a, b, topi.nn.dense(a, b)])})
    ctx = ms.TuneContext(
        mod=mod,
        target=tvm.target.Target({"kind": "llvm", "num-cores": 2}),
        space_generator="post-order-apply",
    )
    search = ChameleonSearch(config=ChameleonConfig(), blueprint=get_blueprint("x86-avx512-server"))
    search.space = KnobSpace.from_design_spaces(
        mod=ctx.mod, design_spaces=ctx.generate_design_space(), postprocs=ctx.space_generator.postprocs
    )
    search.rng = np.random.default_rng(0)
    search.invalid, search.measured, search.rejected, search.checks_validity = set(), {}, 0, True
    search.context, search.prior, search.embedding = ctx, None, np.zeros(0, dtype=np.float32)
    search.threads = 1
    kmax = max(search.space.num_knobs_max, 1)
    search.n_options = np.ones((len(search.space.sketches), kmax), dtype=np.int64)
    for s in range(len(search.space.sketches)):
        counts = search.space.option_counts(s)
        search.n_options[s, : len(counts)] = counts
    return search


def test_blueprint_rejection_is_counted_and_remembered(dense_search):
    """A CPU program checked against a GPU's blueprint breaks a hard rule (code outside every
    thread-bound scope): rejected before measuring, counted once, remembered."""
    search = dense_search
    search.blueprint = get_blueprint("jetson-orin-nano")
    try:
        config = search.space.sample_config(np.random.default_rng(1))
        assert search._materialize(config, {}) is None
        assert search.rejected == 1 and config in search.invalid
        assert search._materialize(config, {}) is None  # remembered, not checked again
        assert search.rejected == 1
    finally:
        search.blueprint = get_blueprint("x86-avx512-server")
        search.invalid.clear()
        search.rejected = 0


def test_cpu_rejects_only_the_soft_rule_that_earned_it(dense_search):
    from chameleon.hardware.validity import check

    search, rng, seen = dense_search, np.random.default_rng(2), 0
    for _ in range(30):
        config = search.space.sample_config(rng)
        sch = None if config is None else search.space.materialize(config, seed=1)
        if sch is None:
            continue
        rules = {v.rule for v in check(sch.mod, search.blueprint)}
        assert search._rejected_by_blueprint(sch) == ("vector_width" in rules)
        seen += 1
    assert seen > 0


def test_random_configs_come_from_the_sampler_and_the_prior_picks_among_them(dense_search):
    from chameleon.hardware.priors import BlueprintPrior

    search = dense_search
    plain = search._random_configs(40)
    assert len(plain) == 40
    for c in plain:
        search.space.validate(c)
    search.prior = BlueprintPrior(space=search.space, blueprint=search.blueprint)
    picked = search._random_configs(40)
    assert 0 < len(picked) <= 40 and len(set(picked)) == len(picked)
    picked_score = search.prior.score(*search.space.as_arrays(picked)).mean()
    search.prior = None
    assert (
        picked_score
        > BlueprintPrior(space=search.space, blueprint=search.blueprint)
        .score(*search.space.as_arrays(plain))
        .mean()
    )


@pytest.mark.parametrize("n", [0, 1, 2, 5, 8, 13])
def test_even_sketches_cover_every_prefix_evenly(dense_search, n):
    space = dense_search.space
    count = len(space.sketches)
    assert count > 1
    sketches = space.even_sketches(np.random.default_rng(n), n)
    assert len(sketches) == n
    for m in range(n + 1):
        per_sketch = np.bincount(sketches[:m], minlength=count)
        assert per_sketch.max() - per_sketch.min() <= 1


@pytest.mark.parametrize("with_prior", [False, True])
def test_even_sketches_spread_random_configs_over_the_sketches(dense_search, with_prior):
    from dataclasses import replace

    from chameleon.hardware.priors import BlueprintPrior

    search = dense_search
    config, count = search.config, len(search.space.sketches)
    search.config = replace(config, even_sketches=True)
    search.rng = np.random.default_rng(3)
    if with_prior:
        search.prior = BlueprintPrior(space=search.space, blueprint=search.blueprint)
    try:
        picked = search._random_configs(4 * count)
    finally:
        search.config, search.prior = config, None
    assert len(set(picked)) == len(picked) == 4 * count
    assert np.bincount([s for s, _ in picked], minlength=count).tolist() == [4] * count


def test_sampling_given_sketches_draws_from_them(dense_search):
    space = dense_search.space
    last = len(space.sketches) - 1
    drawn = space.sample_many(np.random.default_rng(0), 6, sketches=[last] * 6)
    assert [d[0][0] for d in drawn] == [last] * 6  # a dense task's draws are all valid
    with pytest.raises(ValueError, match="2 sketches for 3 draws"):
        space.sample_many(np.random.default_rng(0), 3, sketches=[0, 0])


@pytest.mark.parametrize("seed", [0, 5])
def test_threaded_sampling_draws_and_returns_what_one_by_one_does(dense_search, seed):
    space = dense_search.space
    one_rng, many_rng = np.random.default_rng(seed), np.random.default_rng(seed)
    one = [space.sample(one_rng) for _ in range(24)]
    many = space.sample_many(many_rng, 24, threads=2)
    assert [d and d[0] for d in one] == [d and d[0] for d in many]
    assert all(d is None or d[0] == space.decode(d[1].trace) for d in many)
    assert one_rng.integers(2**31) == many_rng.integers(2**31)  # the same draws were taken


def test_threaded_materialize_matches_one_by_one(dense_search):
    """The shortlist's replays on 2 threads: the same seeds, the same valid programs and the same
    configurations remembered as invalid as :meth:`_materialize` one at a time (a few random
    knob-level configurations are invalid programs, and one comes twice)."""
    import tvm

    search = dense_search
    rng = np.random.default_rng(11)
    configs = [search.space.random_config(rng) for _ in range(16)]
    configs.append(configs[3])
    results = {}
    for threads in (1, 2):
        search.rng, search.threads, search.invalid = np.random.default_rng(4), threads, set()
        try:
            if threads == 1:
                cache: dict = {}
                schedules = [search._materialize(c, cache) for c in configs]
            else:
                schedules = search._materialize_all(configs, {})
            results[threads] = (schedules, set(search.invalid), search.rng.integers(2**31))
        finally:
            search.threads, search.invalid, search.rng = 1, set(), np.random.default_rng(0)
    (one, invalid_one, next_one), (many, invalid_many, next_many) = results[1], results[2]
    assert invalid_one == invalid_many and next_one == next_many
    assert any(s is None for s in one) and any(s is not None for s in one)
    for a, b in zip(one, many, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            tvm.ir.assert_structural_equal(a.mod, b.mod)


def _sample_configs(search, n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return list(dict.fromkeys(c for c in (search.space.sample_config(rng) for _ in range(n)) if c))


@pytest.mark.parametrize("spent", [0.0, 0.5, 1.0])
def test_exploit_share_measures_the_top_of_the_plan_late_in_the_budget(dense_search, spent):
    """With ``exploit_share=1`` the greedy part grows with the budget spent: none in the first
    round, half at mid-budget, the whole round at the end; the rest are distinct cluster picks."""
    import dataclasses

    search = dense_search
    configs = [c for c in _sample_configs(search, 200, 3) if search._materialize(c, {}) is not None][:48]
    plan_ids, plan_idx = search.space.as_arrays(configs)
    scores = np.linspace(1.0, 0.0, len(configs))  # the plan is ranked: first = best predicted
    old = search.config
    search.config = dataclasses.replace(old, exploit_share=1.0)
    search.max_trials, search.sent, search._schedules = 64, int(64 * spent), {}
    try:
        chosen = [c for c, _ in search._choose(plan_ids, plan_idx, scores, 8)]
    finally:
        search.config = old
    greedy = int(round(8 * spent))
    assert len(chosen) == 8 and len(set(chosen)) == 8
    assert chosen[:greedy] == configs[:greedy]


@pytest.mark.parametrize(
    ("floor", "counts", "barren", "expected"),
    [  # the dense task has 3 sketches; a sketch's share is floor * measured / 3
        (0.0, [9, 0, 0], set(), None),  # off
        (0.5, [9, 0, 3], set(), 1),  # 0 of its 2
        (0.5, [6, 1, 5], set(), 1),  # 1 of its 2
        (0.5, [6, 2, 4], set(), None),  # each has its 2
        (0.5, [9, 0, 3], {1}, None),  # barren sketches are left alone
        (1.0, [0, 1, 8], set(), 0),  # 0 and 1 of their 3: the furthest below
    ],
)
def test_sketch_floor_names_the_sketch_furthest_below_its_share(
    dense_search, floor, counts, barren, expected
):
    import dataclasses

    search = dense_search
    assert len(search.space.sketches) == 3
    by_sketch = {s: [c for c in _sample_configs(search, 400, 7) if c[0] == s] for s in range(3)}
    old = search.config, search.measured, getattr(search, "barren", set())
    search.config = dataclasses.replace(old[0], sketch_floor=floor)
    search.measured = {c: 1.0 for s, n in enumerate(counts) for c in by_sketch[s][:n]}
    search.barren = set(barren)
    try:
        assert search._lagging_sketch() == expected
    finally:
        search.config, search.measured, search.barren = old


def test_the_floor_measures_the_best_ranked_valid_config_of_the_lagging_sketch_first(dense_search):
    from types import SimpleNamespace

    search = dense_search
    configs = _sample_configs(search, 200, 11)
    ids, idx = search.space.as_arrays(configs)
    rewards = np.arange(len(configs), dtype=np.float64)  # the last visited ranks best
    exploration = SimpleNamespace(configs=idx, sketch_ids=ids, rewards=rewards)
    best_of_1 = next(c for c in reversed(configs) if c[0] == 1 and search._materialize(c, {}) is not None)
    search._schedules, search.barren = {}, set()
    [(picked, sch)] = search._best_of_sketch(exploration, 1)
    assert picked == best_of_1 and sch is not None
    plan_ids, plan_idx = search.space.as_arrays(configs[::-1])
    rest = search._choose(plan_ids, plan_idx, rewards[::-1].copy(), 3, taken={picked})
    assert len(rest) == 3 and picked not in {c for c, _ in rest}
    nothing = SimpleNamespace(configs=idx[ids == 0], sketch_ids=ids[ids == 0], rewards=rewards[ids == 0])
    assert search._best_of_sketch(nothing, 1) == [] and search.barren == {1}
    search.barren = set()


def test_a_used_up_space_ends_the_round_without_drawing_on(monkeypatch):
    """A reshape has one configuration: the first round proposes it, the next proposes nothing,
    and neither replays the sketch more than a few batches' worth (an earlier version drew
    ``max_materialize_tries`` batches of 120 samples each, minutes per such task)."""
    import tvm
    from tvm import te, topi
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.runner import RunnerResult

    from chameleon.search.chameleon_search import ChameleonConfig, ChameleonSearch
    from chameleon.space.space import KnobSpace

    a = te.placeholder((8, 4), name="A")
    mod = tvm.IRModule({"main": te.create_prim_func([a, topi.reshape(a, (32,))])})
    ctx = ms.TuneContext(
        mod=mod,
        target=tvm.target.Target({"kind": "llvm", "num-cores": 2}),
        space_generator="post-order-apply",
    )
    search = ChameleonSearch(config=ChameleonConfig(), blueprint=get_blueprint("x86-avx512-server"))
    search._initialize_with_tune_context(ctx)
    draws = []
    replay_drawn = KnobSpace._sample_drawn  # every sample's replay, however it is called
    monkeypatch.setattr(KnobSpace, "_sample_drawn", lambda self, d: draws.append(1) or replay_drawn(self, d))
    search.pre_tuning(64, 16, ctx.generate_design_space())
    assert search.space.size() == 1
    (candidate,) = search.generate_measure_candidates()
    search.notify_runner_results([candidate], [RunnerResult(run_secs=[1e-6], error_msg=None)])
    assert search.generate_measure_candidates() is None
    assert 0 < len(draws) <= 3 * 2 * 16 * ChameleonConfig().prior_oversample


def test_program_model_pretrains_on_every_workload_of_logs_of_the_same_target_kind(tmp_path: Path) -> None:
    """Other workloads' records train MetaSchedule's program model (one feature group each, at
    most ``per_workload`` records, the fastest always among them); a cuda log does not train an
    llvm model. On a matmul it has never seen, the model ranks first the tiling that was fastest
    on the others."""
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo
    from tvm.s_tir.meta_schedule.cost_model import XGBModel
    from tvm_records import TARGET, matmul, tiled_schedule, write_matmul_log

    from chameleon.search.transfer import pretrain_program_model

    def model():
        return XGBModel(num_warmup_samples=16, num_tuning_cores=1, adaptive_training=False)

    log = write_matmul_log(tmp_path / "llvm", {16: 10, 32: 10})
    cuda_log = write_matmul_log(tmp_path / "cuda", {16: 10}, kind="cuda")
    warm = model()
    assert pretrain_program_model(warm, (str(log), str(cuda_log)), TARGET) == 20
    assert warm.data_size == 20 and len(warm.data) == 2
    assert all(
        g.costs.min() == pytest.approx(n * 1e-6) for g, n in zip(warm.data.values(), (16, 32), strict=True)
    )
    capped = model()
    assert pretrain_program_model(capped, (str(log),), TARGET, per_workload=6) == 12
    assert all(
        g.costs.min() == pytest.approx(n * 1e-6) for g, n in zip(capped.data.values(), (16, 32), strict=True)
    )
    cold = model()
    assert pretrain_program_model(cold, (str(cuda_log),), TARGET) == 0 and cold.booster is None
    with pytest.raises(ValueError, match="adaptive_training"):
        pretrain_program_model(XGBModel(), (str(log),), TARGET)

    unseen = matmul(64)
    context = ms.TuneContext(mod=unseen, target=TARGET)
    candidates = [
        ms.MeasureCandidate(tiled_schedule(unseen, s), ArgInfo.from_prim_func(unseen["main"]))
        for s in range(5)
    ]
    assert int(np.argmax(warm.predict(context, candidates))) == 0
