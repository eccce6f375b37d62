"""Validity rules on scheduled TIR: Jetson Orin (CUDA schedules, no codegen) and CPUs."""

from __future__ import annotations

import pytest
import tvm
from tvm import te
from tvm.s_tir.schedule import Schedule

from chameleon.hardware.blueprints import get_blueprint
from chameleon.hardware.target_blueprint import blueprint_for_target
from chameleon.hardware.validity import ValidityConfig, Violation, check, is_rejected


def _matmul(n: int = 1024):
    a = te.placeholder((n, n), name="A")
    b = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    c = te.compute((n, n), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    return tvm.IRModule({"main": te.create_prim_func([a, b, c])})


def _cuda_matmul(tx: int, ty: int = 1, ktile: int = 32, local: tuple[int, int] | None = None):
    """Hand-made CUDA schedule: a (ty x tx) thread block, each thread computing one element or a
    ``local`` tile kept in registers; a shared-memory cache of A's (rows x ktile) panel."""
    sch = Schedule(_matmul())
    blk = sch.get_sblock("C")
    i, j, k = sch.get_loops(blk)
    li, lj = local or (1, 1)
    io, ii, iii = sch.split(i, [None, ty, li])
    jo, ji, jii = sch.split(j, [None, tx, lj])
    ko, ki = sch.split(k, [None, ktile])
    sch.reorder(io, jo, ii, ji, ko, ki, iii, jii)
    sch.bind(io, "blockIdx.y")
    sch.bind(jo, "blockIdx.x")
    sch.bind(ii, "threadIdx.y")
    sch.bind(ji, "threadIdx.x")
    shared = sch.cache_read(blk, 0, "shared")
    sch.compute_at(shared, ko)
    if local:
        acc = sch.cache_write(blk, 0, "local")
        sch.reverse_compute_at(acc, ji)
    return sch.mod


@pytest.fixture(scope="module")
def orin():
    bp = blueprint_for_target(tvm.target.Target("nvidia/jetson-orin-nano").export())
    assert bp.name == "jetson-orin-nano"
    return bp


def _rules(violations: list[Violation]) -> dict[str, bool]:
    return {v.rule: v.hard for v in violations}


def test_too_many_threads_rejected(orin):
    v = check(_cuda_matmul(2048), orin)
    assert _rules(v) == {"threads_per_block": True}
    assert "2048" in v[0].detail and is_rejected(v, strict=False)


def test_good_block_accepted(orin):
    v = check(_cuda_matmul(128), orin)
    assert v == [] and not is_rejected(v, strict=True)
    assert check(_cuda_matmul(32, 8, 32), orin) == []


def test_shared_tile_over_the_limit_rejected(orin):
    # 32 rows x 1024 of fp32 in shared memory: 128 KiB > 48 KiB of static shared memory.
    v = check(_cuda_matmul(32, 32, 1024), orin)
    assert _rules(v) == {"shared_memory": True}
    assert "131072 B" in v[0].detail
    # 8 rows x 1024: 32 KiB fits.
    assert check(_cuda_matmul(32, 8, 1024), orin) == []


def test_partial_warp_is_soft(orin):
    v = check(_cuda_matmul(100), orin)
    assert _rules(v) == {"warp_multiple": False}
    assert not is_rejected(v, strict=False) and is_rejected(v, strict=True)


def test_register_budget_uses_the_device_limits(orin):
    # 1024 threads, each accumulating a 4x8 fp32 tile: ~32 + 16 registers per thread. Orin has
    # 64K registers per block (64 per thread at 1024 threads); the Jetson Nano has 32K (32).
    mod = _cuda_matmul(32, 32, 32, local=(4, 8))
    assert check(mod, orin) == []
    v = check(mod, get_blueprint("jetson-nano"))
    assert _rules(v) == {"register_pressure": False}
    assert "~48 registers" in v[0].detail
    # A 16x16 tile per thread (256 accumulators) exceeds the 255-register ceiling anywhere.
    assert _rules(check(_cuda_matmul(8, 8, 32, local=(16, 16)), orin)) == {"register_pressure": False}


def test_unbound_loops_rejected_on_gpu(orin):
    assert _rules(check(_matmul(64), orin)) == {"unbound_loops": True}


def _vectorised_matmul(lanes: int, dtype: str = "float32", n: int = 256):
    """Matmul with its innermost spatial loop (j) vectorised by ``lanes``, reduction outside it."""
    a = te.placeholder((n, n), name="A", dtype=dtype)
    b = te.placeholder((n, n), name="B", dtype=dtype)
    k = te.reduce_axis((0, n), name="k")
    c = te.compute((n, n), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    sch = Schedule(tvm.IRModule({"main": te.create_prim_func([a, b, c])}))
    i, j, kk = sch.get_loops(sch.get_sblock("C"))
    jo, ji = sch.split(j, [None, lanes])
    sch.reorder(i, jo, kk, ji)
    sch.parallel(i)
    sch.vectorize(ji)
    return sch.mod


def _vectorised_add(lanes: int):
    a = te.placeholder((256, 1024), name="A")
    b = te.compute((256, 1024), lambda i, j: a[i, j] + a[i, j], name="B")
    sch = Schedule(tvm.IRModule({"main": te.create_prim_func([a, b])}))
    i, j = sch.get_loops(sch.get_sblock("B"))
    _, ji = sch.split(j, [None, lanes])
    sch.parallel(i)
    sch.vectorize(ji)
    return sch.mod


def test_cpu_vector_width():
    avx512 = get_blueprint("x86-avx512-server")
    assert check(_vectorised_matmul(16), avx512) == []  # 16 x 32 = 512 bits: one full register
    assert check(_vectorised_matmul(64), avx512) == []  # 4 full registers of accumulators
    assert check(_vectorised_matmul(24), avx512) == []  # 2 registers, 75% of their lanes
    v = check(_vectorised_matmul(512, n=1024), avx512)  # 32 registers
    assert _rules(v) == {"vector_width": False} and "512 lanes" in v[0].detail
    assert check(_vectorised_matmul(7), avx512) == []  # 44%: a 7-wide output row is often fastest
    v = check(_vectorised_matmul(2), avx512)  # 64 of 512 bits
    assert _rules(v) == {"vector_width": False} and "12% of their lanes" in v[0].detail
    assert check(_vectorised_matmul(64, "int8"), avx512) == []
    assert check(_vectorised_matmul(8), get_blueprint("x86-avx2-desktop")) == []  # one AVX2 register


def test_cpu_vector_rule_leaves_elementwise_loops_alone():
    # Padding, copies and epilogues are memory-bound: their vector width is LLVM's business.
    avx512 = get_blueprint("x86-avx512-server")
    assert check(_vectorised_add(4), avx512) == []
    assert check(_vectorised_add(1024), avx512) == []


def test_host_cpu_vector_width():
    host = get_blueprint("host")
    assert _rules(check(_vectorised_matmul(1024, n=1024), host))["vector_width"] is False  # >= 32 registers
    if host.fields["simd_width_bits"] >= 128:
        assert check(_vectorised_matmul(16), host) == []


def test_cpu_working_set():
    server = get_blueprint("x86-avx512-server")
    # Untiled 1024^3 matmul: the innermost tile covering i, j and k is the whole 12 MiB problem.
    v = check(_matmul(1024), server)
    assert _rules(v) == {"cache_working_set": False}
    assert "12288 KiB" in v[0].detail
    sch = Schedule(_matmul(1024))
    blk = sch.get_sblock("C")
    i, j, k = sch.get_loops(blk)
    i0, i1 = sch.split(i, [None, 32])
    j0, j1 = sch.split(j, [None, 32])
    k0, k1 = sch.split(k, [None, 64])
    sch.reorder(i0, j0, k0, i1, k1, j1)
    sch.parallel(i0)
    sch.vectorize(j1)
    assert check(sch.mod, server) == []  # a 32x64 + 64x32 + 32x32 fp32 tile: 20 KiB
    tight = ValidityConfig(working_set_l2_factor=0.01)
    assert _rules(check(sch.mod, server, config=tight)) == {"cache_working_set": False}


def test_is_rejected():
    soft = Violation(rule="warp_multiple", hard=False, detail="x")
    hard = Violation(rule="threads_per_block", hard=True, detail="y")
    assert not is_rejected([], strict=True)
    assert not is_rejected([soft], strict=False) and is_rejected([soft], strict=True)
    assert is_rejected([soft, hard], strict=False)
    lanes = Violation(rule="vector_width", hard=False, detail="2 lanes")  # earned its rejection
    assert is_rejected([lanes], strict=False)


@pytest.mark.slow
def test_agrees_with_verify_gpu_code_on_metaschedule_samples(orin):
    """Sample MetaSchedule's CUDA design space: whatever its postprocs (VerifyGPUCode) accept must
    not break our hard rules, since the Orin Nano blueprint's limits equal its tag's."""
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.schedule import Trace

    mod = _matmul(256)
    ctx = ms.TuneContext(
        mod=mod,
        target=tvm.target.Target("nvidia/jetson-orin-nano"),
        space_generator="post-order-apply",
        search_strategy="replay-trace",
        task_name="mm",
        num_threads=1,
    )
    spaces = ctx.generate_design_space()
    accepted = 0
    for seed in range(1, 61):
        trace = spaces[seed % len(spaces)].trace.simplified(remove_postproc=True)
        sch = Schedule(mod, seed=seed)
        Trace(trace.insts, {}).apply_to_schedule(sch, remove_postproc=True)
        if all(p.apply(sch) for p in ctx.space_generator.postprocs):
            accepted += 1
            assert not any(v.hard for v in check(sch.mod, orin))
    assert accepted > 0


def test_gpu_check_is_skipped_only_where_verify_gpu_code_enforces_the_device_limits(orin):
    """The test above is why: with target limits within the blueprint's, VerifyGPUCode already
    rejects whatever breaks a hard rule. A target that claims more than the device keeps the check."""
    from tvm.s_tir import meta_schedule as ms

    from chameleon.hardware.validity import enforced_by_target

    cuda = ms.postproc.Postproc.create("cuda")
    orin_tag = tvm.target.Target("nvidia/jetson-orin-nano")
    assert enforced_by_target(orin_tag, cuda, orin)
    assert not enforced_by_target(orin_tag, [p for p in cuda if type(p).__name__ != "VerifyGPUCode"], orin)
    generous = tvm.target.Target(
        {
            "kind": "cuda",
            "arch": "sm_87",
            "max_threads_per_block": 1024,
            "max_shared_memory_per_block": 101376,
        }
    )
    assert not enforced_by_target(generous, cuda, orin)
    assert not enforced_by_target(
        tvm.target.Target("llvm"), ms.postproc.Postproc.create("llvm"), get_blueprint("host")
    )
