"""``make bench`` / ``make bench-quick``: strategies side by side on this machine's CPU.

Writes experiments/results/online[-quick].{csv,md,png}; every run's tuning log stays under
experiments/results/runs/<preset>/ (git-ignored), so an interrupted benchmark resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from chameleon.bench.metrics import RunCurve, machine_label, mixed_machines, strategy_variants
from chameleon.bench.online import PRESETS, distinct_conv_tasks, list_tasks, run_online
from chameleon.bench.output import read_curves, write_all
from chameleon.hardware.targets import resolve_target
from chameleon.tuning.measure import PASS_SPACING_S

RESULTS = Path("experiments/results")
DEFAULT_STRATEGIES = [
    "chameleon",
    "evolutionary",
    "random",
    "chameleon-no-as",
    "chameleon-no-bp",
    "evolutionary-as",
]
QUICK_STRATEGIES = ["chameleon", "evolutionary", "random", "chameleon-no-bp"]
CONFIRMED_NOTE = (
    "Confirmed: every configuration that improved a run's recorded best was built again and timed"
    " with the others of its task, round after round; its latency here is the median of those times"
    " (other measurements are left out). A run's best so far is the fastest confirmed configuration it"
    " had found (chameleon/bench/confirmed.py)."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--target", default="llvm")
    parser.add_argument(
        "--task", action="append", help="task name (default: the preset's distinct conv2d tasks)"
    )
    parser.add_argument(
        "--strategy",
        action="append",
        help=f"default: {', '.join(DEFAULT_STRATEGIES)} (quick preset: {', '.join(QUICK_STRATEGIES)})",
    )
    parser.add_argument("--trials", type=int)
    parser.add_argument("--seeds", type=int, help="run seeds 0..N-1 (default: the preset's)")
    parser.add_argument(
        "--seed",
        type=int,
        action="append",
        help="run only these seeds (repeatable), e.g. a new seed whose earlier seeds' curves come from --with-csv",
    )
    parser.add_argument("--no-run", action="store_true", help="only summarize the runs already on disk")
    parser.add_argument(
        "--with-csv",
        action="append",
        default=[],
        metavar="CSV",
        help="take the runs of an earlier benchmark's CSV (on the tasks and strategies this command names) "
        "as done: they are summarised with the others and not run again (the first CSV that has a run wins). "
        "Only runs timed on the same machine and the same way compare: the target is the best latency of all",
    )
    parser.add_argument(
        "--warm-start",
        action="append",
        default=[],
        help="log dir(s) of another target: adds a <strategy>+warm variant of each strategy but random (transfer)",
    )
    parser.add_argument(
        "--leave-task-out",
        action="store_true",
        help="a task's +warm runs skip the warm-start logs that tuned it (transfer from other tasks only)",
    )
    parser.add_argument("--out", help="result file stem (default: online or online-<preset>)")
    parser.add_argument(
        "--runs", help="run directory under experiments/results/runs (default: --out, else the preset)"
    )
    parser.add_argument(
        "--measure-passes",
        type=int,
        default=1,
        metavar="N",
        help="time each round's candidates in N interleaved passes, each keeping its fastest "
        "(chameleon/tuning/passes.py); a run directory keeps one N",
    )
    parser.add_argument(
        "--pass-margin",
        type=float,
        default=2.0,
        metavar="F",
        help="passes after the first time only candidates within F x their task's fastest so far (inf: all)",
    )
    parser.add_argument(
        "--pass-spacing",
        type=float,
        default=PASS_SPACING_S,
        metavar="S",
        help="least seconds from one timing pass's start to the next's (a round of few candidates waits out the rest)",
    )
    parser.add_argument("--baseline", default="evolutionary", help="the strategy ratios are taken against")
    parser.add_argument(
        "--confirm",
        type=int,
        default=0,
        metavar="R",
        help="re-measure every configuration that improved a run's best R times, interleaved per task, "
        "and report the metric again on the confirmed latencies (<out>-confirmed.*; local CPU targets only)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("tvm.s_tir.meta_schedule").setLevel(logging.WARNING)

    preset = PRESETS[args.preset]
    trials = args.trials or preset.trials
    seeds = args.seed or list(range(args.seeds or preset.seeds))
    tasks = args.task or distinct_conv_tasks(list_tasks(args.model, args.target))[: preset.tasks]
    strategies = args.strategy or (QUICK_STRATEGIES if args.preset == "quick" else DEFAULT_STRATEGIES)
    stem = args.out or ("online" if args.preset == "full" else f"online-{args.preset}")
    print(
        f"benchmark {stem}: {len(tasks)} tasks x {len(strategies)} strategies x {len(seeds)} seeds, {trials} trials"
    )
    runs_dir = RESULTS / "runs" / (args.runs or args.out or args.preset)
    earlier = earlier_curves(
        [Path(p) for p in args.with_csv],
        tasks=tasks,
        labels={label for label, _, _ in strategy_variants(strategies, tuple(args.warm_start))},
        trials=trials,
    )
    if earlier and not args.no_run:
        here = machine_label(resolve_target(args.target).target_json)
        if elsewhere := sorted({c.machine for c in earlier if c.machine not in (None, here)}):
            raise SystemExit(
                f"--with-csv runs were timed on {', '.join(elsewhere)}, not on this machine ({here}): "
                "they would not compare with runs measured here"
            )
    curves = run_online(
        model=args.model,
        target=args.target,
        tasks=tasks,
        strategies=strategies,
        seeds=seeds,
        trials=trials,
        out_dir=runs_dir,
        measure=not args.no_run,
        warm_start=tuple(args.warm_start),
        leave_task_out=args.leave_task_out,
        measure_passes=args.measure_passes,
        pass_margin=args.pass_margin,
        pass_spacing_s=args.pass_spacing,
        done=frozenset((c.strategy, c.task, c.seed) for c in earlier),
        on_run=lambda c: print(
            f"  {c.strategy:16s} seed {c.seed} {c.task[:50]:50s} best {1e3 * (c.best or float('nan')):.4f} ms "
            f"after {len(c.latencies)} measurements, {c.times[-1] if c.times else 0:.0f} s, "
            f"search {c.search_s_per_round:.2f} s/round",
            flush=True,
        ),
    )
    curves += earlier
    if mixed := mixed_machines(curves):
        task, machines = next(iter(mixed.items()))
        raise SystemExit(
            f"the runs of {task} were timed on {' and on '.join(machines)}: they do not compare; "
            "summarise each machine's runs apart (--runs, --with-csv)"
        )
    if not curves:
        raise SystemExit(
            "no finished runs to summarise: run without --no-run first, or name them with --runs"
        )
    if all(c.strategy != args.baseline for c in curves):
        ran = ", ".join(sorted({c.strategy for c in curves}))
        raise SystemExit(
            f"no run of the baseline {args.baseline!r} to compare with: pass --baseline, one of {ran}"
        )
    text = write_all(
        curves,
        out_dir=RESULTS,
        stem=stem,
        budget=trials,
        baseline=args.baseline,
        title=f"Online benchmark ({args.model} on {args.target}, {trials} measurements per task)",
    )
    if args.confirm:
        from chameleon.bench.confirmed import confirm_curves, luck
        from chameleon.bench.online import run_dir

        confirmed = confirm_curves(
            [(run_dir(runs_dir, c.task, c.strategy, c.seed), c) for c in curves],
            budget=trials,
            rounds=args.confirm,
            target=args.target,
        )
        luck_line = "Recorded best / its confirmed latency (median over runs): " + ", ".join(
            f"{s} {v:.3f}" for s, v in luck(curves, confirmed, budget=trials).items()
        )
        text += "\n" + write_all(
            confirmed,
            out_dir=RESULTS,
            stem=f"{stem}-confirmed",
            budget=trials,
            baseline=args.baseline,
            title=f"Online benchmark, confirmed ({args.model} on {args.target}, {trials} measurements"
            f" per task, every improving configuration re-measured {args.confirm} times)",
            notes=[CONFIRMED_NOTE, luck_line],
        )
    print(text)


def earlier_curves(paths, *, tasks, labels, trials) -> list[RunCurve]:
    """The runs of earlier benchmarks' CSVs (e.g. a committed seed whose run directory is gone) on
    ``tasks`` and strategy ``labels``, cut to ``trials``; of two with the same strategy, task and
    seed, the first."""
    out, have = [], set()
    for path in paths:
        if not path.is_file():
            raise SystemExit(f"--with-csv {path}: no such file; name a CSV that experiments/bench.py wrote")
        curves, budget = read_curves(path)
        if budget < trials:
            raise SystemExit(
                f"--with-csv {path}: its runs have {budget} measurements, fewer than --trials {trials}"
            )
        for c in curves:
            key = (c.strategy, c.task, c.seed)
            if c.task in tasks and c.strategy in labels and key not in have:
                times = c.times[:trials] if c.times else None
                out.append(dataclasses.replace(c, latencies=c.latencies[:trials], times=times))
                have.add(key)
    return out


if __name__ == "__main__":
    main()
