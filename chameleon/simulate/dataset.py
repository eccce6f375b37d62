"""Replay datasets: any chameleon log directory (or a .tar.gz of one) read as measured configs.

Each task's records are keyed by :func:`chameleon.tvm_glue.keys.trace_key` of their trace, so a
strategy's candidate is looked up by its decisions, whichever strategy produced it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chameleon.errors import ChameleonError, UsageError
from chameleon.logs.database import WORKLOAD_FILE, open_database
from chameleon.logs.metadata import read_run_file

logger = logging.getLogger(__name__)

FAILED = math.inf
"""Latency stored for a configuration whose build or run failed."""


@dataclass
class TaskData:
    name: str
    workload: object
    """The task's PrimFunc IRModule (the database's workload)."""
    weight: int
    flop: float
    latency: dict[str, float] = field(default_factory=dict)
    """trace key -> mean latency in seconds (``FAILED`` for an error)."""
    traces: dict[str, object] = field(default_factory=dict)
    """trace key -> the recorded ``Trace``."""

    @property
    def best(self) -> float:
        return min(self.latency.values(), default=FAILED)

    def valid_keys(self) -> list[str]:
        return [k for k, v in self.latency.items() if math.isfinite(v)]


@dataclass
class Dataset:
    path: Path
    network: str
    target_json: dict
    tasks: dict[str, TaskData]

    def target(self):
        import tvm

        return tvm.target.Target(self.target_json)

    def task(self, name: str) -> TaskData:
        if name in self.tasks:
            return self.tasks[name]
        matches = [n for n in self.tasks if name in n]
        if len(matches) == 1:
            return self.tasks[matches[0]]
        if matches:
            raise UsageError(
                f"task {name!r} is ambiguous in dataset {self.path}: {', '.join(matches)}; give more of the name"
            )
        raise UsageError(f"dataset {self.path} has no task {name!r}; its tasks: {', '.join(self.tasks)}")

    def check_target(self, target_json: dict) -> None:
        """Refuse to simulate a target the dataset was not measured on."""
        import tvm

        mine, theirs = tvm.target.Target(self.target_json), tvm.target.Target(target_json)
        if str(mine) != str(theirs):
            raise ChameleonError(
                f"dataset {self.path} was measured on {mine}, not {theirs}: record a dataset for that target"
            )


def log_directory(path: str | Path) -> Path:
    """A log directory, or the one inside a ``.tar.gz`` of it (unpacked once into the temp dir)."""
    path = Path(path)
    if path.is_dir():
        return path
    if not path.exists():
        raise ChameleonError(f"dataset {path} does not exist")
    if not path.name.endswith((".tar.gz", ".tgz")):
        raise ChameleonError(f"dataset {path} is neither a log directory nor a .tar.gz of one")
    digest = hashlib.sha1(path.read_bytes()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / "chameleon-datasets" / digest
    if not (out / "run.json").exists():
        try:
            with tarfile.open(path) as tar:
                tar.extractall(out, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ChameleonError(f"dataset {path} is not a readable .tar.gz ({exc})") from exc
        inner = [p for p in out.iterdir() if p.is_dir() and (p / "run.json").exists()]
        if not (out / "run.json").exists() and len(inner) == 1:
            return inner[0]
    inner = [p for p in out.iterdir() if p.is_dir() and (p / "run.json").exists()]
    if (out / "run.json").exists():
        return out
    if len(inner) != 1:
        raise ChameleonError(f"dataset {path} holds no chameleon log (no run.json inside)")
    return inner[0]


def load_dataset(path: str | Path) -> Dataset:
    """Read a dataset; refuse one whose records do not match its own metadata."""
    import tvm_ffi

    from chameleon.logs.timeline import mean_latency
    from chameleon.tvm_glue.keys import trace_key

    root = log_directory(path)
    if not (root / WORKLOAD_FILE).exists():
        raise ChameleonError(
            f"{path} is not a dataset: no {WORKLOAD_FILE} (record one with `chameleon record`)"
        )
    run = read_run_file(root)
    if "target_json" not in run or "tasks" not in run:
        raise ChameleonError(f"{root}/run.json lacks target_json/tasks: not a chameleon dataset")
    names = {t["workload_hash"]: t for t in run["tasks"] if "workload_hash" in t}
    target_str = str(_target(run["target_json"]))
    database = open_database(root)
    tasks: dict[str, TaskData] = {}
    for rec in database.get_all_tuning_records():
        wl = rec.workload.mod
        info = names.get(str(tvm_ffi.structural_hash(wl)))
        if info is None:
            raise ChameleonError(
                f"dataset {path} holds records for a workload that its run.json does not list: "
                "the files do not belong together; re-record it"
            )
        if rec.target is not None and str(rec.target) != target_str:
            raise ChameleonError(
                f"dataset {path}: a record was measured on {rec.target}, but the dataset says {target_str}"
            )
        data = tasks.get(info["name"])
        if data is None:
            data = tasks[info["name"]] = TaskData(info["name"], wl, int(info["weight"]), float(info["flop"]))
        key = trace_key(rec.trace)
        lat = mean_latency(rec.run_secs)
        lat = FAILED if lat is None else lat
        data.latency[key] = min(lat, data.latency.get(key, FAILED))
        data.traces.setdefault(key, rec.trace)
    if not tasks:
        raise ChameleonError(f"dataset {path} has no records")
    logger.info(
        "dataset %s: %s",
        root,
        ", ".join(f"{t.name} ({len(t.latency)} configs)" for t in tasks.values()),
    )
    return Dataset(root, run.get("network", "?"), run["target_json"], tasks)


def _target(target_json: dict):
    import tvm

    return tvm.target.Target(target_json)


def valid_latencies(task: TaskData) -> np.ndarray:
    return np.array([v for v in task.latency.values() if math.isfinite(v)])
