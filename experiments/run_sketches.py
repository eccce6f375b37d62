"""Which sketch (design space) each measurement of a benchmark run came from, and its best's.

    python -m experiments.run_sketches experiments/results/runs/<name>/<task>/<strategy>-s<seed> [...]

A run directory is what experiments/bench.py writes under experiments/results/runs/ (a MetaSchedule
database, run.json, timeline.jsonl). Prints, per run: the best latency, its sketch and the measurement
that found it, the measurements per sketch and the best of each, and the sketch of every measurement in order.
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path


def run_space(run_dir: Path):
    """``(tune context, knob space, tuning records)`` of a benchmark run directory's task (one task
    a run). Needs :func:`import_tensor_intrinsics` first."""
    import tvm
    from tvm.s_tir import meta_schedule as ms

    from chameleon.logs.database import open_database
    from chameleon.logs.metadata import read_run_file
    from chameleon.space.space import KnobSpace

    records = open_database(run_dir).get_all_tuning_records()
    ctx = ms.TuneContext(
        mod=records[0].workload.mod,
        target=tvm.target.Target(read_run_file(run_dir)["target_json"]),
        space_generator="post-order-apply",
        search_strategy="evolutionary",
        num_threads=1,
    )
    space = KnobSpace.from_design_spaces(
        mod=ctx.mod,
        design_spaces=list(ctx.generate_design_space()),
        postprocs=ctx.space_generator.postprocs,
    )
    return ctx, space, records


def run_configs(space, records) -> dict:
    """Each record's configuration in ``space`` by its trace key (the timeline's ``key``); None where
    the trace does not decode."""
    from chameleon.tvm_glue.keys import trace_key

    return {trace_key(rec.trace): space.decode_trace_fast(rec.trace) for rec in records}


def main(paths: list[str]) -> None:
    from chameleon.logs.timeline import read_timeline
    from chameleon.tvm_glue.intrinsics import import_tensor_intrinsics

    if not paths:
        raise SystemExit(__doc__)
    import_tensor_intrinsics()
    for run_dir in map(Path, paths):
        timeline = read_timeline(run_dir)
        if not timeline:
            raise SystemExit(f"{run_dir}: no timeline; name a run directory that experiments/bench.py wrote")
        _, space, records = run_space(run_dir)
        sketch = {key: "?" if c is None else str(c[0]) for key, c in run_configs(space, records).items()}
        order = [sketch.get(m.key, "?") for m in timeline]
        best = min((m for m in timeline if m.ok), key=lambda m: m.latency_s)
        print(
            f"{run_dir}: {len(space.sketches)} sketches; best {best.latency_s * 1e3:.3f} ms, "
            f"sketch {sketch.get(best.key, '?')}, measurement {best.n}"
        )
        counts = collections.Counter(order)
        best_of = {}
        for m, s in zip(timeline, order, strict=True):
            if m.ok:
                best_of[s] = min(best_of.get(s, m.latency_s), m.latency_s)
        per_sketch = (
            f"{s}: {n}" + (f" (best {best_of[s] * 1e3:.3f})" if s in best_of else "")
            for s, n in sorted(counts.items())
        )
        print(f"  per sketch: {', '.join(per_sketch)}")
        print(f"  in order:   {''.join(order)}")


if __name__ == "__main__":
    main(sys.argv[1:])
