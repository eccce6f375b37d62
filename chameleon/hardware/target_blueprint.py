"""Which blueprint a TVM target runs on: tag, CUDA arch, or the LLVM CPU's ISA (see
:func:`blueprint_for_target` for the rules)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from chameleon.errors import ChameleonError, UsageError
from chameleon.hardware.blueprints import Blueprint, load_blueprints, validate


def blueprint_for_target(target: Mapping[str, Any] | Any) -> Blueprint:
    """Resolve a TVM target (its dict form, ``tvm.target.Target(...).export()``) to a blueprint.

    Rules, first match wins:

    1. ``tag`` equals a table entry's ``tvm_tag`` -> that entry. ``Target(tag).export()`` drops
       the tag; rule 2 recognises most exported tags, but keep ``"tag"`` in the dict to tell
       apart boards whose exports are identical (jetson-tx1 / jetson-nano, rtx-3090 / rtx-3080).
    2. ``kind == "cuda"``: ``arch`` ``sm_XY[a]`` -> the GPU entries with compute capability
       ``X.Y``. With several, the first whose tag's own export agrees with the target on
       ``max_shared_memory_per_block``, ``registers_per_block``, ``l2_cache_size_bytes`` and the
       host's ``num-cores``/``mcpu`` (this tells ``nvidia/jetson-agx-orin-64gb`` from
       ``nvidia/jetson-orin-nano``); before that, the only entry whose L2 size equals the
       target's ``l2_cache_size_bytes`` (a local GPU's target carries it: H100 vs H200, which
       has no TVM tag); otherwise the first in file order (``sm_87`` ->
       jetson-orin-nano, ``sm_86`` -> rtx-3080, ``sm_72`` -> jetson-xavier-nx).
    3. ``kind == "llvm"`` with no ``mcpu`` or the host's ``mcpu`` (and no foreign ``mtriple``)
       -> ``host``. Without ``mcpu`` TVM compiles for the generic ISA of the triple, but the
       code still runs on this machine, so the host's numbers apply.
    4. ``kind == "llvm"`` with another ``mcpu``: LLVM says which ISA that CPU has (avx512 >
       avx2 > avx > sse; sve > neon) -> the CPU entry of that ISA (falling back to the next
       narrower one), preferring one whose ``llvm_mcpu`` equals the target's.

    For CPUs, the target's ``num-cores`` (when given) replaces the entry's ``cores``.
    """
    if hasattr(target, "export"):
        target = dict(target.export())
    table = load_blueprints()
    tag = str(target.get("tag", "") or "")
    for bp in table.values():
        if tag and bp.fields.get("tvm_tag") == tag:
            return bp
    if tag and "kind" not in target:  # a bare tag that no entry names: expand it
        import tvm

        try:
            target = dict(tvm.target.Target(tag).export())
        except Exception as e:
            raise UsageError(f"unknown TVM target tag {tag!r}; see tvm.target.list_tags()") from e
    kind = str(target.get("kind", ""))
    if kind == "cuda":
        return _resolve_cuda(target, table)
    if kind == "llvm":
        from chameleon.hardware.host_cpu import detect_host_blueprint, host_llvm_cpu, host_llvm_triple

        mcpu = str(target.get("mcpu", "") or "")
        triple = str(target.get("mtriple", "") or "")
        same_arch = not triple or triple.split("-")[0] == host_llvm_triple().split("-")[0]
        if same_arch and mcpu in ("", host_llvm_cpu()):
            bp = detect_host_blueprint()
        else:
            bp = _resolve_cpu(mcpu, triple or host_llvm_triple(), table)
        return _with_cores(bp, target.get("num-cores"))
    raise UsageError(f"no blueprint for target kind {kind!r}; supported kinds: cuda, llvm")


def _resolve_cuda(target: Mapping[str, Any], table: dict[str, Blueprint]) -> Blueprint:
    arch = str(target.get("arch", "") or "")
    m = re.fullmatch(r"sm_(\d+)(\d)[a-z]?", arch)
    if not m:
        raise ChameleonError(
            f"cuda target has arch {arch!r}; set 'arch' (e.g. 'sm_87') or use a tag such as "
            "nvidia/jetson-orin-nano"
        )
    cc = f"{int(m.group(1))}.{m.group(2)}"
    cands = [b for b in table.values() if b.kind == "gpu" and b.fields["compute_capability"] == cc]
    if not cands:
        known = sorted({f"{b.fields['compute_capability']}" for b in table.values() if b.kind == "gpu"})
        raise ChameleonError(
            f"no GPU blueprint has compute capability {cc} ({arch}); known: {', '.join(known)}; "
            "add the device to blueprints.json"
        )
    l2 = target.get("l2_cache_size_bytes")
    same_l2 = [b for b in cands if l2 is not None and int(b.fields["l2_cache_kb"]) * 1024 == int(l2)]
    if len(same_l2) == 1:  # a local GPU reports its L2: it tells H100 (50 MB) from H200 (60 MB)
        return same_l2[0]
    want = _fingerprint(target)
    if len(cands) > 1 and want:
        for bp in cands:
            tag = str(bp.fields["tvm_tag"])
            if tag and _tag_fingerprint(tag).items() >= want.items():
                return bp
    return cands[0]


def _fingerprint(t: Mapping[str, Any]) -> dict[str, str]:
    keys = ("max_shared_memory_per_block", "registers_per_block", "l2_cache_size_bytes")
    fp = {k: str(t[k]) for k in keys if k in t}
    host = t.get("host")
    if host is not None and hasattr(host, "get") and not isinstance(host, str):
        fp.update({f"host.{k}": str(host[k]) for k in ("num-cores", "mcpu") if k in host})
    return fp


@lru_cache(maxsize=64)
def _tag_fingerprint(tag: str) -> dict[str, str]:
    import tvm

    return _fingerprint(tvm.target.Target(tag).export())


def _resolve_cpu(mcpu: str, triple: str, table: dict[str, Blueprint]) -> Blueprint:
    import tvm
    from tvm.target import codegen

    if mcpu and not codegen.llvm_is_valid_cpu(mcpu, triple):
        raise ChameleonError(f"LLVM does not know mcpu {mcpu!r} for {triple}; see `llc -mcpu=help`")
    spec: dict[str, Any] = {"kind": "llvm", "mtriple": triple}
    if mcpu:
        spec["mcpu"] = mcpu
    tgt = tvm.target.Target(spec)
    order = ("sve", "neon") if triple.startswith(("aarch64", "arm64")) else ("avx512", "avx2", "avx", "sse")
    llvm_feature = {"sve": "sve", "neon": "neon", "avx512": "avx512f", "avx2": "avx2", "avx": "avx"}
    has = [i for i in order if i == "sse" or codegen.llvm_cpu_has_features([llvm_feature[i]], tgt)]
    for isa in has:
        cands = [b for b in table.values() if b.kind == "cpu" and b.fields["isa"] == isa]
        if cands:
            return next((b for b in cands if b.fields["llvm_mcpu"] == mcpu), cands[0])
    isas = sorted({str(b.fields["isa"]) for b in table.values() if b.kind == "cpu"})
    raise ChameleonError(
        f"no CPU blueprint for mcpu {mcpu!r} ({triple}, ISA {has[0] if has else '?'}); "
        f"entries exist for: {', '.join(isas)}; add one to blueprints.json"
    )


def _with_cores(bp: Blueprint, cores: Any) -> Blueprint:
    if cores is None or int(cores) <= 0 or int(cores) == bp.fields["cores"]:
        return bp
    out = Blueprint(
        name=bp.name,
        kind=bp.kind,
        fields={**bp.fields, "cores": int(cores)},
        source=bp.source,
        description=f"{bp.description} (cores: {int(cores)}, the target's num-cores)".strip(),
    )
    validate(out)
    return out
