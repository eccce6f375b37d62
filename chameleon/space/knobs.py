"""Knobs: the tunable decisions of one MetaSchedule design space ("sketch").

A design-space trace contains ``Sample*`` instructions; their decisions are Chameleon's knobs.
Each knob gets an enumerable, ordered option list so that a +1/-1 index step is a small change
of the program:

* ``SamplePerfectTile`` -> ``"tile"``: every factorization of the loop extent into ``n`` parts
  whose innermost part is at most ``max_innermost_factor`` (see :func:`tile_options`).
* ``SampleCategorical`` -> ``"categorical"``: the candidate indices, in the given order.
* ``SampleComputeLocation`` -> ``"compute_location"``: the valid locations, ascending
  (``-2`` inline, ``-1`` root, then loop positions from outer to inner; see
  :func:`_probe_locations`).

Other ``Sample*`` kinds (``SamplePartitionedTile``, ...) are kept at the sketch's decision.

Traces are used in their simplified form (``trace.simplified(remove_postproc=True)``), the form
``EvolutionarySearch`` replays, so knob instruction indices are the same for a sketch, for any
re-sampled or mutated candidate of it, and for a database record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from tvm.ir import IRModule
from tvm.s_tir.schedule import Schedule, Trace

logger = logging.getLogger(__name__)

KnobKind = Literal["tile", "categorical", "compute_location"]
TileOrder = Literal["lexicographic", "snake"]

_KIND_BY_INST = {
    "SamplePerfectTile": "tile",
    "SampleCategorical": "categorical",
    "SampleComputeLocation": "compute_location",
}
_PROBE_START = 1 << 30  # larger than any loop position: the first probe reads back the deepest location
_MAX_PROBES = 256


@dataclass(frozen=True, kw_only=True)
class SpaceConfig:
    """How a knob space is built from design spaces."""

    tile_order: TileOrder = "lexicographic"
    """Order of tile options: ``"lexicographic"`` (ascending tuples, as AutoTVM's split knobs) or
    ``"snake"`` (reflected lexicographic: every other block of a prefix is reversed, so that the
    step across a prefix boundary also moves a single factor between two loop levels)."""

    location_resamples: int = 2
    """Random re-samples of each sketch used to find compute locations that are valid only under
    other tile sizes (the sketch's own tiles and a maximally split tiling are always probed)."""

    seed: int = 1
    """Seed (>= 1) of the random re-samples taken while building the space."""


@dataclass(frozen=True, kw_only=True)
class Knob:
    """One tunable decision of a sketch trace."""

    kind: KnobKind
    """``"tile"``, ``"categorical"`` or ``"compute_location"``."""

    inst_index: int
    """Index of the ``Sample*`` instruction in the sketch's simplified trace."""

    options: tuple[Any, ...]
    """Decision value of each option: a tuple of ints (tile), a candidate index (categorical), a
    location (compute location: -2 inline, -1 root, >= 0 loop position)."""

    name: str
    """Short readable name, e.g. ``tile.ff`` or ``unroll_explicit``."""

    extent: int | None = None
    """Tile knobs: extent of the loop being split."""

    candidates: tuple[int, ...] = ()
    """Categorical knobs: the candidate values (the decision is an index into them)."""

    _lookup: dict[Any, int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.options:
            raise ValueError(f"knob {self.name} has no options")
        object.__setattr__(self, "_lookup", {v: i for i, v in enumerate(self.options)})

    @property
    def num_options(self) -> int:
        """Number of options."""
        return len(self.options)

    def index_of(self, decision: Any) -> int | None:
        """Option index of a (normalized) decision value; None if it is not an option."""
        return self._lookup.get(decision)


# ----------------------------------------------------------------------------- option lists


def divisors(n: int) -> list[int]:
    """Ascending divisors of ``n`` (n >= 1)."""
    small, large = [], []
    d = 1
    while d * d <= n:
        if n % d == 0:
            small.append(d)
            if d * d != n:
                large.append(n // d)
        d += 1
    return small + large[::-1]


@lru_cache(maxsize=4096)
def tile_options(
    extent: int, parts: int, max_innermost: int, order: TileOrder = "lexicographic"
) -> tuple[tuple[int, ...], ...]:
    """All factorizations of ``extent`` into ``parts`` factors with innermost <= ``max_innermost``.

    ``max_innermost <= 0`` means no limit. The order is lexicographic over the factor tuples:
    neighbouring options share the longest possible prefix of outer factors, so a +1/-1 step
    re-splits only the innermost levels whose prefix is shared, and it is the enumeration order
    of AutoTVM's split knobs that Chameleon's decrement/stay/increment actions were designed for.
    ``"snake"`` reverses every other block at each level, which keeps that property inside a block
    and turns each block boundary into a move of one factor between two levels.
    """
    if extent < 1 or parts < 1:
        raise ValueError(f"cannot tile extent {extent} into {parts} parts")
    if parts == 1:
        return ((extent,),) if max_innermost <= 0 or extent <= max_innermost else ()
    out: list[tuple[int, ...]] = []
    block = 0
    for f in divisors(extent):
        rest = tile_options(extent // f, parts - 1, max_innermost, order)
        if not rest:
            continue
        if order == "snake" and block % 2 == 1:
            rest = rest[::-1]
        out.extend((f, *r) for r in rest)
        block += 1
    return tuple(out)


# ----------------------------------------------------------------------------- trace helpers


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
    sch = Schedule(mod, seed=seed, error_render_level="none")
    trace.apply_to_schedule(sch, remove_postproc=True, decision_provider=provider)
    return sch


@dataclass
class _Survey:
    """What a replay reveals about each sampling instruction."""

    extents: dict[int, int | None] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)


def _survey(mod: IRModule, trace: Trace, decisions: Mapping[int, Any], seed: int) -> tuple[_Survey, Schedule]:
    insts = list(trace.insts)
    position = {inst: i for i, inst in enumerate(insts)}
    survey = _Survey()
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
            survey.extents[i] = int(ext.value) if hasattr(ext, "value") else None
            survey.names[i] = f"tile.{loop.loop_var.name}"
        elif kind == "SampleComputeLocation":
            survey.names[i] = f"compute_at.{sch.get(inputs[0]).name_hint}"
        return decision

    sch = Schedule(mod, seed=seed, error_render_level="none")
    holder.append(sch)
    trace_obj = Trace(insts, {insts[i]: _to_tvm(d) for i, d in decisions.items()})
    trace_obj.apply_to_schedule(sch, remove_postproc=True, decision_provider=provider)
    return survey, sch


def _categorical_name(insts: Sequence[Any], i: int) -> str:
    """The annotation key that consumes a categorical's output, e.g. ``unroll_explicit``."""
    out = insts[i].outputs[0]
    for inst in insts[i + 1 :]:
        if inst.kind.name == "Annotate" and any(getattr(x, "same_as", None) and x.same_as(out) for x in inst.inputs):
            return str(inst.attrs[0]).removeprefix("meta_schedule.")
    return f"categorical{i}"


def _probe_locations(mod: IRModule, insts: Sequence[Any], base: Mapping[int, Any], index: int) -> set[int]:
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
    except Exception as err:  # noqa: BLE001 - a failed probe only narrows the option list
        logger.debug("compute-location probe of inst %d failed: %s", index, err)
    return found


def _location_settings(
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


# ----------------------------------------------------------------------------- sketch


class Sketch:
    """One design space: its simplified trace, its knobs and its fixed decisions."""

    def __init__(
        self,
        *,
        trace: Trace,
        knobs: Sequence[Knob],
        fixed: Mapping[int, Any],
        defaults: Sequence[int],
        signature: tuple[str, ...] | None = None,
    ) -> None:
        self.trace = trace
        self.knobs: tuple[Knob, ...] = tuple(knobs)
        self.fixed: dict[int, Any] = dict(fixed)
        self.signature = signature if signature is not None else trace_signature(trace)
        self._defaults = tuple(int(i) for i in defaults)
        self._counts = np.array([k.num_options for k in self.knobs], dtype=np.int64)
        if len(self._defaults) != len(self.knobs):
            raise ValueError("one default option index per knob is required")

    @classmethod
    def from_design_space(
        cls, *, mod: IRModule, design_space: Schedule | Trace, config: SpaceConfig | None = None
    ) -> Sketch:
        """Build the knobs of one design space (a Schedule from ``generate_design_space()``)."""
        config = config or SpaceConfig()
        raw = design_space.trace if isinstance(design_space, Schedule) else design_space
        trace = simplify(raw)
        insts = list(trace.insts)
        own = sampling_decisions(trace)
        survey, _ = _survey(mod, trace, own, seed=config.seed)

        # Random re-samples: tile extents must not depend on other decisions, and their decisions
        # are further settings under which compute locations are probed.
        resamples: list[dict[int, Any]] = []
        varying: set[int] = set()
        for k in range(config.location_resamples):
            try:
                other, sch = _survey(mod, trace, {}, seed=config.seed + 1 + k)
            except Exception as err:  # noqa: BLE001 - an unlucky random sample is skipped
                logger.debug("re-sample %d of a sketch failed: %s", k, err)
                continue
            varying |= {i for i, e in other.extents.items() if e != survey.extents.get(i)}
            resamples.append(sampling_decisions(sch.trace))

        knobs: list[Knob] = []
        fixed: dict[int, Any] = {}
        for i, decision in own.items():
            inst = insts[i]
            kind = _KIND_BY_INST.get(inst.kind.name)
            knob: Knob | None = None
            if kind == "tile" and survey.extents.get(i) is not None and i not in varying:
                parts, max_inner = int(inst.attrs[0]), int(inst.attrs[1])
                opts = tile_options(survey.extents[i], parts, max_inner, config.tile_order)
                if decision in opts:
                    knob = Knob(
                        kind="tile",
                        inst_index=i,
                        options=opts,
                        name=survey.names[i],
                        extent=survey.extents[i],
                    )
            elif kind == "categorical":
                cands = tuple(int(c) for c in inst.attrs[0])
                knob = Knob(
                    kind="categorical",
                    inst_index=i,
                    options=tuple(range(len(cands))),
                    name=_categorical_name(insts, i),
                    candidates=cands,
                )
            elif kind == "compute_location":
                knob = cls._location_knob(mod, insts, i, own, resamples, survey)
            if knob is None:
                if kind is not None:
                    logger.warning("%s at instruction %d kept fixed at %s", inst.kind.name, i, decision)
                fixed[i] = decision
            else:
                knobs.append(knob)
        knobs = _unique_names(knobs)
        defaults = [k.index_of(own[k.inst_index]) for k in knobs]
        return cls(trace=trace, knobs=knobs, fixed=fixed, defaults=defaults)  # type: ignore[arg-type]

    @staticmethod
    def _location_knob(
        mod: IRModule,
        insts: Sequence[Any],
        i: int,
        own: Mapping[int, Any],
        resamples: Sequence[Mapping[int, Any]],
        survey: _Survey,
    ) -> Knob:
        locations = {int(own[i])} | {int(r[i]) for r in resamples if i in r}
        for setting in (*_location_settings(insts, own, survey.extents, i), *resamples):
            locations |= _probe_locations(mod, insts, setting, i)
        return Knob(
            kind="compute_location",
            inst_index=i,
            options=tuple(sorted(locations)),
            name=survey.names.get(i, f"compute_at{i}"),
        )

    # --------------------------------------------------------------------- queries

    @property
    def num_knobs(self) -> int:
        """Number of knobs."""
        return len(self.knobs)

    @property
    def option_counts(self) -> np.ndarray:
        """Number of options per knob (int64, read-only copy)."""
        return self._counts.copy()

    def size(self) -> int:
        """Number of configurations of this sketch (Python int)."""
        total = 1
        for k in self.knobs:
            total *= k.num_options
        return total

    def default_config(self) -> tuple[int, ...]:
        """Option indices of the sketch's own decisions."""
        return self._defaults

    def decisions(self, indices: Sequence[int]) -> dict[int, Any]:
        """``{instruction index: decision}`` for every sampling instruction under ``indices``."""
        out = dict(self.fixed)
        for knob, j in zip(self.knobs, indices, strict=True):
            out[knob.inst_index] = knob.options[j]
        return out

    def decode(self, trace: Trace) -> tuple[int, ...] | None:
        """Option indices of a trace of this sketch; None if it belongs to another sketch or one of
        its decisions is not an option (or a fixed decision differs)."""
        simplified = simplify(trace)
        if trace_signature(simplified) != self.signature:
            return None
        return self.decode_aligned(simplified)

    def decode_aligned(self, simplified: Trace) -> tuple[int, ...] | None:
        """:meth:`decode` for a simplified trace already known to have this sketch's structure."""
        insts = simplified.insts
        for i, want in self.fixed.items():
            if normalize_decision(simplified.get_decision(insts[i])) != want:
                return None
        out: list[int] = []
        for knob in self.knobs:
            j = knob.index_of(normalize_decision(simplified.get_decision(insts[knob.inst_index])))
            if j is None:
                return None
            out.append(j)
        return tuple(out)


def _unique_names(knobs: list[Knob]) -> list[Knob]:
    seen: dict[str, int] = {}
    out = []
    for k in knobs:
        n = seen.get(k.name, 0)
        seen[k.name] = n + 1
        if n:
            k = Knob(
                kind=k.kind,
                inst_index=k.inst_index,
                options=k.options,
                name=f"{k.name}#{n + 1}",
                extent=k.extent,
                candidates=k.candidates,
            )
        out.append(k)
    return out
