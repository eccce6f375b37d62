"""Time every candidate of a round in several interleaved passes; keep each one's fastest pass.

Why: on a shared machine (a cloud VM, a 2-vCPU KVM guest) the host's load changes every fraction
of a second, and a kernel's time with it. Measured on this project's 2-vCPU Intel host
(``experiments/results/noise-passes.md``): the same built ``conv2d`` timed 150 times in a row
hopped between ~3.1, ~4.3 and ~5.8 ms levels that each lasted a few hundred milliseconds. TVM's
``repeat`` does not help: its repeats run back to back inside one level (min of 5 repeats spread
1.68x across rounds). Passes do: pass 1 times candidates 1..n, pass 2 times them again, and so on,
so one candidate's passes land seconds apart, in different levels, and the fastest of them is
close to what the kernel does on a quiet machine.

The result of a candidate is the run times of its fastest pass, so MetaSchedule's database, cost
models and every strategy see one ``run_secs`` list as before. A candidate that fails in any pass
is an error (a kernel that times out now and then must not be deployed); once failed, it is not
timed again.
"""

from __future__ import annotations

from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.runner import PyRunner, RunnerFuture, RunnerInput
from tvm.s_tir.meta_schedule.runner.local_runner import LocalRunnerFuture

from chameleon.logs.timeline import mean_latency


@derived_object
class FastestOfPasses(PyRunner):
    """Wraps a MetaSchedule runner (local or a farm): ``passes`` interleaved passes per round."""

    def __init__(self, inner, passes: int) -> None:
        super().__init__()
        if passes < 1:
            raise ValueError(f"passes must be at least 1, not {passes}")
        self.inner = inner
        self.passes = passes

    def run(self, runner_inputs: list[RunnerInput]) -> list[RunnerFuture]:
        inputs = list(runner_inputs)
        best: list[list[float] | None] = [None] * len(inputs)
        errors: list[str | None] = [None] * len(inputs)
        for _ in range(self.passes):
            live = [i for i in range(len(inputs)) if errors[i] is None]
            if not live:
                break
            futures = self.inner.run([inputs[i] for i in live])
            for i, future in zip(live, futures, strict=True):
                result = future.result()
                secs = None if result.error_msg else [float(x) for x in result.run_secs]
                latency = mean_latency(secs)
                if latency is None:
                    errors[i] = result.error_msg or f"no valid time in {secs}"
                    best[i] = None
                elif best[i] is None or latency < mean_latency(best[i]):
                    best[i] = secs
        return [
            LocalRunnerFuture(res=None, error_message=err)
            if err
            else LocalRunnerFuture(res=secs, error_message=None)
            for secs, err in zip(best, errors, strict=True)
        ]

    def shutdown(self) -> None:
        if hasattr(self.inner, "shutdown"):
            self.inner.shutdown()
