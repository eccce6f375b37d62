"""Relax -> tuning tasks, and tuning database -> deployable executable.

The same fusion passes run at task extraction and at compile time, so that database keys
(structural hashes of the fused PrimFuncs) match at replay.

CPU weight prepacking (``prepack=True``, the default on CPU targets): the fused PrimFuncs are
marked with their layout-free buffers (the bound weights), so MetaSchedule's ``RewriteLayout``
postprocessor may pick a weight layout that suits the tiling. At compile time the layout
transform is split out of each kernel (``SplitLayoutRewritePreproc``) and, because the weights
are bound constants, ``FoldConstant`` evaluates it once at build time: the deployed library
takes the same inputs as the original model and carries pre-packed weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import tvm
from tvm import relax
from tvm.s_tir import meta_schedule as ms

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """One tuning task: a fused PrimFunc and how often the network calls it."""

    name: str
    weight: int
    mod: tvm.IRModule
    """The dispatched PrimFunc module MetaSchedule tunes (workload key in the database)."""
    flop: float
    extracted: ms.ExtractedTask


def fusion_passes(target: tvm.target.Target, *, prepack: bool) -> list[tvm.transform.Pass]:
    try:
        dispatch = relax.pipeline.library_dispatch_passes(target)
    except (ValueError, AttributeError):
        dispatch = []
    passes = [
        *([VectorizableMath()] if target.kind.name == "llvm" else []),
        *dispatch,
        relax.transform.LegalizeOps(),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
    ]
    if prepack:
        passes.append(relax.transform.AttachAttrLayoutFreeBuffers())
    return passes


_REWRITTEN_OPS = ("relax.erf", "relax.nn.gelu", "relax.nn.softmax")


@relax.expr_functor.mutator
class _VectorizableMathRewriter(relax.PyExprMutator):
    def visit_call_(self, call: relax.Call) -> relax.Expr:
        from tvm import topi

        name = getattr(call.op, "name", None)
        # TOPI's fast_exp is float32 only
        if name not in _REWRITTEN_OPS or str(getattr(call.args[0].ty, "dtype", "")) != "float32":
            return super().visit_call_(call)
        x = call.args[0]
        if name == "relax.erf":
            return self.builder_.call_te(topi.fast_erf, x, primfunc_name_hint="fast_erf")
        if name == "relax.nn.gelu":
            return self.builder_.call_te(_gelu_fast_erf, x, primfunc_name_hint="gelu")
        return self.builder_.call_te(topi.nn.fast_softmax, x, call.attrs.axis, primfunc_name_hint="softmax")


def _gelu_fast_erf(x):
    from tvm import topi

    return topi.multiply(
        x, topi.add(0.5, topi.multiply(0.5, topi.fast_erf(topi.multiply(x, 0.7071067811865476))))
    )


@tvm.transform.module_pass(opt_level=0, name="VectorizableMath")
class VectorizableMath:
    """``erf``, GELU (x * (1 + erf(x / sqrt 2)) / 2) and softmax through TOPI's polynomial
    ``fast_erf`` and ``fast_exp``, on LLVM targets.

    TVM 0.27 lowers ``tir.erf`` and ``tir.exp`` on a CPU to calls of libm's scalar ``erff`` and
    ``expf``, which no schedule can vectorise. Measured on BERT-mini (seq 128, 400 trials): the
    GELU kernel, whose space holds one configuration, took 2.8 ms a call (4 calls; the network's
    sum of kernels was 20.4 ms), and 0.065 ms with the polynomial; the softmax's best after 64
    trials went from 0.295 to 0.076 ms. The polynomials are plain arithmetic that vectorises;
    against torch the network's output moved by < 1e-6 (softmax alone: max abs error 2.4e-7,
    the same as the exact lowering's). The pass runs at task extraction and at compile time alike,
    so database keys match. CUDA keeps its own fast device functions. TVM's ``FastMathTransform``
    does this for ``relax.erf``, ``exp``, ``tanh`` and softmax but not for ``relax.nn.gelu`` (it
    is legalised to ``erf`` after that pass would run); ``exp`` and ``tanh`` are left as they are
    (not measured here).
    """

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        rewriter = _VectorizableMathRewriter(mod)
        for gv, func in mod.functions_items():
            if isinstance(func, relax.Function):
                rewriter.builder_.update_func(gv, rewriter.visit_expr(func))
        return rewriter.builder_.get()


def prepack_default(target: tvm.target.Target) -> bool:
    """Weight prepacking is TVM's CPU lever for convolutions; GPUs do not use it."""
    return "cpu" in target.keys and "gpu" not in target.keys


def fuse(mod: tvm.IRModule, target: tvm.target.Target, *, prepack: bool) -> tvm.IRModule:
    with target, tvm.transform.PassContext(opt_level=3):
        return tvm.transform.Sequential(fusion_passes(target, prepack=prepack))(mod)


def extract_tasks(mod: tvm.IRModule, target: tvm.target.Target, *, prepack: bool) -> list[Task]:
    """Fuse the network and return its tuning tasks, largest FLOP count first."""
    fused = fuse(mod, target, prepack=prepack)
    tasks = []
    for t in ms.relax_integration.extract_tasks(fused, target):
        prim = t.dispatched[0]
        try:
            flop = float(tvm.s_tir.analysis.estimate_tir_flops(prim))
        except Exception:  # noqa: BLE001 - ops without a FLOP estimate
            flop = 0.0
        tasks.append(Task(name=t.task_name, weight=int(t.weight), mod=prim, flop=flop, extracted=t))
    tasks.sort(key=lambda t: -t.flop * t.weight)
    logger.info("extracted %d tasks (total weight %d)", len(tasks), sum(t.weight for t in tasks))
    return tasks


def compile_tuned(
    mod: tvm.IRModule, target: tvm.target.Target, database: ms.Database | None, *, prepack: bool
) -> tvm.runtime.Executable:
    """``compile_relax`` with weight prepacking: apply the best records, default-schedule the rest.

    With ``database=None`` this is the untuned build (TVM's default schedules for the target).
    """
    from tvm.s_tir import dlight as dl

    is_gpu = relax.pipeline.BackendDispatcher.is_gpu_target(target)
    lower, finalize = _lowering_passes(target)

    @tvm.transform.module_pass(opt_level=3)
    def _pipeline(m: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        m = tvm.transform.Sequential(fusion_passes(target, prepack=prepack and database is not None))(m)
        if database is not None:
            m = relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(m)
            if prepack:
                m = tvm.transform.Sequential(
                    [relax.transform.SplitLayoutRewritePreproc(), relax.transform.FoldConstant()]
                )(m)
        if is_gpu:
            m = dl.ApplyDefaultSchedule(
                dl.gpu.Matmul(),
                dl.gpu.GEMV(),
                dl.gpu.Reduction(),
                dl.gpu.GeneralReduction(),
                dl.gpu.Fallback(),
            )(m)
        return tvm.transform.Sequential(lower + finalize)(m)

    if database is None:
        with target, tvm.transform.PassContext(opt_level=3):
            return relax.build(mod, target=target, relax_pipeline=_pipeline)
    with target, database, tvm.transform.PassContext(opt_level=3):
        return relax.build(mod, target=target, relax_pipeline=_pipeline)


def _lowering_passes(target: tvm.target.Target) -> tuple[list, list]:
    """The target's lowering and finalize passes.

    TVM 0.27's ``relax.pipeline.dataflow_lower_passes`` fails for CPU targets (its cpu_generic
    package forgets to export the function), so CPU targets take it from the module directly.
    """
    try:
        return relax.pipeline.dataflow_lower_passes(target), relax.pipeline.finalize_passes(target)
    except AttributeError:
        from tvm.relax.backend.cpu_generic import pipeline as cpu

        return cpu.dataflow_lower_passes(target), cpu.finalize_passes(target)


def tuned_functions(mod: tvm.IRModule, target: tvm.target.Target, database: ms.Database, *, prepack: bool):
    """Names of the network's tasks that the database has a record for, and those it lacks."""
    tuned, untuned = [], []
    for task in extract_tasks(mod, target, prepack=prepack):
        has = database.has_workload(task.mod) and database.get_top_k(database.commit_workload(task.mod), 1)
        (tuned if has else untuned).append(task.name)
    return tuned, untuned
