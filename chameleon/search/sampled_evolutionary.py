"""Ablation "evolutionary-as": MetaSchedule's evolutionary search plus Chameleon's adaptive sampling.

The paper's "SA + AS" row: the evolutionary search proposes a plan of ``plan_size`` candidates
(ranked by its own XGBoost model); k-means over their knob features picks k of them (k grown in
steps of 8 while the loss falls by more than 2.5x, at most the round size); one representative per
cluster is measured. The inner search is told the others were not measured.
"""

from __future__ import annotations

import numpy as np
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

from chameleon.sampling.adaptive import choose_k, representatives
from chameleon.search.baselines import xgb_cost_model
from chameleon.search.registry import SearchSetup, StrategyOptions, register
from chameleon.search.subset import expand_results
from chameleon.space.space import KnobSpace
from chameleon.tvm_glue.wrapped_search import WrappedSearch

NOT_SAMPLED = "not sampled: another member of its cluster was measured"


@derived_object
class AdaptivelySampledSearch(WrappedSearch):
    def __init__(
        self, *, inner, plan_size: int = 64, k_step: int = 8, threshold: float = 2.5, seed: int = 0
    ) -> None:
        super().__init__(inner)
        self.plan_size = plan_size
        self.k_step = k_step
        self.threshold = threshold
        self.seed = seed

    def pre_tuning(
        self, max_trials, num_trials_per_iter, design_spaces, database=None, cost_model=None
    ) -> None:
        self.max_trials, self.round_size, self.sent = int(max_trials), int(num_trials_per_iter), 0
        self.rng = np.random.default_rng(self.seed)
        self.space = KnobSpace.from_design_spaces(
            mod=self.context.mod,
            design_spaces=design_spaces,
            postprocs=list(self.context.space_generator.postprocs),
        )
        # The inner search must not stop on its own count: unsampled candidates count there too.
        self.inner.pre_tuning(
            10 * self.max_trials + self.plan_size, self.plan_size, design_spaces, database, cost_model
        )

    def generate_measure_candidates(self):
        budget = min(self.round_size, self.max_trials - self.sent)
        if budget <= 0:
            return None
        plan = self.inner.generate_measure_candidates()
        if plan is None:
            return None
        plan = list(plan)
        configs = [self.space.decode(c.sch.trace) for c in plan]
        decodable = [i for i, c in enumerate(configs) if c is not None]
        if len(decodable) <= budget:
            chosen = (decodable + [i for i in range(len(plan)) if configs[i] is None])[:budget]
        else:
            X = self.space.features([configs[i] for i in decodable])
            _, kmeans = choose_k(
                X,
                k_step=self.k_step,
                k_max=budget,
                threshold=self.threshold,
                seed=int(self.rng.integers(2**31)),
            )
            chosen = [decodable[i] for i in representatives(X, kmeans)]
        self._plan, self._chosen = plan, chosen
        self.sent += len(chosen)
        return [plan[i] for i in chosen]

    def notify_runner_results(self, measure_candidates, results) -> None:
        self.inner.notify_runner_results(
            self._plan, expand_results(len(self._plan), self._chosen, results, NOT_SAMPLED)
        )

    def clone(self):
        return AdaptivelySampledSearch(
            inner=self.inner.clone(),
            plan_size=self.plan_size,
            k_step=self.k_step,
            threshold=self.threshold,
            seed=self.seed,
        )


@register("evolutionary-as", "ablation: evolutionary search + adaptive sampling (the paper's SA + AS)")
def evolutionary_as(options: StrategyOptions) -> SearchSetup:
    inner = ms.search_strategy.EvolutionarySearch()
    return SearchSetup(
        strategy=AdaptivelySampledSearch(inner=inner, seed=options.seed), cost_model=xgb_cost_model(options)
    )
