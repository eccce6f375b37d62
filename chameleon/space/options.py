"""Enumerable option lists for tile knobs."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

TileOrder = Literal["lexicographic", "snake"]


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

    ``max_innermost <= 0`` means no limit. Options are ordered so that a +1/-1 index step is a
    small change of the loop nest:

    * ``"lexicographic"``: ascending tuples (AutoTVM's split-knob order, which Chameleon's
      decrement/stay/increment actions were designed for). Neighbours inside a block share all
      outer factors, but a step across a block boundary jumps far: (1, 1, 64, 1) -> (1, 2, 1, 32).
    * ``"snake"`` (reflected lexicographic, Gray-code-like): the same blocks, still ascending in
      the outermost factor, with every other block reversed at each level, so the boundary step
      also stays local. Without an innermost limit every step moves one factor, no larger than
      the largest prime of the extent, between exactly two levels (checked for all extents below
      1500 into 2-5 parts); the limit can make a few steps touch three levels. For 3136 into 4
      parts (limit 64) the largest factor ratio of a step is 7 (snake) against 3136 (lexicographic).
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
