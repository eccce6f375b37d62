"""Ctrl-C (SIGINT) and SIGTERM during tuning: stop after the round in flight, keep what is real.

Python turns SIGINT into ``KeyboardInterrupt`` wherever the main thread is. During tuning that is
often inside a callback that C++ called (a strategy, the builder), where TVM's FFI turns it into
an ordinary error, or inside a runner future that converts any error into a failed measurement:
the interrupt is lost and tuning goes on. A terminal's Ctrl-C (and ``timeout``) also signals the
whole process group, so build and run workers die mid-round and their candidates come back as
failures ("Subprocess terminated") that were never the schedules' fault. Seen on an H200: a
benchmark under ``timeout -s INT`` tuned on for minutes after the signal.

So the first signal only sets a flag (raising there, inside a callback from C++, once crashed the
process with a segfault in CI); the :class:`StopGuard` measure callback, first in the chain, sees
the flag at the end of the round in flight, commits that round's successful measurements itself,
drops its failures, and stops the task scheduler. A second signal interrupts at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.measure_callback import AddToDatabase, PyMeasureCallback

from chameleon.logs.timeline import mean_latency


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


class StopTuning(Exception):
    """Raised by :class:`StopGuard` to end ``tune_tasks`` after an interrupted round."""


@derived_object
class StopGuard(PyMeasureCallback):
    """First measure callback: after a stop signal, keep the round's successes and stop.

    ``keep`` receives the successful part of the interrupted round (``task_id`` and the three
    parallel lists) so the caller's own recorder logs it too.
    """

    def __init__(self, flag: StopRequested, keep: Callable | None = None) -> None:
        super().__init__()
        self.flag = flag
        self.keep = keep

    def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results) -> None:
        if not self.flag:
            return
        ok = [
            (c, b, r)
            for c, b, r in zip(measure_candidates, builder_results, runner_results, strict=False)
            if b.error_msg is None and r.error_msg is None and mean_latency(r.run_secs) is not None
        ]
        if ok:
            cands, builds, runs = (list(x) for x in zip(*ok, strict=True))
            AddToDatabase().apply(task_scheduler, task_id, cands, builds, runs)
            if self.keep is not None:
                self.keep(task_scheduler, task_id, cands, builds, runs)
        raise StopTuning(f"stopped by a signal after keeping {len(ok)} measurement(s) of the last round")
