"""Sample synthesis: replace a cluster representative that cannot be measured.

A representative is *bad* when it is taken (a duplicate, already measured, or already chosen
this round) or invalid (the hardware or the postprocessors reject it). ``synthesize`` then tries,
in order:

1. the representative itself;
2. the other members of its cluster, closest to the centroid first;
3. a config synthesised by majority vote per knob over the members of the representative's
   sketch (ties go to the smallest option index);
4. up to ``max_redraws`` re-draws: the voted config with random knobs set to random other
   options within bounds; the number of knobs perturbed grows from 1 towards all active knobs
   over the tries.

and returns ``None`` if nothing works. Predicates take ``(config, sketch_id)``; ``is_taken`` is
checked first, so a cheap ``is_taken`` spares calls to an expensive ``is_invalid``. A candidate
is never checked twice in one call. Deterministic under ``seed``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

logger = logging.getLogger(__name__)

Predicate = Callable[[np.ndarray, int], bool]
"""``predicate(config (K,) int, sketch_id) -> bool``."""

Source = Literal["representative", "member", "vote", "redraw"]


@dataclass(frozen=True)
class Synthesized:
    """A configuration to measure in place of a cluster's representative."""

    config: np.ndarray
    """(K,) int64 knob indices."""
    sketch_id: int
    """Sketch the configuration belongs to."""
    source: Source
    """Which step of the fallback chain produced it."""


def majority_vote(members: np.ndarray, n_options: np.ndarray) -> np.ndarray:
    """Per knob, the option most members chose (ties: smallest index); inactive knobs are 0."""
    members = np.asarray(members, dtype=np.int64)
    n_options = np.asarray(n_options, dtype=np.int64)
    voted = np.zeros(members.shape[1], dtype=np.int64)
    for k in np.flatnonzero(n_options > 1):
        voted[k] = int(np.bincount(members[:, k], minlength=n_options[k]).argmax())
    return voted


def _redraw(
    voted: np.ndarray,
    n_options: np.ndarray,
    active: np.ndarray,
    try_index: int,
    max_redraws: int,
    rng: np.random.Generator,
) -> np.ndarray:
    num_knobs = 1 + (try_index * (len(active) - 1)) // max(max_redraws - 1, 1)
    knobs = rng.choice(active, size=num_knobs, replace=False)
    candidate = voted.copy()
    # A uniform draw among the other n - 1 options of each chosen knob.
    draws = rng.integers(0, n_options[knobs] - 1)
    candidate[knobs] = draws + (draws >= voted[knobs])
    return candidate


def synthesize(
    *,
    members: np.ndarray,
    sketch_ids: np.ndarray,
    n_options: np.ndarray,
    is_taken: Predicate,
    is_invalid: Predicate,
    seed: int = 0,
    max_redraws: int = 32,
) -> Synthesized | None:
    """A measurable config for one cluster, or None (see the module docstring for the order).

    ``members`` (M, K) int: the cluster's configs ordered closest to the centroid first, so
    row 0 is the representative (``adaptive.members_by_distance`` gives that order).
    ``sketch_ids`` (M,) int and ``n_options`` (M, K) int: each member's sketch and knob bounds.
    """
    members = np.asarray(members, dtype=np.int64)
    sketch_ids = np.asarray(sketch_ids, dtype=np.int64)
    n_options = np.asarray(n_options, dtype=np.int64)
    if members.ndim != 2 or members.shape[0] == 0:
        raise ValueError(f"members must be a non-empty (M, K) array, got shape {members.shape}")
    if n_options.shape != members.shape or sketch_ids.shape != (members.shape[0],):
        raise ValueError(f"n_options {n_options.shape} / sketch_ids {sketch_ids.shape} do not match members")
    if max_redraws < 0:
        raise ValueError(f"max_redraws must be >= 0, got {max_redraws}")

    seen: set[tuple[int, tuple[int, ...]]] = set()

    def usable(config: np.ndarray, sketch_id: int) -> bool:
        key = (sketch_id, tuple(int(v) for v in config))
        if key in seen:
            return False
        seen.add(key)
        return not is_taken(config.copy(), sketch_id) and not is_invalid(config.copy(), sketch_id)

    for i, member in enumerate(members):
        if usable(member, int(sketch_ids[i])):
            return Synthesized(member.copy(), int(sketch_ids[i]), "representative" if i == 0 else "member")

    sketch = int(sketch_ids[0])
    bounds = n_options[0]
    voted = majority_vote(members[sketch_ids == sketch], bounds)
    if usable(voted, sketch):
        return Synthesized(voted, sketch, "vote")

    active = np.flatnonzero(bounds > 1)
    if len(active) == 0:
        return None
    rng = np.random.default_rng(seed)
    for attempt in range(max_redraws):
        candidate = _redraw(voted, bounds, active, attempt, max_redraws, rng)
        if usable(candidate, sketch):
            logger.debug("synthesize: re-draw %d succeeded", attempt)
            return Synthesized(candidate, sketch, "redraw")
    logger.debug("synthesize: nothing usable after %d re-draws", max_redraws)
    return None
