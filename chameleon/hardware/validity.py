"""Blueprint validity rules: reject what the device cannot run, or cannot run well, before measuring.

``check(mod, blueprint)`` reads a *scheduled* TIR module (``sch.mod`` of a MetaSchedule schedule
after its trace and postprocessors) and returns ``Violation`` s. Hard ones mean the kernel cannot
launch or compile on that device; soft ones mean it will run badly. ``is_rejected`` decides: hard
ones always reject, soft ones only when their rule has earned it on recorded data
(:data:`REJECTING_SOFT_RULES`) or with ``strict``.

GPU rules (per kernel, i.e. per outermost ``blockIdx``/``threadIdx`` scope). The module is first
lowered with the same phase-1/phase-2 passes MetaSchedule's ``VerifyGPUCode`` postproc runs (so
buffers have their compacted, pipelined, storage-rewritten sizes); if lowering fails, only the
thread rules run, on the unlowered loops.

- ``threads_per_block`` (hard): product of the ``threadIdx.x/y/z`` extents over the blueprint's
  ``max_threads_per_block``.
- ``shared_memory`` (hard): static ``shared`` allocations over ``max_shared_memory_per_block_kb``
  (the 48 KiB static limit), or static + ``shared.dyn`` over the opt-in maximum.
- ``unbound_loops`` (hard): a store outside every thread-bound scope (host code in a GPU function).
- ``register_pressure`` (soft): estimated registers per thread, ceil(``local`` bytes / 4) plus
  ``ValidityConfig.register_overhead`` for addresses, indices and temporaries, over the budget
  min(``max_registers_per_thread``, ``registers_per_block`` / threads rounded up to a warp). It is
  a lower bound on what nvcc allocates, and soft because TVM emits ``__launch_bounds__``: nvcc
  then spills to local memory rather than fail the launch. Tensor-core fragments are not counted.
- ``warp_multiple`` (soft): threads per block not a multiple of ``warp_size`` (idle lanes).

What this adds to ``VerifyGPUCode``: that postproc checks the *target's* attributes
(``max_threads_per_block``, ``max_shared_memory_per_block``, 8 vthreads, 16-byte vectors and the
``meta_schedule.thread_extent_*`` annotations) and nothing about registers or warps. Targets given
as ``{"kind": "cuda", "arch": ...}`` carry generic defaults, and tags do not know every board (the
Jetson Nano and TX2 have 32K registers per block, half the desktop figure); the blueprint holds
the device's own limits, and the soft rules catch configurations that are legal but slow.

CPU rules, on the unlowered loops:

- ``vector_width`` (soft), for vectorised loops around a reduction block (the accumulators of a
  conv or matmul; elementwise, padding and copy loops are left alone: they are memory-bound and
  LLVM handles their tails): a loop whose vector registers are less than ``min_lane_share`` full
  (2 fp32 lanes in one 16-lane register; the measure the CPU prior scores), or wider than
  ``max_vector_registers`` SIMD registers (spills). An earlier version flagged every width that
  was not a multiple or divisor of the SIMD width, up to 4 registers, on every loop: on the
  ResNet-18 dataset it flagged 94-100% of the fastest decile (experiments/blueprint_rules.py).
- ``cache_working_set`` (soft), for blocks with a reduction axis (where tiling buys reuse): the
  innermost tile is the smallest loop subtree below the parallel loops in which every non-trivial
  block axis varies; the bytes it touches (cache-line granular in the last dimension) over
  ``working_set_l2_factor`` x the per-core L2.

TIR is walked with ``tvm_ffi.structural_visit`` / ``structural_walk``: TVM 0.27 has no
``tvm.tirx.stmt_functor`` (``post_order_visit`` is gone), and buffers are ``Var`` s typed
``BufferType`` (``region.source`` of a block's reads/writes is the buffer).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from chameleon.hardware.blueprints import Blueprint

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Violation:
    """One broken rule."""

    rule: str
    """Rule name, e.g. ``threads_per_block``."""
    hard: bool
    """True: the device cannot run it; False: it runs, badly."""
    detail: str
    """One line with the numbers."""


@dataclass(frozen=True, kw_only=True)
class ValidityConfig:
    """Thresholds of the soft rules."""

    register_overhead: int = 16
    """Registers per thread charged on top of local buffers (addresses, indices, temporaries)."""
    min_lane_share: float = 0.25
    """A vectorised reduction loop using less than this share of its registers' lanes is flagged
    (on AVX-512 fp32: 1-3 lanes of 16; on the ResNet-18 dataset 7 of 16 lanes is often fastest, as
    the loop matches a 7-wide output)."""
    max_vector_registers: int = 16
    """A vectorised reduction loop wider than this many SIMD registers is flagged (AVX2 has 16
    vector registers, AVX-512 32; the accumulators need room for the operands too)."""
    working_set_l2_factor: float = 4.0
    """An innermost tile touching more than this many times the per-core L2 is flagged."""
    cache_line_bytes: int = 64
    """Granularity of the last dimension in working-set estimates."""


REJECTING_SOFT_RULES = frozenset({"vector_width"})
"""Soft rules that reject even without ``strict``: checked against recorded latencies
(``python -m experiments.blueprint_rules``), the CPU ``vector_width`` rule flags 15-22% of the
ResNet-18 dataset's configurations, 0-2% of its fastest decile and never the best one, at
1.1-1.7x the median latency of the rest. The other soft rules flag fast configurations too."""


def is_rejected(violations: list[Violation], *, strict: bool) -> bool:
    """Reject on any hard violation or one of :data:`REJECTING_SOFT_RULES`; with ``strict``, on
    every soft one too."""
    return any(v.hard or strict or v.rule in REJECTING_SOFT_RULES for v in violations)


def enforced_by_target(target: Any, postprocs: list, blueprint: Blueprint) -> bool:
    """True when MetaSchedule's ``VerifyGPUCode`` postproc already rejects all that the non-strict
    GPU check can: it is among ``postprocs`` and the target's thread and static shared-memory
    limits are within the blueprint's. The check then only repeats a ~40 ms lowering (under cProfile) per
    configuration (on the H200 it rejected nothing and doubled the search's time per round).
    A target that claims more than the device has (a generic ``{"kind": "cuda", "arch": ...}``
    for a Jetson) keeps the check. ``unbound_loops`` cannot fire after MetaSchedule's CUDA
    postprocessors: ``RewriteUnboundBlock`` binds every block to threads."""
    from tvm.s_tir.meta_schedule.postproc import VerifyGPUCode

    if blueprint.kind != "gpu" or not any(isinstance(p, VerifyGPUCode) for p in postprocs):
        return False
    attrs = target.attrs
    try:
        threads = int(attrs["max_threads_per_block"])
        shared = int(attrs["max_shared_memory_per_block"])
    except (KeyError, TypeError, ValueError):
        return False
    return threads <= blueprint.num("max_threads_per_block") and shared <= (
        blueprint.num("max_shared_memory_per_block_kb") * 1024
    )


def check(mod: Any, blueprint: Blueprint, *, config: ValidityConfig | None = None) -> list[Violation]:
    """Violations of ``blueprint`` 's rules by every PrimFunc of ``mod`` (IRModule or PrimFunc)."""
    import tvm

    cfg = config or ValidityConfig()
    if isinstance(mod, tvm.tirx.PrimFunc):
        mod = tvm.IRModule({"main": mod})
    out: list[Violation] = []
    for gv, func in mod.functions.items():
        if not isinstance(func, tvm.tirx.PrimFunc):
            continue
        if blueprint.kind == "gpu":
            out += _check_gpu(gv.name_hint, func, blueprint, cfg)
        else:
            out += _check_cpu(func, blueprint, cfg)
    if out:
        log.debug("%s: %s", blueprint.name, "; ".join(f"{v.rule}: {v.detail}" for v in out))
    return out


# ---------------------------------------------------------------- GPU


def compaction_passes() -> list:
    """VerifyGPUCode's phase-1 passes up to ``CompactBufferAllocation`` (buffers get the footprint
    they have under their compute-at loop)."""
    from tvm.s_tir import transform as S

    return [
        S.LowerCrossThreadReduction(),
        S.LowerInitBlock(),
        S.PlanAndUpdateBufferAllocationLocation(),
        S.ConvertBlocksToOpaque(),
        S.LiftThreadBinding(),
        S.ManifestSharedMemoryLocalStage(),
        S.CompactBufferAllocation(),
    ]


def _lower_for_gpu(name: str, func: Any) -> Any | None:
    """``func`` lowered with VerifyGPUCode's pass list (minus LowerIntrin), or None on failure."""
    import tvm
    from tvm.s_tir import transform as S
    from tvm.tirx import transform as T

    passes = [
        *compaction_passes(),
        T.StmtSimplify(),
        S.LowerAutoCopy(),
        S.UnifyThreadBinding(),
        S.LowerMatchBuffer(),
        S.InjectSoftwarePipeline(),
        S.LowerOpaqueBlock(),
        T.FlattenBuffer(),
        T.BF16ComputeLegalize(),
        T.NarrowDataType(32),
        T.StmtSimplify(),
        T.VectorizeLoop(True),
        S.InjectVirtualThread(),
        S.InjectDoubleBuffer(),
        T.StorageRewrite(),
        S.MergeSharedMemoryAllocations(),
    ]
    try:
        f = func.with_attr("global_symbol", name)
        lowered = tvm.transform.Sequential(passes)(tvm.IRModule({name: f}))
        return lowered[name]
    except Exception as e:  # an unlowerable schedule: VerifyGPUCode rejects it too
        log.debug("lowering %s for the GPU rules failed: %s", name, e)
        return None


@dataclass(kw_only=True)
class _Kernel:
    extents: dict[str, int]
    """Largest extent seen per thread tag (``threadIdx.x`` ...)."""
    scope_bytes: dict[str, int]
    """Bytes allocated per storage scope inside the kernel."""


def _kernels(body: Any) -> tuple[list[Any], int]:
    """(outermost thread-bound statements, number of stores outside all of them)."""
    import tvm_ffi
    from tvm import tirx

    roots: list[Any] = []
    stores = [0]

    def on_attr(node: Any, v: Any) -> Any:
        if node.attr_key == "thread_extent":
            roots.append(node)
            return None
        return v.default_visit(node)

    def on_for(node: Any, v: Any) -> Any:
        if node.kind == tirx.ForKind.THREAD_BINDING:
            roots.append(node)
            return None
        return v.default_visit(node)

    def on_store(node: Any, v: Any) -> None:
        stores[0] += 1

    tvm_ffi.structural_visit(
        body, [(tirx.AttrStmt, on_attr), (tirx.For, on_for), (tirx.BufferStore, on_store)]
    )
    return roots, stores[0]


def _buffer_bytes(buf: Any) -> int | None:
    import tvm

    n = 1
    for d in buf.shape:
        if not isinstance(d, tvm.tirx.IntImm):
            return None
        n *= int(d)
    return n * ((tvm.DataType(str(buf.dtype)).bits * tvm.DataType(str(buf.dtype)).lanes + 7) // 8)


def _scan_kernel(root: Any) -> _Kernel:
    import tvm_ffi
    from tvm import tirx

    k = _Kernel(extents={}, scope_bytes={})

    def note_thread(tag: str, extent: Any) -> None:
        if isinstance(extent, tirx.IntImm):
            k.extents[tag] = max(k.extents.get(tag, 1), int(extent))

    def on_attr(a: Any) -> None:
        if a.attr_key == "thread_extent":
            note_thread(str(a.node.thread_tag), a.value)

    def on_for(f: Any) -> None:
        if f.kind == tirx.ForKind.THREAD_BINDING and f.thread_binding is not None:
            note_thread(str(f.thread_binding.thread_tag), f.extent)

    def on_alloc(a: Any) -> None:
        size = _buffer_bytes(a.buffer)
        if size is not None:
            scope = str(a.buffer.scope())
            k.scope_bytes[scope] = k.scope_bytes.get(scope, 0) + size

    tvm_ffi.structural_walk(
        root, [(tirx.AttrStmt, on_attr), (tirx.For, on_for), (tirx.AllocBuffer, on_alloc)], order="pre"
    )
    return k


def kernel_scope_bytes(body: Any) -> list[dict[str, int]]:
    """Bytes allocated per storage scope in each kernel of a lowered PrimFunc body."""
    return [_scan_kernel(root).scope_bytes for root in _kernels(body)[0]]


def _check_gpu(name: str, func: Any, bp: Blueprint, cfg: ValidityConfig) -> list[Violation]:
    lowered = _lower_for_gpu(name, func)
    roots, host_stores = _kernels((lowered or func).body)
    out: list[Violation] = []

    def add(rule: str, hard: bool, detail: str) -> None:
        out.append(Violation(rule=rule, hard=hard, detail=detail))

    if host_stores and lowered is not None:
        add("unbound_loops", True, f"{name}: {host_stores} stores run outside any thread binding")
    warp = int(bp.num("warp_size"))
    limit = int(bp.num("max_threads_per_block"))
    static_lim = int(bp.num("max_shared_memory_per_block_kb") * 1024)
    optin_lim = int(bp.num("max_shared_memory_per_block_optin_kb") * 1024)
    for i, root in enumerate(roots):
        k = _scan_kernel(root)
        where = f"{name} kernel {i}"
        threads = math.prod(k.extents.get(f"threadIdx.{a}", 1) for a in "xyz")
        if threads > limit:
            add("threads_per_block", True, f"{where}: {threads} threads per block > {limit}")
        if threads % warp:
            add("warp_multiple", False, f"{where}: {threads} threads per block, not a multiple of {warp}")
        if lowered is None:
            continue
        static = k.scope_bytes.get("shared", 0)
        total = static + k.scope_bytes.get("shared.dyn", 0)
        if static > static_lim:
            add("shared_memory", True, f"{where}: {static} B static shared memory > {static_lim} B")
        elif total > optin_lim:
            add("shared_memory", True, f"{where}: {total} B shared memory > {optin_lim} B (opt-in maximum)")
        regs = -(-k.scope_bytes.get("local", 0) // 4) + cfg.register_overhead
        rounded = -(-max(threads, 1) // warp) * warp
        budget = min(int(bp.num("max_registers_per_thread")), int(bp.num("registers_per_block")) // rounded)
        if regs > budget:
            add(
                "register_pressure",
                False,
                f"{where}: ~{regs} registers per thread > {budget} ({threads} threads)",
            )
    return out


# ---------------------------------------------------------------- CPU


def _check_cpu(func: Any, bp: Blueprint, cfg: ValidityConfig) -> list[Violation]:
    import tvm_ffi
    from tvm import s_tir, tirx

    out: list[Violation] = []
    loops: list[Any] = []

    def on_for(f: Any, v: Any) -> Any:
        if f.kind == tirx.ForKind.VECTORIZED and isinstance(f.extent, tirx.IntImm):
            viol = _vector_rule(f, bp, cfg)
            if viol is not None:
                out.append(viol)
        loops.append(f)
        try:
            return v.default_visit(f)
        finally:
            loops.pop()

    def on_realize(r: Any, v: Any) -> Any:
        viol = _working_set_rule(r, list(loops), bp, cfg)
        if viol is not None:
            out.append(viol)
        return v.default_visit(r)

    tvm_ffi.structural_visit(func.body, [(tirx.For, on_for), (s_tir.SBlockRealize, on_realize)])
    return out


def _vector_rule(loop: Any, bp: Blueprint, cfg: ValidityConfig) -> Violation | None:
    import tvm
    import tvm_ffi
    from tvm import s_tir, tirx

    bits, reduces = [0], [False]

    def on_store(s: Any) -> None:
        bits[0] = max(bits[0], tvm.DataType(str(s.buffer.dtype)).bits)

    def on_block(b: Any) -> None:
        reduces[0] |= any(int(iv.iter_type) == 2 for iv in b.iter_vars)  # CommReduce

    tvm_ffi.structural_walk(loop.body, [(tirx.BufferStore, on_store), (s_tir.SBlock, on_block)])
    if not bits[0] or not reduces[0]:
        return None
    from chameleon.hardware.priors import lane_share

    lanes, simd = int(loop.extent), int(bp.num("simd_width_bits"))
    per_register = max(simd // bits[0], 1)
    registers = math.ceil(lanes / per_register)
    share = float(lane_share(lanes, per_register))
    what = f"loop {loop.loop_var}: {lanes} lanes x {bits[0]} bits in {registers} x {simd}-bit registers"
    if registers > cfg.max_vector_registers:
        return Violation(
            rule="vector_width", hard=False, detail=f"{what} (> {cfg.max_vector_registers} registers)"
        )
    if share < cfg.min_lane_share:
        return Violation(rule="vector_width", hard=False, detail=f"{what} ({share:.0%} of their lanes used)")
    return None


def _working_set_rule(realize: Any, loops: list[Any], bp: Blueprint, cfg: ValidityConfig) -> Violation | None:
    from tvm import sym, tirx

    block = realize.block
    if not any(iv.iter_type == tirx.IterVar.CommReduce for iv in block.iter_vars):
        return None
    if not all(isinstance(lp.extent, tirx.IntImm) for lp in loops):
        return None
    start = 0  # the tile lives below the innermost parallel / thread-bound loop
    for i, lp in enumerate(loops):
        if lp.kind in (tirx.ForKind.PARALLEL, tirx.ForKind.THREAD_BINDING):
            start = i + 1
    needed = [
        {lp.loop_var for lp in loops if int(lp.extent) > 1 and _uses(val, lp.loop_var)}
        for iv, val in zip(block.iter_vars, realize.iter_values, strict=True)
        if not isinstance(iv.dom.extent, tirx.IntImm) or int(iv.dom.extent) > 1
    ]
    needed = [s for s in needed if s]
    first = start
    for i in range(len(loops) - 1, start - 1, -1):
        inner = {lp.loop_var for lp in loops[i:]}
        if all(s & inner for s in needed):
            first = i
            break
    dom = {
        lp.loop_var: sym.IntervalSet(lp.min, lp.min + lp.extent - 1)
        if i >= first
        else sym.IntervalSet(lp.min, lp.min)
        for i, lp in enumerate(loops)
    }
    ana = sym.Analyzer()
    var_dom = {
        iv.var: ana.int_set(val, dom) for iv, val in zip(block.iter_vars, realize.iter_values, strict=True)
    }
    per_buffer: dict[str, int] = {}
    for region in [*block.reads, *block.writes]:
        size = _region_bytes(region, var_dom, ana, cfg.cache_line_bytes)
        if size is not None:
            name = str(region.source.name)
            per_buffer[name] = max(per_buffer.get(name, 0), size)
    total = sum(per_buffer.values())
    limit = cfg.working_set_l2_factor * bp.num("l2_kb") * 1024
    if total <= limit:
        return None
    tile = ", ".join(str(lp.loop_var) for lp in loops[first:]) or "-"
    return Violation(
        rule="cache_working_set",
        hard=False,
        detail=f"block {block.name_hint}: innermost tile (loops {tile}) touches {total // 1024} KiB "
        f"> {cfg.working_set_l2_factor:g} x L2 ({bp.num('l2_kb'):g} KiB)",
    )


def _uses(expr: Any, var: Any) -> bool:
    import tvm_ffi
    from tvm import ir

    hit = tvm_ffi.structural_walk(
        expr, [(ir.Var, lambda x: tvm_ffi.VisitInterrupt(x) if x.same_as(var) else None)]
    )
    return hit is not None


def _region_bytes(region: Any, var_dom: dict[Any, Any], ana: Any, line: int) -> int | None:
    import tvm

    elem = max(tvm.DataType(str(region.source.dtype)).bits // 8, 1)
    extents = []
    for rng in region.region:
        s = ana.int_set(rng.min, var_dom)
        lo, hi = ana.simplify(s.min_value), ana.simplify(s.max_value + rng.extent)
        span = ana.simplify(hi - lo)
        if not isinstance(span, tvm.tirx.IntImm):
            return None
        extents.append(max(int(span), 1))
    if not extents:
        return elem
    return math.prod(extents[:-1]) * (-(-extents[-1] * elem // line) * line)
