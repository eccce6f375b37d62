"""Do the blueprint's prior and validity rules point at fast and slow configurations? Checked on
recorded datasets.

For every valid record of every task: decode it into knob indices and score it with the
blueprint prior (Spearman correlation of prior and speed), replay its trace and run
``hardware.validity.check`` against the dataset target's blueprint (latencies of flagged vs clean
configurations). A prior worth having correlates with speed; a rule worth rejecting on flags
mostly slow configurations and never the best ones.
Writes experiments/results/blueprint_rules.{csv,md}.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

RESULTS = Path("experiments/results")


def prior_spearman(dataset, task, blueprint) -> tuple[float, int]:
    """Spearman correlation of the blueprint prior with speed (1 / latency) over the task's records."""
    from scipy.stats import spearmanr
    from tvm.s_tir import meta_schedule as ms

    from chameleon.hardware.priors import BlueprintPrior
    from chameleon.space.space import KnobSpace
    from chameleon.tvm_glue.intrinsics import import_tensor_intrinsics

    import_tensor_intrinsics()
    ctx = ms.TuneContext(
        mod=task.workload, target=dataset.target(), space_generator="post-order-apply", num_threads=1
    ).clone()
    space = KnobSpace.from_design_spaces(
        mod=ctx.mod, design_spaces=ctx.generate_design_space(), postprocs=list(ctx.space_generator.postprocs)
    )
    configs, lats = [], []
    for key in task.valid_keys():
        config = space.decode(task.traces[key])
        if config is not None:
            configs.append(config)
            lats.append(task.latency[key])
    scores = BlueprintPrior(space=space, blueprint=blueprint).score(*space.as_arrays(configs))
    rho = spearmanr(scores, -np.array(lats)).statistic if np.ptp(scores) > 0 else float("nan")
    return float(rho), len(configs)


def rule_rows(dataset_path: Path) -> list[dict]:
    from tvm.s_tir.schedule import Schedule

    from chameleon.hardware.target_blueprint import blueprint_for_target
    from chameleon.hardware.validity import check
    from chameleon.simulate.dataset import load_dataset

    dataset = load_dataset(dataset_path)
    blueprint = blueprint_for_target(dataset.target_json)
    rows = []
    for name, task in dataset.tasks.items():
        rho, decoded = prior_spearman(dataset, task, blueprint)
        rows.append(
            {"dataset": dataset_path.name, "blueprint": blueprint.name, "task": name, "rule": "prior"}
            | {"configs": decoded, "spearman_prior_speed": round(rho, 3)}
        )
        keys = task.valid_keys()
        lat = np.array([task.latency[k] for k in keys])
        flags: list[set[str]] = []
        for key in keys:
            sch = Schedule(task.workload)
            task.traces[key].apply_to_schedule(sch, remove_postproc=False)
            flags.append({v.rule for v in check(sch.mod, blueprint)})
        top = lat <= np.percentile(lat, 10)
        for rule in sorted(set().union(*flags)):
            hit = np.array([rule in f for f in flags])
            rows.append(
                {
                    "dataset": dataset_path.name,
                    "blueprint": blueprint.name,
                    "task": name,
                    "rule": rule,
                    "configs": len(keys),
                    "flagged": round(float(hit.mean()), 3),
                    "median_ms_flagged": round(float(np.median(lat[hit])) * 1e3, 4),
                    "median_ms_clean": round(float(np.median(lat[~hit])) * 1e3, 4) if (~hit).any() else "",
                    "flagged_in_fastest_10pct": round(float(hit[top].mean()), 3),
                    "best_flagged": bool(hit[lat.argmin()]),
                    "best_clean_vs_best": round(float(lat[~hit].min() / lat.min()), 3)
                    if (~hit).any()
                    else "",
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", action="append", type=Path)
    args = parser.parse_args()
    datasets = args.dataset or sorted(Path("experiments/datasets").glob("*.tar.gz"))
    rows = [r for d in datasets for r in rule_rows(d)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(RESULTS / "blueprint_rules.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "# Blueprint prior and validity rules against recorded latencies",
        "",
        "`python -m experiments.blueprint_rules`. Prior: Spearman correlation of the blueprint "
        "prior with speed over the task's recorded configurations (1: the prior ranks them exactly "
        "by speed; nan: it scores them all alike).",
        "",
        "| task | configs | Spearman(prior, speed) |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {r['task'][:40]} | {r['configs']} | {r['spearman_prior_speed']} |"
        for r in rows
        if r["rule"] == "prior"
    ]
    lines += [
        "",
        "Validity rules (all soft on a CPU; `vector_width` rejects without `strict` because of this "
        "table, `validity.REJECTING_SOFT_RULES`). flagged: share of the "
        "task's recorded configurations the rule flags; fastest 10%: share of the fastest decile it "
        "flags; best clean / best: how much slower the best unflagged configuration is.",
        "",
        "| task | rule | configs | flagged | median ms flagged / clean | fastest 10% flagged | best flagged | best clean / best |",
        "|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in (r for r in rows if r["rule"] != "prior"):
        lines.append(
            f"| {r['task'][:40]} | {r['rule']} | {r['configs']} | {r['flagged']:.0%} | "
            f"{r['median_ms_flagged']} / {r['median_ms_clean']} | {r['flagged_in_fastest_10pct']:.0%} | "
            f"{'yes' if r['best_flagged'] else 'no'} | {r['best_clean_vs_best']} |"
        )
    text = "\n".join(lines) + "\n"
    (RESULTS / "blueprint_rules.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
