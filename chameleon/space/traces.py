"""Trace plumbing: decisions, structure signatures, replays, and compute-location probing."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tvm.ir import IRModule
from tvm.s_tir.schedule import Schedule, Trace

from chameleon.space.options import tile_options

logger = logging.getLogger(__name__)

_PROBE_START = 1 << 30  # larger than any loop position: the first probe reads back the deepest location
_MAX_PROBES = 256


def normalize_decision(decision: Any) -> Any:
    """A decision as plain, hashable Python values (tvm Arrays -> tuples, IntImm -> int)."""
    if decision is None or isinstance(decision, bool | str):
        return decision
    if isinstance(decision, int | np.integer):
        return int(decision)
    if isinstance(decision, float):
        return decision
    if hasattr(decision, "value"):  # IntImm / FloatImm
        return decision.value
    return tuple(normalize_decision(d) for d in decision)


def plain_json(value: Any) -> Any:
    """A TVM JSON value (``Trace.as_json()`` or a parsed database line) in one canonical plain
    form, so the two compare equal: TVM writes booleans as 0/1 and may drop a float's ``.0``."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if hasattr(value, "value"):  # IntImm / FloatImm / Bool
        return plain_json(value.value)
    if hasattr(value, "items"):
        return {str(k): plain_json(v) for k, v in value.items()}
    return [plain_json(v) for v in value]


def json_decision(value: Any) -> Any:
    """A decision parsed from a database line, in :func:`normalize_decision`'s form."""
    return tuple(json_decision(v) for v in value) if isinstance(value, list) else value


def _to_tvm(decision: Any) -> Any:
    return list(decision) if isinstance(decision, tuple) else decision


def simplify(trace: Trace) -> Trace:
    """The dead-code-eliminated trace without postprocessing instructions."""
    return trace.simplified(remove_postproc=True)


def trace_signature(simplified: Trace) -> tuple[str, ...]:
    """Structure of a simplified trace, decisions left out: equal for a sketch and its samples."""
    return tuple(str(s) for s in Trace(simplified.insts, {}).as_python(remove_postproc=True))


def sampling_decisions(trace: Trace) -> dict[int, Any]:
    """``{instruction index: normalized decision}`` for every ``Sample*`` instruction."""
    out: dict[int, Any] = {}
    for i, inst in enumerate(trace.insts):
        if inst.kind.name.startswith("Sample"):
            out[i] = normalize_decision(trace.get_decision(inst))
    return out


_BASES: dict[int, tuple[IRModule, Schedule]] = {}
_MAX_BASES = 64


def fresh_schedule(mod: IRModule, seed: int) -> Schedule:
    """A new traced schedule of ``mod`` seeded with ``seed``: a copy of one built once per module.

    ``Schedule(mod)`` analyses the whole module (~2 ms for a fused conv, a third of a sample's
    replay); copying a pristine schedule costs ~0.1 ms and gives the same state, trace and random
    stream. Keyed by the module object, which the cache keeps alive; at most ``_MAX_BASES`` kept.
    """
    entry = _BASES.get(id(mod))
    if entry is None or entry[0] is not mod:
        if len(_BASES) >= _MAX_BASES:
            _BASES.pop(next(iter(_BASES)))
        entry = _BASES[id(mod)] = (mod, Schedule(mod, seed=1, error_render_level="none"))
    sch = entry[1].copy()
    sch.seed(seed)
    return sch


def replay(
    mod: IRModule,
    insts: Sequence[Any],
    decisions: Mapping[int, Any],
    *,
    seed: int = 1,
    provider: Callable[..., Any] | None = None,
) -> Schedule:
    """Apply ``insts`` with ``{index: decision}`` (others re-sampled) to a fresh schedule."""
    trace = Trace(list(insts), {insts[i]: _to_tvm(d) for i, d in decisions.items()})
    sch = fresh_schedule(mod, seed)
    trace.apply_to_schedule(sch, remove_postproc=True, decision_provider=provider)
    return sch


@dataclass
class Survey:
    """What a replay reveals about each sampling instruction."""

    extents: dict[int, int | None] = field(default_factory=dict)
    """Tile instruction index -> extent of the loop it splits (None if not constant)."""

    names: dict[int, str] = field(default_factory=dict)
    """Instruction index -> readable knob name."""


def survey(mod: IRModule, trace: Trace, decisions: Mapping[int, Any], seed: int) -> tuple[Survey, Schedule]:
    """Replay ``trace`` with ``decisions`` (the others sampled from ``seed``), recording each tile's
    loop extent and loop name and each compute location's block name.

    The extent is read while replaying: a design-space schedule's own loop RVs refer to loops that
    its later splits removed (``sch.get`` raises "The loop no longer exists").
    """
    insts = list(trace.insts)
    position = {inst: i for i, inst in enumerate(insts)}
    found = Survey()
    holder: list[Schedule] = []

    def provider(inst: Any, inputs: Any, attrs: Any, decision: Any) -> Any:
        i = position.get(inst)
        kind = inst.kind.name
        if i is None or not kind.startswith("Sample"):
            return decision
        sch = holder[0]
        if kind == "SamplePerfectTile":
            loop = sch.get(inputs[0])
            ext = loop.extent
            found.extents[i] = int(ext.value) if hasattr(ext, "value") else None
            found.names[i] = f"tile.{loop.loop_var.name}"
        elif kind == "SampleComputeLocation":
            found.names[i] = f"compute_at.{sch.get(inputs[0]).name_hint}"
        return decision

    sch = fresh_schedule(mod, seed)
    holder.append(sch)
    trace_obj = Trace(insts, {insts[i]: _to_tvm(d) for i, d in decisions.items()})
    trace_obj.apply_to_schedule(sch, remove_postproc=True, decision_provider=provider)
    return found, sch


def categorical_name(insts: Sequence[Any], i: int) -> str:
    """The annotation key that consumes a categorical's output, e.g. ``unroll_explicit``."""
    out = insts[i].outputs[0]
    for inst in insts[i + 1 :]:
        if inst.kind.name == "Annotate" and any(
            getattr(x, "same_as", None) and x.same_as(out) for x in inst.inputs
        ):
            return str(inst.attrs[0]).removeprefix("meta_schedule.")
    return f"categorical{i}"


def probe_locations(mod: IRModule, insts: Sequence[Any], base: Mapping[int, Any], index: int) -> set[int]:
    """Valid compute locations of instruction ``index`` under the earlier decisions ``base``.

    TVM 0.27 does not expose ``CollectComputeLocation`` to Python, but ``SampleComputeLocation``
    replaces an invalid decision by the nearest valid location below it (or -1 when there is none).
    Probing a huge location reads back the deepest valid one; probing one below each answer walks
    down through all of them; probing -2 tells whether inlining is valid. The trace prefix up to
    the instruction is replayed once, then ``sample_compute_location`` is called on it per probe.
    """
    prefix = list(insts[: index + 1])
    earlier = {j: d for j, d in base.items() if j < index}
    blocks: list[Any] = []

    def capture(inst: Any, inputs: Any, attrs: Any, decision: Any) -> Any:
        if inst.same_as(prefix[index]):
            blocks.append(inputs[0])
        return decision

    def read_back(location: int) -> int:
        # Sampling does not change the IR, so one replayed schedule answers every probe.
        sch.sample_compute_location(blocks[0], decision=location)
        return int(sch.trace.get_decision(sch.trace.insts[-1]))

    found: set[int] = set()
    try:
        sch = replay(mod, prefix, {**earlier, index: -1}, provider=capture)
        location = _PROBE_START
        for _ in range(_MAX_PROBES):
            got = read_back(location)
            found.add(got)
            if got <= -1:
                break
            location = got - 1
        found.add(read_back(-2))
    except Exception as err:  # a failed probe only narrows the option list
        logger.debug("compute-location probe of inst %d failed: %s", index, err)
    return found


def location_settings(
    insts: Sequence[Any], own: Mapping[int, Any], extents: Mapping[int, int | None], index: int
) -> list[dict[int, Any]]:
    """Tile settings under which the compute locations of instruction ``index`` are probed.

    A loop position is a valid location only if that loop is not a unit loop and the non-unit
    loops outside it are in an allowed order, so besides the sketch's own tiles we probe (a) the
    tiling with the most non-unit factors, outermost first, and (b) for every part of every tile
    before ``index``: that part takes the whole extent while the other tiles put theirs as far
    inside as ``max_innermost_factor`` allows (their first lexicographic option).
    """
    tiles = {
        j: tile_options(e, int(insts[j].attrs[0]), int(insts[j].attrs[1]))
        for j, e in extents.items()
        if j < index and e is not None and e > 1 and insts[j].kind.name == "SamplePerfectTile"
    }
    tiles = {j: opts for j, opts in tiles.items() if own.get(j) in opts}
    spread = dict(own)
    inner = dict(own)
    for j, opts in tiles.items():
        spread[j] = max(opts, key=lambda o: (sum(f > 1 for f in o), o))
        inner[j] = opts[0]
    settings = [dict(own), spread, inner]
    for j, opts in tiles.items():
        parts = len(opts[0])
        for p in range(parts):
            whole = tuple(extents[j] if q == p else 1 for q in range(parts))
            if whole in opts and whole != inner[j]:
                settings.append({**inner, j: whole})
    return settings
