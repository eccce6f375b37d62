"""Open a log directory's MetaSchedule JSON database, surviving corrupt lines.

The database is TVM's own two-file JSON format (``database_workload.json`` and
``database_tuning_record.json``), so stock TVM reads it with nothing of chameleon imported.
TVM aborts on a malformed line; a run killed mid-write or a hand-edited file must not cost the
user every other record. :func:`repair` moves each unreadable line to ``<file>.corrupt`` (never
deleted), warns with the file and line number, re-indexes records when a workload line had to go,
and leaves a valid pair of files behind.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

from chameleon.errors import ChameleonError

logger = logging.getLogger(__name__)

WORKLOAD_FILE = "database_workload.json"
RECORD_FILE = "database_tuning_record.json"


@dataclass(frozen=True)
class RepairReport:
    bad_workload_lines: list[int]
    bad_record_lines: list[int]
    orphaned_records: int

    @property
    def changed(self) -> bool:
        return bool(self.bad_workload_lines or self.bad_record_lines or self.orphaned_records)


def _read_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def _parse_workload(line: str, deep: bool):
    """The TVM ``Workload`` of a line (``True`` if not ``deep``), or None if the line is not one."""
    from tvm.s_tir.meta_schedule.database import Workload

    try:
        value = json.loads(line)
        if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)):
            return None
        return Workload.from_json(value) if deep else True
    except Exception:  # noqa: BLE001 - anything TVM refuses is a corrupt line
        return None


def _parse_record(line: str, workloads: dict[int, object], deep: bool) -> tuple[int, list] | None:
    """``(workload index, record json)`` if TVM can read the line as a record, else None."""
    from tvm.s_tir.meta_schedule.database import TuningRecord

    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int)):
        return None
    idx, rec = value
    if not (isinstance(rec, list) and len(rec) >= 2 and isinstance(rec[0], list)):
        return None
    if deep and idx in workloads:
        try:
            TuningRecord.from_json(rec, workloads[idx])
        except Exception:  # noqa: BLE001
            return None
    return idx, rec


def repair(log_dir: str | Path, *, deep: bool = False) -> RepairReport:
    """Validate both files line by line; move bad lines aside.

    The default check is JSON-level (cheap); ``deep=True`` also parses every line with TVM's own
    readers, for lines that are valid JSON but not valid records (``open_database`` does that
    only when TVM refuses the files).

    TVM numbers workloads by their position among the (non-blank) lines it wrote, so records are
    re-indexed when a workload line has to go; records of a lost workload are set aside too.
    Blank lines are dropped (TVM's reader crashes on them).
    """
    log_dir = Path(log_dir)
    wl_path, rec_path = log_dir / WORKLOAD_FILE, log_dir / RECORD_FILE
    wl_raw, rec_raw = _read_lines(wl_path), _read_lines(rec_path)
    bad_wl, bad_rec, orphans = [], [], 0
    remap: dict[int, int] = {}
    parsed_wl: dict[int, object] = {}
    kept_wl: list[str] = []
    index = 0  # TVM's index: position among non-blank lines
    for i, line in enumerate(wl_raw):
        if not line.strip():
            continue
        workload = _parse_workload(line, deep)
        if workload is not None:
            remap[index] = len(kept_wl)
            parsed_wl[index] = workload
            kept_wl.append(line)
        else:
            bad_wl.append(i + 1)
            logger.warning(
                "%s line %d is corrupt: skipped (kept in %s.corrupt)", wl_path, i + 1, wl_path.name
            )
        index += 1
    kept_rec: list[str] = []
    corrupt_rec: list[str] = []
    for i, line in enumerate(rec_raw):
        if not line.strip():
            continue
        parsed = _parse_record(line, parsed_wl, deep)
        if parsed is None:
            bad_rec.append(i + 1)
            corrupt_rec.append(line)
            logger.warning(
                "%s line %d is corrupt: skipped (kept in %s.corrupt)", rec_path, i + 1, rec_path.name
            )
            continue
        idx, rec = parsed
        if idx not in remap:
            orphans += 1
            corrupt_rec.append(line)
            continue
        kept_rec.append(line if remap[idx] == idx else json.dumps([remap[idx], rec], separators=(",", ":")))
    report = RepairReport(bad_wl, bad_rec, orphans)
    blank = any(not line.strip() for line in wl_raw + rec_raw)
    if report.changed:
        if orphans:
            logger.warning("%s: %d records refer to a corrupt workload line: set aside", rec_path, orphans)
        _append(wl_path.with_name(wl_path.name + ".corrupt"), [wl_raw[i - 1] for i in bad_wl])
        _append(rec_path.with_name(rec_path.name + ".corrupt"), corrupt_rec)
    if report.changed or blank:
        _write(wl_path, kept_wl)
        _write(rec_path, kept_rec)
    elif rec_raw and not rec_path.read_bytes().endswith(b"\n"):
        _write(rec_path, kept_rec)  # a complete last line without its newline: TVM appends after it
    return report


def _append(path: Path, lines: list[str]) -> None:
    if lines:
        with path.open("a", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in lines)


def _write(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    tmp.replace(path)


def _require_log(log_dir: Path) -> None:
    if not (log_dir / WORKLOAD_FILE).exists():
        raise ChameleonError(
            f"{log_dir} is not a tuning log (no {WORKLOAD_FILE}); run `chameleon tune --log-dir {log_dir}` first"
        )


def open_database(log_dir: str | Path, *, create: bool = False):
    """Repair (if needed) and open the log directory's ``JSONDatabase``."""
    from tvm.s_tir import meta_schedule as ms

    log_dir = Path(log_dir)
    if not create:
        _require_log(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    repair(log_dir)
    try:
        return ms.database.JSONDatabase(work_dir=str(log_dir))
    except Exception:  # noqa: BLE001 - TVM refused a line that is valid JSON: check every line with TVM
        repair(log_dir, deep=True)
        return ms.database.JSONDatabase(work_dir=str(log_dir))


def workload_records(log_dir: str | Path, mod) -> tuple[object | None, list[list]]:
    """``(TVM Workload, record JSON values)`` of the workload structurally equal to ``mod`` in a
    log directory, read without replaying any trace and without writing to the log (it may be
    another device's, or read-only); ``(None, [])`` if the log lacks the workload.

    ``JSONDatabase`` replays every record of every workload when it opens (tens of ms each), which
    made a warm start from a 4000-record log cost ~40 s per task. Each value is
    ``[trace json, run_secs, target json, args_info]``: give it with the workload to
    ``TuningRecord.from_json`` for a real record. Records without a valid measurement are left
    out, as ``Database.get_top_k`` leaves them out; unreadable lines are skipped with a warning.
    """
    import tvm_ffi

    log_dir = Path(log_dir)
    _require_log(log_dir)
    wanted = tvm_ffi.structural_hash(mod)
    found = None
    # TVM's workload index is the position among non-blank lines, corrupt ones included
    lines = [line for line in _read_lines(log_dir / WORKLOAD_FILE) if line.strip()]
    for index, line in enumerate(lines):
        workload = _parse_workload(line, deep=True)
        if workload is None or tvm_ffi.structural_hash(workload.mod) != wanted:
            continue
        if tvm_ffi.structural_equal(workload.mod, mod):
            found = (index, workload)
            break
    if found is None:
        return None, []
    index, workload = found
    return workload, _valid_records(log_dir, {index}).get(index, [])


def all_workload_records(log_dir: str | Path) -> list[tuple[object, list[list]]]:
    """``(TVM Workload, record JSON values)`` of every workload of a log directory that has valid
    records, read as :func:`workload_records` reads one (no replay, no write)."""
    log_dir = Path(log_dir)
    _require_log(log_dir)
    lines = [line for line in _read_lines(log_dir / WORKLOAD_FILE) if line.strip()]
    workloads = {i: w for i, line in enumerate(lines) if (w := _parse_workload(line, deep=True)) is not None}
    records = _valid_records(log_dir, set(workloads))
    return [(workloads[i], records[i]) for i in sorted(records)]


def _valid_records(log_dir: Path, indices: set[int]) -> dict[int, list[list]]:
    """Record JSON values with a valid measurement, by workload index (only ``indices``)."""
    records: dict[int, list[list]] = {}
    bad = 0
    for line in _read_lines(log_dir / RECORD_FILE):
        head = _RECORD_HEAD.match(line)
        if head is None or int(head.group(1)) not in indices:
            bad += head is None and bool(line.strip())
            continue
        parsed = _parse_record(line, {}, deep=False)
        if parsed is None:
            bad += 1
            continue
        index, rec = parsed
        run_secs = rec[1]
        if isinstance(run_secs, list) and run_secs and not all(_as_float(v) >= 1e10 for v in run_secs):
            records.setdefault(index, []).append(rec)
    if bad:
        logger.warning("%s: %d unreadable record lines skipped", log_dir / RECORD_FILE, bad)
    return records


_RECORD_HEAD = re.compile(r"\s*\[\s*(\d+)\s*,")


def _as_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.inf
