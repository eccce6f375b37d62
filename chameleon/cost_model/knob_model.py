"""XGBoost on knob-level features: cheap enough to score every configuration the agent visits.

The target is normalised throughput, ``best latency / latency`` in (0, 1] (0 for a failed
build or run), so rounds and tasks share one scale and the agent's reward stays bounded. Features
are :meth:`KnobSpace.features` (option indices, log2 tile factors, categorical values), optionally
followed by a fixed context vector (the hardware blueprint's embedding), which lets records from
other devices train the same model (transfer).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class KnobModelConfig:
    n_estimators: int = 120
    """Boosting rounds per fit (the model is refit from scratch each tuning round)."""
    max_depth: int = 6
    learning_rate: float = 0.15
    min_samples: int = 4
    """Below this many valid measurements the model predicts 0 (the agent explores blindly)."""


class KnobCostModel:
    def __init__(self, *, config: KnobModelConfig | None = None, seed: int = 0) -> None:
        self.config = config or KnobModelConfig()
        self.seed = seed
        self.model = None
        self.prior_X: np.ndarray | None = None
        self.prior_y: np.ndarray | None = None

    @staticmethod
    def targets(latencies: np.ndarray) -> np.ndarray:
        finite = latencies[np.isfinite(latencies)]
        if finite.size == 0:
            return np.zeros_like(latencies)
        best = finite.min()
        with np.errstate(divide="ignore"):
            y = np.where(np.isfinite(latencies), best / latencies, 0.0)
        return y.astype(np.float32)

    def set_prior(self, X: np.ndarray, y: np.ndarray) -> None:
        """Records from other devices/runs (already normalised per task) always trained on."""
        self.prior_X, self.prior_y = X, y

    def fit(self, X: np.ndarray, latencies: np.ndarray) -> bool:
        import xgboost as xgb

        y = self.targets(np.asarray(latencies, dtype=np.float64))
        n_valid = int(np.isfinite(latencies).sum())
        if self.prior_X is not None:
            X = np.concatenate([self.prior_X, X])
            y = np.concatenate([self.prior_y, y])
            n_valid += len(self.prior_y)
        if n_valid < self.config.min_samples:
            return False
        c = self.config
        self.model = xgb.XGBRegressor(
            n_estimators=c.n_estimators,
            max_depth=c.max_depth,
            learning_rate=c.learning_rate,
            subsample=0.9,
            random_state=self.seed,
            n_jobs=1,
            tree_method="hist",
        )
        self.model.fit(X, y)
        return True

    @property
    def fitted(self) -> bool:
        return self.model is not None

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.model is None:
            return np.zeros(len(X), dtype=np.float32)
        return self.model.predict(X).astype(np.float32)


def finite_or_inf(value: float | None) -> float:
    return value if value is not None and math.isfinite(value) else math.inf
