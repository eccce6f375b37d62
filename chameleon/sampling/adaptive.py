"""Adaptive sampling: cluster the candidates, measure one representative per cluster.

Chameleon's rule: run k-means for k = 8, 16, ... and keep growing k while the k-means loss
(inertia, the sum of squared distances to the nearest centroid) still drops steeply, by more than
``threshold`` (2.5) times from one k to the next. A steep drop means the larger k found structure
(separate groups of candidates); a flat drop means it only splits a group, which is where the
elbow of the loss curve is. Features are standardised (zero mean, unit variance per column;
constant columns are left at 0) so that no knob dominates the distance.

Exact rule implemented by ``choose_k``: with ``ks = k_step, 2 k_step, ... <= k_max`` (each
clamped to the number of distinct points, duplicates dropped; ``[k_max]`` when ``k_max <
k_step``), start from ``ks[0]`` and move from ``k`` to the next ``k'`` iff ``inertia(k) >
threshold * inertia(k')``; stop at the first ``k'`` that fails, or when ``inertia(k) == 0``.
The chosen k is the last one that passed. The paper's Algorithm 1 (as we read it) breaks at the
first failing ``k'`` and keeps that clustering, i.e. one ``k_step`` past the elbow; we stop at
the elbow itself so that well-separated groups get exactly one cluster each.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.cluster import KMeans

logger = logging.getLogger(__name__)


def standardise(X: np.ndarray) -> np.ndarray:
    """Columns scaled to zero mean and unit variance (constant columns become 0)."""
    Z = np.asarray(X, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[0] == 0:
        raise ValueError(f"X must be a non-empty (N, D) array, got shape {Z.shape}")
    std = Z.std(axis=0)
    std[std == 0] = 1.0
    return (Z - Z.mean(axis=0)) / std


def _candidate_ks(k_step: int, k_max: int, n_distinct: int) -> list[int]:
    ks = list(range(k_step, k_max + 1, k_step)) or [k_max]
    clamped = [min(k, n_distinct) for k in ks]
    return list(dict.fromkeys(clamped))


def choose_k(
    X: np.ndarray,
    *,
    k_step: int = 8,
    k_max: int,
    threshold: float = 2.5,
    seed: int = 0,
    n_init: int = 3,
) -> tuple[int, KMeans]:
    """Pick the number of clusters by the loss-drop rule (see module docstring).

    Returns ``(k, kmeans)``: the k-means fitted on the standardised ``X`` with ``k`` clusters.
    ``k`` is a multiple of ``k_step``, or the number of distinct rows of ``X`` if that is
    smaller, or ``k_max`` if ``k_max < k_step``; always ``1 <= k <= k_max``.
    """
    if k_step < 1 or k_max < 1 or threshold < 1:
        raise ValueError(f"need k_step >= 1, k_max >= 1, threshold >= 1; got {k_step}, {k_max}, {threshold}")
    Z = standardise(X)
    n_distinct = len(np.unique(Z, axis=0))

    def fit(k: int) -> KMeans:
        return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(Z)

    ks = _candidate_ks(k_step, k_max, n_distinct)
    best = fit(ks[0])
    losses = [best.inertia_]
    for k in ks[1:]:
        if best.inertia_ == 0:
            break
        candidate = fit(k)
        losses.append(candidate.inertia_)
        if best.inertia_ > threshold * candidate.inertia_:
            best = candidate
        else:
            break
    logger.debug("choose_k: n=%d distinct=%d losses=%s -> k=%d", len(Z), n_distinct, losses, best.n_clusters)
    return int(best.n_clusters), best


def members_by_distance(X: np.ndarray, kmeans: KMeans) -> list[np.ndarray]:
    """Per cluster, the indices of its members sorted by distance to the centroid (closest first).

    ``X`` must be the array ``kmeans`` was fitted on (by ``choose_k``, which standardises it the
    same way). Ties keep index order. Empty clusters give empty arrays.
    """
    Z = standardise(X)
    labels = np.asarray(kmeans.labels_)
    centers = np.asarray(kmeans.cluster_centers_)
    if len(labels) != len(Z) or centers.shape[1] != Z.shape[1]:
        raise ValueError("X is not the array this k-means was fitted on")
    result = []
    for c in range(len(centers)):
        idx = np.flatnonzero(labels == c)
        dist = ((Z[idx] - centers[c]) ** 2).sum(axis=1)
        result.append(idx[np.argsort(dist, kind="stable")])
    return result


def representatives(X: np.ndarray, kmeans: KMeans) -> list[int]:
    """One index per (non-empty) cluster: the member closest to its centroid."""
    return [int(members[0]) for members in members_by_distance(X, kmeans) if len(members)]
