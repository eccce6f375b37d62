"""Which sketch (design space) each measurement of a benchmark run came from, and its best's.

    python -m experiments.run_sketches experiments/results/runs/<name>/<task>/<strategy>-s<seed> [...]

A run directory is what experiments/bench.py writes under experiments/results/runs/ (a MetaSchedule
database, run.json, timeline.jsonl). Prints, per run: the best latency, its sketch and the measurement
that found it, the measurements per sketch, and the sketch of every measurement in order.
"""

from __future__ import annotations

import collections
import json
import math
import sys
from pathlib import Path


def main(paths: list[str]) -> None:
    import tvm
    from tvm.s_tir import meta_schedule as ms

    from chameleon.space.space import KnobSpace
    from chameleon.tvm_glue.keys import trace_key

    if not paths:
        raise SystemExit(__doc__)
    for run_dir in map(Path, paths):
        if not (run_dir / "timeline.jsonl").is_file():
            raise SystemExit(
                f"{run_dir}: no timeline.jsonl; name a run directory that experiments/bench.py wrote"
            )
        run = json.loads((run_dir / "run.json").read_text())
        records = ms.database.JSONDatabase(
            work_dir=str(run_dir), allow_missing=False
        ).get_all_tuning_records()
        ctx = ms.TuneContext(
            mod=records[0].workload.mod,
            target=tvm.target.Target(run["target_json"]),
            space_generator="post-order-apply",
            search_strategy="evolutionary",
        )
        space = KnobSpace.from_design_spaces(
            mod=ctx.mod,
            design_spaces=list(ctx.generate_design_space()),
            postprocs=ctx.space_generator.postprocs,
        )
        sketch = {}
        for rec in records:
            config = space.decode_trace_fast(rec.trace)
            sketch[trace_key(rec.trace)] = "?" if config is None else str(config[0])
        order, best = [], (math.inf, "?", 0)
        for line in (run_dir / "timeline.jsonl").read_text().splitlines():
            entry = json.loads(line)
            s = sketch.get(entry["key"], "?")
            order.append(s)
            if entry["latency_s"] is not None and entry["latency_s"] < best[0]:
                best = (entry["latency_s"], s, entry["n"])
        print(
            f"{run_dir}: {len(space.sketches)} sketches; best {best[0] * 1e3:.3f} ms, sketch {best[1]}, measurement {best[2]}"
        )
        print(f"  per sketch: {dict(sorted(collections.Counter(order).items()))}")
        print(f"  in order:   {''.join(order)}")


if __name__ == "__main__":
    main(sys.argv[1:])
