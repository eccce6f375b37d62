"""Confirm a log's best records: re-measure each task's top records, and let replay use the result.

One measurement can be far off: on a shared 2-core VM a configuration's own times spread by ~1.5x
(experiments/results/noise-*.md). A task's best record is then often the luckiest draw of a
good configuration rather than the fastest configuration. ``confirm_log`` re-measures each task's
``top`` records ``rounds`` times, interleaved (so a slow spell of the machine hits them all), and
writes them with the median of their times as ``run_secs`` into a second MetaSchedule database
in ``<log>/confirmed/``. ``replay`` compiles from that database when it exists; tuning the log
further removes it, since it would then be out of date. The main log is never modified.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from chameleon.errors import ChameleonError
from chameleon.hardware.targets import TargetSpec
from chameleon.tuning.measure import MeasureConfig

logger = logging.getLogger(__name__)

CONFIRMED_DIR = "confirmed"


def confirmed_dir(log_dir: str | Path) -> Path:
    return Path(log_dir) / CONFIRMED_DIR


def discard_confirmation(log_dir: str | Path) -> None:
    """Remove ``<log>/confirmed/`` (tuning added records: it no longer holds each task's best)."""
    path = confirmed_dir(log_dir)
    if path.exists():
        shutil.rmtree(path)
        logger.info("%s removed: the log is being tuned further (run `chameleon confirm` again)", path)


@contextlib.contextmanager
def measurers(spec: TargetSpec, measure: MeasureConfig | None = None) -> Iterator[tuple[object, object]]:
    """A builder and a runner for ``spec`` (local, or the farm ``measure`` names), shut down on exit:
    one worker pool and one runner for any number of :func:`remeasure` calls."""
    from chameleon.tuning.measure import make_builder, make_runner

    builder = make_builder(spec)
    runner = make_runner(spec, measure or MeasureConfig())
    try:
        yield builder, runner
    finally:
        builder.shutdown()
        if hasattr(runner, "shutdown"):
            runner.shutdown()


def remeasure(
    workload,
    traces: list,
    *,
    rounds: int,
    spec: TargetSpec,
    target,
    measure: MeasureConfig | None = None,
    builder=None,
    runner=None,
    on_time: Callable[[int, float], None] | None = None,
) -> list[list[float]]:
    """Times (s) of each trace's schedule of ``workload``: built once for ``target`` and run
    ``rounds`` times, interleaved, with ``measure`` 's runner (local, or the farm it names); []
    for a trace that fails to build or run. ``builder``, ``runner``: ones to reuse across calls
    (from :func:`measurers`; default: fresh ones for this call). ``on_time(trace index, time)`` is
    called as each time arrives (a noise study stamps them). The build artifacts are removed, as
    the task scheduler removes them after a tuning round."""
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.utils import remove_build_dir
    from tvm.s_tir.schedule import Schedule

    from chameleon.logs.timeline import mean_latency
    from chameleon.space.space import to_measure_candidate

    candidates = []
    for trace in traces:
        sch = Schedule(workload)
        trace.apply_to_schedule(sch, remove_postproc=False)
        candidates.append(to_measure_candidate(sch))
    device = "cuda" if spec.kind == "gpu" else "cpu"
    times: list[list[float]] = [[] for _ in traces]
    with contextlib.ExitStack() as stack:
        if builder is None or runner is None:
            builder, runner = stack.enter_context(measurers(spec, measure))
        built = builder.build([ms.builder.BuilderInput(c.sch.mod, target) for c in candidates])
        ok = [i for i, b in enumerate(built) if not b.error_msg]
        for i in sorted(set(range(len(built))) - set(ok)):
            logger.warning("re-measure: candidate %d did not build: %s", i, built[i].error_msg.strip()[-300:])
        try:
            for _ in range(rounds):
                inputs = [
                    ms.runner.RunnerInput(built[i].artifact_path, device, candidates[i].args_info) for i in ok
                ]
                for i, future in zip(ok, runner.run(inputs), strict=True):
                    result = future.result()
                    lat = None if result.error_msg else mean_latency(result.run_secs)
                    if lat is not None:
                        times[i].append(lat)
                        if on_time:
                            on_time(i, lat)
        finally:
            for i in ok:
                remove_build_dir(built[i].artifact_path)
    return times


@dataclass(frozen=True, kw_only=True)
class TaskConfirmation:
    task: str
    recorded_s: list[float]
    """The top records' latencies as logged, best first."""
    confirmed_s: list[float | None]
    """The median of each one's re-measured times (None: it failed to build or run)."""

    @property
    def changed(self) -> bool:
        """True when the re-measured best is not the logged best."""
        ok = [(t, i) for i, t in enumerate(self.confirmed_s) if t is not None]
        return bool(ok) and min(ok)[1] != 0


def confirm_log(
    log_dir: str | Path,
    *,
    top: int = 4,
    rounds: int = 5,
    measure: MeasureConfig | None = None,
    on_task: Callable[[int, int, str], None] | None = None,
) -> list[TaskConfirmation]:
    """Re-measure each task's ``top`` records ``rounds`` times; write ``<log>/confirmed/``.

    A task whose records all fail to re-measure keeps its logged records there. ``on_task(i, n,
    name)`` is called before each of the ``n`` tasks is measured."""
    import tvm
    from tvm.s_tir import meta_schedule as ms

    from chameleon.hardware.targets import resolve_target
    from chameleon.logs.database import open_database
    from chameleon.logs.metadata import read_run_file
    from chameleon.logs.timeline import mean_latency

    if top < 1 or rounds < 1:
        raise ChameleonError(f"--top and --rounds must be at least 1, not {top} and {rounds}")
    log_dir = Path(log_dir)
    run = read_run_file(log_dir)
    spec = resolve_target(run["target"])
    target = tvm.target.Target(run["target_json"])
    database = open_database(log_dir)
    names = {t.get("workload_hash"): t["name"] for t in run.get("tasks", [])}
    out_dir = confirmed_dir(log_dir)
    staging = out_dir.with_name(CONFIRMED_DIR + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    confirmed_db = ms.database.JSONDatabase(work_dir=str(staging))
    results = []
    workloads = _workloads(database)
    with measurers(spec, measure) as (builder, runner):  # one worker pool and runner for all
        for i, (workload_hash, workload) in enumerate(workloads.items()):
            name = names.get(workload_hash, f"workload {workload_hash}")
            if on_task:
                on_task(i, len(workloads), name)
            records = [r for r in database.get_top_k(workload, top) if mean_latency(r.run_secs) is not None]
            if not records:
                continue
            traces = [r.trace for r in records]
            times = remeasure(
                workload.mod,
                traces,
                rounds=rounds,
                spec=spec,
                target=target,
                builder=builder,
                runner=runner,
            )
            confirmed = [statistics.median(t) if t else None for t in times]
            kept = confirmed_db.commit_workload(workload.mod)
            logged = [mean_latency(r.run_secs) for r in records]
            for record, value, old in zip(records, confirmed, logged, strict=True):
                if value is not None or all(v is None for v in confirmed):
                    run_secs = [value if value is not None else old]
                    confirmed_db.commit_tuning_record(
                        ms.database.TuningRecord(
                            record.trace, kept, run_secs, record.target, record.args_info
                        )
                    )
            results.append(TaskConfirmation(task=name, recorded_s=logged, confirmed_s=confirmed))
            logger.info("%s: re-measured %d records", name, len(records))
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    return results


def _workloads(database) -> dict[str, object]:
    """The database's workloads that have records, by structural hash (run.json's ``workload_hash``)."""
    import tvm_ffi

    out: dict[str, object] = {}
    for record in database.get_all_tuning_records():
        out.setdefault(str(tvm_ffi.structural_hash(record.workload.mod)), record.workload)
    return out
