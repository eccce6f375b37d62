"""For strategies that measure only part of what an inner strategy proposed."""

from __future__ import annotations

from tvm.s_tir.meta_schedule.runner import RunnerResult


def expand_results(n: int, kept: list[int], results, message: str) -> list[RunnerResult]:
    """Results for all ``n`` proposals: the measured ones in place, an error ``message`` elsewhere."""
    full = [RunnerResult(None, message) for _ in range(n)]
    for i, r in zip(kept, results, strict=True):
        full[i] = r
    return full
