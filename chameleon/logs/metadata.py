"""``run.json``: what a log directory was tuned for, and one entry per tuning run in it."""

from __future__ import annotations

import json
import platform
import socket
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path

from chameleon.errors import ChameleonError

RUN_FILE = "run.json"


def versions() -> dict[str, str]:
    out = {}
    for pkg in ("chameleon", "apache-tvm", "apache-tvm-ffi", "torch", "xgboost", "scikit-learn", "numpy"):
        try:
            out[pkg] = importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def host_info() -> dict:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_run_file(log_dir: str | Path) -> dict:
    path = Path(log_dir) / RUN_FILE
    if not path.exists():
        raise ChameleonError(
            f"{log_dir} has no {RUN_FILE}: not a chameleon tuning log (run `chameleon tune` first)"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ChameleonError(f"{path} is corrupt ({exc}); restore it or tune into a new --log-dir") from exc


def write_run_file(log_dir: str | Path, data: dict) -> None:
    path = Path(log_dir) / RUN_FILE
    tmp = path.with_name(RUN_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)
