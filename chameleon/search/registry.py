"""Strategies by name.

A strategy is a factory that turns :class:`StrategyOptions` into a :class:`SearchSetup`: a
MetaSchedule ``SearchStrategy`` (TVM clones it once per task) and the cost model MetaSchedule's
task scheduler should keep updated for it. Everything else (design spaces, postprocessors,
builder, runner, database, task scheduler) is TVM's and shared by every strategy, so strategies
are compared on equal terms and run unchanged on the local CPU, an RPC farm or the simulator.
"""

from __future__ import annotations

import dataclasses
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
    overrides: tuple[tuple[str, str], ...] = ()
    """``(field, value)`` pairs from a spec ``name:field=value,...`` for the strategy's config."""
    devices: int = 1
    """Devices that measure a round's candidates in parallel (a farm's devices for the key)."""


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
    config_class: type | None = None
    """The dataclass of the strategy's hyperparameters, if a spec may override them."""


_REGISTRY: dict[str, StrategyEntry] = {}


def register(name: str, help: str, *, config_class: type | None = None) -> Callable:
    def deco(factory: Callable[[StrategyOptions], SearchSetup]):
        _REGISTRY[name] = StrategyEntry(name, help, factory, config_class)
        return factory

    return deco


def _load_builtin() -> None:
    # Importing the modules registers their strategies.
    from chameleon.search import baselines, chameleon_search, sampled_evolutionary  # noqa: F401


def strategy_names() -> list[str]:
    _load_builtin()
    return list(_REGISTRY)


def get_entry(spec: str) -> StrategyEntry:
    """The strategy a spec names: ``name`` or ``name:field=value,...``, which overrides fields of
    the strategy's config (e.g. ``chameleon:representative=best,plan_size=128``), so variants can be
    compared without registering them."""
    _load_builtin()
    name, _, params = spec.partition(":")
    if name not in _REGISTRY:
        raise UsageError(f"unknown strategy {name!r}; valid strategies: {', '.join(_REGISTRY)}")
    entry = _REGISTRY[name]
    if not params:
        return entry
    if entry.config_class is None:
        raise UsageError(f"strategy {name!r} takes no settings; use {name!r} alone")
    pairs = tuple(_parse_setting(spec, item) for item in params.split(","))
    apply_overrides(entry.config_class(), pairs)  # fail fast on a bad field or value
    return StrategyEntry(
        spec,
        entry.help,
        lambda options: entry.factory(dataclasses.replace(options, overrides=pairs)),
        entry.config_class,
    )


def _parse_setting(spec: str, item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"bad strategy spec {spec!r}: write name:field=value,field=value")
    return key.strip(), value.strip()


def apply_overrides(config, overrides: tuple[tuple[str, str], ...]):
    """``config`` with ``overrides`` applied; values are converted to the type of the field's
    current value (bool, int, float or str)."""
    fields = {f.name for f in dataclasses.fields(config)}
    changes = {}
    for key, text in overrides:
        if key not in fields:
            raise UsageError(f"unknown setting {key!r}; settings: {', '.join(sorted(fields))}")
        current = getattr(config, key)
        try:
            if isinstance(current, bool):
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(text)
                changes[key] = text.lower() in ("true", "1")
            elif isinstance(current, int | float | str):
                changes[key] = type(current)(text)
            else:
                raise UsageError(f"setting {key!r} cannot be set from a strategy spec")
        except ValueError:
            raise UsageError(f"bad value {text!r} for {key!r} (expected {type(current).__name__})") from None
    return dataclasses.replace(config, **changes)


def create(name: str, options: StrategyOptions) -> SearchSetup:
    return get_entry(name).factory(options)
