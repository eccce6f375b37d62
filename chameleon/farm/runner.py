"""A MetaSchedule runner that measures on an RPC farm and survives devices that die or hang.

The measuring itself is MetaSchedule's own ``RPCRunner`` (TVM's tracker, sessions, upload,
``time_evaluator``). :class:`FarmRunner` wraps it and adds what a real farm needs:

* parallelism: one measurement in flight per registered device of the key;
* a client-side deadline (``session_timeout_s + hang_grace_s``): a device that stops answering
  (frozen board, network gone) no longer blocks the tuning run forever;
* retries: a measurement that failed because its device went away (connection dropped, session
  killed, deadline passed) goes back to the front of the queue and the tracker hands it to a free
  device, up to ``max_retries`` times; then it is returned as an error ``RunnerResult``.
  Genuine failures of the candidate itself (an exception raised on the device, or the server's own
  session timeout, i.e. a kernel slower than ``session_timeout_s``) are returned at once;
* when no device of the key is left (after waiting ``device_wait_s`` for one to come back), every
  queued measurement is returned as an error so that the tuning run finishes; results already
  returned (and the records MetaSchedule committed from them) are untouched.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.runner import (
    EvaluatorConfig,
    PyRunner,
    PyRunnerFuture,
    RPCConfig,
    RPCRunner,
    RunnerFuture,
    RunnerInput,
    RunnerResult,
)
from tvm.s_tir.meta_schedule.runner.rpc_runner import default_run_evaluator
from tvm.support.popen_pool import PopenPoolExecutor

from chameleon.errors import ChameleonError, UsageError
from chameleon.farm.tracker import check_reachable, farm_status, wait_for_devices
from chameleon.tvm_glue.arguments import alloc_rpc_arguments

logger = logging.getLogger(__name__)

_POLL_S = 0.02
"""How often a blocking ``result()`` polls the in-flight measurements."""

_TRANSIENT = re.compile(
    "|".join(
        [
            r"RPCRunner: Timeout",  # our client-side deadline: the device stopped answering
            r"code=(kShutdown|1)\b",  # the session's peer went away mid-call
            r"connection was previously closed",
            r"sock\.Connect\(addr\)",  # the server the tracker handed out is gone
            r"Socket \w+ Error",
            r"Connection(Reset|Refused|Aborted)Error|BrokenPipeError|ChildProcessError",
            r"[Cc]onnection (reset|refused|aborted)|[Bb]roken pipe",
            r"Cannot request .* after \d+ retry",
            r"Failed to connect to server",
            r"Unable to connect to the tracker",
            r"Subprocess terminated",
        ]
    )
)
_GENUINE = re.compile(r"Error caught from RPC call|RPCSessionTimeoutError")
"""An exception raised on the device, or the server's own session limit: the candidate's fault."""


def is_transient_error(error_msg: str | None) -> bool:
    """True when a runner error says the device or the connection failed, not the candidate."""
    if not error_msg or _GENUINE.search(error_msg):
        return False
    return _TRANSIENT.search(error_msg) is not None


@dataclass(kw_only=True)
class FarmConfig:
    """How to measure on an RPC farm."""

    tracker_host: str = "127.0.0.1"
    """Host of the RPC tracker."""
    tracker_port: int = 9190
    """Port of the RPC tracker."""
    key: str = "local-cpu"
    """Device key: measure on the servers registered under it."""
    session_timeout_s: float = 60.0
    """Limit of one measurement session (upload, load, run); the server kills longer ones."""
    cooldown_s: float = 0.0
    """Pause on the device after each measurement, still holding it (lets boards cool down)."""
    number: int = 3
    """Runs per timing repeat (TVM time_evaluator ``number``)."""
    repeat: int = 1
    """Timing repeats per measurement (TVM time_evaluator ``repeat``)."""
    min_repeat_ms: int = 40
    """Minimum duration of one repeat; ``number`` grows until a repeat lasts this long."""
    enable_cpu_cache_flush: bool = False
    """Flush the CPU cache before each run (CPU devices only)."""
    max_retries: int = 2
    """Re-submissions of a measurement whose device failed, before it is recorded as an error."""
    hang_grace_s: float = 10.0
    """Extra seconds past ``session_timeout_s`` before an unanswered measurement is abandoned."""
    device_wait_s: float = 30.0
    """How long to wait for a device of the key, at start and when all of them have gone."""

    def __post_init__(self) -> None:
        rules = [
            ("session_timeout_s", self.session_timeout_s > 0, "must be > 0"),
            ("cooldown_s", self.cooldown_s >= 0, "must be >= 0"),
            ("number", self.number >= 1, "must be >= 1"),
            ("repeat", self.repeat >= 1, "must be >= 1"),
            ("min_repeat_ms", self.min_repeat_ms >= 0, "must be >= 0"),
            ("max_retries", self.max_retries >= 0, "must be >= 0"),
            ("hang_grace_s", self.hang_grace_s >= 0, "must be >= 0"),
            ("device_wait_s", self.device_wait_s >= 0, "must be >= 0"),
            ("tracker_port", 0 < self.tracker_port < 65536, "must be a port number"),
        ]
        for name, ok, rule in rules:
            if not ok:
                raise UsageError(f"farm setting {name} {rule}, got {getattr(self, name)!r}")
        if not self.key:
            raise UsageError("the farm needs a device key: pass --key (or set TVM_TRACKER_KEY)")

    @property
    def tracker(self) -> str:
        """``HOST:PORT`` of the tracker, for messages."""
        return f"{self.tracker_host}:{self.tracker_port}"


@dataclass
class RunnerStats:
    """Counters of what the farm runner did, for logs and tests."""

    submitted: int = 0
    """Measurement attempts sent to a device (retries included)."""
    retries: int = 0
    """Attempts re-submitted after a device failure."""
    gave_up: int = 0
    """Measurements returned as errors after ``max_retries`` failed re-submissions."""
    orphaned: int = 0
    """Measurements returned as errors because no device of the key was left."""


def run_evaluator_with_cooldown(cooldown_s: float, *args: Any) -> list[float]:
    """MetaSchedule's default evaluator, then ``cooldown_s`` of idle time on the device."""
    costs = default_run_evaluator(*args)
    time.sleep(cooldown_s)
    return costs


@dataclass
class _Job:
    runner_input: RunnerInput
    attempts: int = 0
    inner: RunnerFuture | None = None
    result: RunnerResult | None = None


@derived_object
class FarmRunnerFuture(PyRunnerFuture):
    """Future of one measurement on the farm; polling it also advances the runner's queue."""

    def __init__(self, *, runner: FarmRunner, job: _Job) -> None:
        super().__init__()
        self._runner = runner
        self._job = job

    def done(self) -> bool:
        self._runner.pump()
        return self._job.result is not None

    def result(self) -> RunnerResult:
        return self._runner.wait(self._job)


@derived_object
class FarmRunner(PyRunner):
    """Measure candidates on every device of a key, retrying those whose device failed."""

    def __init__(self, *, config: FarmConfig, max_workers: int) -> None:
        super().__init__()
        if max_workers < 1:
            raise ValueError("max_workers must be >= 1")
        self.config = config
        self.max_workers = max_workers
        self.stats = RunnerStats()
        evaluator = None
        if config.cooldown_s > 0:
            evaluator = functools.partial(run_evaluator_with_cooldown, config.cooldown_s)
        self._rpc = RPCRunner(
            rpc_config=RPCConfig(
                tracker_host=config.tracker_host,
                tracker_port=config.tracker_port,
                tracker_key=config.key,
                session_timeout_sec=config.session_timeout_s,  # type: ignore[arg-type]
            ),
            evaluator_config=EvaluatorConfig(
                number=config.number,
                repeat=config.repeat,
                min_repeat_ms=config.min_repeat_ms,
                enable_cpu_cache_flush=config.enable_cpu_cache_flush,
            ),
            cooldown_sec=config.cooldown_s,
            f_alloc_argument=alloc_rpc_arguments,
            f_run_evaluator=evaluator,
            max_workers=max_workers,
        )
        # RPCRunner's pool waits forever on a device that stops answering: give every
        # measurement a deadline (the worker is killed and the future raises TimeoutError).
        self._rpc.pool.shutdown()
        self._rpc.pool = PopenPoolExecutor(
            max_workers=max_workers, timeout=config.session_timeout_s + config.hang_grace_s
        )
        self._queue: deque[_Job] = deque()
        self._inflight: list[_Job] = []
        self._lost = False
        self._devices_seen_at = 0.0

    def run(self, runner_inputs: list[RunnerInput]) -> list[RunnerFuture]:
        jobs = [_Job(runner_input=ri) for ri in runner_inputs]
        if self._lost and not self._devices_left():
            for job in jobs:
                job.result = self._orphan_result()
        else:
            self._lost = False
            self._queue.extend(jobs)
            self.pump()
        return [FarmRunnerFuture(runner=self, job=job) for job in jobs]  # type: ignore[misc]

    def pump(self) -> None:
        """Collect finished measurements and start queued ones on free worker slots."""
        running: list[_Job] = []
        for job in self._inflight:
            assert job.inner is not None
            if job.inner.done():
                self._settle(job, job.inner.result())
            else:
                running.append(job)
        self._inflight = running
        while self._queue and len(self._inflight) < self.max_workers:
            job = self._queue.popleft()
            job.attempts += 1
            self.stats.submitted += 1
            job.inner = self._rpc.run([job.runner_input])[0]
            self._inflight.append(job)

    def wait(self, job: _Job) -> RunnerResult:
        """Block until ``job`` has a final result, keeping the other measurements moving."""
        while True:
            self.pump()
            if job.result is not None:
                return job.result
            time.sleep(_POLL_S)

    def shutdown(self) -> None:
        """Stop the measurement workers now (for Ctrl-C); queued measurements are dropped."""
        self._queue.clear()
        self._rpc.pool.shutdown(wait=False)

    def _settle(self, job: _Job, result: RunnerResult) -> None:
        error = result.error_msg
        if error is None or not is_transient_error(error):
            job.result = result
            return
        last_line = error.strip().splitlines()[-1][:200]
        if job.attempts > self.config.max_retries:
            self.stats.gave_up += 1
            logger.warning(
                "measurement failed %d times on key %r (%s); recording it as an error",
                job.attempts,
                self.config.key,
                last_line,
            )
            job.result = RunnerResult(
                None, f"farm: gave up after {job.attempts} attempts on key {self.config.key!r}: {error}"
            )
            return
        if self._lost:  # already known: do not wait for devices once per in-flight measurement
            job.result = self._orphan_result()
            return
        if not self._devices_left():
            self._lost = True
            logger.error(
                "no device with key %r left at the tracker %s; "
                "returning the remaining measurements as errors",
                self.config.key,
                self.config.tracker,
            )
            job.result = self._orphan_result()
            while self._queue:
                self._queue.popleft().result = self._orphan_result()
            return
        self.stats.retries += 1
        logger.warning(
            "device failure on key %r (%s); retrying the measurement (attempt %d of %d)",
            self.config.key,
            last_line,
            job.attempts + 1,
            self.config.max_retries + 1,
        )
        self._queue.appendleft(job)

    def _orphan_result(self) -> RunnerResult:
        self.stats.orphaned += 1
        return RunnerResult(
            None,
            f"farm: no device with key {self.config.key!r} at the tracker {self.config.tracker}; "
            "not measured",
        )

    def _devices_left(self) -> bool:
        """True if the tracker lists a device of the key now or within ``device_wait_s``."""
        now = time.monotonic()
        if now - self._devices_seen_at < 2.0:
            return True
        deadline = now + self.config.device_wait_s
        while True:
            try:
                if farm_status(self.config.tracker_host, self.config.tracker_port).devices(self.config.key):
                    self._devices_seen_at = time.monotonic()
                    return True
            except ChameleonError:
                pass  # tracker down: it may come back within the wait
            if time.monotonic() >= deadline:
                return False
            time.sleep(1.0)


def make_farm_runner(config: FarmConfig) -> FarmRunner:
    """A MetaSchedule runner measuring on every device of ``config.key``.

    Raises ChameleonError within seconds if the tracker cannot be reached, and after
    ``config.device_wait_s`` if no device of the key is registered.
    """
    check_reachable(config.tracker_host, config.tracker_port)
    status = wait_for_devices(
        config.tracker_host, config.tracker_port, config.key, timeout_s=config.device_wait_s
    )
    devices = status.devices(config.key)
    logger.info("measuring on %d device(s) with key %r at %s", devices, config.key, config.tracker)
    return FarmRunner(config=config, max_workers=devices)


__all__ = [
    "FarmConfig",
    "FarmRunner",
    "FarmRunnerFuture",
    "RunnerStats",
    "is_transient_error",
    "make_farm_runner",
    "run_evaluator_with_cooldown",
]
