"""MetaSchedule's own strategies: the baselines every other strategy is compared with."""

from __future__ import annotations

from tvm.s_tir import meta_schedule as ms

from chameleon.search.registry import SearchSetup, StrategyOptions, register


@register("evolutionary", "MetaSchedule's evolutionary search with its XGBoost cost model (the baseline)")
def evolutionary(options: StrategyOptions) -> SearchSetup:
    return SearchSetup(strategy=ms.search_strategy.EvolutionarySearch(), cost_model=xgb_cost_model(options))


def xgb_cost_model(options: StrategyOptions):
    """MetaSchedule's XGBoost as ``tune_tasks`` makes it for ``"xgb"`` (one thread per physical
    core); with warm-start logs, pre-trained on their records (``search.transfer``)."""
    if not options.warm_start:
        return "xgb"
    from tvm.s_tir.meta_schedule.utils import cpu_count

    from chameleon.search.transfer import program_model

    return program_model(options, num_tuning_cores=cpu_count(logical=False))


@register("random", "MetaSchedule's replay-trace search: uniform random samples of the design spaces")
def random_search(options: StrategyOptions) -> SearchSetup:
    return SearchSetup(
        strategy=ms.search_strategy.ReplayTrace(),
        cost_model=ms.cost_model.RandomModel(seed=options.seed),
    )
