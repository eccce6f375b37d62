"""Knob space: Chameleon's view of a task's MetaSchedule design spaces."""

from chameleon.space.knobs import Knob, KnobKind, Sketch, SpaceConfig
from chameleon.space.options import TileOrder, tile_options
from chameleon.space.space import Config, KnobSpace, to_measure_candidate

__all__ = [
    "Config",
    "Knob",
    "KnobKind",
    "KnobSpace",
    "Sketch",
    "SpaceConfig",
    "TileOrder",
    "tile_options",
    "to_measure_candidate",
]
