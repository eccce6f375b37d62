"""Knobs: the tunable decisions of one MetaSchedule design space ("sketch").

A design-space trace contains ``Sample*`` instructions; their decisions are Chameleon's knobs.
Each knob gets an enumerable, ordered option list so that a +1/-1 index step is a small change
of the program:

* ``SamplePerfectTile`` -> ``"tile"``: every factorization of the loop extent into ``n`` parts
  whose innermost part is at most ``max_innermost_factor`` (see :func:`tile_options`).
* ``SampleCategorical`` -> ``"categorical"``: the candidate indices, in the given order.
* ``SampleComputeLocation`` -> ``"compute_location"``: the valid locations, ascending
  (``-2`` inline, ``-1`` root, then loop positions from outer to inner; see
  :func:`chameleon.space.traces.probe_locations`).

Other ``Sample*`` kinds (``SamplePartitionedTile``, ...) are kept at the sketch's decision.

Traces are used in their simplified form (``trace.simplified(remove_postproc=True)``), the form
``EvolutionarySearch`` replays, so knob instruction indices are the same for a sketch, for any
re-sampled or mutated candidate of it, and for a database record.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from tvm.ir import IRModule
from tvm.s_tir.schedule import Schedule, Trace

from chameleon.space.options import TileOrder, tile_options
from chameleon.space.traces import (
    Survey,
    categorical_name,
    location_settings,
    normalize_decision,
    probe_locations,
    sampling_decisions,
    simplify,
    survey,
    trace_signature,
)

logger = logging.getLogger(__name__)

KnobKind = Literal["tile", "categorical", "compute_location"]

_KIND_BY_INST = {
    "SamplePerfectTile": "tile",
    "SampleCategorical": "categorical",
    "SampleComputeLocation": "compute_location",
}


@dataclass(frozen=True, kw_only=True)
class SpaceConfig:
    """How a knob space is built from design spaces."""

    tile_order: TileOrder = "snake"
    """Order of tile options, ``"snake"`` or ``"lexicographic"``; see :func:`tile_options`."""

    location_resamples: int = 2
    """Random re-samples of each sketch, used to check that tile extents do not depend on other
    decisions and as extra tilings under which compute locations are probed (on top of the
    structured tilings of :func:`chameleon.space.traces.location_settings`)."""

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
        own_survey, _ = survey(mod, trace, own, seed=config.seed)

        # Random re-samples: tile extents must not depend on other decisions, and their decisions
        # are further settings under which compute locations are probed.
        resamples: list[dict[int, Any]] = []
        varying: set[int] = set()
        for k in range(config.location_resamples):
            try:
                other, sch = survey(mod, trace, {}, seed=config.seed + 1 + k)
            except Exception as err:  # an unlucky random sample is skipped
                logger.debug("re-sample %d of a sketch failed: %s", k, err)
                continue
            varying |= {i for i, e in other.extents.items() if e != own_survey.extents.get(i)}
            resamples.append(sampling_decisions(sch.trace))

        knobs: list[Knob] = []
        fixed: dict[int, Any] = {}
        for i, decision in own.items():
            inst = insts[i]
            kind = _KIND_BY_INST.get(inst.kind.name)
            knob: Knob | None = None
            extent = own_survey.extents.get(i)
            if kind == "tile" and extent is not None and i not in varying:
                parts, max_inner = int(inst.attrs[0]), int(inst.attrs[1])
                opts = tile_options(extent, parts, max_inner, config.tile_order)
                if decision in opts:
                    knob = Knob(
                        kind="tile", inst_index=i, options=opts, name=own_survey.names[i], extent=extent
                    )
            elif kind == "categorical":
                cands = tuple(int(c) for c in inst.attrs[0])
                knob = Knob(
                    kind="categorical",
                    inst_index=i,
                    options=tuple(range(len(cands))),
                    name=categorical_name(insts, i),
                    candidates=cands,
                )
            elif kind == "compute_location":
                knob = cls._location_knob(mod, insts, i, own, resamples, own_survey)
            if knob is None:
                if kind is not None:
                    logger.warning("%s at instruction %d kept fixed at %s", inst.kind.name, i, decision)
                fixed[i] = decision
            else:
                knobs.append(knob)
        knobs = _unique_names(knobs)
        defaults = [k.index_of(own[k.inst_index]) for k in knobs]
        if any(d is None for d in defaults):  # options always include the sketch's own decision
            raise AssertionError("a sketch decision is missing from its knob's options")
        return cls(trace=trace, knobs=knobs, fixed=fixed, defaults=defaults)  # type: ignore[arg-type]

    @staticmethod
    def _location_knob(
        mod: IRModule,
        insts: Sequence[Any],
        i: int,
        own: Mapping[int, Any],
        resamples: Sequence[Mapping[int, Any]],
        found: Survey,
    ) -> Knob:
        locations = {int(own[i])} | {int(r[i]) for r in resamples if i in r}
        probed: set[tuple[tuple[int, Any], ...]] = set()
        for setting in (*location_settings(insts, own, found.extents, i), *resamples):
            key = tuple(sorted((j, d) for j, d in setting.items() if j < i))
            if key not in probed:
                probed.add(key)
                locations |= probe_locations(mod, insts, setting, i)
        return Knob(
            kind="compute_location",
            inst_index=i,
            options=tuple(sorted(locations)),
            name=found.names.get(i, f"compute_at{i}"),
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
            k = replace(k, name=f"{k.name}#{n + 1}")
        out.append(k)
    return out
