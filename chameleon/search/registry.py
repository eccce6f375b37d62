"""Strategies by name.

A strategy is a factory that turns :class:`StrategyOptions` into a :class:`SearchSetup`: a
MetaSchedule ``SearchStrategy`` (TVM clones it once per task) and the cost model MetaSchedule's
task scheduler should keep updated for it. Everything else (design spaces, postprocessors,
builder, runner, database, task scheduler) is TVM's and shared by every strategy, so strategies
are compared on equal terms and run unchanged on the local CPU, an RPC farm or the simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from chameleon.errors import UsageError


@dataclass(frozen=True, kw_only=True)
class StrategyOptions:
    """What a strategy factory may use."""

    seed: int = 0
    """Seed of the strategy's own randomness (TVM's per-task random state is seeded separately)."""
    target_json: dict = field(default_factory=dict)
    """The TVM target (dict form); lets hardware-aware strategies find the device's blueprint."""
    blueprint: bool = True
    """Use the hardware blueprint (priors, validity checks, transfer) where the strategy supports it."""
    warm_start: tuple[str, ...] = ()
    """Log directories of other devices/runs to pre-train the cost model on."""


@dataclass(frozen=True)
class SearchSetup:
    strategy: object
    """A ``tvm.s_tir.meta_schedule.SearchStrategy`` (or Py subclass) instance."""
    cost_model: object
    """What ``ms.tune_tasks(cost_model=...)`` gets: a name or a ``CostModel`` instance."""
    stats: dict = field(default_factory=dict)
    """Filled by the strategy after each task: ``{task name: {counter: value}}`` (e.g. how many
    configurations the blueprint rejected before measuring); empty for TVM's own strategies."""


@dataclass(frozen=True)
class StrategyEntry:
    name: str
    help: str
    factory: Callable[[StrategyOptions], SearchSetup]


_REGISTRY: dict[str, StrategyEntry] = {}


def register(name: str, help: str) -> Callable:
    def deco(factory: Callable[[StrategyOptions], SearchSetup]):
        _REGISTRY[name] = StrategyEntry(name, help, factory)
        return factory

    return deco


def _load_builtin() -> None:
    # Importing the modules registers their strategies.
    from chameleon.search import baselines, chameleon_search, sampled_evolutionary  # noqa: F401


def strategy_names() -> list[str]:
    _load_builtin()
    return list(_REGISTRY)


def get_entry(name: str) -> StrategyEntry:
    _load_builtin()
    if name not in _REGISTRY:
        raise UsageError(f"unknown strategy {name!r}; valid strategies: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def create(name: str, options: StrategyOptions) -> SearchSetup:
    return get_entry(name).factory(options)
