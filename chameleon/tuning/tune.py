"""``chameleon tune``: tune a network's tasks with one strategy into a log directory.

Only wiring: TVM's task extraction, task scheduler, runner and JSON database do the work; the
strategy comes from :mod:`chameleon.search.registry`; the builder keeps its workers alive
(:mod:`chameleon.tvm_glue.builder`). Re-running into the same log directory resumes: the budget
counts what the log already holds, strategies see the database (evolutionary search seeds its
population from it and skips measured schedules), and nothing already on disk is lost.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import tvm_ffi

from chameleon.errors import ChameleonError, UsageError
from chameleon.hardware.targets import TargetSpec, resolve_target
from chameleon.logs import metadata
from chameleon.logs.database import open_database
from chameleon.logs.timeline import TIMELINE_FILE, Measurement, TimelineRecorder
from chameleon.search import registry
from chameleon.tuning.confirm import discard_confirmation
from chameleon.tuning.interrupt import StopAware, StopGuard, stop_on_signals
from chameleon.tuning.measure import MeasureConfig, make_builder, make_runner, parallel_devices
from chameleon.tvm_glue.intrinsics import import_tensor_intrinsics
from chameleon.tvm_glue.ms_logging import ms_logger_setup

logger = logging.getLogger(__name__)


@dataclass(kw_only=True)
class TuneConfig:
    """One tuning run."""

    model: str = "resnet18"
    """Zoo name, or a path to an .onnx / .pt2 file."""
    target: str = "llvm"
    """Target name (see ``chameleon targets``)."""
    trials: int = 256
    """Measurement budget for the whole network (including what the log already holds)."""
    trials_per_task: int | None = None
    """Cap on new measurements per task in this run (default: no cap beyond the global budget)."""
    trials_per_round: int | None = None
    """Candidates a strategy proposes per round (MetaSchedule's num_trials_per_iter); default
    :func:`round_size`'s choice."""
    strategy: str = "chameleon"
    seed: int = 0
    log_dir: Path | None = None
    """Default: tuning_logs/<model>/<target>/."""
    batch: int = 1
    image_size: int | None = None
    tasks: tuple[str, ...] = ()
    """Restrict tuning to tasks whose name contains one of these strings, or whose index is given."""
    prepack: bool | None = None
    """CPU weight prepacking (layout rewrite); default: on for CPU targets."""
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    blueprint: bool = True
    warm_start: tuple[str, ...] = ()


@dataclass
class TaskResult:
    name: str
    weight: int
    flop: float
    trials: int
    """Records in the log for this task (all runs)."""
    new_trials: int
    best_s: float | None

    @property
    def gflops(self) -> float | None:
        return self.flop / self.best_s / 1e9 if self.best_s and self.flop else None


@dataclass
class TuneSummary:
    log_dir: Path
    tasks: list[TaskResult]
    new_trials: int
    wall_s: float
    breakdown_s: dict[str, float]
    interrupted: bool = False
    search_stats: dict[str, dict] = field(default_factory=dict)
    """The strategy's per-task counters (chameleon: measured, invalid, rejected_by_blueprint)."""

    @property
    def rejected_by_blueprint(self) -> int:
        """Configurations the blueprint's validity rules rejected: measurements saved."""
        return sum(int(v.get("rejected_by_blueprint", 0)) for v in self.search_stats.values())

    @property
    def estimated_latency_s(self) -> float | None:
        vals = [t.weight * t.best_s for t in self.tasks if t.best_s]
        return sum(vals) if len(vals) == len(self.tasks) and vals else None


class TuneObserver:
    """Receives progress; the CLI draws a progress bar from it. Default: do nothing."""

    def on_start(self, *, tasks: list, budget: int, already: int) -> None: ...

    def on_measure(self, batch: list[Measurement]) -> None: ...

    def on_search(self, task: str) -> None:
        """A task's search round starts (they run before any result of the first pass comes in)."""


def default_log_dir(model: str, target: str) -> Path:
    return Path("tuning_logs") / Path(model).stem / target


def select_tasks(tasks: list, patterns: tuple[str, ...]) -> list:
    if not patterns:
        return tasks
    chosen = [
        t
        for i, t in enumerate(tasks)
        if any((p.isdigit() and int(p) == i) or (not p.isdigit() and p in t.name) for p in patterns)
    ]
    if not chosen:
        names = ", ".join(f"{i}:{t.name}" for i, t in enumerate(tasks))
        raise UsageError(f"no task matches {', '.join(patterns)}; tasks are {names}")
    return chosen


def records_per_workload(database) -> Counter:
    counts: Counter = Counter()
    for rec in database.get_all_tuning_records():
        counts[tvm_ffi.structural_hash(rec.workload.mod)] += 1
    return counts


def best_latency(database, mod) -> float | None:
    from chameleon.logs.timeline import mean_latency

    if not database.has_workload(mod):
        return None
    top = database.get_top_k(database.commit_workload(mod), 1)
    return mean_latency(top[0].run_secs) if top else None


DEFAULT_ROUND = 16


def round_size(requested: int | None, remaining: int, untuned_tasks: int) -> int:
    """Candidates per round: ``requested`` when given; else 16, fewer when the budget left cannot
    give each task without records a round of 16 (at least 4). MetaSchedule's first pass gives
    every task one round, in order, and stops when the budget is spent: the tasks it does not
    reach keep TVM's default lowering, tens of times slower than a tuned kernel (MobileNet-V2's
    33 tasks at 400 trials left 8 of them untuned with rounds of 16)."""
    if requested is not None:
        return requested
    if untuned_tasks == 0:
        return DEFAULT_ROUND
    return max(4, min(DEFAULT_ROUND, remaining // untuned_tasks))


def tune(config: TuneConfig, observer: TuneObserver | None = None) -> TuneSummary:
    from tvm.s_tir import meta_schedule as ms

    from chameleon.models.importer import load_network
    from chameleon.tvm_glue.pipeline import extract_tasks, prepack_default

    observer = observer or TuneObserver()
    spec = resolve_target(config.target)
    entry = registry.get_entry(config.strategy)  # fail fast on a bad name
    if config.trials < 1:
        raise UsageError("--trials must be at least 1")
    runner = make_runner(spec, config.measure)  # fails fast on a missing/unreachable farm
    network = load_network(config.model, batch=config.batch, image_size=config.image_size)
    target = spec.tvm_target()
    prepack = prepack_default(target) if config.prepack is None else config.prepack
    log_dir = Path(config.log_dir or default_log_dir(network.name, spec.name))
    log_dir.mkdir(parents=True, exist_ok=True)
    run_info = _start_run_file(log_dir, config, spec, network, prepack)

    all_tasks = extract_tasks(network.mod, target, prepack=prepack)
    tasks = select_tasks(all_tasks, config.tasks)
    database = open_database(log_dir, create=True)
    existing = records_per_workload(database)
    records = [existing[tvm_ffi.structural_hash(t.mod)] for t in tasks]
    already = sum(records)
    remaining = config.trials - already
    per_round = round_size(config.trials_per_round, remaining, records.count(0))
    run_info["_file"]["tasks"] = [
        {
            "name": t.name,
            "weight": t.weight,
            "flop": t.flop,
            "tuned": t in tasks,
            "workload_hash": str(tvm_ffi.structural_hash(t.mod)),
        }
        for t in all_tasks
    ]
    run_info["entry"]["round_size"] = per_round
    metadata.write_run_file(log_dir, run_info["_file"])
    observer.on_start(tasks=tasks, budget=config.trials, already=already)

    setup_start = time.perf_counter()  # a warm start pre-trains its cost models here
    setup = entry.factory(
        registry.StrategyOptions(
            seed=config.seed,
            target_json=spec.target_json,
            blueprint=config.blueprint,
            warm_start=config.warm_start,
            devices=parallel_devices(runner),
        )
    )
    setup_s = time.perf_counter() - setup_start
    builder = make_builder(spec)
    start = time.perf_counter()  # reset below, once TVM's one-time context setup is done
    interrupted = False
    recorder = None
    profiler = None
    with stop_on_signals() as stop:
        try:
            if remaining > 0:
                discard_confirmation(log_dir)  # new records may beat the confirmed ones
                import_tensor_intrinsics()  # what each TuneContext imports, fast
                with ms_logger_setup():
                    contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
                        [t.extracted for t in tasks],
                        work_dir=str(log_dir),
                        strategy=StopAware(setup.strategy, stop, observer.on_search),
                        # A resumed run must not replay the first run's random draws.
                        seed=config.seed + 7919 * (run_info["run"] - 1),
                    )
                start = time.perf_counter()
                recorder = TimelineRecorder(
                    path=log_dir / TIMELINE_FILE,
                    task_names=[t.name for t in tasks],
                    run=run_info["run"],
                    on_measure=observer.on_measure,
                )
                # After Ctrl-C the callbacks see only the real results of the rounds in flight.
                callbacks = [
                    StopGuard(stop, [*ms.measure_callback.MeasureCallback.create("default"), recorder])
                ]
                with ms.Profiler() as profiler:
                    ms.tune_tasks(
                        tasks=contexts,
                        task_weights=[float(w) for w in weights],
                        work_dir=str(log_dir),
                        max_trials_global=remaining,
                        max_trials_per_task=config.trials_per_task or remaining,
                        num_trials_per_iter=per_round,
                        builder=builder,
                        runner=runner,
                        database=database,
                        cost_model=setup.cost_model,
                        measure_callbacks=callbacks,
                    )
            else:
                logger.info("log already holds %d trials for these tasks: nothing to do", already)
        except KeyboardInterrupt:  # a second signal, or one outside the main thread's handler
            interrupted = True
        except Exception as err:
            # Workers killed by the signal (it reaches the whole process group) can surface as an
            # error from C++: after a stop signal that is the stop, not a failure of tuning.
            if not stop:
                raise
            logger.info("tuning stopped by a signal: %s", str(err).splitlines()[0] if str(err) else err)
        finally:
            builder.shutdown()
            if hasattr(runner, "shutdown"):
                runner.shutdown()
        interrupted = interrupted or bool(stop)
    wall = time.perf_counter() - start
    new = recorder.count if recorder else 0
    breakdown = time_breakdown(profiler.get() if profiler else {}, wall)
    breakdown["rounds"] = recorder.rounds if recorder else 0
    breakdown["strategy_setup"] = round(setup_s, 2)  # before the timeline's clock starts
    if builder.candidates:
        breakdown["build_per_candidate"] = round(builder.seconds / builder.candidates, 3)
    if config.measure.passes > 1 and new:
        breakdown["passes_per_candidate"] = round(runner.timed / new, 2)  # what racing left
    counts = records_per_workload(database)
    results = [
        TaskResult(
            name=t.name,
            weight=t.weight,
            flop=t.flop,
            trials=counts[tvm_ffi.structural_hash(t.mod)],
            new_trials=recorder.per_task.get(i, 0) if recorder else 0,
            best_s=best_latency(database, t.mod),
        )
        for i, t in enumerate(tasks)
    ]
    summary = TuneSummary(log_dir, results, new, wall, breakdown, interrupted, dict(setup.stats))
    _finish_run_file(log_dir, run_info, summary)
    if interrupted:
        raise ChameleonError(
            f"interrupted: {new} new measurements are saved in {log_dir}; run the same command again to resume"
        )
    return summary


def time_breakdown(scopes: dict, wall: float) -> dict[str, float]:
    """Split a run's wall-clock time using MetaSchedule's profiler scopes.

    The task scheduler times building, sending to the runner (LocalRunner measures inside that
    call) and joining runner futures (RPC measurements); what is left is the search itself.
    """
    get = lambda name: float(scopes.get(name, 0.0))  # noqa: E731
    build = get("SendToBuilder")
    run = get("SendToRunner") + get("JoinRunnerFutures")
    other = get("InitializeTask") + sum(
        float(v) for k, v in scopes.items() if k.startswith("MeasureCallback/")
    )
    return {
        "total": round(wall, 2),
        "search": round(max(wall - build - run - other, 0.0), 2),
        "build": round(build, 2),
        "run": round(run, 2),
        "other": round(other, 2),
    }


def _start_run_file(log_dir: Path, config: TuneConfig, spec: TargetSpec, network, prepack: bool) -> dict:
    path = log_dir / metadata.RUN_FILE
    data = metadata.read_run_file(log_dir) if path.exists() else None
    header = {
        "model": config.model,
        "network": network.name,
        "batch": config.batch,
        "image_size": config.image_size,
        "input_shape": list(network.input_shape),
        "target": spec.name,
        "target_json": spec.target_json,
        "prepack": prepack,
    }
    if data is None:
        data = {**header, "created": metadata.now(), "runs": []}
    else:
        for key in ("network", "target", "target_json", "batch", "image_size", "prepack"):
            if data.get(key) != header[key]:
                raise UsageError(
                    f"{log_dir} holds a log for {key}={data.get(key)!r}, not {header[key]!r}: "
                    "pick another --log-dir or the same settings to resume"
                )
    cfg = asdict(config)
    cfg["log_dir"] = str(log_dir)
    run = {
        "run": len(data["runs"]) + 1,
        "started": metadata.now(),
        "status": "running",
        "config": cfg,
        "versions": metadata.versions(),
        "host": metadata.host_info(),
    }
    data["runs"].append(run)
    metadata.write_run_file(log_dir, data)
    return {"_file": data, "run": run["run"], "entry": run}


def _finish_run_file(log_dir: Path, run_info: dict, summary: TuneSummary) -> None:
    entry = run_info["entry"]
    entry.update(
        finished=metadata.now(),
        status="interrupted" if summary.interrupted else "finished",
        new_trials=summary.new_trials,
        wall_s=round(summary.wall_s, 2),
        breakdown_s=summary.breakdown_s,
        search_stats=summary.search_stats,
    )
    metadata.write_run_file(log_dir, run_info["_file"])
