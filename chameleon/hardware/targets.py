"""Target names a user types, mapped to TVM targets.

``llvm`` is this host's CPU with its core count and ISA detected (``mcpu``), because
``{"kind": "llvm"}`` alone compiles for generic x86-64 and loses about 2x on convolutions.
Jetson names map to TVM's own target tags. Remote targets (every Jetson, and ``cuda`` when this
machine has no GPU) can only be measured through an RPC farm (``--tracker``/``--key``).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass

from chameleon.errors import UsageError


@dataclass(frozen=True)
class TargetSpec:
    """A resolved target."""

    name: str
    """The name the user typed (canonical form), used in log paths."""
    target_json: dict
    """The TVM target as a JSON-able dict (``tvm.target.Target(target_json)`` rebuilds it)."""
    kind: str
    """``"cpu"`` or ``"gpu"``."""
    needs_farm: bool
    """True when this machine cannot measure the target itself."""
    farm_key: str
    """The RPC key a farm registers such devices under by default."""
    description: str

    def tvm_target(self):
        import tvm

        return tvm.target.Target(self.target_json)


# name -> (TVM tag, description). Aliases resolve to a canonical name.
JETSON_TAGS: dict[str, tuple[str, str]] = {
    "jetson-orin-nano": ("nvidia/jetson-orin-nano", "Jetson Orin Nano (sm_87)"),
    "jetson-agx-orin-32gb": ("nvidia/jetson-agx-orin-32gb", "Jetson AGX Orin 32GB (sm_87)"),
    "jetson-agx-orin-64gb": ("nvidia/jetson-agx-orin-64gb", "Jetson AGX Orin 64GB (sm_87)"),
    "jetson-agx-xavier": ("nvidia/jetson-agx-xavier", "Jetson AGX Xavier (sm_72)"),
    "jetson-agx-thor": ("nvidia/jetson-agx-thor", "Jetson AGX Thor (sm_110a)"),
    "jetson-nano": ("nvidia/jetson-nano", "Jetson Nano (sm_53)"),
    "jetson-tx1": ("nvidia/jetson-tx1", "Jetson TX1 (sm_53)"),
    "jetson-tx2": ("nvidia/jetson-tx2", "Jetson TX2 (sm_62)"),
}
ALIASES = {"jetson": "jetson-orin-nano", "jetson-agx-orin": "jetson-agx-orin-64gb", "cpu": "llvm"}
CPU_VARIANTS = {
    "llvm": "this host's CPU, ISA and cores detected",
    "llvm-avx2": "this host's cores, code limited to AVX2 (mcpu=haswell): a second CPU target",
}


def target_names() -> list[str]:
    return [*CPU_VARIANTS, "cuda", *JETSON_TAGS, *ALIASES]


@functools.cache
def host_cores() -> int:
    """Physical cores this process may use."""
    import psutil

    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or logical
    return max(1, min(logical, physical))


@functools.cache
def host_mcpu() -> str:
    from tvm.target import codegen

    return str(codegen.llvm_get_system_cpu())


@functools.cache
def local_cuda_available() -> bool:
    import tvm

    try:
        return bool(tvm.cuda(0).exist)
    except Exception:  # noqa: BLE001 - no CUDA runtime at all
        return False


def resolve_target(name: str) -> TargetSpec:
    """Map a user-facing target name to a :class:`TargetSpec` (``UsageError`` if unknown)."""
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key == "llvm":
        tj = {"kind": "llvm", "num-cores": host_cores(), "mcpu": host_mcpu()}
        return TargetSpec(
            key, tj, "cpu", False, "local-cpu", f"host CPU ({tj['mcpu']}, {host_cores()} cores)"
        )
    if key == "llvm-avx2":
        tj = {"kind": "llvm", "num-cores": host_cores(), "mcpu": "haswell"}
        return TargetSpec(key, tj, "cpu", False, "local-cpu", CPU_VARIANTS[key])
    if key == "cuda":
        tj = _cuda_target_json()
        desc = local_gpu_name() or "NVIDIA GPU (none here: compile-only, measured through a farm)"
        return TargetSpec(key, tj, "gpu", not local_cuda_available(), "cuda", f"{desc} ({tj['arch']})")
    if key in JETSON_TAGS:
        tag, desc = JETSON_TAGS[key]
        import tvm

        # str(Target) is its JSON (plain Python values, unlike export()); it drops the tag, which we
        # keep so that blueprints resolve to the exact board.
        tj = {**json.loads(str(tvm.target.Target(tag))), "tag": tag}
        return TargetSpec(key, tj, "gpu", True, key, desc)
    raise UsageError(f"unknown target {name!r}; valid targets: {', '.join(target_names())}")


def _cuda_target_json() -> dict:
    """The local GPU as TVM sees it, or a generic sm_80 when there is none (compile-only).

    MetaSchedule's ``VerifyGPUCode`` postprocessor needs the block limits in the target; a bare
    ``{"kind": "cuda", "arch": ...}`` lacks them, so they are read from the device.
    """
    import tvm

    host = {"kind": "llvm", "num-cores": host_cores(), "mcpu": host_mcpu()}
    if not local_cuda_available():
        return {**json.loads(str(tvm.target.Target("nvidia/nvidia-a100"))), "tag": "", "host": host}
    dev = tvm.cuda(0)
    major, minor = dev.compute_version.split(".")
    return {
        "kind": "cuda",
        "arch": f"sm_{major}{minor}",
        "max_num_threads": int(dev.max_threads_per_block),
        "max_threads_per_block": int(dev.max_threads_per_block),
        "thread_warp_size": int(dev.warp_size),
        "max_shared_memory_per_block": int(dev.max_shared_memory_per_block),
        "registers_per_block": 65536,  # every compute capability from 3.0 to 12.x
        "l2_cache_size_bytes": int(dev.l2_cache_size_bytes),
        "host": host,
    }


def local_gpu_name() -> str | None:
    """The local GPU's name as the driver reports it (``"NVIDIA H100 80GB HBM3"``), or None."""
    if not local_cuda_available():
        return None
    import tvm

    return str(tvm.cuda(0).device_name)
