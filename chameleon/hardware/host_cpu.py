"""Detect the blueprint of the CPU this process runs on.

Sources, each with a fallback so that detection never fails:

- cores: ``os.sched_getaffinity(0)`` (the cores this process may use), else ``os.cpu_count()``;
- SIMD width and ISA: the ``flags`` (x86) or ``Features`` (Arm) line of ``/proc/cpuinfo``
  (avx512f -> 512, avx2 / avx -> 256, sse2 -> 128, asimd / neon -> 128; SVE reads its default
  vector length from ``/proc/sys/abi/sve_default_vector_length``);
- caches: ``/sys/devices/system/cpu/cpu0/cache/index*/{level,type,size}``;
- clock: ``psutil.cpu_freq()`` (max, else current), else ``cpu MHz`` in ``/proc/cpuinfo``, else
  ``cpufreq/cpuinfo_max_freq``;
- LLVM CPU name and triple: ``tvm.target.codegen.llvm_get_system_cpu()`` / ``_triple()``.

Two numbers cannot be read from the OS and are estimates (said so in the blueprint's source):
FMA units per core (2, as on every x86 core since Haswell and on Cortex-A76+; 1 on Zen 4, which
runs a 512-bit FMA on its two 256-bit pipes) and memory bandwidth (10 GB/s per core, at most 100).
"""

from __future__ import annotations

import logging
import os
import re
from functools import lru_cache
from pathlib import Path

from chameleon.hardware.blueprints import SCHEMA, Blueprint, validate

log = logging.getLogger(__name__)

CPUINFO = Path("/proc/cpuinfo")
CACHE_DIR = Path("/sys/devices/system/cpu/cpu0/cache")
SVE_VL = Path("/proc/sys/abi/sve_default_vector_length")
FREQ_MAX = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
BANDWIDTH_PER_CORE_GBS = 10.0
BANDWIDTH_CAP_GBS = 100.0
_FMA_UNITS = {"znver4": 1}
_FALLBACK = {"clock_mhz": 2000.0, "l1d_kb": 32.0, "l2_kb": 512.0, "l3_kb": 0.0}


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def parse_cpuinfo(text: str) -> dict[str, str]:
    """Key/value pairs of the first processor block of ``/proc/cpuinfo``."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if out:
                break
            continue
        key, _, value = line.partition(":")
        out.setdefault(key.strip(), value.strip())
    return out


def simd_from_flags(flags: set[str], *, sve_bits: int = 128) -> tuple[int, str]:
    """(SIMD width in bits, ISA name) for a set of cpuinfo flags."""
    if "avx512f" in flags:
        return 512, "avx512"
    if "avx2" in flags:
        return 256, "avx2"
    if "avx" in flags:
        return 256, "avx"
    if "sve" in flags:
        return max(sve_bits, 128), "sve"
    if "asimd" in flags or "neon" in flags:
        return 128, "neon"
    if "sse2" in flags:
        return 128, "sse"
    return 64, "generic"


def parse_size_kb(text: str) -> float:
    """'32K' / '1024K' / '32M' / '1G' (sysfs cache sizes) -> KiB; 0 if unreadable."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)i?B?\s*", text, flags=re.IGNORECASE)
    if not m:
        return 0.0
    scale = {"": 1 / 1024, "K": 1, "M": 1024, "G": 1024 * 1024}[m.group(2).upper()]
    return int(m.group(1)) * scale


def read_caches(cache_dir: Path = CACHE_DIR) -> dict[str, float]:
    """{'l1d_kb', 'l2_kb', 'l3_kb'} found under a sysfs cache directory (missing ones left out)."""
    out: dict[str, float] = {}
    for index in sorted(cache_dir.glob("index*")):
        level = _read(index / "level").strip()
        ctype = _read(index / "type").strip()
        size = parse_size_kb(_read(index / "size"))
        if size <= 0 or ctype == "Instruction":
            continue
        if level == "1" and ctype == "Data":
            out["l1d_kb"] = size
        elif level in ("2", "3"):
            out[f"l{level}_kb"] = max(size, out.get(f"l{level}_kb", 0.0))
    return out


def _cores() -> int:
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return max(os.cpu_count() or 1, 1)


def _clock_mhz(info: dict[str, str]) -> float:
    try:
        import psutil

        freq = psutil.cpu_freq()
        if freq is not None and (freq.max or freq.current):
            return float(freq.max or freq.current)
    except Exception as e:  # psutil raises assorted errors on exotic kernels
        log.debug("psutil.cpu_freq failed: %s", e)
    try:
        return float(info.get("cpu MHz", ""))
    except ValueError:
        pass
    khz = _read(FREQ_MAX).strip()
    return int(khz) / 1000 if khz.isdigit() else _FALLBACK["clock_mhz"]


@lru_cache(maxsize=1)
def host_llvm_cpu() -> str:
    """LLVM's name for the host CPU (e.g. 'znver4'), '' if LLVM is unavailable."""
    try:
        from tvm.target import codegen

        return str(codegen.llvm_get_system_cpu())
    except Exception as e:  # TVM built without LLVM, or not importable
        log.warning("cannot ask LLVM for the host CPU name: %s", e)
        return ""


@lru_cache(maxsize=1)
def host_llvm_triple() -> str:
    """LLVM's host triple (e.g. 'x86_64-conda-linux-gnu'), else built from ``os.uname``."""
    try:
        from tvm.target import codegen

        return str(codegen.llvm_get_system_triple())
    except Exception as e:
        log.warning("cannot ask LLVM for the host triple: %s", e)
        return f"{os.uname().machine}-unknown-linux-gnu"


def _clamp(key: str, value: float) -> float:
    spec = SCHEMA["cpu"][key]
    if not spec.lo <= value <= spec.hi:
        log.warning("host %s = %g is implausible; using %g", key, value, _FALLBACK.get(key, spec.lo))
        return _FALLBACK.get(key, spec.lo)
    return value


@lru_cache(maxsize=1)
def detect_host_blueprint() -> Blueprint:
    """The host CPU's blueprint (detected once per process)."""
    info = parse_cpuinfo(_read(CPUINFO))
    flags = set((info.get("flags") or info.get("Features") or "").split())
    sve_vl = _read(SVE_VL).strip()
    simd, isa = simd_from_flags(flags, sve_bits=int(sve_vl) * 8 if sve_vl.isdigit() else 128)
    caches = read_caches()
    cores = _cores()
    mcpu = host_llvm_cpu()
    fields: dict[str, float | int | str] = {
        "cores": cores,
        "simd_width_bits": simd,
        "fma_units_per_core": _FMA_UNITS.get(mcpu, 2),
        "clock_mhz": _clamp("clock_mhz", _clock_mhz(info)),
        "l1d_kb": _clamp("l1d_kb", caches.get("l1d_kb", _FALLBACK["l1d_kb"])),
        "l2_kb": _clamp("l2_kb", caches.get("l2_kb", _FALLBACK["l2_kb"])),
        "l3_kb": _clamp("l3_kb", caches.get("l3_kb", _FALLBACK["l3_kb"])),
        "memory_bandwidth_gbs": min(BANDWIDTH_PER_CORE_GBS * cores, BANDWIDTH_CAP_GBS),
        "isa": isa,
        "llvm_mcpu": mcpu if re.fullmatch(r"[a-z0-9_.-]*", mcpu) else "",
    }
    model = info.get("model name") or info.get("CPU part") or "unknown CPU"
    bp = Blueprint(
        name="host",
        kind="cpu",
        fields=fields,
        source=(
            "detected at run time: /proc/cpuinfo, /sys/devices/system/cpu/cpu0/cache, psutil, LLVM; "
            "fma_units_per_core and memory_bandwidth_gbs are estimates"
        ),
        description=f"Host CPU: {model} ({mcpu or 'LLVM name unknown'}), {cores} usable cores",
    )
    validate(bp, where="host CPU detection")
    log.debug("host blueprint: %s", fields)
    return bp
