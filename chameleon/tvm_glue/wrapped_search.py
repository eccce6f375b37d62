"""A search strategy that wraps another (TVM's own or ours) and passes every call through.

Subclasses override what they change (``generate_measure_candidates``, ``clone``, ...) and are
decorated with ``tvm.ir.utils.derived_object`` themselves; this base is not, so TVM never
instantiates it.
"""

from __future__ import annotations

from tvm.s_tir.meta_schedule.search_strategy import PySearchStrategy


class WrappedSearch(PySearchStrategy):
    def __init__(self, inner) -> None:
        self.inner = inner

    def _initialize_with_tune_context(self, context) -> None:
        self.context = context
        self.inner._initialize_with_tune_context(context)

    def pre_tuning(
        self, max_trials, num_trials_per_iter, design_spaces, database=None, cost_model=None
    ) -> None:
        self.inner.pre_tuning(max_trials, num_trials_per_iter, design_spaces, database, cost_model)

    def post_tuning(self) -> None:
        self.inner.post_tuning()

    def generate_measure_candidates(self):
        return self.inner.generate_measure_candidates()

    def notify_runner_results(self, measure_candidates, results) -> None:
        self.inner.notify_runner_results(measure_candidates, results)
