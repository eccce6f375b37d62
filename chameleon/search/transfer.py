"""Warm start (Glimpse's transfer): train the cost model first on logs from other devices or runs.

Records of the same workload in another log are decoded into this task's knob space (records
whose sketch structure differs, e.g. GPU logs for a CPU task, do not decode and are skipped);
latencies are normalised per log (best / latency), so devices of different speed share a scale;
each row carries its own device's blueprint embedding, so the model can tell devices apart.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from chameleon.cost_model.knob_model import KnobCostModel

logger = logging.getLogger(__name__)


def warm_start_records(
    space, workload, log_dirs: tuple[str, ...], *, with_embedding: bool
) -> tuple[np.ndarray, np.ndarray]:
    from tvm.s_tir.meta_schedule.database import TuningRecord

    from chameleon.hardware.blueprints import embedding
    from chameleon.hardware.target_blueprint import blueprint_for_target
    from chameleon.logs.database import workload_records
    from chameleon.logs.metadata import read_run_file
    from chameleon.logs.timeline import mean_latency
    from chameleon.simulate.dataset import log_directory

    xs, ys = [], []
    for source in log_dirs:
        log_dir = log_directory(source)  # a log directory or a dataset .tar.gz
        run = read_run_file(log_dir)
        tvm_workload, records = workload_records(log_dir, workload)
        configs, lats, replayed = [], [], 0
        for rec in records:
            config = space.decode_json(rec[0])
            if config is None:  # not a sketch's instructions verbatim: replay it the slow way
                replayed += 1
                config = space.decode(TuningRecord.from_json(rec, tvm_workload).trace)
            if config is None:
                continue
            lat = mean_latency(rec[1])
            configs.append(config)
            lats.append(math.inf if lat is None else lat)
        if not configs:
            continue
        X = space.features(configs)
        if with_embedding:
            emb = embedding(blueprint_for_target(run["target_json"])).astype(np.float32)
            X = np.concatenate([X, np.broadcast_to(emb, (len(X), len(emb)))], axis=1)
        xs.append(X)
        ys.append(KnobCostModel.targets(np.array(lats)))
        logger.info(
            "warm start: %d records of this task from %s (%d replayed)", len(configs), source, replayed
        )
    if not xs:
        return np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.float32)
    return np.concatenate(xs), np.concatenate(ys)


def pretrain_program_model(
    model, log_dirs: tuple[str, ...], target, *, per_workload: int = 128, seed: int = 0
) -> int:
    """Train MetaSchedule's program-feature ``XGBModel`` on the records of every workload in
    ``log_dirs`` measured on a target of the same kind (llvm or cuda): cross-task and cross-device
    transfer. Per-store program features mean the same thing for any workload, and the model
    normalises each workload's latencies by its own best, so what was learned on other layers,
    networks or devices ranks this task's programs before its first measurement.

    At most ``per_workload`` records per workload (the best one and a random draw of the rest)
    keep the replay cost (~80 ms a conv record here) and the model's retraining bounded. Returns the number of
    records trained on. The model must retrain after every round (``adaptive_training=False``):
    with TVM's adaptive training a task's first ~20% x (pre-trained rows) measurements would never
    reach the model.
    """
    from tvm.s_tir.meta_schedule import TuneContext
    from tvm.s_tir.meta_schedule.database import TuningRecord
    from tvm.s_tir.meta_schedule.runner import RunnerResult

    from chameleon.logs.database import all_workload_records
    from chameleon.logs.metadata import read_run_file
    from chameleon.logs.timeline import mean_latency
    from chameleon.simulate.dataset import log_directory
    from chameleon.tvm_glue.intrinsics import import_tensor_intrinsics

    if model.adaptive_training:
        raise ValueError("a pre-trained program model needs adaptive_training=False")
    import_tensor_intrinsics()  # what each TuneContext imports, fast
    rng = np.random.default_rng(seed)
    total = 0
    for source in log_dirs:
        log_dir = log_directory(source)
        kind = read_run_file(log_dir).get("target_json", {}).get("kind")
        if kind != target.kind.name:
            logger.info(
                "program model: %s was measured on %s, not %s: skipped", source, kind, target.kind.name
            )
            continue
        for workload, records in all_workload_records(log_dir):
            records = sorted(records, key=lambda r: mean_latency(r[1]) or math.inf)
            if len(records) > per_workload:
                rest = rng.choice(len(records) - 1, per_workload - 1, replace=False) + 1
                records = [records[0]] + [records[i] for i in sorted(rest)]
            candidates, results = [], []
            for rec in records:
                try:
                    candidates.append(TuningRecord.from_json(rec, workload).as_measure_candidate())
                except Exception:  # noqa: BLE001 - a trace this TVM cannot replay teaches nothing
                    continue
                results.append(RunnerResult(run_secs=[float(v) for v in rec[1]], error_msg=None))
            if candidates:
                model.update(TuneContext(mod=workload.mod, target=target), candidates, results)
                total += len(candidates)
    logger.info("program model: pre-trained on %d records of other runs", total)
    return total


def program_model(options, **xgb_kwargs):
    """MetaSchedule's ``XGBModel`` for a strategy: cold, or pre-trained on ``options.warm_start``
    (see :func:`pretrain_program_model`) when there are warm-start logs and a target."""
    from tvm.s_tir.meta_schedule.cost_model import XGBModel
    from tvm.target import Target

    if not (options.warm_start and options.target_json):
        return XGBModel(**xgb_kwargs)
    model = XGBModel(**xgb_kwargs, adaptive_training=False)
    pretrain_program_model(model, options.warm_start, Target(options.target_json), seed=options.seed)
    return model
