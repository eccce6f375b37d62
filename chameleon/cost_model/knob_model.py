"""XGBoost on knob-level features: cheap enough to score every configuration the agent visits.

The target is normalised throughput, ``best latency / latency`` in (0, 1] (0 for a failed
build or run), so rounds and tasks share one scale and the agent's reward stays bounded. Features
are :meth:`KnobSpace.features` (option indices, log2 tile factors, categorical values), optionally
followed by a fixed context vector (the hardware blueprint's embedding), which lets records from
other devices train the same model (transfer).

Transfer (warm start) follows AutoTVM's ``XGBoostCostModel``: a *base model* is fitted once on the
other devices' records, and every round's model is boosted on top of it, so it starts from what
transferred and corrects it as this device's measurements come in. The local fit continues the base
model's booster (``xgb_model=``) rather than passing its margin as ``base_margin``: the same trees,
but one model to predict with, so the agent's tens of thousands of predictions a round keep
XGBoost's fast in-place path (a ``base_margin`` forces a DMatrix and a second model per call).
Refitting is as cheap as without a warm start.
"""

from __future__ import annotations

import logging
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
        self.base_model = None
        """Fitted once on records from other devices/runs (warm start); None without one."""

    @staticmethod
    def targets(latencies: np.ndarray) -> np.ndarray:
        finite = latencies[np.isfinite(latencies)]
        if finite.size == 0:
            return np.zeros_like(latencies)
        best = finite.min()
        with np.errstate(divide="ignore"):
            y = np.where(np.isfinite(latencies), best / latencies, 0.0)
        return y.astype(np.float32)

    def _regressor(self):
        import xgboost as xgb

        c = self.config
        return xgb.XGBRegressor(
            n_estimators=c.n_estimators,
            max_depth=c.max_depth,
            learning_rate=c.learning_rate,
            subsample=0.9,
            random_state=self.seed,
            n_jobs=1,
            tree_method="hist",
        )

    def set_prior(self, X: np.ndarray, y: np.ndarray) -> None:
        """Fit the base model on records from other devices/runs (targets already normalised per
        log); fewer than ``min_samples`` records leave the model cold."""
        if len(y) < self.config.min_samples:
            return
        self.base_model = self._regressor()
        self.base_model.fit(X, y)

    def fit(self, X: np.ndarray, latencies: np.ndarray) -> bool:
        """Refit on this task's measurements; False while the model cannot predict anything yet
        (fewer than ``min_samples`` valid measurements and no base model)."""
        latencies = np.asarray(latencies, dtype=np.float64)
        if int(np.isfinite(latencies).sum()) < self.config.min_samples:
            self.model = None
            return self.base_model is not None
        self.model = self._regressor()
        base = self.base_model.get_booster() if self.base_model is not None else None
        self.model.fit(X, self.targets(latencies), xgb_model=base)
        return True

    @property
    def fitted(self) -> bool:
        return self.model is not None or self.base_model is not None

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.model is not None:
            return self.model.predict(X).astype(np.float32)
        if self.base_model is not None:
            return self.base_model.predict(X).astype(np.float32)
        return np.zeros(len(X), dtype=np.float32)
