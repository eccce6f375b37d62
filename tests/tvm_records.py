"""Real MetaSchedule records without tuning: small matmul workloads with hand-made traces.

A few seconds to write, no build or measurement; used by the log-layer tests and as another
task's log for transfer (warm-start) tests.
"""

from __future__ import annotations

from pathlib import Path

import tvm
from tvm import te
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.arg_info import ArgInfo
from tvm.s_tir.schedule import Schedule

from chameleon.logs import metadata

TARGET = tvm.target.Target({"kind": "llvm", "num-cores": 2})


def matmul(n: int) -> tvm.IRModule:
    a = te.placeholder((n, n), name="A")
    b = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    c = te.compute((n, n), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    return tvm.IRModule({"main": te.create_prim_func([a, b, c])})


def tiled_schedule(mod: tvm.IRModule, seed: int) -> Schedule:
    """A schedule whose one decision (the inner tile of loop i) depends on ``seed``."""
    sch = Schedule(mod)
    i, _, _ = sch.get_loops(sch.get_sblock("C"))
    extent = int(sch.get(i).extent)
    inner = [d for d in range(1, extent + 1) if extent % d == 0][seed % 5]
    sch.split(i, sch.sample_perfect_tile(i, n=2, decision=[extent // inner, inner]))
    return sch


def tiled_trace(mod: tvm.IRModule, seed: int):
    return tiled_schedule(mod, seed).trace


def commit_record(db, mod: tvm.IRModule, seed: int, latency: float) -> None:
    workload = db.commit_workload(mod)
    db.commit_tuning_record(
        ms.database.TuningRecord(
            tiled_trace(mod, seed), workload, [latency], TARGET, ArgInfo.from_prim_func(mod["main"])
        )
    )


def write_matmul_log(log_dir: Path, sizes: dict[int, int], *, kind: str = "llvm") -> Path:
    """A chameleon log of matmul workloads (size -> records; record ``s`` takes ``(n + s)`` us),
    its ``run.json`` naming a ``kind`` target and each matmul as a tuned task."""
    log_dir.mkdir(parents=True, exist_ok=True)
    db = ms.database.JSONDatabase(work_dir=str(log_dir))
    for n, count in sizes.items():
        for s in range(count):
            commit_record(db, matmul(n), seed=s, latency=1e-6 * (n + s))
    del db
    tasks = [{"name": f"matmul{n}", "tuned": True} for n in sizes]
    metadata.write_run_file(log_dir, {"target": kind, "target_json": {"kind": kind}, "tasks": tasks})
    return log_dir
