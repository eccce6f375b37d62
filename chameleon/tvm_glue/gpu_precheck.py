"""Reject, before the postprocessors run, GPU programs that MetaSchedule's ``VerifyGPUCode`` rejects.

On a GPU target most sampled configurations are not valid programs (2-5% of ResNet-18's conv
samples pass for the cuda and Jetson Orin targets, 6-13% of a transformer's matmuls):
``VerifyGPUCode``, the last postprocessor, throws them out after the others ran and after it
lowered the module, ~35 ms a configuration on this project's 2-core host. Materialising the first round's valid
configurations is then most of a GPU task's search time. Two of its checks can be made on the
schedule as replayed, before any postprocessor:

- **Threads per block** (exact): the product of the ``threadIdx`` extents around every block
  annotated ``meta_schedule.thread_extent_low/high_inclusive`` must lie in that range, as
  ``VerifyGPUCode`` 's ``ThreadExtentChecker`` requires (a ``warp_execution`` block counts a warp
  for ``threadIdx.x``). The multi-level tiling rule binds those loops and writes those
  annotations while the trace replays; no postprocessor changes them.
- **Shared memory** (a lower bound): the phase-1 passes up to ``CompactBufferAllocation`` give
  each ``shared`` buffer the footprint it has under its compute-at loop; the full lowering only
  adds to that (double buffering, software pipelining, vectorised padding). A kernel whose
  compacted ``shared`` buffers already exceed the target's ``max_shared_memory_per_block`` is
  rejected.

Both use the target's own limits (what ``VerifyGPUCode`` reads), not a blueprint's, so nothing is
rejected that the postprocessors would keep. A schedule the light passes cannot lower is left to
the postprocessors. Measured on ResNet-18's and a transformer's tasks for cuda (sm_80 limits)
and Jetson Orin: see ``tests/test_gpu_precheck.py`` and experiments/results/README.md ("GPU first rounds").
"""

from __future__ import annotations

import logging
import math
from typing import Any

logger = logging.getLogger(__name__)

_LOW = "meta_schedule.thread_extent_low_inclusive"
_HIGH = "meta_schedule.thread_extent_high_inclusive"


class GpuPrecheck:
    """``rejects(sch)``: a one-line reason when ``VerifyGPUCode`` would reject the replayed ``sch``."""

    def __init__(self, target: Any) -> None:
        attrs = target.attrs
        self.max_shared_bytes = int(attrs["max_shared_memory_per_block"])
        self.warp_size = int(attrs["thread_warp_size"])

    @staticmethod
    def applies_to(target: Any, postprocs: list) -> bool:
        """Only where ``VerifyGPUCode`` is among the task's postprocessors (it defines what is valid)."""
        from tvm.s_tir.meta_schedule.postproc import VerifyGPUCode

        return "gpu" in target.keys and any(isinstance(p, VerifyGPUCode) for p in postprocs)

    def rejects(self, sch: Any) -> str | None:
        for gv, func in sch.mod.functions.items():
            if not hasattr(func, "body"):
                continue
            reason = thread_extent_violation(func.body, self.warp_size)
            if reason is None and allocates_shared(func.body):
                shared = compacted_shared_bytes(gv.name_hint, func)
                if shared is not None and shared > self.max_shared_bytes:
                    reason = f"{shared} B shared memory > {self.max_shared_bytes} B"
            if reason is not None:
                return reason
        return None


def thread_extent_violation(body: Any, warp_size: int) -> str | None:
    """``VerifyGPUCode`` 's ``ThreadExtentChecker``, in Python: the first annotated block whose
    enclosing ``threadIdx`` extents multiply to a number outside its allowed range."""
    import tvm_ffi
    from tvm import s_tir, tirx

    extents = {"threadIdx.x": 1, "threadIdx.y": 1, "threadIdx.z": 1}
    found: list[str] = []

    def on_for(loop: Any, v: Any) -> Any:
        binding = loop.thread_binding
        tag = str(binding.thread_tag) if binding is not None else ""
        if tag in extents and isinstance(loop.extent, tirx.IntImm):
            old, extents[tag] = extents[tag], int(loop.extent)
            try:
                return v.default_visit(loop)
            finally:
                extents[tag] = old
        return v.default_visit(loop)

    def on_block(block: Any, v: Any) -> Any:
        if found:
            return None
        old_x = extents["threadIdx.x"]
        ann = block.annotations
        if "warp_execution" in ann:
            extents["threadIdx.x"] = warp_size
        if _LOW in ann and _HIGH in ann:
            low, high = int(ann[_LOW]), int(ann[_HIGH])
            threads = math.prod(extents.values())
            if not low <= threads <= high:
                found.append(f"block {block.name_hint}: {threads} threads per block outside [{low}, {high}]")
                extents["threadIdx.x"] = old_x
                return None
        try:
            return v.default_visit(block)
        finally:
            extents["threadIdx.x"] = old_x

    tvm_ffi.structural_visit(body, [(tirx.For, on_for), (s_tir.SBlock, on_block)])
    return found[0] if found else None


def allocates_shared(body: Any) -> bool:
    """Whether any block allocates a ``shared`` buffer; without one the shared-memory bound has
    nothing to measure and the lowering is skipped."""
    import tvm_ffi
    from tvm import s_tir

    found: list[bool] = []

    def on_block(block: Any) -> None:
        if any(str(buf.scope()).startswith("shared") for buf in block.alloc_buffers):
            found.append(True)

    tvm_ffi.structural_walk(body, [(s_tir.SBlock, on_block)], order="pre")
    return bool(found)


def compacted_shared_bytes(name: str, func: Any) -> int | None:
    """The largest kernel's ``shared`` bytes after ``VerifyGPUCode`` 's phase-1 passes up to buffer
    compaction; None when they fail (the postprocessors then decide)."""
    import tvm
    from tvm.s_tir import transform as S

    from chameleon.hardware.validity import compaction_passes, kernel_scope_bytes

    passes = [*compaction_passes(), S.LowerOpaqueBlock()]
    try:
        lowered = tvm.transform.Sequential(passes)(
            tvm.IRModule({name: func.with_attr("global_symbol", name)})
        )
    except Exception as err:  # noqa: BLE001 - any failure: leave it to the postprocessors
        logger.debug("light lowering of %s failed: %s", name, err)
        return None
    return max((k.get("shared", 0) for k in kernel_scope_bytes(lowered[name].body)), default=0)
