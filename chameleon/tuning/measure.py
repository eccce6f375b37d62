"""Builder and runner for a target: local CPU, or an RPC farm through a tracker."""

from __future__ import annotations

from dataclasses import dataclass

from chameleon.errors import UsageError
from chameleon.hardware.targets import TargetSpec

PASS_SPACING_S = 1.0
"""Least time from one timing pass's start to the next's: the host's load levels last up to ~1 s."""


@dataclass(frozen=True, kw_only=True)
class MeasureConfig:
    """How candidates are measured."""

    number: int = 3
    """Runs per timing repeat (TVM EvaluatorConfig.number)."""
    repeat: int = 1
    """Timing repeats per candidate."""
    min_repeat_ms: int = 40
    """Minimum duration of one repeat; short kernels are run more often."""
    passes: int = 1
    """Interleaved timing passes over a round's candidates; each keeps its fastest pass
    (``tuning.passes``: what a host whose load changes under the measurement needs)."""
    pass_margin: float = 2.0
    """Passes after the first time only candidates within this factor of their task's fastest
    time so far (inf: every candidate, every pass)."""
    pass_spacing_s: float = PASS_SPACING_S
    """Least time from one pass's start to the next's; a round whose pass takes less waits out the
    rest, so rounds of few candidates pay up to this much per pass."""
    build_timeout_s: float = 30.0
    run_timeout_s: float = 30.0
    tracker: str | None = None
    """HOST:PORT of an RPC tracker; default TVM_TRACKER_HOST/TVM_TRACKER_PORT from the environment."""
    key: str | None = None
    """RPC device key on the tracker (default: the target's usual key)."""
    session_timeout_s: float = 60.0
    cooldown_s: float = 0.0
    max_retries: int = 2
    """Re-measure on another device when a device fails mid-measurement, at most this often."""
    device_wait_s: float = 30.0
    """How long to wait for a device of the key to register before giving up."""


def tracker_address(config: MeasureConfig) -> str | None:
    if config.tracker:
        return config.tracker
    from chameleon.farm.tracker import tracker_from_env

    found = tracker_from_env()
    return f"{found[0]}:{found[1]}" if found else None


def make_runner(spec: TargetSpec, config: MeasureConfig):
    if config.passes < 1:
        raise UsageError(f"--measure-passes must be at least 1, not {config.passes}")
    if not config.pass_margin >= 1:
        raise UsageError(f"the pass margin must be at least 1, not {config.pass_margin}")
    if not config.pass_spacing_s >= 0:
        raise UsageError(f"the pass spacing must be 0 s or more, not {config.pass_spacing_s}")
    runner = _single_pass_runner(spec, config)
    if config.passes == 1:
        return runner
    from chameleon.tuning.passes import FastestOfPasses

    return FastestOfPasses(runner, config.passes, config.pass_margin, config.pass_spacing_s)


def _single_pass_runner(spec: TargetSpec, config: MeasureConfig):
    from tvm.s_tir import meta_schedule as ms

    tracker = tracker_address(config)
    if tracker is None:
        if spec.needs_farm:
            raise UsageError(
                f"target {spec.name} is measured on a remote device: pass --tracker HOST:PORT --key KEY "
                "(or set TVM_TRACKER_HOST/TVM_TRACKER_PORT); start a farm with `chameleon farm tracker` "
                "and `chameleon farm server`"
            )
        evaluator = ms.runner.EvaluatorConfig(
            number=config.number,
            repeat=config.repeat,
            min_repeat_ms=config.min_repeat_ms,
            enable_cpu_cache_flush=False,
        )
        from chameleon.tvm_glue.arguments import alloc_local_arguments

        return ms.runner.LocalRunner(
            evaluator_config=evaluator,
            timeout_sec=config.run_timeout_s,
            f_alloc_argument=alloc_local_arguments,
        )
    from chameleon.farm.runner import FarmConfig, make_farm_runner
    from chameleon.farm.tracker import check_reachable, key_from_env, parse_tracker, wait_for_devices

    host, port = parse_tracker(tracker)
    check_reachable(host, port)
    key = config.key or key_from_env() or spec.farm_key
    wait_for_devices(host, port, key, timeout_s=config.device_wait_s)
    return make_farm_runner(
        FarmConfig(
            tracker_host=host,
            tracker_port=port,
            key=key,
            session_timeout_s=config.session_timeout_s,
            cooldown_s=config.cooldown_s,
            number=config.number,
            repeat=config.repeat,
            min_repeat_ms=config.min_repeat_ms,
            max_retries=config.max_retries,
            device_wait_s=config.device_wait_s,
        )
    )


def parallel_devices(runner) -> int:
    """Devices ``runner`` measures on at once: a farm's devices for its key when the runner was
    made (``make_farm_runner``), 1 for the local CPU."""
    from chameleon.farm.runner import FarmRunner

    inner = getattr(runner, "inner", runner)  # FastestOfPasses wraps the runner that measures
    return inner.max_workers if isinstance(inner, FarmRunner) else 1


def make_builder(spec: TargetSpec):
    from chameleon.tvm_glue.builder import PersistentBuilder

    if spec.kind not in ("cpu", "gpu"):
        raise UsageError(f"no builder for target kind {spec.kind!r}")
    return PersistentBuilder(import_tensor_intrin=spec.kind == "gpu")
