"""KnobSpace: every sketch of a task, configurations over their knobs, and their programs.

A configuration is ``(sketch index, option index per knob of that sketch)``. ``materialize`` turns
one into a schedule the way MetaSchedule's own strategies do (``ThreadedTraceApply`` in
``src/s_tir/meta_schedule/utils.h``): replay the trace with the chosen decisions on a fresh
schedule, ``enter_postproc()``, then run the task's postprocessors in order.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Any, TypeVar

import numpy as np
from tvm.ir import IRModule
from tvm.s_tir.meta_schedule import MeasureCandidate
from tvm.s_tir.meta_schedule.arg_info import ArgInfo
from tvm.s_tir.schedule import Schedule, Trace

from chameleon.space.knobs import Knob, Sketch, SpaceConfig
from chameleon.space.traces import (
    json_decision,
    normalize_decision,
    plain_json,
    replay,
    simplify,
    trace_signature,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def map_threads(fn: Callable[[T], R], items: Sequence[T], threads: int) -> list[R]:
    """``[fn(x) for x in items]`` on up to ``threads`` threads. For replays and postprocessors:
    TVM's FFI releases the GIL inside C++ calls, so they run in parallel, as in MetaSchedule's
    own ``ThreadedTraceApply``; the results and their order are those of the plain loop."""
    if threads <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(threads, len(items))) as pool:
        return list(pool.map(fn, items))


Config = tuple[int, tuple[int, ...]]
"""(sketch index, option index per knob of that sketch); hashable."""


class KnobSpace:
    """Chameleon's view of a task's MetaSchedule design spaces."""

    def __init__(
        self,
        *,
        mod: IRModule,
        sketches: Sequence[Sketch],
        postprocs: Sequence[Any],
        precheck: Callable[[Schedule], str | None] | None = None,
    ) -> None:
        if not sketches:
            raise ValueError("a knob space needs at least one sketch")
        self.mod = mod
        self.sketches: tuple[Sketch, ...] = tuple(sketches)
        self.postprocs = list(postprocs)
        self.precheck = precheck
        """Reason a replayed schedule will fail the postprocessors, checked before running them
        (``tvm_glue.gpu_precheck`` on GPU targets); None: always run them."""
        self.prechecked = 0
        """Configurations the precheck rejected."""
        self._lock = threading.Lock()
        self._by_signature = {s.signature: i for i, s in enumerate(self.sketches)}
        self.num_knobs_max = max(s.num_knobs for s in self.sketches)
        self._tile_parts = max(
            [len(k.options[0]) for s in self.sketches for k in s.knobs if k.kind == "tile"] or [1]
        )
        self.knob_width = 1 + max(self._tile_parts, 2)
        """Feature columns per knob slot (normalized index + values)."""
        self._tables = [_feature_table(s, self.knob_width) for s in self.sketches]
        n, kmax = len(self.sketches), self.num_knobs_max
        self._denoms = np.ones((n, max(kmax, 1)), dtype=np.float32)
        self._masks = np.zeros((n, max(kmax, 1)), dtype=bool)
        for i, s in enumerate(self.sketches):
            self._denoms[i, : s.num_knobs] = np.maximum(s.option_counts - 1, 1)
            self._masks[i, : s.num_knobs] = True

    @classmethod
    def from_design_spaces(
        cls,
        *,
        mod: IRModule,
        design_spaces: Sequence[Schedule | Trace],
        postprocs: Sequence[Any],
        config: SpaceConfig | None = None,
        precheck: Callable[[Schedule], str | None] | None = None,
    ) -> KnobSpace:
        """Build the space of ``TuneContext.generate_design_space()`` for ``ctx.mod``.

        ``postprocs`` are the task's initialized postprocessors (``ctx.space_generator.postprocs``);
        MetaSchedule's ``EvolutionarySearch`` also shares the context's postprocessor objects
        between its threads. Sketches with the same structure as an earlier one are dropped.
        """
        sketches: list[Sketch] = []
        seen: set[tuple[str, ...]] = set()
        for i, space in enumerate(design_spaces):
            sketch = Sketch.from_design_space(mod=mod, design_space=space, config=config)
            if sketch.signature in seen:
                logger.info("design space %d duplicates an earlier one; dropped", i)
                continue
            seen.add(sketch.signature)
            sketches.append(sketch)
        space = cls(mod=mod, sketches=sketches, postprocs=postprocs, precheck=precheck)
        logger.info(
            "knob space: %d sketches, knobs %s, %.3g configurations",
            len(sketches),
            [s.num_knobs for s in sketches],
            float(space.size()),
        )
        return space

    # --------------------------------------------------------------------- configurations

    @property
    def feature_width(self) -> int:
        """Columns of :meth:`features`: sketch one-hot + ``num_knobs_max * knob_width``."""
        return len(self.sketches) + self.num_knobs_max * self.knob_width

    def knobs(self, sketch_index: int) -> tuple[Knob, ...]:
        """The knobs of one sketch."""
        return self.sketches[sketch_index].knobs

    def option_counts(self, sketch_index: int) -> np.ndarray:
        """Number of options per knob of one sketch (int64)."""
        return self.sketches[sketch_index].option_counts

    def size(self) -> int:
        """Total number of configurations (Python int; may be huge)."""
        return sum(s.size() for s in self.sketches)

    def log10_size(self) -> float:
        """log10 of :meth:`size`."""
        return math.log10(self.size())

    def validate(self, config: Config) -> None:
        """Raise ValueError unless ``config`` is a configuration of this space."""
        s, idx = config
        if not 0 <= s < len(self.sketches):
            raise ValueError(f"sketch index {s} out of range [0, {len(self.sketches)})")
        counts = self.sketches[s].option_counts
        if len(idx) != len(counts) or any(not 0 <= i < c for i, c in zip(idx, counts, strict=True)):
            raise ValueError(f"option indices {idx} do not fit sketch {s} with counts {counts.tolist()}")

    def default_configs(self) -> list[Config]:
        """Each sketch with its own decisions."""
        return [(i, s.default_config()) for i, s in enumerate(self.sketches)]

    def random_config(self, rng: np.random.Generator) -> Config:
        """A uniformly random sketch, then a uniformly random option for each knob."""
        s = int(rng.integers(len(self.sketches)))
        counts = self.sketches[s].option_counts
        return s, tuple(int(i) for i in rng.integers(0, counts))

    def sample_config(self, rng: np.random.Generator) -> Config | None:
        """A configuration drawn the way MetaSchedule samples a design space.

        A uniformly random sketch is replayed with every decision forgotten, so each ``Sample*``
        instruction draws from its own distribution (``SampleCategorical`` uses its probabilities,
        ``SampleComputeLocation`` picks among the locations valid under the tiles sampled before
        it, so unlike :meth:`random_config` its draws are almost always valid programs). This
        is the distribution of MetaSchedule's ``ReplayTrace`` and of ``EvolutionarySearch``'s
        initial population. None when the sample decodes to no configuration of this space.
        """
        drawn = self.sample(rng)
        return None if drawn is None else drawn[0]

    def sample(self, rng: np.random.Generator) -> tuple[Config, Schedule] | None:
        """:meth:`sample_config` and the schedule it replayed, which :meth:`materialize` can take
        instead of replaying the configuration again."""
        return self._sample_drawn(self._draw(rng))

    def sample_many(
        self,
        rng: np.random.Generator,
        n: int,
        *,
        threads: int = 1,
        sketches: Sequence[int] | None = None,
    ) -> list[tuple[Config, Schedule] | None]:
        """``n`` calls of :meth:`sample`, replayed on up to ``threads`` threads: the same draws
        from ``rng``, in the same order, and the same results as one call after another.
        ``sketches``: the sketch of each of the ``n`` draws instead of a random one (see
        :meth:`even_sketches`)."""
        if sketches is None:
            draws = [self._draw(rng) for _ in range(n)]
        elif len(sketches) != n:
            raise ValueError(f"{len(sketches)} sketches for {n} draws")
        else:
            draws = [self._draw(rng, sketch=int(s)) for s in sketches]
        return map_threads(self._sample_drawn, draws, threads)

    def even_sketches(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` sketch indices that cover the sketches evenly: one random permutation of them
        after another, so any first ``m`` hold each sketch ``m // S`` or ``m // S + 1`` times."""
        count = len(self.sketches)
        rounds = [rng.permutation(count) for _ in range(-(-n // count))]
        return np.concatenate(rounds)[:n] if rounds else np.zeros(0, dtype=np.int64)

    def _draw(self, rng: np.random.Generator, sketch: int | None = None) -> tuple[int, int]:
        """What a sample takes from ``rng``: a sketch (unless given), then the seed its replay
        samples with."""
        s = int(rng.integers(len(self.sketches))) if sketch is None else sketch
        return s, int(rng.integers(1, 2**30))

    def _sample_drawn(self, drawn: tuple[int, int]) -> tuple[Config, Schedule] | None:
        s, seed = drawn
        try:
            sch = replay(self.mod, self.sketches[s].trace.insts, {}, seed=seed)
        except Exception as err:  # a failed draw is only a lost sample
            logger.debug("sampling sketch %d failed: %s", s, err)
            return None
        config = self.decode(sch.trace)
        return None if config is None else (config, sch)

    def step(self, config: Config, actions: Sequence[int] | np.ndarray) -> Config:
        """Add one action in {-1, 0, +1} per knob, clamped to the option range.

        ``actions`` may be padded to ``num_knobs_max``; entries beyond the sketch's knobs are
        ignored.
        """
        s, idx = config
        counts = self.sketches[s].option_counts
        a = np.asarray(actions, dtype=np.int64)
        if a.shape[0] < len(counts):
            raise ValueError(f"{a.shape[0]} actions for {len(counts)} knobs")
        new = np.clip(np.asarray(idx, dtype=np.int64) + a[: len(counts)], 0, counts - 1)
        return s, tuple(int(i) for i in new)

    # --------------------------------------------------------------------- programs

    def materialize_many(
        self, items: Sequence[tuple[Config, int]], *, threads: int = 1
    ) -> list[Schedule | None]:
        """:meth:`materialize` of each ``(configuration, seed)``, on up to ``threads`` threads."""
        return map_threads(lambda item: self.materialize(item[0], seed=item[1]), items, threads)

    def materialize(
        self, config: Config, *, seed: int = 1, replayed: Schedule | None = None
    ) -> Schedule | None:
        """The post-processed schedule of ``config``; None when it is not a valid program.

        TVM does not reject every invalid decision: ``SamplePerfectTile`` silently repairs a tile
        whose product does not match the (possibly changed) loop, and ``SampleComputeLocation``
        clamps a location that is not valid under the chosen tiles to the nearest valid one below.
        The decisions are therefore read back from the replayed trace, and any difference from
        the requested ones makes the configuration invalid, as do replay errors and postprocessor
        failures. ``replayed``: the schedule :meth:`sample` drew ``config`` from (its decisions
        are the configuration's by construction); it is post-processed in place, not replayed.
        """
        self.validate(config)
        s, idx = config
        sketch = self.sketches[s]
        try:
            sch = replayed
            if sch is None:
                sch = replay(self.mod, sketch.trace.insts, sketch.decisions(idx), seed=seed)
                insts = sch.trace.insts
                for knob, j in zip(sketch.knobs, idx, strict=True):
                    got = normalize_decision(sch.trace.get_decision(insts[knob.inst_index]))
                    if got != knob.options[j]:
                        logger.debug("%s: %s requested, %s applied", knob.name, knob.options[j], got)
                        return None
            reason = self.precheck(sch) if self.precheck is not None else None
            if reason is not None:
                with self._lock:
                    self.prechecked += 1
                logger.debug("%s rejected before the postprocessors: %s", config, reason)
                return None
            sch.enter_postproc()
            for p in self.postprocs:
                if not p.apply(sch):
                    logger.debug("postproc %s rejected %s", type(p).__name__, config)
                    return None
        except Exception as err:  # any TVM failure means "not a valid program"
            logger.debug("config %s failed: %s", config, err)
            return None
        return sch

    def decode(self, trace: Trace) -> Config | None:
        """The configuration a trace realizes (a database record, a measured candidate, an
        evolutionary-search sample); None when no sketch has its structure or a decision is not
        an option (e.g. ``MutateParallel`` changed an annotation, which is no knob)."""
        simplified = simplify(trace)
        s = self._by_signature.get(trace_signature(simplified))
        if s is None:
            return None
        idx = self.sketches[s].decode_aligned(simplified)
        return None if idx is None else (s, idx)

    @cached_property
    def _by_json_insts(self) -> dict[str, int]:
        return {
            json.dumps(plain_json(s.trace.as_json(remove_postproc=True))[0]): i
            for i, s in enumerate(self.sketches)
        }

    def decode_json(self, trace_json: Sequence) -> Config | None:
        """:meth:`decode` for a trace in TVM's JSON form (``[instructions, decisions]``, as a
        database line holds it), without replaying it: about 1000x faster.

        Only a trace whose instructions before ``EnterPostproc`` are exactly a sketch's simplified
        instructions is decoded here, which is what MetaSchedule writes for a sampled sketch. None
        otherwise; a caller that must not miss a record replays it and calls :meth:`decode`.
        """
        insts, decisions = trace_json[0], trace_json[1]
        end = next((i for i, inst in enumerate(insts) if inst[0] == "EnterPostproc"), len(insts))
        s = self._by_json_insts.get(json.dumps(plain_json(insts[:end])))
        if s is None:
            return None
        chosen = {int(i): json_decision(d) for i, d in decisions if int(i) < end}
        sketch = self.sketches[s]
        if any(chosen.get(i) != want for i, want in sketch.fixed.items()):
            return None
        idx = []
        for knob in sketch.knobs:
            j = knob.index_of(chosen.get(knob.inst_index))
            if j is None:
                return None
            idx.append(j)
        return s, tuple(idx)

    def decode_trace_fast(self, trace: Trace) -> Config | None:
        """:meth:`decode`, by way of :meth:`decode_json` where the trace allows it (resuming from
        a log of thousands of records: no replay for the ones MetaSchedule sampled verbatim)."""
        config = self.decode_json(plain_json(trace.as_json()))
        return config if config is not None else self.decode(trace)

    # --------------------------------------------------------------------- features

    def as_arrays(self, configs: Sequence[Config]) -> tuple[np.ndarray, np.ndarray]:
        """``(sketch index (N,), option indices (N, num_knobs_max) padded with 0)``, int64."""
        n = len(configs)
        sketch_ids = np.fromiter((c[0] for c in configs), dtype=np.int64, count=n)
        idx = np.zeros((n, max(self.num_knobs_max, 1)), dtype=np.int64)
        for s, sketch in enumerate(self.sketches):
            rows = np.flatnonzero(sketch_ids == s)
            k = sketch.num_knobs
            if rows.size and k:
                idx[rows, :k] = np.array([configs[r][1] for r in rows.tolist()], dtype=np.int64)
        return sketch_ids, idx

    def features(self, configs: Sequence[Config]) -> np.ndarray:
        """Knob-level features, float32 of shape ``(len(configs), feature_width)``.

        Columns: sketch one-hot, then per knob slot ``knob_width`` values: the normalized option
        index, then for a tile the log2 of each factor, for a categorical its value (signed
        log2(1+|v|), normalized by the largest), for a compute location its loop depth normalized
        to [0, 1] (root 0) and an inline flag. Slots beyond a sketch's knobs are 0.
        """
        sketch_ids, idx = self.as_arrays(configs)
        return self.features_from_arrays(sketch_ids, idx)

    def features_from_arrays(self, sketch_ids: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """:meth:`features` from :meth:`as_arrays` output."""
        n, ns = sketch_ids.shape[0], len(self.sketches)
        out = np.zeros((n, self.feature_width), dtype=np.float32)
        out[np.arange(n), sketch_ids] = 1.0
        for s, sketch in enumerate(self.sketches):
            k = sketch.num_knobs
            rows = np.flatnonzero(sketch_ids == s)
            if rows.size == 0 or k == 0:
                continue
            block = self._tables[s][np.arange(k)[None, :], idx[rows, :k]]  # (m, k, width)
            out[rows, ns : ns + k * self.knob_width] = block.reshape(rows.size, -1)
        return out

    def normalized_indices(self, configs: Sequence[Config]) -> tuple[np.ndarray, np.ndarray]:
        """``(index / max(n_options - 1, 1) as float32, active-knob mask as bool)``, both of shape
        ``(N, max(num_knobs_max, 1))``; inactive slots are 0."""
        sketch_ids, idx = self.as_arrays(configs)
        mask = self._masks[sketch_ids]
        values = (idx / self._denoms[sketch_ids]).astype(np.float32)
        values[~mask] = 0.0
        return values, mask


def _feature_table(sketch: Sketch, width: int) -> np.ndarray:
    """``(num_knobs, max options, width)`` float32: the feature slot of every option."""
    most = int(sketch.option_counts.max()) if sketch.num_knobs else 1
    table = np.zeros((sketch.num_knobs, most, width), dtype=np.float32)
    for k, knob in enumerate(sketch.knobs):
        n = knob.num_options
        table[k, :n, 0] = np.arange(n) / max(n - 1, 1)
        if knob.kind == "tile":
            table[k, :n, 1 : 1 + len(knob.options[0])] = np.log2(np.array(knob.options, dtype=np.float64))
        elif knob.kind == "categorical":
            vals = np.array(knob.candidates, dtype=np.float64)
            logv = np.sign(vals) * np.log2(1.0 + np.abs(vals))
            table[k, :n, 1] = logv / max(float(np.abs(logv).max()), 1e-9)
        else:
            loc = np.array(knob.options, dtype=np.float64)
            table[k, :n, 1] = np.maximum(loc + 1.0, 0.0) / max(float(loc.max()) + 1.0, 1.0)
            table[k, :n, 2] = loc == -2
    return table


def to_measure_candidate(sch: Schedule) -> MeasureCandidate:
    """A MetaSchedule measure candidate for a materialized schedule."""
    return MeasureCandidate(sch, ArgInfo.from_entry_func(sch.mod, remove_preproc=True))
