"""Ctrl-C during tuning: the run stops after the round in flight and keeps only real results.

A terminal's Ctrl-C signals the whole process group, build workers included; the test does the
same with ``killpg``. Before the fix, such a signal could be swallowed inside a callback from C++
and tuning went on, logging the killed workers' candidates as failures.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chameleon.tuning.interrupt import StopAware, StopGuard, StopRequested, stop_on_signals


@pytest.fixture
def sigint_as_in_a_terminal():
    """SIGINT handled as Python does by default. A test run started in the background of a
    shell (``make test &``, some CI runners) inherits SIGINT ignored, which the code respects."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def _terminal_signals() -> None:
    """In a child before exec: SIGINT back to its default, so Python handles it (see above)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_first_signal_sets_the_flag_and_the_second_interrupts(sigint_as_in_a_terminal):
    with stop_on_signals() as stop:
        assert not stop
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        assert stop and stop.signals == 1
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        assert stop.signals == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_ignored_signal_stays_ignored():
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stop_on_signals() as stop:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
            assert not stop
    finally:
        signal.signal(signal.SIGINT, old)


def test_flag_is_false_until_a_signal():
    assert not StopRequested()


def _candidate():
    from tvm import te
    from tvm.s_tir.meta_schedule import MeasureCandidate
    from tvm.s_tir.schedule import Schedule

    a = te.placeholder((4,), name="A")
    b = te.compute((4,), lambda i: a[i] + 1, name="B")
    return MeasureCandidate(Schedule(te.create_prim_func([a, b])), [])


class _Search:
    """A task's strategy: counts its searches; ``during`` runs inside one (a signal arriving)."""

    def __init__(self, during=None) -> None:
        self.searches = 0
        self.during = during

    def generate_measure_candidates(self):
        self.searches += 1
        if self.during:
            self.during()
        return [_candidate()]

    def _initialize_with_tune_context(self, context) -> None:
        pass

    def clone(self):
        return _Search(self.during)


def test_a_stop_aware_task_asks_for_nothing_once_the_flag_is_up():
    flag = StopRequested()
    search = StopAware(_Search(), flag)
    assert len(search.generate_measure_candidates()) == 1
    flag.signals = 1
    assert search.generate_measure_candidates() is None
    assert search.inner.searches == 1  # no search started after the signal
    clone = search.clone()
    assert clone.generate_measure_candidates() is None  # the clone (one per task) shares the flag


def test_a_signal_during_the_search_ends_the_task_before_anything_is_built():
    flag = StopRequested()
    search = StopAware(_Search(during=lambda: setattr(flag, "signals", 1)), flag)
    assert search.generate_measure_candidates() is None


def test_each_search_is_announced_with_its_task_for_progress():
    from tvm.s_tir import meta_schedule as ms

    searched: list[str] = []
    search = StopAware(_Search(), StopRequested(), searched.append)
    search._initialize_with_tune_context(ms.TuneContext(task_name="conv", num_threads=1))
    search.generate_measure_candidates()
    assert searched == ["conv"]


def test_progress_says_which_task_is_searching_until_results_come_in():
    from io import StringIO

    from rich.console import Console

    from chameleon.cli.progress import ProgressObserver
    from chameleon.logs.timeline import Measurement

    observer = ProgressObserver(Console(file=StringIO()))
    observer.on_start(tasks=["a", "b"], budget=10, already=0)
    observer.on_search("a")
    observer.on_search("b")
    status = lambda: observer.progress.tasks[0].fields["status"]  # noqa: E731
    assert "2 tasks searched, now b" in status()
    m = Measurement(task="a", task_index=0, trial=1, n=1, t=1.0, run=1, latency_s=1e-3, error=None, key="k")
    observer.on_measure([m])
    observer.on_search("b")
    assert status().startswith("a") and "best 1.000 ms" in status()


def test_progress_without_a_terminal_prints_a_line_per_round():
    """Under nohup or CI rich draws its bar only at the end: the status comes as plain lines."""
    from io import StringIO

    from rich.console import Console

    from chameleon.cli.progress import ProgressObserver
    from chameleon.logs.timeline import Measurement

    out = StringIO()
    with ProgressObserver(Console(file=out, width=200)) as observer:
        observer.on_start(tasks=["a", "b"], budget=10, already=2)
        observer.on_search("a")
        batch = [
            Measurement(task="a", task_index=0, trial=i, n=1, t=1.0, run=1, latency_s=s, error=None, key=None)
            for i, s in ((3, 2e-3), (4, 1e-3))
        ]
        observer.on_measure(batch)
        lines = out.getvalue().splitlines()
        assert lines[0].startswith("tuning 2/10  2 tasks, starting...")
        assert lines[1].startswith("tuning 2/10  first rounds: 1 tasks searched, now a")
        assert lines[2].startswith("tuning 4/10  a  best 1.000 ms  errors 0")


def _round(tmp_path: Path):
    """Three measured candidates: a success, a killed build, a killed run (with its artifact)."""
    from tvm.s_tir.meta_schedule.builder import BuilderResult
    from tvm.s_tir.meta_schedule.runner import RunnerResult

    candidates = [_candidate() for _ in range(3)]
    artifacts = [tmp_path / f"build{i}" / "mod.tar" for i in range(3)]  # TVM removes the folder
    for path in artifacts:
        path.parent.mkdir()
        path.touch()
    builds = [BuilderResult(str(artifacts[0]), None), BuilderResult(None, "Subprocess terminated"),
              BuilderResult(str(artifacts[2]), None)]  # fmt: skip
    runs = [RunnerResult([1e-3], None), RunnerResult(None, "build failed"),
            RunnerResult(None, "Subprocess terminated")]  # fmt: skip
    return candidates, builds, runs, artifacts


class _Recorder:
    def __init__(self) -> None:
        self.rounds: list[int] = []

    def apply(self, task_scheduler, task_id, candidates, builds, runs) -> None:
        self.rounds.append(len(candidates))


@pytest.mark.parametrize("stopped", [False, True])
def test_after_a_signal_the_callbacks_see_only_real_results(tmp_path: Path, stopped: bool):
    from tvm.s_tir.meta_schedule.task_scheduler import RoundRobin

    candidates, builds, runs, artifacts = _round(tmp_path)
    flag, recorder = StopRequested(), _Recorder()
    flag.signals = int(stopped)
    StopGuard(flag, [recorder]).apply(RoundRobin(), 0, candidates, builds, runs)
    assert recorder.rounds == ([1] if stopped else [3])
    # The dropped run's artifact is removed; the kept one is left to the callbacks.
    assert [p.exists() for p in artifacts] == [True, True, not stopped]


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_stops_tuning_and_logs_no_killed_workers(tmp_path: Path):
    from tests.conftest import TINY_TASK

    log_dir = tmp_path / "log"
    cmd = [sys.executable, "-m", "chameleon", "tune", "--model", "tiny_cnn", "--target", "llvm",
           "--trials", "400", "--trials-per-round", "8", "--strategy", "random",
           "--task", TINY_TASK, "--log-dir", str(log_dir)]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=_terminal_signals,
    )
    timeline = log_dir / "timeline.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if timeline.exists() and timeline.read_text().count("\n") >= 8:
            break
        time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()[0][-2000:]
    os.killpg(proc.pid, signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("tuning went on after Ctrl-C")
    assert proc.returncode != 0 and "interrupted" in out, out[-2000:]
    lines = [json.loads(x) for x in timeline.read_text().splitlines()]
    assert 8 <= len(lines) < 400
    assert not [x for x in lines if x["error"] and "terminated" in x["error"].lower()]
    run = json.loads((log_dir / "run.json").read_text())["runs"][-1]
    assert run["status"] == "interrupted"
