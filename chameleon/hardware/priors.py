"""Knob priors from a hardware blueprint (Glimpse): which options the device is likely to like.

A prior is a log-weight per configuration, summed from per-knob tables so that tens of thousands
of configurations are scored with a few gathers. Rules (MetaSchedule's default sketches):
- CPU: the innermost factor of the last spatial tile is the loop the postprocessor vectorizes;
  the prior is the share of the SIMD lanes (fp32) its vector registers use, on a log scale
  (:func:`cpu_vector_score`: 16 of 16 lanes 0, 14 -0.05, 8 -0.25, 7 -0.30, a scalar loop -1). On
  the committed ResNet-18 dataset (AVX-512) its Spearman correlation with speed is 0.46-0.51 on
  all four tasks, three conv2d and the dense layer; an earlier multiple/divisor/other rule, which
  scored 7 lanes like a scalar loop, had -0.03 to 0.10.
- GPU: spatial tiles have five levels with ``threadIdx`` at level 2, so the product of those
  factors is the block size: a warp multiple within the device limit scores 0, a block that is not
  a warp multiple -1, one over the limit -3 (the validity check rejects it anyway).
Reduction tiles and categorical knobs get no prior. Priors bias where the agent starts and add a
small bonus to its reward; they never forbid a configuration.
"""

from __future__ import annotations

import numpy as np

from chameleon.hardware.blueprints import Blueprint


def lane_share(elements, lanes):
    """Share of the lanes that ``elements`` fill in the ``ceil(elements / lanes)`` vector registers
    of ``lanes`` each they occupy (7 of 16: 0.44; 24 of 16: 0.75). Used by the CPU prior and the
    CPU validity rule alike."""
    return elements / (np.ceil(elements / lanes) * lanes)


def cpu_vector_score(inner: np.ndarray, lanes: int, *, max_registers: int = 4) -> np.ndarray:
    """Log-prior in [-1, 0] of a vectorised innermost loop of ``inner`` elements on ``lanes``-wide
    fp32 SIMD: the share of lanes its vector registers use (``inner / (ceil(inner / lanes) x
    lanes)``), in log2 and divided by log2(lanes), so a full vector scores 0 and a scalar loop -1;
    wider than ``max_registers`` registers costs as much again per doubling (spills)."""
    scale = max(np.log2(lanes), 1.0)
    used = lane_share(inner, lanes)
    over = np.maximum(inner / (max_registers * lanes), 1.0)
    return np.maximum((np.log2(used) - np.log2(over)) / scale, -1.0)


class BlueprintPrior:
    def __init__(self, *, space, blueprint: Blueprint) -> None:
        self.space = space
        self.blueprint = blueprint
        self.kind = blueprint.kind
        self._tables = [self._sketch_table(s) for s in space.sketches]

    def _sketch_table(self, sketch) -> dict:
        spatial = [j for j, k in enumerate(sketch.knobs) if k.kind == "tile" and len(k.options[0]) >= 4]
        if self.kind == "cpu":
            lanes = max(1, int(self.blueprint.num("simd_width_bits")) // 32)
            most = int(sketch.option_counts.max(initial=1))  # a sketch may have no knob at all
            table = np.zeros((sketch.num_knobs, most), dtype=np.float32)
            if spatial:
                j = spatial[-1]
                inner = np.array([int(option[-1]) for option in sketch.knobs[j].options], dtype=np.float64)
                table[j, : len(inner)] = cpu_vector_score(inner, lanes)
            return {"table": table}
        threads = [
            (j, np.array([int(opt[2]) for opt in sketch.knobs[j].options], dtype=np.int64))
            for j in spatial
            if len(sketch.knobs[j].options[0]) == 5
        ]
        return {"threads": threads}

    def score(self, sketch_ids: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Log-prior of each configuration, (N,) float32, 0 best."""
        out = np.zeros(len(sketch_ids), dtype=np.float32)
        for s, info in enumerate(self._tables):
            rows = np.flatnonzero(sketch_ids == s)
            if rows.size == 0:
                continue
            k = self.space.sketches[s].num_knobs
            if "table" in info and k:
                out[rows] = info["table"][np.arange(k)[None, :], idx[rows, :k]].sum(axis=1)
            elif info.get("threads"):
                block = np.ones(rows.size, dtype=np.int64)
                for j, values in info["threads"]:
                    block *= values[idx[rows, j]]
                warp = int(self.blueprint.num("warp_size"))
                limit = int(self.blueprint.num("max_threads_per_block"))
                out[rows] = np.where(block > limit, -3.0, np.where(block % warp == 0, 0.0, -1.0))
        return out

    def choose(self, pool: list, n: int, rng: np.random.Generator) -> list:
        """``n`` distinct configurations of ``pool``, drawn without replacement in proportion to
        exp(2 x prior) (Gumbel top-k); ``pool`` usually holds MetaSchedule-sampled configurations."""
        if not pool:
            return []
        sketch_ids, idx = self.space.as_arrays(pool)
        keys = self.score(sketch_ids, idx) * 2.0 + rng.gumbel(size=len(pool))
        chosen, seen = [], set()
        for i in np.argsort(-keys):
            if pool[i] not in seen:
                seen.add(pool[i])
                chosen.append(pool[i])
            if len(chosen) == n:
                break
        return chosen
