"""Does the GPU precheck reject only what VerifyGPUCode rejects, and what does it save?

For every task of a network with a tunable GPU space (more than 1000 configurations), draw
``--samples`` configurations the way MetaSchedule samples (``KnobSpace.sample_config``), replay
each, and compare ``tvm_glue.gpu_precheck`` 's verdict on the replayed schedule with the
postprocessors' verdict (the ground truth). A false rejection (precheck says invalid, the
postprocessors keep it) would lose a valid program; the table counts them. Timing: what
materialising the drawn configurations costs with and without the precheck (replay + precheck
+ the postprocessors for the survivors, against replay + the postprocessors), on this host's CPU
(no GPU is needed: it is the search's CPU side).

    python -m experiments.gpu_precheck --model resnet18 --target cuda --target jetson --out resnet18
    python -m experiments.gpu_precheck --model transformer --target cuda --out transformer

``--model transformer`` is a 2-layer encoder (d=64, 4 heads, sequence 32), exported here with
torch.export: a network with matmuls, softmax and layer norms instead of convolutions.
Writes experiments/results/gpu-precheck-<out>.{csv,md}.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path("experiments/results")


def transformer_pt2(directory: Path) -> Path:
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(16, 64)
            layer = nn.TransformerEncoderLayer(64, 4, dim_feedforward=128, dropout=0.0, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
            self.head = nn.Linear(64, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.encoder(self.embed(x)).mean(dim=1))

    torch.manual_seed(0)
    path = directory / "transformer.pt2"
    torch.export.save(torch.export.export(Encoder().eval(), (torch.randn(1, 32, 16),)), path)
    return path


def measure_task(task, target, samples: int, seed: int) -> dict:
    from tvm.s_tir import meta_schedule as ms

    from chameleon.space.space import KnobSpace
    from chameleon.space.traces import replay
    from chameleon.tvm_glue.gpu_precheck import GpuPrecheck

    ctx = ms.TuneContext(mod=task.mod, target=target, space_generator="post-order-apply", num_threads=1)
    ctx = ctx.clone()
    postprocs = list(ctx.space_generator.postprocs)
    space = KnobSpace.from_design_spaces(
        mod=ctx.mod, design_spaces=ctx.generate_design_space(), postprocs=postprocs
    )
    if space.size() < 1000 or not GpuPrecheck.applies_to(target, postprocs):
        return {}
    precheck = GpuPrecheck(target)
    rng = np.random.default_rng(seed)
    row = dict.fromkeys(("drawn", "valid", "prechecked", "false_rejections"), 0)
    t_replay = t_pre = t_post_all = t_post_kept = 0.0
    for _ in range(samples):
        config = space.sample_config(rng)
        if config is None:
            continue
        s, idx = config
        sketch = space.sketches[s]
        a = time.perf_counter()
        sch = replay(space.mod, sketch.trace.insts, sketch.decisions(idx), seed=1)
        b = time.perf_counter()
        rejected = precheck.rejects(sch) is not None
        c = time.perf_counter()
        sch.enter_postproc()
        valid = all(p.apply(sch) for p in postprocs)
        d = time.perf_counter()
        t_replay, t_pre, t_post_all = t_replay + b - a, t_pre + c - b, t_post_all + d - c
        t_post_kept += 0.0 if rejected else d - c
        row["drawn"] += 1
        row["valid"] += valid
        row["prechecked"] += rejected
        row["false_rejections"] += rejected and valid
    n = max(row["drawn"], 1)
    row["ms_without"] = 1e3 * (t_replay + t_post_all) / n
    row["ms_with"] = 1e3 * (t_replay + t_pre + t_post_kept) / n
    row["speedup"] = row["ms_without"] / row["ms_with"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="resnet18", help="zoo name, .onnx/.pt2 path, or 'transformer'")
    parser.add_argument("--target", action="append", help="GPU target name (repeatable; default cuda)")
    parser.add_argument("--samples", type=int, default=100, help="configurations drawn per task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="host")
    args = parser.parse_args()

    from chameleon.hardware.targets import resolve_target
    from chameleon.models.importer import load_network
    from chameleon.tvm_glue.intrinsics import import_tensor_intrinsics
    from chameleon.tvm_glue.pipeline import extract_tasks

    import_tensor_intrinsics()
    with tempfile.TemporaryDirectory() as tmp:
        model = transformer_pt2(Path(tmp)) if args.model == "transformer" else args.model
        network = load_network(model)
    rows = []
    for name in args.target or ["cuda"]:
        target = resolve_target(name).tvm_target()
        for task in extract_tasks(network.mod, target, prepack=False):
            row = measure_task(task, target, args.samples, args.seed)
            if row:
                rows.append({"target": name, "task": task.name, **row})
                print(
                    f"{name:8s} {task.name[:44]:44s} valid {row['valid']:3d}/{row['drawn']:3d}  prechecked "
                    f"{row['prechecked']:3d}  false {row['false_rejections']}  "
                    f"{row['ms_without']:5.1f} -> {row['ms_with']:5.1f} ms/config",
                    flush=True,
                )
    write(rows, args)


def write(rows: list[dict], args) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / f"gpu-precheck-{args.out}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [
        f"# GPU precheck on {args.model} ({args.samples} sampled configurations per task, seed {args.seed})",
        "",
        "Invalid = rejected by the postprocessors (VerifyGPUCode). Prechecked = rejected by "
        "`tvm_glue.gpu_precheck` before them; a false rejection would be a valid program lost. "
        "ms/config: materialising one drawn configuration on this host's CPU, without -> with the precheck.",
        "",
        "| target | task | valid | prechecked / invalid | false rejections | ms/config without | with | speedup |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        invalid = r["drawn"] - r["valid"]
        lines.append(
            f"| {r['target']} | {r['task'][:40]} | {r['valid']}/{r['drawn']} | {r['prechecked']}/{invalid} "
            f"| {r['false_rejections']} | {r['ms_without']:.1f} | {r['ms_with']:.1f} | {r['speedup']:.2f} |"
        )
    drawn = sum(r["drawn"] for r in rows)
    without = sum(r["ms_without"] * r["drawn"] for r in rows) / drawn
    with_ = sum(r["ms_with"] * r["drawn"] for r in rows) / drawn
    lines += [
        "",
        f"All tasks: {sum(r['prechecked'] for r in rows)} of {drawn - sum(r['valid'] for r in rows)} invalid "
        f"configurations caught before the postprocessors, {sum(r['false_rejections'] for r in rows)} false "
        f"rejections; {without:.1f} -> {with_:.1f} ms per configuration ({without / with_:.2f}x).",
    ]
    (RESULTS / f"gpu-precheck-{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-1:]))


if __name__ == "__main__":
    main()
