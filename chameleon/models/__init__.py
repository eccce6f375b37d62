"""Model zoo (plain torch) and model import (zoo name, .onnx or .pt2 -> high-level Relax).

``build_model`` / ``ZOO_NAMES`` come from :mod:`chameleon.models.zoo` (torch only);
``load_network`` / ``Network`` from :mod:`chameleon.models.importer` (imports TVM, loaded lazily).
"""

from __future__ import annotations

from typing import Any

from chameleon.models.zoo import ZOO_NAMES, build_model

__all__ = ["ZOO_NAMES", "Network", "build_model", "load_network"]


def __getattr__(name: str) -> Any:
    if name in ("Network", "load_network"):
        from chameleon.models import importer

        return getattr(importer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
