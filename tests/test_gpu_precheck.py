"""The GPU precheck: rejects before the postprocessors only what VerifyGPUCode rejects after them."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def gpu_space():
    """The knob space of a 128x256x512 dense for CUDA (no GPU needed: this is the search's CPU side)."""
    import tvm
    from tvm import te, topi
    from tvm.s_tir import meta_schedule as ms

    from chameleon.space.space import KnobSpace

    a, b = te.placeholder((128, 512), name="A"), te.placeholder((256, 512), name="B")
    mod = tvm.IRModule({"main": te.create_prim_func([a, b, topi.nn.dense(a, b)])})
    target = tvm.target.Target("nvidia/nvidia-h100")
    ctx = ms.TuneContext(mod=mod, target=target, space_generator="post-order-apply", num_threads=1).clone()
    postprocs = list(ctx.space_generator.postprocs)
    space = KnobSpace.from_design_spaces(
        mod=ctx.mod, design_spaces=ctx.generate_design_space(), postprocs=postprocs
    )
    return target, postprocs, space


def test_applies_only_where_verify_gpu_code_decides(gpu_space):
    import tvm

    from chameleon.tvm_glue.gpu_precheck import GpuPrecheck

    target, postprocs, _ = gpu_space
    assert GpuPrecheck.applies_to(target, postprocs)
    no_verify = [p for p in postprocs if type(p).__name__ != "VerifyGPUCode"]
    assert not GpuPrecheck.applies_to(target, no_verify)
    assert not GpuPrecheck.applies_to(tvm.target.Target("llvm"), postprocs)


def test_rejects_only_what_the_postprocessors_reject(gpu_space):
    """On 60 sampled configurations: every precheck rejection is a postprocessor rejection, and the
    precheck catches most of them (they are the bulk of a GPU space's samples)."""
    from chameleon.space.traces import replay
    from chameleon.tvm_glue.gpu_precheck import GpuPrecheck

    target, postprocs, space = gpu_space
    precheck = GpuPrecheck(target)
    rng = np.random.default_rng(0)
    caught = invalid = 0
    for _ in range(60):
        config = space.sample_config(rng)
        if config is None:
            continue
        s, idx = config
        sch = replay(space.mod, space.sketches[s].trace.insts, space.sketches[s].decisions(idx), seed=1)
        reason = precheck.rejects(sch)
        sch.enter_postproc()
        valid = all(p.apply(sch) for p in postprocs)
        assert not (reason and valid), f"precheck rejected a valid program: {reason}"
        invalid += not valid
        caught += reason is not None
    assert invalid > 0 and caught >= invalid // 2


def _bound_block(threads: int):
    from tvm.script import tirx as T

    @T.prim_func(s_tir=True)
    def func(a: T.Buffer((1024,), "float32")):
        for i in T.thread_binding(threads, thread="threadIdx.x"):
            with T.sblock("b"):
                v = T.axis.spatial(threads, i)
                T.sblock_attr(
                    {
                        "meta_schedule.thread_extent_low_inclusive": 32,
                        "meta_schedule.thread_extent_high_inclusive": 1024,
                    }
                )
                a[v] = T.float32(0)

    return func


@pytest.mark.parametrize("threads, rejected", [(16, True), (32, False), (1024, False)])
def test_threads_per_block_must_lie_in_the_annotated_range(threads, rejected):
    from chameleon.tvm_glue.gpu_precheck import thread_extent_violation

    reason = thread_extent_violation(_bound_block(threads).body, 32)
    assert (reason is not None) == rejected
    if rejected:
        assert f"{threads} threads per block outside [32, 1024]" in reason


def test_sampled_schedules_are_materialised_without_a_second_replay(gpu_space, monkeypatch):
    """``materialize(replayed=...)`` post-processes the sampled schedule; the result is the same
    program as a fresh replay of the configuration."""
    import tvm_ffi

    from chameleon.space import space as space_module

    _, _, space = gpu_space
    rng = np.random.default_rng(3)
    for _ in range(200):
        drawn = space.sample(rng)
        fresh = None if drawn is None else space.materialize(drawn[0], seed=1)
        if fresh is not None:
            break
    else:
        pytest.fail("no valid configuration among 200 samples")
    config, sch = drawn
    calls = []
    replay = space_module.replay
    monkeypatch.setattr(space_module, "replay", lambda *a, **k: calls.append(1) or replay(*a, **k))
    reused = space.materialize(config, replayed=sch)
    assert not calls and reused is not None
    assert tvm_ffi.structural_equal(reused.mod, fresh.mod)
