"""Run any registered strategy against a dataset instead of hardware."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from chameleon.logs.timeline import TimelineRecorder
from chameleon.search import registry
from chameleon.simulate.dataset import Dataset, TaskData
from chameleon.simulate.device import SimulatedBuilder, SimulatedDevice, SimulatedRunner, SimulatedSearch
from chameleon.simulate.surrogate import Surrogate, SurrogateQuality, program_features
from chameleon.tvm_glue.intrinsics import import_tensor_intrinsics
from chameleon.tvm_glue.ms_logging import ms_logger_setup

logger = logging.getLogger(__name__)


@dataclass
class SimRun:
    strategy: str
    task: str
    seed: int
    latencies: list[float | None]
    """Latency (s) of each measurement in order; None for an error."""
    wall_s: float
    hits: int
    misses: int

    @property
    def best(self) -> float | None:
        ok = [v for v in self.latencies if v is not None]
        return min(ok) if ok else None


def fit_surrogate(dataset: Dataset, task: TaskData, *, seed: int = 0) -> tuple[Surrogate, SurrogateQuality]:
    """Train the task's surrogate on its valid records (features from replaying their traces)."""
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo
    from tvm.s_tir.schedule import Schedule

    import_tensor_intrinsics()
    context = ms.TuneContext(mod=task.workload, target=dataset.target(), task_name=task.name)
    keys = task.valid_keys()
    candidates = []
    for key in keys:
        sch = Schedule(task.workload)
        task.traces[key].apply_to_schedule(sch, remove_postproc=False)
        candidates.append(ms.MeasureCandidate(sch, ArgInfo.from_entry_func(sch.mod, remove_preproc=True)))
    X = np.concatenate(
        [program_features(context, candidates[i : i + 256]) for i in range(0, len(candidates), 256)]
    )
    y = np.array([task.latency[k] for k in keys])
    surrogate = Surrogate(seed=seed)
    quality = surrogate.fit(X, y)
    return surrogate, quality


def simulate(
    *,
    dataset: Dataset,
    task: TaskData,
    strategy: str,
    trials: int,
    seed: int,
    surrogate: Surrogate | None,
    pool_only: bool,
    trials_per_round: int = 16,
    options: registry.StrategyOptions | None = None,
) -> SimRun:
    from tvm.s_tir import meta_schedule as ms

    entry = registry.get_entry(strategy)
    options = options or registry.StrategyOptions(seed=seed, target_json=dataset.target_json)
    setup = entry.factory(options)
    device = SimulatedDevice(task=task, surrogate=surrogate, pool_only=pool_only)
    import_tensor_intrinsics()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="chameleon-sim-") as work_dir:
        with ms_logger_setup(console_level=logging.WARNING):
            context = ms.TuneContext(
                mod=task.workload,
                target=dataset.target(),
                space_generator="post-order-apply",
                search_strategy=SimulatedSearch(inner=setup.strategy, device=device),
                task_name=task.name,
                rand_state=seed + 1,  # TVM treats 0 specially; keep seeds distinct
                num_threads=1,  # MetaSchedule hands per-thread random states out dynamically
                logger=ms.logging.get_logger("chameleon.simulate.tvm"),
            ).clone()
        recorder = TimelineRecorder(path=None, task_names=[task.name], run=1)
        # TVM's XGBModel draws from numpy's global RNG before it has data: seed it, then restore.
        saved = np.random.get_state()
        np.random.seed(seed)
        try:
            _tune(ms, context, trials, trials_per_round, device, setup, recorder, work_dir)
        finally:
            np.random.set_state(saved)
    wall = time.perf_counter() - start
    return SimRun(
        strategy=strategy,
        task=task.name,
        seed=seed,
        latencies=[m.latency_s for m in recorder.measurements],
        wall_s=wall,
        hits=device.hits,
        misses=device.misses,
    )


def _tune(ms, context, trials, trials_per_round, device, setup, recorder, work_dir) -> None:
    ms.tune_tasks(
        tasks=[context],
        task_weights=[1.0],
        work_dir=work_dir,
        max_trials_global=trials,
        max_trials_per_task=trials,
        num_trials_per_iter=trials_per_round,
        builder=SimulatedBuilder(device=device),
        runner=SimulatedRunner(device=device),
        database=ms.database.MemoryDatabase(),
        cost_model=setup.cost_model,
        measure_callbacks=[
            ms.measure_callback.AddToDatabase(),
            ms.measure_callback.UpdateCostModel(),
            recorder,
        ],
    )
