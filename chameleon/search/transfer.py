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
