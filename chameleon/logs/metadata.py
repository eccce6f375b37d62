"""``run.json``: what a log directory was tuned for, and one entry per tuning run in it."""

from __future__ import annotations

import json
import platform
import socket
import subprocess
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path

from chameleon.errors import ChameleonError

RUN_FILE = "run.json"


def versions() -> dict[str, str]:
    out = {}
    for pkg in ("chameleon", "apache-tvm", "apache-tvm-ffi", "torch", "xgboost", "scikit-learn", "numpy"):
        out[pkg] = "not installed"
        for dist in (pkg, f"{pkg}-cpu"):  # xgboost also ships as xgboost-cpu (same module, no CUDA)
            try:
                out[pkg] = importlib_metadata.version(dist)
                break
            except importlib_metadata.PackageNotFoundError:
                continue
    commit = source_commit()
    if commit:
        out["chameleon-commit"] = commit
    return out


def source_commit() -> str | None:
    """The git commit of this checkout (``+dirty`` with uncommitted changes); None outside git."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


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
