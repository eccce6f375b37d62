"""A simulated device: MetaSchedule builder/runner stand-ins answered from a dataset.

The builder and runner never see a candidate's trace (only its IRModule), so the strategy is
wrapped in :class:`SimulatedSearch`, which keys every proposed candidate by its trace, asks the
:class:`SimulatedDevice` for the answer (recorded latency on a hit; the surrogate's prediction, or
"not in the pool", on a miss) and queues it; the builder hands each candidate an id, and the
runner returns the queued answer. Nothing is compiled, so a round costs only the search.
"""

from __future__ import annotations

import itertools
import logging
import math

from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.builder import BuilderInput, BuilderResult, PyBuilder
from tvm.s_tir.meta_schedule.runner import PyRunner, PyRunnerFuture, RunnerInput, RunnerResult

from chameleon.search.subset import expand_results
from chameleon.simulate.dataset import TaskData
from chameleon.simulate.surrogate import Surrogate, program_features
from chameleon.tvm_glue.keys import trace_key
from chameleon.tvm_glue.wrapped_search import WrappedSearch

logger = logging.getLogger(__name__)

NOT_IN_POOL = "simulation: configuration not in the recorded pool"


class SimulatedDevice:
    """Answers for one task."""

    def __init__(self, *, task: TaskData, surrogate: Surrogate | None, pool_only: bool) -> None:
        self.task = task
        self.surrogate = surrogate
        self.pool_only = pool_only
        self._queue: list[tuple[int, float | None, str | None]] = []
        self._answers: dict[int, tuple[float | None, str | None]] = {}
        self._ids = itertools.count()
        self.hits = 0
        self.misses = 0

    def in_pool(self, key: str) -> bool:
        return key in self.task.latency

    def expect(self, context, candidates, keys: list[str]) -> None:
        """Compute and queue the answers for candidates about to be built, in order."""
        answers: list[tuple[float | None, str | None]] = []
        missing = []
        for i, key in enumerate(keys):
            lat = self.task.latency.get(key)
            if lat is None:
                self.misses += 1
                missing.append(i)
                answers.append((None, NOT_IN_POOL))
            else:
                self.hits += 1
                answers.append(
                    (lat, None) if math.isfinite(lat) else (None, "simulation: recorded as failed")
                )
        if missing and not self.pool_only and self.surrogate is not None:
            preds = self.surrogate.predict(program_features(context, [candidates[i] for i in missing]))
            for i, p in zip(missing, preds, strict=True):
                answers[i] = (float(p), None)
        for lat, err in answers:
            self._queue.append((next(self._ids), lat, err))

    def take(self) -> int:
        ident, lat, err = self._queue.pop(0)
        self._answers[ident] = (lat, err)
        return ident

    def answer(self, ident: int) -> RunnerResult:
        lat, err = self._answers.pop(ident)
        return RunnerResult(None, err) if err else RunnerResult([lat], None)


@derived_object
class SimulatedSearch(WrappedSearch):
    """Wraps any strategy: keys its candidates, and in pool-only mode drops those not recorded."""

    def __init__(self, *, inner, device: SimulatedDevice, max_empty_rounds: int = 20) -> None:
        super().__init__(inner)
        self.device = device
        self.max_empty_rounds = max_empty_rounds

    def generate_measure_candidates(self):
        for _ in range(self.max_empty_rounds):
            candidates = self.inner.generate_measure_candidates()
            if candidates is None:
                return None
            candidates = list(candidates)
            keys = [trace_key(c.sch.trace) for c in candidates]
            keep = [i for i, k in enumerate(keys) if not self.device.pool_only or self.device.in_pool(k)]
            self._batch = candidates
            self._keep = keep
            if keep or not candidates:
                self.device.expect(self.context, [candidates[i] for i in keep], [keys[i] for i in keep])
                return [candidates[i] for i in keep]
            # Nothing of this batch is in the pool: tell the inner strategy and ask again.
            self.inner.notify_runner_results(
                candidates, [RunnerResult(None, NOT_IN_POOL) for _ in candidates]
            )
        logger.info(
            "pool-only: strategy proposed nothing recorded in %d rounds; stopping", self.max_empty_rounds
        )
        return None

    def notify_runner_results(self, measure_candidates, results) -> None:
        self.inner.notify_runner_results(
            self._batch, expand_results(len(self._batch), self._keep, results, NOT_IN_POOL)
        )

    def clone(self):
        return SimulatedSearch(
            inner=self.inner.clone(), device=self.device, max_empty_rounds=self.max_empty_rounds
        )


@derived_object
class SimulatedBuilder(PyBuilder):
    """Builds nothing: hands each candidate the id of its queued answer."""

    def __init__(self, *, device: SimulatedDevice) -> None:
        super().__init__()
        self.device = device

    def build(self, build_inputs: list[BuilderInput]) -> list[BuilderResult]:
        return [BuilderResult(f"sim:{self.device.take()}", None) for _ in build_inputs]


@derived_object
class _Done(PyRunnerFuture):
    def __init__(self, result: RunnerResult) -> None:
        super().__init__()
        self._result = result

    def done(self) -> bool:
        return True

    def result(self) -> RunnerResult:
        return self._result


@derived_object
class SimulatedRunner(PyRunner):
    def __init__(self, *, device: SimulatedDevice) -> None:
        super().__init__()
        self.device = device

    def run(self, runner_inputs: list[RunnerInput]):
        return [_Done(self.device.answer(int(r.artifact_path.split(":")[1]))) for r in runner_inputs]
