"""``chameleon record``: measure a broad set of configurations per task as a replay dataset.

A dataset is an ordinary chameleon log directory (MetaSchedule database + run.json + timeline),
filled in two phases per task: uniform random samples of every design space (breadth), then
an evolutionary tuning run (the good region a real search visits). Both phases go through
:func:`chameleon.tuning.tune.tune`, so recording is resumable and safe to stop like any tuning run.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from chameleon.errors import UsageError
from chameleon.tuning.tune import TuneConfig, TuneObserver, TuneSummary, tune

logger = logging.getLogger(__name__)


def record(
    *,
    base: TuneConfig,
    per_task: int,
    random_fraction: float = 0.5,
    observer: TuneObserver | None = None,
) -> list[TuneSummary]:
    """Record ``per_task`` measurements for each task selected by ``base.tasks`` into ``base.log_dir``."""
    if per_task < 2:
        raise UsageError("--per-task must be at least 2")
    if base.log_dir is None:
        raise UsageError("record needs --out DIR")
    if not base.tasks:
        raise UsageError(
            "record needs at least one --task (a dataset covers chosen tasks, not a whole network)"
        )
    n_random = max(1, int(per_task * random_fraction))
    phases = [("random", n_random, n_random), ("evolutionary", per_task, per_task - n_random)]
    summaries = []
    for strategy, cumulative, cap in phases:
        # The budget counts what the log already holds, so the first call also sizes the task count.
        probe = dataclasses.replace(base, strategy=strategy, trials_per_task=cap)
        n_tasks = _count_tasks(base, observer)
        config = dataclasses.replace(probe, trials=cumulative * n_tasks)
        logger.info("recording phase %s: up to %d measurements per task", strategy, cap)
        summaries.append(tune(config, observer))
    return summaries


def _count_tasks(base: TuneConfig, observer: TuneObserver | None) -> int:
    from chameleon.hardware.targets import resolve_target
    from chameleon.models.importer import load_network
    from chameleon.tuning.tune import select_tasks
    from chameleon.tvm_glue.pipeline import extract_tasks, prepack_default

    spec = resolve_target(base.target)
    target = spec.tvm_target()
    network = load_network(base.model, batch=base.batch, image_size=base.image_size)
    prepack = prepack_default(target) if base.prepack is None else base.prepack
    return len(select_tasks(extract_tasks(network.mod, target, prepack=prepack), base.tasks))


def default_dataset_dir(model: str, target: str) -> Path:
    return Path("experiments") / "datasets" / f"{Path(model).stem}-{target}"
