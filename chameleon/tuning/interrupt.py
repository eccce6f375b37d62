"""Ctrl-C (SIGINT) and SIGTERM during tuning: stop after the round in flight, keep what is real.

Python turns SIGINT into ``KeyboardInterrupt`` wherever the main thread is. During tuning that is
often inside a callback that C++ called (a strategy, the builder), where TVM's FFI turns it into
an ordinary error, or inside a runner future that converts any error into a failed measurement:
the interrupt is lost and tuning goes on. A terminal's Ctrl-C (and ``timeout``) also signals the
whole process group, so build and run workers die mid-round and their candidates come back as
failures ("Subprocess terminated") that were never the schedules' fault. Seen on an H200: a
benchmark under ``timeout -s INT`` tuned on for minutes after the signal.

So the first signal only sets a flag (raising there, inside a callback from C++, once crashed the
process with a segfault in CI). :class:`StopAware` wraps every task's strategy and ends the task
at its next search; the task scheduler then collects the rounds in flight and returns normally.
:class:`StopGuard` wraps the measure callbacks and, after the signal, hands them only the real
results of those rounds. A second signal interrupts at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback, RemoveBuildArtifact

from chameleon.logs.timeline import mean_latency
from chameleon.tvm_glue.wrapped_search import WrappedSearch


class StopRequested:
    """Whether a stop signal arrived while :func:`stop_on_signals` was active."""

    def __init__(self) -> None:
        self.signals = 0

    def __bool__(self) -> bool:
        return self.signals > 0


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequested]:
    """Catch SIGINT/SIGTERM in the block (main thread only; elsewhere the flag stays unset)."""
    flag = StopRequested()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):  # noqa: ARG001 - signal handler signature
        flag.signals += 1
        if flag.signals > 1:  # the second signal: stop now
            raise KeyboardInterrupt

    # A signal the process was started ignoring stays ignored: a background job of a shell
    # (``nohup chameleon tune &``) must not stop on the terminal's Ctrl-C.
    watched = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {sig: signal.signal(sig, handler) for sig in watched}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@derived_object
class StopAware(WrappedSearch):
    """Wraps a task's strategy: once the flag is up, the task asks for no more candidates.

    Checked before and after the inner search, so a stop waits for at most the search in flight,
    never for a build. TVM's schedulers tune every task once before they collect any result (the
    gradient scheduler's first pass), so without this a signal waited for the whole first pass:
    on an H100, chameleon's first round costs ~20-40 s a task, so ~10 minutes for ResNet-18's 22.
    ``on_search(task_name)``, if given, is told before each search (progress during that pass).
    """

    def __init__(self, inner, flag: StopRequested, on_search: Callable[[str], None] | None = None) -> None:
        super().__init__(inner)
        self.flag = flag
        self.on_search = on_search

    def generate_measure_candidates(self):
        if self.flag:
            return None
        if self.on_search is not None:
            self.on_search(self.context.task_name)
        candidates = self.inner.generate_measure_candidates()
        return None if self.flag else candidates

    def clone(self):
        return StopAware(self.inner.clone(), self.flag, self.on_search)


@derived_object
class StopGuard(PyMeasureCallback):
    """Runs ``callbacks`` on each round; after a stop signal, on its real results only.

    The signal also kills build and run workers mid-round, and their candidates come back as
    failures that were never the schedules' fault: those are dropped (their build artifacts
    removed), so neither the database nor the cost model sees them.
    """

    def __init__(self, flag: StopRequested, callbacks: list) -> None:
        super().__init__()
        self.flag = flag
        self.callbacks = list(callbacks)

    def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results) -> None:
        rounds = [list(measure_candidates), list(builder_results), list(runner_results)]
        if self.flag:
            ok = [
                i
                for i, (b, r) in enumerate(zip(rounds[1], rounds[2], strict=True))
                if b.error_msg is None and r.error_msg is None and mean_latency(r.run_secs) is not None
            ]
            dropped = sorted(set(range(len(rounds[0]))) - set(ok))
            RemoveBuildArtifact().apply(task_scheduler, task_id, *([x[i] for i in dropped] for x in rounds))
            rounds = [[x[i] for i in ok] for x in rounds]
            if not ok:
                return
        for callback in self.callbacks:
            callback.apply(task_scheduler, task_id, *rounds)
