"""Knob space over real MetaSchedule design spaces (conv2d NCHW 3x3 + relu, dense) on llvm."""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

import numpy as np
import pytest
import tvm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tvm import te, topi
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.schedule import Schedule, Trace

from chameleon.space import KnobSpace, Sketch, SpaceConfig, tile_options, to_measure_candidate
from chameleon.space.options import divisors

TARGET = tvm.target.Target({"kind": "llvm", "num-cores": 2})
TVM_SETTINGS = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def conv_relu_module() -> tvm.IRModule:
    data = te.placeholder((1, 16, 14, 14), name="data")
    weight = te.placeholder((32, 16, 3, 3), name="weight")
    conv = topi.nn.conv2d_nchw(data, weight, stride=1, padding=1, dilation=1)
    return tvm.IRModule({"main": te.create_prim_func([data, weight, topi.nn.relu(conv)])})


def dense_module() -> tvm.IRModule:
    a = te.placeholder((32, 64), name="A")
    b = te.placeholder((48, 64), name="B")
    return tvm.IRModule({"main": te.create_prim_func([a, b, topi.nn.dense(a, b)])})


@dataclass
class Task:
    ctx: ms.TuneContext
    spaces: list[Schedule]
    space: KnobSpace


def _task(mod: tvm.IRModule, name: str) -> Task:
    ctx = ms.TuneContext(
        mod=mod,
        target=TARGET,
        space_generator="post-order-apply",
        search_strategy="evolutionary",
        task_name=name,
    )
    spaces = list(ctx.generate_design_space())
    space = KnobSpace.from_design_spaces(
        mod=ctx.mod, design_spaces=spaces, postprocs=ctx.space_generator.postprocs
    )
    return Task(ctx=ctx, spaces=spaces, space=space)


@pytest.fixture(scope="module")
def conv() -> Task:
    return _task(conv_relu_module(), "conv2d_relu")


@pytest.fixture(scope="module")
def dense() -> Task:
    return _task(dense_module(), "dense")


@pytest.fixture(scope="module", params=["conv", "dense"])
def task(request: pytest.FixtureRequest) -> Task:
    return request.getfixturevalue(request.param)


def _applied(space: KnobSpace, config: tuple[int, tuple[int, ...]], sch: Schedule) -> list:
    """Decisions of the knobs of ``config``'s sketch as read from a materialized schedule."""
    sketch = space.sketches[config[0]]
    insts = sch.trace.insts
    decided = [sch.trace.get_decision(insts[k.inst_index]) for k in sketch.knobs]
    return [
        tuple(int(x) for x in d) if k.kind == "tile" else int(d)
        for k, d in zip(sketch.knobs, decided, strict=True)
    ]


# ----------------------------------------------------------------------------- tile options


def _brute_force(extent: int, parts: int, max_inner: int) -> set[tuple[int, ...]]:
    divs = divisors(extent)
    return {
        combo
        for combo in itertools.product(divs, repeat=parts)
        if math.prod(combo) == extent and (max_inner <= 0 or combo[-1] <= max_inner)
    }


@given(
    extent=st.integers(1, 240),
    parts=st.integers(1, 4),
    max_inner=st.sampled_from([-1, 1, 2, 4, 16, 64]),
    order=st.sampled_from(["lexicographic", "snake"]),
)
def test_tile_options_are_all_perfect_tilings(extent: int, parts: int, max_inner: int, order: str) -> None:
    opts = tile_options(extent, parts, max_inner, order)
    assert len(set(opts)) == len(opts)
    assert set(opts) == _brute_force(extent, parts, max_inner)
    for o in opts:
        assert len(o) == parts and math.prod(o) == extent
        assert max_inner <= 0 or o[-1] <= max_inner
    if order == "lexicographic":
        assert list(opts) == sorted(opts)


@given(extent=st.integers(2, 5000), parts=st.integers(2, 5))
def test_snake_steps_move_one_factor_between_two_levels(extent: int, parts: int) -> None:
    opts = tile_options(extent, parts, -1, "snake")
    largest_prime = max(p for p in divisors(extent) if p > 1 and all(p % q for q in range(2, p)))
    assert [o[0] for o in opts] == sorted(o[0] for o in opts)  # still ordered by the outer factor
    for a, b in itertools.pairwise(opts):
        changed = [i for i in range(parts) if a[i] != b[i]]
        assert len(changed) == 2
        assert max(max(x / y, y / x) for x, y in zip(a, b, strict=True)) <= largest_prime


# ----------------------------------------------------------------------------- structure


def test_conv_knobs(conv: Task) -> None:
    space = conv.space
    assert len(space.sketches) == len(conv.spaces) == 3
    for sketch in space.sketches:
        kinds = [k.kind for k in sketch.knobs]
        assert kinds.count("tile") == 7 and kinds.count("categorical") == 1
        assert kinds.count("compute_location") == 1
        loc = next(k for k in sketch.knobs if k.kind == "compute_location")
        assert list(loc.options) == sorted(set(loc.options)) and -1 in loc.options
        assert len(loc.options) > 3
        cat = next(k for k in sketch.knobs if k.kind == "categorical")
        assert cat.name == "unroll_explicit" and cat.candidates == (0, 16, 64, 512)
    assert space.num_knobs_max == 9


def test_tile_knobs_match_their_instruction(task: Task) -> None:
    for sketch in task.space.sketches:
        for knob in (k for k in sketch.knobs if k.kind == "tile"):
            inst = sketch.trace.insts[knob.inst_index]
            assert inst.kind.name == "SamplePerfectTile"
            parts, max_inner = int(inst.attrs[0]), int(inst.attrs[1])
            for option in knob.options:
                assert len(option) == parts and math.prod(option) == knob.extent
                assert option[-1] <= max_inner


def test_sizes_and_counts(task: Task) -> None:
    space = task.space
    assert space.size() == sum(math.prod(space.option_counts(s).tolist()) for s in range(len(space.sketches)))
    assert isinstance(space.size(), int) and space.size() > 1000
    for s, sketch in enumerate(space.sketches):
        assert space.option_counts(s).tolist() == [k.num_options for k in sketch.knobs]


def test_lexicographic_order_is_available(dense: Task) -> None:
    space = KnobSpace.from_design_spaces(
        mod=dense.ctx.mod,
        design_spaces=dense.spaces[:1],
        postprocs=dense.ctx.space_generator.postprocs,
        config=SpaceConfig(tile_order="lexicographic"),
    )
    for knob in (k for k in space.sketches[0].knobs if k.kind == "tile"):
        assert list(knob.options) == sorted(knob.options)
    assert space.materialize(space.default_configs()[0]) is not None


# ----------------------------------------------------------------------------- configurations


@TVM_SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 20))
def test_steps_stay_in_range(task: Task, seed: int, n: int) -> None:
    space = task.space
    rng = np.random.default_rng(seed)
    config = space.random_config(rng)
    for _ in range(n):
        actions = rng.integers(-1, 2, size=space.num_knobs_max)
        new = space.step(config, actions)
        space.validate(new)
        counts = space.option_counts(config[0])
        expected = np.clip(np.array(config[1]) + actions[: len(counts)], 0, counts - 1)
        assert new[0] == config[0] and list(new[1]) == expected.tolist()
        config = new


def test_validate_and_step_reject_bad_input(dense: Task) -> None:
    space = dense.space
    good = space.default_configs()[0]
    with pytest.raises(ValueError):
        space.validate((len(space.sketches), good[1]))
    with pytest.raises(ValueError):
        space.validate((0, good[1][:-1]))
    with pytest.raises(ValueError):
        space.validate((0, (*good[1][:-1], int(space.option_counts(0)[-1]))))
    with pytest.raises(ValueError):
        space.step(good, [0])


def test_defaults_materialize_to_the_design_spaces(task: Task) -> None:
    space = task.space
    for s, config in enumerate(space.default_configs()):
        sch = space.materialize(config)
        assert sch is not None
        assert space.decode(sch.trace) == config
        assert space.decode(task.spaces[s].trace) == config


@TVM_SETTINGS
@given(seed=st.integers(0, 2**32 - 1))
def test_metaschedule_samples_are_configurations_of_the_space(task: Task, seed: int) -> None:
    space = task.space
    config = space.sample_config(np.random.default_rng(seed))
    assert config is not None  # MetaSchedule's own samples always decode
    space.validate(config)
    assert space.sample_config(np.random.default_rng(seed)) == config  # same seed, same draw
    sch = space.materialize(config)
    if sch is not None:
        assert space.decode(sch.trace) == config


def test_metaschedule_samples_are_valid_programs_more_often_than_uniform_draws(conv: Task) -> None:
    """MetaSchedule's sampler only picks compute locations valid under the tiles it sampled; a
    uniform draw over the options often does not (TVM would clamp it, so it counts as invalid)."""
    space, rng = conv.space, np.random.default_rng(0)
    sampled = [c for c in (space.sample_config(rng) for _ in range(40)) if c is not None]
    uniform = [space.random_config(rng) for _ in range(40)]

    def valid_share(configs) -> float:
        return float(np.mean([space.materialize(c) is not None for c in configs]))

    assert valid_share(sampled) >= 0.9
    assert valid_share(sampled) > valid_share(uniform)


@TVM_SETTINGS
@given(seed=st.integers(0, 2**32 - 1))
def test_random_configs_materialize_exactly(task: Task, seed: int) -> None:
    space = task.space
    config = space.random_config(np.random.default_rng(seed))
    sch = space.materialize(config)
    if sch is None:
        return
    sketch = space.sketches[config[0]]
    assert _applied(space, config, sch) == [
        k.options[i] for k, i in zip(sketch.knobs, config[1], strict=True)
    ]
    assert space.decode(sch.trace) == config


def test_a_good_fraction_of_random_configs_is_valid(conv: Task, dense: Task) -> None:
    rng = np.random.default_rng(7)
    for task, floor in ((conv, 0.2), (dense, 0.9)):
        configs = [task.space.random_config(rng) for _ in range(30)]
        valid = sum(task.space.materialize(c) is not None for c in configs)
        assert valid >= floor * len(configs)


def test_clamped_compute_location_is_invalid(conv: Task) -> None:
    """All tiles innermost: every outer loop is a unit loop, so TVM would clamp a location at one
    of them to root; materialize must report that instead of building another program."""
    space = conv.space
    sketch = space.sketches[0]
    loc = next(j for j, k in enumerate(sketch.knobs) if k.kind == "compute_location")
    innermost = [
        k.options.index(tuple([1] * (len(k.options[0]) - 1) + [k.extent])) if k.kind == "tile" else 0
        for k in sketch.knobs
    ]
    options = sketch.knobs[loc].options
    outer = [i for i, v in enumerate(options) if 0 <= v <= 3]
    assert outer, options
    root = list(innermost)
    root[loc] = options.index(-1)
    assert space.materialize((0, tuple(root))) is not None
    clamped = list(innermost)
    clamped[loc] = outer[0]
    assert space.materialize((0, tuple(clamped))) is None


def test_resampled_design_spaces_decode(task: Task) -> None:
    """Evolutionary search's initial population: design-space traces with all decisions
    re-sampled. They decode, and the decoded config rebuilds the same decisions."""
    space = task.space
    for k in range(24):
        design = task.spaces[k % len(task.spaces)]
        sch = Schedule(task.ctx.mod, seed=k + 1)
        Trace(design.trace.insts, {}).apply_to_schedule(sch, remove_postproc=True)
        config = space.decode(sch.trace)
        assert config is not None
        rebuilt = space.materialize(config)
        if rebuilt is not None:
            assert space.decode(rebuilt.trace) == config


def test_mutated_and_serialized_traces_decode(conv: Task) -> None:
    space, ctx = conv.space, conv.ctx
    rng = np.random.default_rng(3)
    base = [s for s in (space.materialize(space.random_config(rng)) for _ in range(20)) if s is not None][:4]
    assert base
    for mutator in (
        ms.mutator.MutateTileSize(),
        ms.mutator.MutateComputeLocation(),
        ms.mutator.MutateUnroll(),
    ):
        mutator._initialize_with_tune_context(ctx)
        for sch in base:
            mutated = mutator.apply(sch.trace)
            assert mutated is None or space.decode(mutated) is not None
    # MutateParallel rewrites an annotation value, which is not a knob: such traces do not decode.
    parallel = ms.mutator.MutateParallel(max_jobs_per_core=16)
    parallel._initialize_with_tune_context(ctx)
    mutated = parallel.apply(base[0].trace)
    assert mutated is None or space.decode(mutated) is None
    # A database record stores the trace as JSON.
    replayed = Schedule(ctx.mod)
    Trace.apply_json_to_schedule(base[0].trace.as_json(), replayed)
    assert space.decode(replayed.trace) == space.decode(base[0].trace) is not None


def test_database_lines_decode_without_replay(task: Task, tmp_path) -> None:
    """``decode_json`` reads a record as TVM's JSONDatabase writes it (postprocessed, booleans as
    0/1) to the same configuration ``decode`` finds by replaying it."""
    import json

    from tvm.s_tir.meta_schedule.arg_info import ArgInfo

    from chameleon.space.traces import plain_json

    space, rng = task.space, np.random.default_rng(11)
    db = ms.database.JSONDatabase(work_dir=str(tmp_path))
    workload = db.commit_workload(task.ctx.mod)
    configs = []
    for config in (space.random_config(rng) for _ in range(12)):
        sch = space.materialize(config)
        if sch is not None:
            configs.append(config)
            db.commit_tuning_record(
                ms.database.TuningRecord(
                    sch.trace, workload, [1e-3], TARGET, ArgInfo.from_prim_func(task.ctx.mod["main"])
                )
            )
    assert configs
    lines = (tmp_path / "database_tuning_record.json").read_text().splitlines()
    assert [space.decode_json(json.loads(line)[1][0]) for line in lines] == configs
    read_back = db.get_top_k(workload, len(configs))  # what resuming from a log decodes
    assert sorted(space.decode_trace_fast(r.trace) for r in read_back) == sorted(configs)
    sch = space.materialize(configs[0])
    assert space.decode_json(plain_json(sch.trace.as_json())) == configs[0]
    parallel = ms.mutator.MutateParallel(max_jobs_per_core=16)
    parallel._initialize_with_tune_context(task.ctx)
    mutated = parallel.apply(sch.trace)
    if mutated is not None:
        assert space.decode_json(plain_json(mutated.as_json())) == space.decode(mutated)
        assert space.decode_trace_fast(mutated) == space.decode(mutated)


def test_foreign_traces_do_not_decode(conv: Task, dense: Task) -> None:
    assert dense.space.decode(conv.spaces[0].trace) is None
    assert conv.space.decode(dense.spaces[0].trace) is None
    assert conv.space.sketches[1].decode(conv.spaces[0].trace) is None
    from chameleon.space.traces import plain_json

    assert dense.space.decode_json(plain_json(conv.spaces[0].trace.as_json())) is None


def test_measure_candidate(dense: Task) -> None:
    sch = dense.space.materialize(dense.space.default_configs()[0])
    assert sch is not None
    candidate = to_measure_candidate(sch)
    assert len(candidate.args_info) == 3


# ----------------------------------------------------------------------------- features


def test_features_are_fixed_width_and_deterministic(conv: Task, dense: Task) -> None:
    for space in (conv.space, dense.space):
        rng = np.random.default_rng(11)
        configs = [space.random_config(rng) for _ in range(200)]
        feats = space.features(configs)
        assert feats.dtype == np.float32 and feats.shape == (200, space.feature_width)
        assert np.array_equal(feats, space.features(configs))
        assert np.array_equal(feats[5:9], space.features(configs[5:9]))
        assert np.all(feats[:, : len(space.sketches)].sum(axis=1) == 1)
        assert np.isfinite(feats).all()
        assert len({row.tobytes() for row in feats}) == len(set(configs))


def test_features_of_a_tile_are_log2_factors(dense: Task) -> None:
    space = dense.space
    config = space.default_configs()[0]
    row = space.features([config])[0]
    sketch = space.sketches[0]
    base = len(space.sketches)
    for j, knob in enumerate(sketch.knobs):
        slot = row[base + j * space.knob_width : base + (j + 1) * space.knob_width]
        assert slot[0] == pytest.approx(config[1][j] / max(knob.num_options - 1, 1))
        if knob.kind == "tile":
            assert np.allclose(np.exp2(slot[1 : 1 + len(knob.options[0])]), knob.options[config[1][j]])


def test_features_are_fast(conv: Task) -> None:
    space = conv.space
    rng = np.random.default_rng(0)
    configs = [space.random_config(rng) for _ in range(50_000)]
    start = time.perf_counter()
    feats = space.features(configs)
    elapsed = time.perf_counter() - start
    assert feats.shape == (50_000, space.feature_width)
    assert elapsed < 2.0  # about 0.05-0.1 s here; generous for a shared 2-core machine


def test_normalized_indices(conv: Task, dense: Task) -> None:
    for space in (conv.space, dense.space):
        rng = np.random.default_rng(5)
        configs = [space.random_config(rng) for _ in range(100)]
        values, mask = space.normalized_indices(configs)
        assert values.shape == mask.shape == (100, space.num_knobs_max)
        assert values.dtype == np.float32 and mask.dtype == bool
        assert np.all((values >= 0) & (values <= 1)) and np.all(values[~mask] == 0)
        for row, (s, idx) in enumerate(configs):
            counts = space.option_counts(s)
            assert mask[row].sum() == len(counts)
            expected = np.array(idx) / np.maximum(counts - 1, 1)
            assert np.allclose(values[row, : len(idx)], expected)


def test_sketches_with_fewer_knobs_are_padded(dense: Task) -> None:
    full = dense.space.sketches[0]
    kept = full.knobs[:2]
    kept_at = {k.inst_index for k in kept}
    decisions = full.decisions(full.default_config())
    small = Sketch(
        trace=full.trace,
        knobs=kept,
        fixed={i: d for i, d in decisions.items() if i not in kept_at},
        defaults=full.default_config()[:2],
    )
    space = KnobSpace(
        mod=dense.ctx.mod, sketches=[full, small], postprocs=dense.ctx.space_generator.postprocs
    )
    assert space.num_knobs_max == full.num_knobs and space.size() == full.size() + small.size()
    rng = np.random.default_rng(2)
    configs = [(1, tuple(int(rng.integers(c)) for c in space.option_counts(1))) for _ in range(20)]
    feats = space.features(configs)
    assert np.all(feats[:, 1] == 1) and np.all(feats[:, 0] == 0)
    assert np.all(feats[:, 2 + 2 * space.knob_width :] == 0)
    assert np.any(feats[:, 2 : 2 + 2 * space.knob_width] != 0)
    values, mask = space.normalized_indices(configs)
    assert mask[:, :2].all() and not mask[:, 2:].any() and np.all(values[:, 2:] == 0)
    sch = space.materialize(configs[0])
    assert sch is not None
    assert _applied(space, configs[0], sch) == [
        k.options[i] for k, i in zip(kept, configs[0][1], strict=True)
    ]
