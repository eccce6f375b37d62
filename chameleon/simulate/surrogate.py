"""A surrogate that answers for configurations a dataset never measured.

XGBoost on MetaSchedule's program features (``PerStoreFeature``, pooled over buffer stores:
mean, max and the store count), trained on the dataset's valid records to predict log latency.
Its held-out quality (Spearman rank correlation and median relative error on a 20% split) is
reported with every simulated result, because a simulation is only as good as its misses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)


def pool_features(per_store: list[np.ndarray]) -> np.ndarray:
    rows = []
    for a in per_store:
        if a.size == 0:
            rows.append(np.zeros(2 * 164 + 1, dtype=np.float32))
        else:
            rows.append(np.concatenate([a.mean(0), a.max(0), [np.log1p(a.shape[0])]]).astype(np.float32))
    return np.stack(rows)


def program_features(context, candidates) -> np.ndarray:
    from tvm.s_tir.meta_schedule.feature_extractor import PerStoreFeature

    feats = PerStoreFeature(extract_workload=False).extract_from(context, candidates)
    return pool_features([f.numpy() for f in feats])


@dataclass(frozen=True)
class SurrogateQuality:
    spearman: float
    median_rel_error: float
    n_train: int
    n_test: int


class Surrogate:
    """``fit`` on (features, latency); ``predict`` latency for new features."""

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed
        self.model = None
        self.quality: SurrogateQuality | None = None

    def _new_model(self):
        import xgboost as xgb

        return xgb.XGBRegressor(
            n_estimators=300, max_depth=6, learning_rate=0.05, subsample=0.8, random_state=self.seed, n_jobs=1
        )

    def fit(self, X: np.ndarray, latency: np.ndarray) -> SurrogateQuality:
        from scipy.stats import spearmanr

        y = np.log(latency)
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(y))
        n_test = max(1, len(y) // 5) if len(y) >= 10 else 0
        test, train = order[:n_test], order[n_test:]
        if n_test:
            held = self._new_model().fit(X[train], y[train])
            pred = held.predict(X[test])
            rho = float(spearmanr(pred, y[test]).statistic) if n_test > 2 else float("nan")
            rel = float(np.median(np.abs(np.exp(pred - y[test]) - 1.0)))
        else:
            rho, rel = float("nan"), float("nan")
        self.model = self._new_model().fit(X, y)
        self.quality = SurrogateQuality(rho, rel, len(train), n_test)
        logger.info("surrogate: held-out spearman %.3f, median relative error %.1f%%", rho, 100 * rel)
        return self.quality

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("surrogate is not fitted")
        return np.exp(self.model.predict(X))
