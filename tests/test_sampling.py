"""Adaptive sampling (k-means, representatives) and sample synthesis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chameleon.sampling.adaptive import choose_k, members_by_distance, representatives, standardise
from chameleon.sampling.synthesis import majority_vote, synthesize

# ---- choose_k ---------------------------------------------------------------------------------


@st.composite
def _points(draw):
    n = draw(st.integers(1, 120))
    d = draw(st.integers(1, 4))
    span = draw(st.integers(1, 6))  # small value ranges give many duplicates
    seed = draw(st.integers(0, 2**16))
    return np.random.default_rng(seed).integers(0, span, size=(n, d)).astype(float)


@settings(max_examples=30, deadline=None)
@given(X=_points(), k_max=st.integers(1, 40), seed=st.integers(0, 3))
def test_choose_k_is_a_step_multiple_or_distinct_count_within_k_max(X, k_max, seed):
    n_distinct = len(np.unique(X, axis=0))
    k, km = choose_k(X, k_max=k_max, seed=seed)
    assert 1 <= k <= k_max
    assert k <= n_distinct
    assert k % 8 == 0 or k == n_distinct or (k_max < 8 and k == k_max)
    assert km.n_clusters == k
    assert len(km.labels_) == len(X)


def _blobs(num_blobs: int, per_blob: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-100, 100, size=(num_blobs, dim))
    labels = np.repeat(np.arange(num_blobs), per_blob)
    return centers[labels] + rng.normal(0, 0.5, size=(len(labels), dim)), labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_choose_k_grows_to_cover_separated_blobs(seed):
    X, truth = _blobs(num_blobs=24, per_blob=15, dim=3, seed=seed)
    k, km = choose_k(X, k_max=64, seed=0)
    assert k == 24
    # Every blob lies inside one cluster.
    for blob in range(24):
        assert len(set(km.labels_[truth == blob])) == 1


def test_choose_k_stays_small_on_unstructured_data():
    X = np.random.default_rng(0).uniform(size=(400, 6))
    k, _ = choose_k(X, k_max=64, seed=0)
    assert k == 8


def test_choose_k_few_distinct_points():
    X = np.array([[0, 0], [1, 1], [2, 2]] * 10, dtype=float)
    k, km = choose_k(X, k_max=64)
    assert k == 3
    assert km.inertia_ == pytest.approx(0)


def test_standardise_keeps_constant_columns_finite():
    Z = standardise(np.array([[1.0, 5.0], [3.0, 5.0]]))
    assert np.allclose(Z, [[-1.0, 0.0], [1.0, 0.0]])


# ---- representatives ----------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(X=_points(), k_max=st.integers(1, 24))
def test_representatives_are_the_closest_member_of_their_cluster(X, k_max):
    k, km = choose_k(X, k_max=k_max, seed=0)
    reps = representatives(X, km)
    Z = standardise(X)
    assert len(reps) == len(set(reps)) == len(set(km.labels_))
    for rep in reps:
        c = km.labels_[rep]
        members = np.flatnonzero(km.labels_ == c)
        dist = ((Z[members] - km.cluster_centers_[c]) ** 2).sum(axis=1)
        assert ((Z[rep] - km.cluster_centers_[c]) ** 2).sum() <= dist.min() + 1e-9
    for c, ordered in enumerate(members_by_distance(X, km)):
        assert set(ordered) == set(np.flatnonzero(km.labels_ == c))
        dist = ((Z[ordered] - km.cluster_centers_[c]) ** 2).sum(axis=1)
        assert np.all(np.diff(dist) >= -1e-12)


def test_representatives_reject_a_different_array():
    X = np.random.default_rng(0).uniform(size=(50, 3))
    _, km = choose_k(X, k_max=8)
    with pytest.raises(ValueError):
        representatives(X[:10], km)


# ---- synthesis ----------------------------------------------------------------------------------


def _never(config, sketch_id):
    return False


def test_synthesize_returns_the_representative_when_usable():
    members = np.array([[1, 2], [3, 4]])
    out = synthesize(
        members=members,
        sketch_ids=np.zeros(2, int),
        n_options=np.full((2, 2), 5),
        is_taken=_never,
        is_invalid=_never,
    )
    assert out is not None and out.source == "representative"
    assert out.config.tolist() == [1, 2]


def test_synthesize_tries_members_in_order_then_votes_then_redraws():
    members = np.array([[0, 0, 1], [1, 1, 1], [1, 0, 0], [2, 1, 1]])
    n_options = np.full((4, 3), 3)
    sketch_ids = np.zeros(4, int)
    taken = {(0, 0, 1), (1, 1, 1)}

    def is_taken(config, sketch_id):
        return tuple(config) in taken

    out = synthesize(
        members=members, sketch_ids=sketch_ids, n_options=n_options, is_taken=is_taken, is_invalid=_never
    )
    assert out.source == "member" and out.config.tolist() == [1, 0, 0]

    taken |= {(1, 0, 0), (2, 1, 1)}
    out = synthesize(
        members=members, sketch_ids=sketch_ids, n_options=n_options, is_taken=is_taken, is_invalid=_never
    )
    assert out.source == "vote" and out.config.tolist() == [1, 0, 1]

    taken.add((1, 0, 1))
    out = synthesize(
        members=members, sketch_ids=sketch_ids, n_options=n_options, is_taken=is_taken, is_invalid=_never
    )
    assert out.source == "redraw" and tuple(out.config) not in taken
    assert np.all((out.config >= 0) & (out.config < 3))


def test_synthesize_returns_none_when_the_whole_space_is_taken():
    members = np.array([[0, 1], [1, 0]])
    out = synthesize(
        members=members,
        sketch_ids=np.zeros(2, int),
        n_options=np.full((2, 2), 2),
        is_taken=lambda c, s: True,
        is_invalid=_never,
        max_redraws=50,
    )
    assert out is None


def test_majority_vote_uses_only_the_representatives_sketch_and_leaves_padding_zero():
    members = np.array([[2, 0, 0], [2, 1, 0], [0, 1, 3], [0, 1, 3], [0, 1, 3]])
    sketch_ids = np.array([0, 0, 1, 1, 1])
    n_options = np.array([[3, 2, 0], [3, 2, 0], [3, 2, 4], [3, 2, 4], [3, 2, 4]])
    out = synthesize(
        members=members,
        sketch_ids=sketch_ids,
        n_options=n_options,
        is_taken=lambda c, s: s == 0 and tuple(c) in {(2, 0, 0), (2, 1, 0)} or s == 1,
        is_invalid=_never,
    )
    # The vote over sketch 0 is (2, 0, 0), taken; a re-draw keeps sketch 0's bounds.
    assert out.source == "redraw"
    assert out.sketch_id == 0 and out.config[2] == 0 and out.config[0] < 3 and out.config[1] < 2
    assert majority_vote(members[:2], n_options[0]).tolist() == [2, 0, 0]


@st.composite
def _cluster(draw):
    k = draw(st.integers(1, 5))
    m = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    bounds = rng.integers(1, 5, size=k)
    members = rng.integers(0, np.maximum(bounds, 1), size=(m, k))
    taken_fraction = draw(st.floats(0, 1))
    invalid_mod = draw(st.integers(1, 4))
    return members, np.tile(bounds, (m, 1)), taken_fraction, invalid_mod, seed


@settings(max_examples=60, deadline=None)
@given(case=_cluster(), seed=st.integers(0, 5))
def test_synthesize_never_returns_taken_or_invalid_and_is_deterministic(case, seed):
    members, n_options, taken_fraction, invalid_mod, space_seed = case
    rng = np.random.default_rng(space_seed)
    taken = {tuple(int(v) for v in c) for c in members if rng.uniform() < taken_fraction}

    def is_taken(config, sketch_id):
        return tuple(int(v) for v in config) in taken

    def is_invalid(config, sketch_id):
        return int(config.sum()) % invalid_mod == 1

    def run():
        return synthesize(
            members=members,
            sketch_ids=np.zeros(len(members), int),
            n_options=n_options,
            is_taken=is_taken,
            is_invalid=is_invalid,
            seed=seed,
        )

    first, second = run(), run()
    if first is None:
        assert second is None
        return
    assert second is not None and first.source == second.source
    assert np.array_equal(first.config, second.config)
    assert not is_taken(first.config, 0) and not is_invalid(first.config, 0)
    assert np.all(first.config >= 0) and np.all(first.config < np.maximum(n_options[0], 1))
