"""Hardware blueprints (Glimpse, DAC'22): datasheet numbers of a device and their embedding.

A blueprint is one device's specification: ``blueprints.json`` beside this module lists GPUs (the
Jetson family, data-centre and desktop cards) and CPUs, each with the document its numbers come
from; ``"host"`` is the CPU this process runs on, detected at run time (``host_cpu``). The schema
(unit, type, range of every field, per kind) lives here in code, so a bad file is refused with a
message naming the device and the field. ``embedding`` turns a blueprint into a fixed-length
vector for the cost model. ``target_blueprint.blueprint_for_target`` maps a TVM target to one.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from chameleon.errors import ChameleonError, UsageError

log = logging.getLogger(__name__)

FieldValue = float | int | str
KINDS: tuple[str, ...] = ("gpu", "cpu")
ISAS: tuple[str, ...] = ("sse", "avx", "avx2", "avx512", "neon", "sve")
DEFAULT_PATH = Path(__file__).with_name("blueprints.json")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*$")


@dataclass(frozen=True, kw_only=True)
class FieldSpec:
    """Schema of one blueprint field."""

    type: type
    """Python type of the value: ``int``, ``float`` (ints accepted) or ``str``."""
    unit: str = ""
    """Unit printed by ``describe`` ('' for plain counts)."""
    lo: float = 0.0
    """Smallest accepted value (numbers only)."""
    hi: float = 0.0
    """Largest accepted value (numbers only)."""
    pattern: str = ""
    """Regular expression a string value must match in full ('' accepts any string)."""
    doc: str = ""
    """What the field means, one line."""


def _num(t: type, unit: str, lo: float, hi: float, doc: str) -> FieldSpec:
    return FieldSpec(type=t, unit=unit, lo=lo, hi=hi, doc=doc)


SCHEMA: dict[str, dict[str, FieldSpec]] = {
    "gpu": {
        "sm_count": _num(int, "SMs", 1, 1024, "streaming multiprocessors"),
        "cores_per_sm": _num(int, "", 8, 512, "FP32 CUDA cores per SM"),
        "clock_mhz": _num(float, "MHz", 100, 6000, "maximum (boost) GPU clock"),
        "max_threads_per_block": _num(int, "", 32, 4096, "threads per block, hardware limit"),
        "warp_size": _num(int, "threads", 8, 128, "threads per warp"),
        "max_shared_memory_per_block_kb": _num(
            float, "KiB", 1, 1024, "shared memory per block without opt-in (static __shared__ limit)"
        ),
        "max_shared_memory_per_block_optin_kb": _num(
            float, "KiB", 1, 1024, "shared memory per block with the dynamic opt-in attribute"
        ),
        "shared_memory_per_sm_kb": _num(float, "KiB", 1, 2048, "shared memory per SM"),
        "registers_per_block": _num(int, "regs", 1024, 1 << 20, "32-bit registers per block"),
        "registers_per_sm": _num(int, "regs", 1024, 1 << 20, "32-bit registers per SM"),
        "max_registers_per_thread": _num(int, "regs", 16, 1024, "32-bit registers per thread"),
        "l2_cache_kb": _num(float, "KiB", 16, 1 << 20, "L2 cache, whole GPU"),
        "memory_bandwidth_gbs": _num(float, "GB/s", 1, 100000, "peak DRAM bandwidth"),
        "compute_capability": FieldSpec(type=str, pattern=r"\d{1,2}\.\d", doc="CUDA compute capability"),
        "tvm_tag": FieldSpec(type=str, pattern=r"([a-z0-9-]+/[a-z0-9./-]+)?", doc="TVM target tag or ''"),
    },
    "cpu": {
        "cores": _num(int, "cores", 1, 1024, "cores used"),
        "simd_width_bits": _num(int, "bits", 64, 2048, "widest SIMD register"),
        "fma_units_per_core": _num(int, "", 1, 8, "SIMD FMA units per core (at simd_width_bits)"),
        "clock_mhz": _num(float, "MHz", 100, 6000, "maximum (turbo) clock"),
        "l1d_kb": _num(float, "KiB", 4, 1024, "L1 data cache per core"),
        "l2_kb": _num(float, "KiB", 16, 65536, "L2 cache per core"),
        "l3_kb": _num(float, "KiB", 0, 1 << 20, "L3 cache, total (0: none)"),
        "memory_bandwidth_gbs": _num(float, "GB/s", 1, 100000, "peak DRAM bandwidth"),
        "isa": FieldSpec(type=str, pattern="|".join(ISAS) + "|generic", doc="widest SIMD ISA"),
        "llvm_mcpu": FieldSpec(type=str, pattern=r"[a-z0-9_.-]*", doc="LLVM -mcpu name or ''"),
    },
}


@dataclass(frozen=True, kw_only=True)
class Blueprint:
    """One device's specification."""

    name: str
    """Key in the blueprint table (``"host"`` for the detected host CPU)."""
    kind: str
    """``"gpu"`` or ``"cpu"``."""
    fields: Mapping[str, FieldValue] = field(hash=False)
    """Datasheet numbers, keyed as in ``SCHEMA[kind]``."""
    source: str
    """Where the numbers come from (document names)."""
    description: str = ""
    """One-line human description of the device."""

    def num(self, key: str) -> float:
        """Numeric field ``key`` as a float."""
        return float(self.fields[key])


def validate(bp: Blueprint, *, where: str = "blueprint") -> None:
    """Check ``bp`` against ``SCHEMA``; raise ``ChameleonError`` naming the device and field."""
    pre = f"{where}: device {bp.name!r}"
    if bp.kind not in SCHEMA:
        raise ChameleonError(f"{pre}: kind {bp.kind!r} is not one of {', '.join(KINDS)}; fix the file")
    if not bp.source.strip():
        raise ChameleonError(f"{pre}: 'source' is empty; name the datasheet the numbers come from")
    spec = SCHEMA[bp.kind]
    missing = [k for k in spec if k not in bp.fields]
    if missing:
        raise ChameleonError(f"{pre}: missing field {missing[0]!r} (required for kind {bp.kind!r})")
    unknown = [k for k in bp.fields if k not in spec]
    if unknown:
        raise ChameleonError(f"{pre}: unknown field {unknown[0]!r}; valid fields: {', '.join(spec)}")
    for key, fs in spec.items():
        v = bp.fields[key]
        bad = f"{pre}: field {key!r} = {v!r}"
        if fs.type is str:
            if not isinstance(v, str) or not re.fullmatch(fs.pattern or ".*", v):
                raise ChameleonError(f"{bad} is not a string matching {fs.pattern!r}; fix the file")
            continue
        ok_type = isinstance(v, int) if fs.type is int else isinstance(v, int | float)
        if isinstance(v, bool) or not ok_type or not math.isfinite(v):
            raise ChameleonError(f"{bad} is not a finite {fs.type.__name__}; fix the file")
        if not fs.lo <= v <= fs.hi:
            raise ChameleonError(f"{bad} is outside [{fs.lo:g}, {fs.hi:g}] {fs.unit}; fix the file")
    f = bp.fields
    pairs = (
        ("max_shared_memory_per_block_kb", "max_shared_memory_per_block_optin_kb"),
        ("max_shared_memory_per_block_optin_kb", "shared_memory_per_sm_kb"),
        ("registers_per_block", "registers_per_sm"),
        ("l1d_kb", "l2_kb"),
    )
    for small, big in pairs:
        if small in f and big in f and f[small] > f[big]:  # type: ignore[operator]
            raise ChameleonError(f"{pre}: field {small!r} = {f[small]} exceeds {big!r} = {f[big]}")
    if bp.kind == "gpu" and int(f["max_threads_per_block"]) % int(f["warp_size"]):
        raise ChameleonError(f"{pre}: field 'max_threads_per_block' is not a multiple of 'warp_size'")


def load_blueprints(path: str | Path | None = None) -> dict[str, Blueprint]:
    """Read and validate a blueprint file (default: the one shipped with chameleon)."""
    if path is None:
        return dict(_load_default())
    return _load(Path(path))


@lru_cache(maxsize=1)
def _load_default() -> dict[str, Blueprint]:
    return _load(DEFAULT_PATH)


def _load(path: Path) -> dict[str, Blueprint]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ChameleonError(f"cannot read blueprint file {path}: {e}") from e
    devices = doc.get("devices") if isinstance(doc, dict) else None
    if not isinstance(devices, dict) or not devices:
        raise ChameleonError(f"{path}: expected an object with a non-empty 'devices' mapping")
    out: dict[str, Blueprint] = {}
    for name, entry in devices.items():
        if not _NAME_RE.fullmatch(name) or name == "host":
            raise ChameleonError(f"{path}: device name {name!r} must be lower-case [a-z0-9.-] and not 'host'")
        if not isinstance(entry, dict) or not isinstance(entry.get("fields"), dict):
            raise ChameleonError(f"{path}: device {name!r} needs 'kind', 'source' and a 'fields' object")
        extra = set(entry) - {"kind", "source", "description", "fields"}
        if extra:
            raise ChameleonError(f"{path}: device {name!r} has unknown key {sorted(extra)[0]!r}")
        bp = Blueprint(
            name=name,
            kind=str(entry.get("kind", "")),
            fields=dict(entry["fields"]),
            source=str(entry.get("source", "")),
            description=str(entry.get("description", "")),
        )
        validate(bp, where=str(path))
        out[name] = bp
    log.debug("loaded %d blueprints from %s", len(out), path)
    return out


def blueprint_names() -> list[str]:
    """All names ``get_blueprint`` accepts: ``"host"`` then the table's entries in file order."""
    return ["host", *_load_default()]


def get_blueprint(name: str) -> Blueprint:
    """The blueprint called ``name``; ``"host"`` is the detected host CPU."""
    if name == "host":
        from chameleon.hardware.host_cpu import detect_host_blueprint

        return detect_host_blueprint()
    table = _load_default()
    if name not in table:
        raise UsageError(f"unknown blueprint {name!r}; valid names: {', '.join(blueprint_names())}")
    return table[name]


# ---------------------------------------------------------------- embedding


def peak_gflops(bp: Blueprint) -> float:
    """Peak FP32 GFLOP/s from the datasheet numbers (an FMA counts as two FLOPs)."""
    if bp.kind == "gpu":
        return bp.num("sm_count") * bp.num("cores_per_sm") * 2 * bp.num("clock_mhz") / 1e3
    lanes = bp.num("simd_width_bits") / 32
    return bp.num("cores") * lanes * bp.num("fma_units_per_core") * 2 * bp.num("clock_mhz") / 1e3


# Embedded numbers and their reference range (low, high): v -> log(v / low) / log(high / low), so
# the range maps to [0, 1] (clipped to [-1, 2]). Entries shared by both kinds come first.
_REFS: dict[tuple[str, ...], dict[str, tuple[float, float]]] = {
    KINDS: {
        "clock_mhz": (500, 5000),
        "memory_bandwidth_gbs": (10, 4000),
        "peak_gflops": (50, 100000),
        "ridge_flops_per_byte": (1, 100),
    },
    ("gpu",): {
        "sm_count": (1, 256),
        "cores_per_sm": (32, 256),
        "max_threads_per_block": (256, 2048),
        "warp_size": (16, 64),
        "max_shared_memory_per_block_kb": (16, 256),
        "max_shared_memory_per_block_optin_kb": (16, 256),
        "shared_memory_per_sm_kb": (16, 256),
        "registers_per_block": (16384, 131072),
        "registers_per_sm": (16384, 131072),
        "max_registers_per_thread": (64, 512),
        "l2_cache_kb": (128, 131072),
        "compute_capability": (5.0, 12.0),
    },
    ("cpu",): {
        "cores": (1, 128),
        "simd_width_bits": (128, 512),
        "fma_units_per_core": (1, 4),
        "l1d_kb": (16, 128),
        "l2_kb": (128, 4096),
        "l3_kb": (1024, 524288),
    },
}
_SLOTS = tuple((key, kinds, lo, hi) for kinds, refs in _REFS.items() for key, (lo, hi) in refs.items())


def _slot_value(bp: Blueprint, key: str) -> float:
    if key == "peak_gflops":
        return peak_gflops(bp)
    if key == "ridge_flops_per_byte":
        return peak_gflops(bp) / bp.num("memory_bandwidth_gbs")
    return bp.num(key)  # compute_capability "8.7" -> 8.7


EMBEDDING_FEATURES: tuple[str, ...] = (
    *(f"kind={k}" for k in KINDS),
    *(s[0] for s in _SLOTS),
    *(f"isa={i}" for i in ISAS),
)
EMBEDDING_DIM: int = len(EMBEDDING_FEATURES)


def embedding(bp: Blueprint) -> np.ndarray:
    """Fixed-length float32 vector (``EMBEDDING_FEATURES`` names the entries) for any kind.

    Kind one-hot, then log-normalised numbers against fixed reference ranges (0 where the kind
    lacks the field, e.g. SM count on a CPU), then an ISA one-hot (CPUs). Deterministic.
    """
    vec = np.zeros(EMBEDDING_DIM, dtype=np.float32)
    vec[KINDS.index(bp.kind)] = 1.0
    base = len(KINDS)
    for i, (key, kinds, lo, hi) in enumerate(_SLOTS):
        if bp.kind in kinds:
            v = max(_slot_value(bp, key), 1e-9)
            vec[base + i] = min(max(math.log(v / lo) / math.log(hi / lo), -1.0), 2.0)
    isa = bp.fields.get("isa")
    if isa in ISAS:
        vec[base + len(_SLOTS) + ISAS.index(str(isa))] = 1.0
    return vec


def _fmt(v: FieldValue, unit: str) -> str:
    s = v if isinstance(v, str) else f"{v:g}" if isinstance(v, float) else str(v)
    return f"{s} {unit}".strip() if s != "" else "-"


def describe(bp: Blueprint) -> list[tuple[str, str]]:
    """(field, value with unit) rows for a CLI table: identity, datasheet fields, derived peaks."""
    rows = [("name", bp.name), ("kind", bp.kind), ("description", bp.description or "-")]
    rows += [(k, _fmt(bp.fields[k], fs.unit)) for k, fs in SCHEMA[bp.kind].items()]
    peak = peak_gflops(bp)
    rows.append(("peak fp32 (derived)", f"{peak:,.0f} GFLOP/s"))
    rows.append(("ridge point (derived)", f"{peak / bp.num('memory_bandwidth_gbs'):.1f} FLOP/byte"))
    rows.append(("source", bp.source))
    return rows
