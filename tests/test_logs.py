"""The log layer: database repair, the timeline, run.json and the report built from them.

Database tests use a real MetaSchedule JSON database written by TVM itself (two small matmul
workloads, records with hand-made traces: no tuning, a few seconds); the last ones use the
session's real tuning log (``tiny_log``, slow).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import pytest
import tvm_ffi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.arg_info import ArgInfo
from tvm.s_tir.meta_schedule.builder import BuilderResult
from tvm.s_tir.meta_schedule.runner import RunnerResult
from tvm_records import commit_record, matmul, tiled_schedule

from chameleon.errors import ChameleonError
from chameleon.logs import metadata
from chameleon.logs.database import (
    RECORD_FILE,
    WORKLOAD_FILE,
    all_workload_records,
    open_database,
    repair,
    workload_records,
)
from chameleon.logs.report import best_so_far, build_report, network_curve, plot_report
from chameleon.logs.timeline import (
    TIMELINE_FILE,
    Measurement,
    TimelineRecorder,
    mean_latency,
    read_timeline,
)

SIZES = {16: 3, 32: 4}
"""matmul size -> records of that workload (workload 0 has 3 records, workload 1 has 4)."""
N_RECORDS = sum(SIZES.values())
HYP = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# --------------------------------------------------------------------------- helpers
def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def write_lines(path: Path, content: list[str], *, newline_at_end: bool = True) -> None:
    path.write_text("\n".join(content) + ("\n" if newline_at_end else ""))


def stock_count(log_dir: Path) -> int:
    """Records that TVM's own JSONDatabase reads from the directory."""
    return len(ms.database.JSONDatabase(work_dir=str(log_dir)).get_all_tuning_records())


def corrupt_file(path: Path) -> Path:
    return path.with_name(path.name + ".corrupt")


@pytest.fixture(scope="module")
def db_template(tmp_path_factory) -> Path:
    """A JSON database written by TVM: workload 0 = matmul 16 (3 records), 1 = matmul 32 (4)."""
    root = tmp_path_factory.mktemp("db")
    db = ms.database.JSONDatabase(work_dir=str(root))
    for n, count in SIZES.items():
        for s in range(count):
            commit_record(db, matmul(n), seed=s + 1, latency=1e-3 * (n + s))
    del db
    assert len(lines(root / WORKLOAD_FILE)) == 2
    assert len(lines(root / RECORD_FILE)) == N_RECORDS
    return root


@pytest.fixture
def db_dir(db_template: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "db"
    shutil.copytree(db_template, dst)
    return dst


# --------------------------------------------------------------------------- repair
def test_clean_database_is_left_alone(db_dir: Path) -> None:
    before = {p.name: p.read_bytes() for p in db_dir.iterdir()}
    report = repair(db_dir)
    assert not report.changed
    assert report.bad_workload_lines == [] and report.bad_record_lines == []
    assert {p.name: p.read_bytes() for p in db_dir.iterdir()} == before
    assert stock_count(db_dir) == N_RECORDS


def test_corrupt_record_line_is_set_aside(db_dir: Path, caplog) -> None:
    rec = db_dir / RECORD_FILE
    content = lines(rec)
    original = content[1]
    content[1] = '{"this is": not json'
    write_lines(rec, content)
    with caplog.at_level(logging.WARNING, logger="chameleon"):
        report = repair(db_dir)
    assert report.bad_record_lines == [2]
    assert report.bad_workload_lines == [] and report.orphaned_records == 0
    assert lines(corrupt_file(rec)) == ['{"this is": not json']
    assert original not in lines(rec)
    assert len(lines(rec)) == N_RECORDS - 1
    assert any("line 2" in r.getMessage() and RECORD_FILE in r.getMessage() for r in caplog.records)
    assert stock_count(db_dir) == N_RECORDS - 1


def test_truncated_last_line_is_set_aside_and_tvm_appends_after_it(db_dir: Path) -> None:
    rec = db_dir / RECORD_FILE
    content = lines(rec)
    half = content[-1][: len(content[-1]) // 2]
    write_lines(rec, [*content[:-1], half], newline_at_end=False)  # killed mid-write
    report = repair(db_dir)
    assert report.bad_record_lines == [N_RECORDS]
    assert lines(corrupt_file(rec)) == [half]
    assert rec.read_bytes().endswith(b"\n")
    db = open_database(db_dir)
    assert len(db.get_all_tuning_records()) == N_RECORDS - 1
    commit_record(db, matmul(16), seed=99, latency=5e-3)
    del db
    assert stock_count(db_dir) == N_RECORDS


def test_complete_last_line_without_newline_gets_one(db_dir: Path) -> None:
    rec = db_dir / RECORD_FILE
    write_lines(rec, lines(rec), newline_at_end=False)
    report = repair(db_dir)
    assert not report.changed
    assert not corrupt_file(rec).exists()
    assert rec.read_bytes().endswith(b"\n")
    db = open_database(db_dir)
    commit_record(db, matmul(32), seed=42, latency=5e-3)
    del db
    assert stock_count(db_dir) == N_RECORDS + 1


def test_corrupt_first_workload_reindexes_the_other_records(db_dir: Path) -> None:
    wl, rec = db_dir / WORKLOAD_FILE, db_dir / RECORD_FILE
    wl_lines, rec_lines = lines(wl), lines(rec)
    write_lines(wl, ["[garbage", wl_lines[1]])
    report = repair(db_dir)
    assert report.bad_workload_lines == [1]
    assert report.orphaned_records == SIZES[16]
    assert lines(corrupt_file(wl)) == ["[garbage"]
    # The first workload's records are kept aside verbatim, with their old index.
    assert lines(corrupt_file(rec)) == rec_lines[: SIZES[16]]
    kept = [json.loads(line) for line in lines(rec)]
    assert [k[0] for k in kept] == [0] * SIZES[32]
    assert [k[1] for k in kept] == [json.loads(line)[1] for line in rec_lines[SIZES[16] :]]
    db = ms.database.JSONDatabase(work_dir=str(db_dir))
    records = db.get_all_tuning_records()
    assert len(records) == SIZES[32]
    assert all(tvm_ffi.structural_equal(r.workload.mod, matmul(32)) for r in records)
    assert len(db.get_top_k(db.commit_workload(matmul(32)), 10)) == SIZES[32]


def test_corrupt_last_workload_keeps_indices(db_dir: Path) -> None:
    wl, rec = db_dir / WORKLOAD_FILE, db_dir / RECORD_FILE
    rec_lines = lines(rec)
    write_lines(wl, [lines(wl)[0], '["123", '])
    report = repair(db_dir)
    assert report.bad_workload_lines == [2]
    assert report.orphaned_records == SIZES[32]
    assert lines(rec) == rec_lines[: SIZES[16]]
    assert lines(corrupt_file(rec)) == rec_lines[SIZES[16] :]
    assert stock_count(db_dir) == SIZES[16]


def test_record_of_unknown_workload_index_is_set_aside(db_dir: Path) -> None:
    rec = db_dir / RECORD_FILE
    content = lines(rec)
    stray = json.dumps([7, json.loads(content[0])[1]])
    write_lines(rec, [*content, stray])
    report = repair(db_dir)
    assert report.orphaned_records == 1 and report.bad_record_lines == []
    assert lines(corrupt_file(rec)) == [stray]
    assert stock_count(db_dir) == N_RECORDS


def test_corrupt_side_file_accumulates_over_repairs(db_dir: Path) -> None:
    rec = db_dir / RECORD_FILE
    write_lines(rec, [*lines(rec), "first bad line"])
    repair(db_dir)
    write_lines(rec, [*lines(rec), "second bad line"])
    repair(db_dir)
    assert lines(corrupt_file(rec)) == ["first bad line", "second bad line"]
    assert stock_count(db_dir) == N_RECORDS


@HYP
@given(
    bad=st.sets(st.integers(0, N_RECORDS - 1), max_size=N_RECORDS),
    kind=st.sampled_from(["truncate", "text", "wrong_shape", "string_index"]),
)
def test_any_set_of_corrupt_record_lines(db_template: Path, tmp_path: Path, bad: set[int], kind: str) -> None:
    d = tmp_path / f"db-{kind}-{'-'.join(map(str, sorted(bad)))}"
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(db_template, d)
    rec = d / RECORD_FILE
    content = lines(rec)
    for i in bad:
        content[i] = {
            "truncate": content[i][:-7],
            "text": "no json here",
            "wrong_shape": "[1, 2, 3]",
            "string_index": '["0", [[], []]]',
        }[kind]
    write_lines(rec, content)
    report = repair(d)
    assert report.bad_record_lines == sorted(i + 1 for i in bad)
    assert len(lines(corrupt_file(rec)) if bad else []) == len(bad)
    assert stock_count(d) == N_RECORDS - len(bad)


def test_open_database_refuses_a_directory_without_a_log(tmp_path: Path) -> None:
    with pytest.raises(ChameleonError, match="not a tuning log"):
        open_database(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def test_open_database_create_makes_an_empty_database(tmp_path: Path) -> None:
    db = open_database(tmp_path / "new", create=True)
    assert len(db.get_all_tuning_records()) == 0
    assert (tmp_path / "new" / WORKLOAD_FILE).exists()


def test_blank_record_line_is_removed(db_dir: Path) -> None:
    # Only the file is checked: opening it with TVM would crash the test process.
    rec = db_dir / RECORD_FILE
    content = lines(rec)
    write_lines(rec, [*content[:2], "", *content[2:]])
    repair(db_dir)
    assert "" not in lines(rec)


def test_blank_workload_line_keeps_records(db_dir: Path) -> None:
    wl = db_dir / WORKLOAD_FILE
    content = lines(wl)
    write_lines(wl, [content[0], "", content[1]])
    report = repair(db_dir)
    assert report.orphaned_records == 0
    assert stock_count(db_dir) == N_RECORDS


def test_valid_json_but_invalid_record_is_set_aside(db_dir: Path) -> None:
    rec = db_dir / RECORD_FILE
    content = lines(rec)
    content[1] = '[0, [[], "x"]]'
    write_lines(rec, content)
    db = open_database(db_dir)
    assert len(db.get_all_tuning_records()) == N_RECORDS - 1


# --------------------------------------------------------------------------- reading another log
def test_workload_records_reads_one_workload_like_tvm_without_writing(db_dir: Path) -> None:
    before = {p.name: p.read_bytes() for p in db_dir.iterdir()}
    db = ms.database.JSONDatabase(work_dir=str(db_dir))
    for n in SIZES:
        workload, records = workload_records(db_dir, matmul(n))
        assert tvm_ffi.structural_equal(workload.mod, matmul(n))
        stock = db.get_top_k(db.commit_workload(matmul(n)), 100)
        assert sorted(r[1][0] for r in records) == sorted(float(r.run_secs[0]) for r in stock)
        replayed = [ms.database.TuningRecord.from_json(r, workload) for r in records]
        assert {str(r.trace) for r in replayed} == {str(r.trace) for r in stock}
    assert workload_records(db_dir, matmul(8)) == (None, [])
    del db
    assert {p.name: p.read_bytes() for p in db_dir.iterdir()} == before


def test_workload_records_skips_corrupt_and_failed_lines_and_keeps_indices(db_dir: Path, caplog) -> None:
    wl, rec = db_dir / WORKLOAD_FILE, db_dir / RECORD_FILE
    write_lines(wl, ["[garbage", lines(wl)[1]])  # matmul 32 stays workload index 1
    content = lines(rec)
    failed = json.loads(content[-1])
    failed[1][1] = [1e10]
    write_lines(rec, [*content[:-1], json.dumps(failed), '{"not": json', ""])
    before = {p.name: p.read_bytes() for p in db_dir.iterdir()}
    with caplog.at_level(logging.WARNING, logger="chameleon"):
        workload, records = workload_records(db_dir, matmul(32))
    assert tvm_ffi.structural_equal(workload.mod, matmul(32))
    assert len(records) == SIZES[32] - 1
    assert any("1 unreadable" in r.getMessage() for r in caplog.records)
    assert workload_records(db_dir, matmul(16)) == (None, [])
    assert {p.name: p.read_bytes() for p in db_dir.iterdir()} == before


def test_all_workload_records_reads_each_workload_as_workload_records_does(db_dir: Path) -> None:
    wl, rec = db_dir / WORKLOAD_FILE, db_dir / RECORD_FILE
    content = lines(rec)
    failed = json.loads(content[0])
    failed[1][1] = [1e10]
    write_lines(rec, [json.dumps(failed), *content[1:], "[garbage"])
    before = {p.name: p.read_bytes() for p in db_dir.iterdir()}
    found = all_workload_records(db_dir)
    assert [len(records) for _, records in found] == [SIZES[16] - 1, SIZES[32]]
    for (workload, records), n in zip(found, SIZES, strict=True):
        assert tvm_ffi.structural_equal(workload.mod, matmul(n))
        assert records == workload_records(db_dir, matmul(n))[1]
    assert {p.name: p.read_bytes() for p in db_dir.iterdir()} == before
    write_lines(wl, [])
    assert all_workload_records(db_dir) == []


# --------------------------------------------------------------------------- timeline
def _candidates(n: int) -> list:
    mod = matmul(16)
    return [
        ms.MeasureCandidate(tiled_schedule(mod, s), ArgInfo.from_prim_func(mod["main"])) for s in range(n)
    ]


def test_recorder_classifies_results_and_appends(tmp_path: Path) -> None:
    seen: list[list[Measurement]] = []
    path = tmp_path / TIMELINE_FILE
    recorder = TimelineRecorder(path=path, task_names=["a", "b"], run=3, on_measure=seen.append)
    cands = _candidates(5)
    builder = [
        BuilderResult("x.so", None),
        BuilderResult(None, "Traceback (most recent call last):\n  File x\nBuildError: boom\n"),
        BuilderResult("x.so", None),
        BuilderResult("x.so", None),
        BuilderResult("x.so", None),
    ]
    runner = [
        RunnerResult([1e-3, 3e-3], None),
        RunnerResult(None, None),
        RunnerResult(None, "RPCError: timeout"),
        RunnerResult([float("nan")], None),
        RunnerResult([0.0], None),
    ]
    recorder._inst.apply(None, 0, cands[:3], builder[:3], runner[:3])
    recorder._inst.apply(None, 1, cands[3:], builder[3:], runner[3:])
    ms_ = recorder.measurements
    assert [m.latency_s for m in ms_] == [pytest.approx(2e-3), None, None, None, None]
    assert ms_[0].error is None and ms_[0].ok
    assert ms_[1].error == "BuildError: boom"
    assert ms_[2].error == "RPCError: timeout"
    assert ms_[3].error == ms_[4].error == "runner returned no valid time"
    assert [m.n for m in ms_] == [1, 2, 3, 4, 5]
    assert [(m.task, m.task_index, m.trial) for m in ms_] == [
        ("a", 0, 1),
        ("a", 0, 2),
        ("a", 0, 3),
        ("b", 1, 1),
        ("b", 1, 2),
    ]
    assert all(m.run == 3 for m in ms_)
    assert len({m.key for m in ms_}) == 5 and all(len(m.key) == 20 for m in ms_)
    assert recorder.count == 5 and recorder.rounds == 2 and recorder.per_task == {0: 3, 1: 2}
    assert [len(b) for b in seen] == [3, 2]
    assert read_timeline(tmp_path) == ms_


def test_recorder_without_path_writes_nothing(tmp_path: Path) -> None:
    recorder = TimelineRecorder(path=None, task_names=["a"], run=1)
    recorder._inst.apply(None, 0, _candidates(1), [BuilderResult("x", None)], [RunnerResult([1.0], None)])
    assert len(recorder.measurements) == 1
    assert list(tmp_path.iterdir()) == []


def test_long_error_is_one_short_line(tmp_path: Path) -> None:
    recorder = TimelineRecorder(path=None, task_names=["a"], run=1)
    msg = "first\n\n" + "E" * 1000 + "\n"
    recorder._inst.apply(None, 0, _candidates(1), [BuilderResult(None, msg)], [RunnerResult(None, None)])
    err = recorder.measurements[0].error
    assert "\n" not in err and 0 < len(err) <= 300


def _measurement(i: int, **kw) -> Measurement:
    base = dict(
        task="t", task_index=0, trial=i, n=i, t=0.1 * i, run=1, latency_s=1e-3 * i, error=None, key=f"k{i}"
    )
    base.update(kw)
    return Measurement(**base)


def test_read_timeline_skips_corrupt_lines(tmp_path: Path, caplog) -> None:
    good = [_measurement(1), _measurement(2, latency_s=None, error="boom"), _measurement(3)]
    text = [json.dumps(good[0].__dict__), '{"task": "t", "trial"', json.dumps(good[1].__dict__)]
    text += ["", "[1, 2]", json.dumps({"task": "t"}), json.dumps({**good[0].__dict__, "extra": 1})]
    text += [json.dumps(good[2].__dict__)]
    (tmp_path / TIMELINE_FILE).write_text("\n".join(text) + "\n")
    with caplog.at_level(logging.WARNING, logger="chameleon"):
        assert read_timeline(tmp_path) == good
    warned = sorted(r.args[1] for r in caplog.records if "corrupt" in r.msg)
    assert warned == [2, 5, 6, 7]


def test_read_timeline_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert read_timeline(tmp_path) == []


@given(st.lists(st.floats(min_value=1e-9, max_value=1e3), min_size=1, max_size=8))
def test_mean_latency_of_valid_repeats(values: list[float]) -> None:
    assert mean_latency(values) == pytest.approx(sum(values) / len(values))


@given(
    st.lists(st.floats(min_value=1e-9, max_value=1e3), max_size=5),
    st.sampled_from([math.nan, math.inf]),
)
def test_mean_latency_of_non_finite_repeats_is_none(values: list[float], bad: float) -> None:
    assert mean_latency([*values, bad]) is None


def test_mean_latency_of_metaschedules_failure_time_is_none() -> None:
    assert mean_latency([1e10]) is None and mean_latency([1e10, 1e10, 1e10]) is None


def test_mean_latency_of_nothing_or_zero_is_none() -> None:
    assert mean_latency([]) is None
    assert mean_latency(None) is None
    assert mean_latency([0.0]) is None
    assert mean_latency([-1.0, 0.5]) is None


# --------------------------------------------------------------------------- run.json
def test_run_file_round_trip_is_atomic(tmp_path: Path) -> None:
    data = {"model": "m", "runs": [{"run": 1, "started": metadata.now()}], "x": [1.5, None]}
    metadata.write_run_file(tmp_path, data)
    assert metadata.read_run_file(tmp_path) == data
    assert sorted(p.name for p in tmp_path.iterdir()) == [metadata.RUN_FILE]
    metadata.write_run_file(tmp_path, {"model": "n"})
    assert metadata.read_run_file(tmp_path) == {"model": "n"}


def test_missing_run_file_is_a_chameleon_error(tmp_path: Path) -> None:
    with pytest.raises(ChameleonError, match="chameleon tune"):
        metadata.read_run_file(tmp_path)


def test_corrupt_run_file_is_a_chameleon_error(tmp_path: Path) -> None:
    (tmp_path / metadata.RUN_FILE).write_text('{"model": "m", ')
    with pytest.raises(ChameleonError, match="corrupt") as info:
        metadata.read_run_file(tmp_path)
    assert "\n" not in str(info.value)


def test_versions_and_host() -> None:
    v = metadata.versions()
    assert set(v) >= {"chameleon", "apache-tvm", "torch", "numpy"}
    assert v["apache-tvm"].startswith("0.27")
    assert set(metadata.host_info()) == {"hostname", "platform", "python"}
    assert "+00:00" in metadata.now()


# --------------------------------------------------------------------------- report
def _write_log(root: Path, tasks: list[dict], measurements: list[Measurement]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    metadata.write_run_file(root, {"network": "net", "target": "llvm", "tasks": tasks, "runs": []})
    with (root / TIMELINE_FILE).open("w") as f:
        for m in measurements:
            f.write(json.dumps(m.__dict__) + "\n")
    return root


def _m(n: int, task: str, latency: float | None) -> Measurement:
    return Measurement(task, 0, n, n, float(n), 1, latency, None if latency else "err", f"{task}{n}")


SYNTH_TASKS = [
    {"name": "a", "weight": 2, "flop": 4e6},
    {"name": "b", "weight": 1, "flop": 1e6},
    {"name": "c", "weight": 3, "flop": 2e6},
]
SYNTH_MEASUREMENTS = [
    _m(1, "a", 4e-3),
    _m(2, "a", None),
    _m(3, "b", None),
    _m(4, "a", 2e-3),
    _m(5, "b", 1e-3),
    _m(6, "b", 5e-4),
    _m(7, "a", 3e-3),
]


def test_build_report_on_a_synthetic_log(tmp_path: Path) -> None:
    rep = build_report(_write_log(tmp_path / "log", SYNTH_TASKS, SYNTH_MEASUREMENTS))
    assert (rep.network, rep.target) == ("net", "llvm")
    rows = {r.name: r for r in rep.rows}
    assert [r.name for r in rep.rows] == ["a", "b", "c"]
    assert (rows["a"].best_s, rows["a"].trials, rows["a"].errors) == (2e-3, 4, 1)
    assert (rows["b"].best_s, rows["b"].trials, rows["b"].errors) == (5e-4, 3, 1)
    assert (rows["c"].best_s, rows["c"].trials, rows["c"].errors) == (None, 0, 0)
    assert rows["a"].gflops == pytest.approx(4e6 / 2e-3 / 1e9)
    assert rows["c"].gflops is None
    assert rep.estimated_latency_s is None  # task c has no measurement
    assert rep.measurements == SYNTH_MEASUREMENTS


def test_estimated_latency_once_every_task_has_one(tmp_path: Path) -> None:
    rep = build_report(_write_log(tmp_path / "log", SYNTH_TASKS[:2], SYNTH_MEASUREMENTS))
    assert rep.estimated_latency_s == pytest.approx(2 * 2e-3 + 1 * 5e-4)


def test_network_curve_starts_when_every_measured_task_has_a_valid_time(tmp_path: Path) -> None:
    rep = build_report(_write_log(tmp_path / "log", SYNTH_TASKS, SYNTH_MEASUREMENTS))
    xs, ys = network_curve(rep)
    assert xs == [5, 6, 7]  # task c was never measured, so it does not hold the curve back
    assert ys == pytest.approx([2 * 2e-3 + 1e-3, 2 * 2e-3 + 5e-4, 2 * 2e-3 + 5e-4])


def test_network_curve_of_an_empty_log(tmp_path: Path) -> None:
    rep = build_report(_write_log(tmp_path / "log", SYNTH_TASKS, []))
    assert network_curve(rep) == ([], [])
    assert all(r.trials == 0 and r.best_s is None for r in rep.rows)


def test_best_so_far_examples() -> None:
    out = best_so_far([None, 3.0, None, 4.0, 1.0, 2.0])
    assert math.isnan(out[0])
    assert out[1:] == [3.0, 3.0, 3.0, 1.0, 1.0]
    assert best_so_far([]) == []


@given(st.lists(st.one_of(st.none(), st.floats(min_value=1e-9, max_value=10.0)), max_size=40))
def test_best_so_far_is_a_non_increasing_running_minimum(lats: list[float | None]) -> None:
    out = best_so_far(lats)
    assert len(out) == len(lats)
    valid = [i for i, v in enumerate(lats) if v is not None]
    first = valid[0] if valid else len(lats)
    assert all(math.isnan(v) for v in out[:first])
    tail = out[first:]
    assert all(b <= a for a, b in zip(tail, tail[1:], strict=False))
    for i in range(first, len(lats)):
        assert out[i] == min(v for v in lats[: i + 1] if v is not None)


def test_plot_report_writes_a_png(tmp_path: Path) -> None:
    rep = build_report(_write_log(tmp_path / "log", SYNTH_TASKS, SYNTH_MEASUREMENTS))
    path = plot_report(rep, tmp_path / "r.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- the real log
@pytest.mark.slow
def test_tiny_log_timeline_and_report(tiny_log: Path) -> None:
    timeline = read_timeline(tiny_log)
    assert [m.n for m in timeline] == list(range(1, 13))
    assert [m.trial for m in timeline] == list(range(1, 13))
    assert all(m.run == 1 and m.key and "conv2d1" in m.task for m in timeline)
    rep = build_report(tiny_log)
    run = metadata.read_run_file(tiny_log)
    assert [r.name for r in rep.rows] == [t["name"] for t in run["tasks"]]
    tuned = [r for r in rep.rows if r.trials]
    assert len(tuned) == 1 and tuned[0].trials == 12
    assert [t["name"] for t in run["tasks"] if t["tuned"]] == [tuned[0].name]
    # The timeline and TVM's database agree on the best time.
    db = open_database(tiny_log)
    records = db.get_all_tuning_records()
    best_db = min(mean_latency(r.run_secs) or math.inf for r in records)
    assert tuned[0].best_s == pytest.approx(best_db, rel=1e-9)
    xs, ys = network_curve(rep)
    assert xs and ys[-1] == pytest.approx(tuned[0].weight * tuned[0].best_s)
    assert run["runs"][0]["status"] == "finished" and run["runs"][0]["new_trials"] == 12


@pytest.mark.slow
def test_tiny_log_survives_corruption(tiny_log_copy: Path) -> None:
    rec = tiny_log_copy / RECORD_FILE
    content = lines(rec)
    assert len(content) == 12
    content[3] = content[3][:100]
    write_lines(rec, [*content[:-1], content[-1][:-50]], newline_at_end=False)
    report = repair(tiny_log_copy)
    assert report.bad_record_lines == [4, 12]
    assert len(lines(corrupt_file(rec))) == 2
    assert stock_count(tiny_log_copy) == 10
    assert len(open_database(tiny_log_copy).get_all_tuning_records()) == 10
