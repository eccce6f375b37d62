"""End to end: a real tuning log -> replay -> deployable library; stock TVM; resuming; the CLI.

Everything here builds, measures or starts a fresh interpreter, so the whole module is ``slow``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from chameleon.logs.database import RECORD_FILE
from chameleon.logs.metadata import read_run_file
from chameleon.logs.timeline import TIMELINE_FILE, read_timeline

pytestmark = pytest.mark.slow

TINY_TRIALS = 12
MORE_TRIALS = 16


def cli_command() -> list[str]:
    """The installed ``chameleon`` console script (pyproject: chameleon = chameleon.cli:main)."""
    script = Path(sys.executable).parent / "chameleon"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from chameleon.cli import main; main()"]


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "80"}  # long one-line errors must not be wrapped
    return subprocess.run(
        [*cli_command(), *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def record_lines(log: Path) -> list[str]:
    return [line for line in (log / RECORD_FILE).read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------- replay
@pytest.fixture(scope="module")
def replayed(tiny_log: Path, tmp_path_factory):
    from chameleon.logs.replay import replay

    lib = tmp_path_factory.mktemp("deploy") / "tiny.so"
    return replay(tiny_log, library_path=lib)


def test_replay_times_tuned_untuned_and_pytorch(replayed, tiny_log: Path) -> None:
    r = replayed
    for value in (r.tuned_ms, r.untuned_ms, r.torch_ms):
        assert value is not None and math.isfinite(value) and value > 0
    run = read_run_file(tiny_log)
    tuned_names = [t["name"] for t in run["tasks"] if t["tuned"]]
    assert r.tuned_tasks == tuned_names and len(tuned_names) == 1
    assert r.untuned_tasks, "tiny_cnn has more tasks than the one tuned"
    assert sorted(r.tuned_tasks + r.untuned_tasks) == sorted(t["name"] for t in run["tasks"])
    assert r.max_abs_diff is not None and r.max_abs_diff < 1e-4
    assert r.threads == run["target_json"]["num-cores"]
    assert (r.network, r.target) == ("tiny_cnn", "llvm")
    assert set(r.compile_s) == {"tuned", "untuned"}
    assert json.loads(json.dumps(r.to_dict()))["tuned_ms"] == r.tuned_ms


def test_exported_library_loads_and_matches_pytorch(replayed) -> None:
    import torch
    import tvm
    from tvm import relax

    from chameleon.models.importer import load_network

    lib = Path(replayed.library)
    assert lib.exists() and lib.suffix == ".so"
    network = load_network("tiny_cnn", batch=1)
    dev = tvm.cpu()
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(lib)), dev)
    out = vm["main"](tvm.runtime.tensor(network.example_input, dev))
    while not hasattr(out, "numpy"):
        out = out[0]
    with torch.inference_mode():
        ref = network.torch_module(torch.from_numpy(network.example_input))
    ref = (ref[0] if isinstance(ref, tuple | list) else ref).numpy()
    assert out.numpy().shape == ref.shape
    assert np.max(np.abs(out.numpy() - ref)) < 1e-4


def test_stock_tvm_reads_the_log_without_chameleon(tiny_log: Path) -> None:
    code = (
        "import sys, json\n"
        "import tvm\n"
        "from tvm.s_tir import meta_schedule as ms\n"
        f"db = ms.database.JSONDatabase(work_dir={str(tiny_log)!r})\n"
        "recs = db.get_all_tuning_records()\n"
        "print(json.dumps({'records': len(recs), 'valid': sum(1 for r in recs if r.run_secs and "
        "float(r.run_secs[0]) < 1e9), 'chameleon': any(m.startswith('chameleon') for m in sys.modules)}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False, cwd="/"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["records"] == TINY_TRIALS == len(record_lines(tiny_log))
    assert seen["valid"] == sum(1 for m in read_timeline(tiny_log) if m.ok)
    assert seen["chameleon"] is False


# --------------------------------------------------------------------------- resuming
@pytest.fixture(scope="module")
def resumed(tiny_log: Path, tmp_path_factory, tiny_tune_config):
    """Tune into a copy of the tiny log twice more: the same budget, then a larger one."""
    from chameleon.tuning.tune import tune

    log = tmp_path_factory.mktemp("resume") / "log"
    shutil.copytree(tiny_log, log, ignore=shutil.ignore_patterns("logs", "deploy"))
    same = tune(tiny_tune_config(log, trials=TINY_TRIALS))
    after_same = (record_lines(log), (log / TIMELINE_FILE).read_text())
    more = tune(tiny_tune_config(log, trials=MORE_TRIALS))
    return log, same, after_same, more


def test_resume_with_the_same_budget_measures_nothing(resumed, tiny_log: Path) -> None:
    log, same, (records, timeline), _ = resumed
    assert same.new_trials == 0
    assert [t.trials for t in same.tasks] == [TINY_TRIALS]
    assert [t.new_trials for t in same.tasks] == [0]
    assert records == record_lines(tiny_log)
    assert timeline == (tiny_log / TIMELINE_FILE).read_text()
    runs = read_run_file(log)["runs"]
    assert runs[1]["status"] == "finished" and runs[1]["new_trials"] == 0


def test_resume_with_a_larger_budget_measures_the_difference(resumed, tiny_log: Path) -> None:
    log, _, _, more = resumed
    assert more.new_trials == MORE_TRIALS - TINY_TRIALS
    assert [t.trials for t in more.tasks] == [MORE_TRIALS]
    assert len(record_lines(log)) == MORE_TRIALS
    old = read_timeline(tiny_log)
    timeline = read_timeline(log)
    assert timeline[:TINY_TRIALS] == old
    new = timeline[TINY_TRIALS:]
    assert [m.n for m in new] == [1, 2, 3, 4] and {m.run for m in new} == {3}
    assert [r["run"] for r in read_run_file(log)["runs"]] == [1, 2, 3]
    assert more.tasks[0].best_s <= min(m.latency_s for m in old if m.ok)


def test_resume_never_measures_a_configuration_again(resumed) -> None:
    log = resumed[0]
    repeats = {k: c for k, c in Counter(m.key for m in read_timeline(log)).items() if c > 1}
    assert repeats == {}


# --------------------------------------------------------------------------- the CLI
@pytest.mark.parametrize(
    ("flag", "value", "what"),
    [
        ("--model", "no_such_net", "model"),
        ("--target", "tpu-v9", "target"),
        ("--strategy", "magic", "strategy"),
    ],
)
def test_cli_rejects_unknown_names_with_one_line(flag: str, value: str, what: str, tmp_path: Path) -> None:
    proc = run_cli("tune", flag, value, "--trials", "1", "--log-dir", str(tmp_path / "log"), timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, proc.stderr
    assert err[0].startswith("error:") and f"unknown {what}" in err[0] and value in err[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "log").exists()


def test_cli_replay_of_a_missing_log_is_one_line(tmp_path: Path) -> None:
    proc = run_cli("replay", str(tmp_path / "nothing"), "--json", timeout=300)
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "run.json" in err[0]
    assert proc.stdout.strip() == ""


def test_cli_replay_json(tiny_log: Path, tmp_path: Path) -> None:
    lib = tmp_path / "cli.so"
    proc = run_cli("replay", str(tiny_log), "--json", "--output", str(lib))
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)  # the whole of stdout is one JSON object
    assert isinstance(result, dict)
    for key in ("tuned_ms", "untuned_ms", "torch_ms"):
        assert isinstance(result[key], float) and result[key] > 0
    assert result["library"] == str(lib) and lib.exists()
    assert result["max_abs_diff"] < 1e-4
    assert not (tiny_log / "deploy").exists()


def test_cli_confirm(tiny_log_copy: Path) -> None:
    proc = run_cli("confirm", str(tiny_log_copy), "--top", "2", "--rounds", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "top 2 records each, 2 re-measurements" in proc.stdout
    assert "written to" in proc.stdout and (tiny_log_copy / "confirmed").is_dir()
    missing = run_cli("confirm", str(tiny_log_copy / "nothing"))
    err = missing.stderr.strip().splitlines()
    assert missing.returncode == 1 and len(err) == 1 and err[0].startswith("error:"), missing.stderr
