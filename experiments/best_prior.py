"""Does the blueprint prior point at each task's best program? Checked on the online benchmark's runs.

For every task under experiments/results/runs/<runs>/, take the fastest record of all finished
runs, and print how its blueprint prior score ranks among every configuration those runs measured
(share of configurations it scores above), and whether a blueprint validity rule flags it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    import tvm
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.database import Workload

    from chameleon.hardware.priors import BlueprintPrior
    from chameleon.hardware.target_blueprint import blueprint_for_target
    from chameleon.hardware.validity import check
    from chameleon.logs.database import workload_records
    from chameleon.logs.metadata import read_run_file
    from chameleon.logs.timeline import mean_latency
    from chameleon.space.space import KnobSpace
    from chameleon.tvm_glue.intrinsics import import_tensor_intrinsics

    import_tensor_intrinsics()

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", default="full", help="run directory under experiments/results/runs")
    args = parser.parse_args()
    print("| task | best ms | found by | prior above share | flagged by |")
    print("|---|---:|---|---:|---|")
    for task_dir in sorted((Path("experiments/results/runs") / args.runs).iterdir()):
        runs = [r for r in sorted(task_dir.iterdir()) if (r / "database_workload.json").exists()]
        runs = [r for r in runs if read_run_file(r)["runs"][-1]["status"] == "finished"]
        if not runs:
            continue
        target = tvm.target.Target(read_run_file(runs[0])["target_json"])
        line = (runs[0] / "database_workload.json").read_text().splitlines()[0]
        mod = Workload.from_json(json.loads(line)).mod
        ctx = ms.TuneContext(
            mod=mod, target=target, space_generator="post-order-apply", num_threads=1
        ).clone()
        space = KnobSpace.from_design_spaces(
            mod=ctx.mod,
            design_spaces=ctx.generate_design_space(),
            postprocs=list(ctx.space_generator.postprocs),
        )
        blueprint = blueprint_for_target(target.export())
        measured = []  # (latency, config, run name)
        for run in runs:
            for rec in workload_records(run, mod)[1]:
                lat, config = mean_latency(rec[1]), space.decode_json(rec[0])
                if lat is not None and config is not None:
                    measured.append((lat, config, run.name))
        lat, best, by = min(measured, key=lambda m: m[0])
        prior = BlueprintPrior(space=space, blueprint=blueprint)
        scores = prior.score(*space.as_arrays([m[1] for m in measured]))
        mine = prior.score(*space.as_arrays([best]))[0]
        sch = space.materialize(best)
        flags = sorted({v.rule for v in check(sch.mod, blueprint)}) if sch is not None else ["invalid"]
        print(
            f"| {task_dir.name[:40]} | {lat * 1e3:.3f} | {by} | {float(np.mean(scores < mine)):.2f} | "
            f"{', '.join(flags) or '-'} |"
        )


if __name__ == "__main__":
    main()
