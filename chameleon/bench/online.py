"""Online benchmark: strategies side by side on real hardware, same tasks, budget and seeds.

Every (task, strategy, seed) is an ordinary tuning run into its own log directory, so the
benchmark is resumable (a finished run is not measured again) and every run can be replayed,
reported or reused as a dataset.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from chameleon.bench.metrics import RunCurve, machine_label, strategy_variants
from chameleon.errors import UsageError
from chameleon.logs.metadata import read_run_file
from chameleon.logs.timeline import read_timeline
from chameleon.tuning.measure import PASS_SPACING_S, MeasureConfig
from chameleon.tuning.tune import TuneConfig, tune

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Preset:
    tasks: int | None
    """How many distinct conv2d tasks (largest first); None: all of them."""
    trials: int
    seeds: int


PRESETS = {
    "quick": Preset(tasks=2, trials=64, seeds=1),
    "full": Preset(tasks=None, trials=128, seeds=3),
}


def distinct_conv_tasks(names_flops: list[tuple[str, float]]) -> list[str]:
    """One task per distinct convolution (the ``conv2dN`` op), largest FLOP count first."""
    seen, out = set(), []
    for name, _ in sorted(names_flops, key=lambda x: -x[1]):
        m = re.search(r"conv2d\d*", name)
        if m and m.group(0) not in seen:
            seen.add(m.group(0))
            out.append(name)
    return out


def list_tasks(model: str, target: str) -> list[tuple[str, float]]:
    from chameleon.hardware.targets import resolve_target
    from chameleon.models.importer import load_network
    from chameleon.tvm_glue.pipeline import extract_tasks, prepack_default

    tgt = resolve_target(target).tvm_target()
    net = load_network(model)
    return [(t.name, t.flop) for t in extract_tasks(net.mod, tgt, prepack=prepack_default(tgt))]


def run_curve(log_dir: Path, *, strategy: str, task: str, seed: int, budget: int | None = None) -> RunCurve:
    """A run's best-latency curve from its timeline: its first ``budget`` measurements (all by
    default), so that runs resumed to a larger budget compare at the budget asked for."""
    measurements = [m for m in read_timeline(log_dir) if m.task == task][:budget]
    run_file = read_run_file(log_dir)
    runs = run_file["runs"]
    search = sum(r.get("breakdown_s", {}).get("search", 0.0) for r in runs)
    rounds = sum(r.get("breakdown_s", {}).get("rounds", 0) for r in runs)  # 0: the run never finished
    # A resumed run's clock restarts; make times monotonic across its parts. Each part's strategy
    # setup (a warm start's pre-training) ran before its clock started: it is added where it began.
    setup = {r.get("run"): r.get("breakdown_s", {}).get("strategy_setup", 0.0) for r in runs}
    times, offset, last_run, last_t = [], 0.0, None, 0.0
    for m in measurements:
        if m.run != last_run:
            offset = last_t + setup.get(m.run, 0.0)
        times.append(offset + m.t)
        last_run, last_t = m.run, offset + m.t
    return RunCurve(
        strategy=strategy,
        task=task,
        seed=seed,
        latencies=tuple(m.latency_s for m in measurements),
        times=tuple(times),
        search_s_per_round=search / rounds if rounds else None,
        machine=machine_label(run_file["target_json"]) if run_file.get("target_json") else None,
    )


def run_online(
    *,
    model: str,
    target: str,
    tasks: list[str],
    strategies: list[str],
    seeds: list[int],
    trials: int,
    out_dir: Path,
    trials_per_round: int = 16,
    on_run: Callable[[RunCurve], None] | None = None,
    measure: bool = True,
    warm_start: tuple[str, ...] = (),
    leave_task_out: bool = False,
    measure_passes: int = 1,
    pass_margin: float = 2.0,
    pass_spacing_s: float = PASS_SPACING_S,
    done: frozenset[tuple[str, str, int]] = frozenset(),
) -> list[RunCurve]:
    """Tune every (task, seed, strategy); with ``measure=False`` only collect the runs already on
    disk that finished their budget.

    With ``warm_start`` log directories (another target's, other tasks'), each strategy but random
    also runs as ``<strategy>+warm``, its cost models first trained on those logs. With
    ``leave_task_out``, a task's runs skip the logs that tuned that task (by name): transfer from the
    other tasks only, as if the layer had never been seen. Meant for benchmark run directories
    (one task each); a network's log that tuned the task is skipped whole.

    ``measure_passes``, ``pass_margin``, ``pass_spacing_s``: interleaved timing passes per round,
    the racing margin of the later ones and the least time between their starts (``tuning.passes``);
    a run directory measured otherwise is refused, so a benchmark never mixes two ways of measuring.

    ``done``: ``(label, task, seed)`` of runs the caller already has (an earlier benchmark's CSV),
    neither run nor collected.
    """
    curves = []
    measure_config = MeasureConfig(
        passes=measure_passes, pass_margin=pass_margin, pass_spacing_s=pass_spacing_s
    )
    tuned = {w: tuned_tasks(w) if leave_task_out else set() for w in warm_start}  # read each run.json once
    # Seed-major: a benchmark stopped early still covers every task and strategy with its first seeds.
    for seed in seeds:
        for task in tasks:
            warm_logs = tuple(w for w in warm_start if task not in tuned[w])
            if warm_start and not warm_logs:
                raise UsageError(f"every warm-start log tuned {task}: nothing is left to transfer from")
            for label, strategy, warm in strategy_variants(strategies, warm_logs):
                if (label, task, seed) in done:
                    continue
                log_dir = run_dir(out_dir, task, label, seed)
                check_passes(log_dir, measure_config)
                if not measure:
                    if (log_dir / "timeline.jsonl").exists():
                        curve = run_curve(log_dir, strategy=label, task=task, seed=seed, budget=trials)
                        if len(curve.latencies) >= trials:
                            curves.append(curve)
                        else:  # a run that was stopped: it would skew the medians
                            logger.warning(
                                "%s: %d of %d measurements, left out", log_dir, len(curve.latencies), trials
                            )
                    continue
                tune(
                    TuneConfig(
                        model=model,
                        target=target,
                        tasks=(task,),
                        trials=trials,
                        trials_per_round=trials_per_round,
                        strategy=strategy,
                        seed=seed,
                        log_dir=log_dir,
                        warm_start=warm,
                        measure=measure_config,
                    )
                )
                curve = run_curve(log_dir, strategy=label, task=task, seed=seed, budget=trials)
                curves.append(curve)
                if on_run:
                    on_run(curve)
    return curves


def check_passes(log_dir: Path, measure: MeasureConfig) -> None:
    """Refuse a run directory whose runs were timed another way: another number of passes, another
    racing margin or another spacing of the passes (runs from before passes existed used 1 pass;
    before racing, every candidate took every pass; before the spacing was an option, 1 s)."""
    if not (log_dir / "run.json").exists():
        return
    used = {_passes_label(r.get("config", {}).get("measure", {})) for r in read_run_file(log_dir)["runs"]}
    wanted = _passes_label(asdict(measure))
    if used != {wanted}:
        raise UsageError(
            f"{log_dir} was measured with {' and '.join(sorted(used))}, not {wanted}: "
            "pass the same --measure-passes/--pass-margin/--pass-spacing or another --runs directory"
        )


def _passes_label(measure: dict) -> str:
    passes = measure.get("passes", 1)
    if passes == 1:
        return "1 timing pass"
    label = f"{passes} timing passes (margin {measure.get('pass_margin', float('inf'))}"
    spacing = measure.get("pass_spacing_s", PASS_SPACING_S)
    return label + (")" if spacing == PASS_SPACING_S else f", {spacing:g} s apart)")


def tuned_tasks(log: str) -> set[str]:
    """Names of the tasks a log (directory or dataset ``.tar.gz``) was tuning (``tuned`` in its
    ``run.json``)."""
    from chameleon.simulate.dataset import log_directory

    return {t["name"] for t in read_run_file(log_directory(log)).get("tasks", []) if t.get("tuned")}


def run_dir(out_dir: Path, task: str, label: str, seed: int) -> Path:
    """The log directory of one benchmark run."""
    return out_dir / _slug(task) / f"{label}-s{seed}"


def _slug(task: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", task)[:80]
