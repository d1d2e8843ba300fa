"""Tests for cryprint.scoring.normalization (AS-norm): naive loop, geometry, synthetic speakers."""

import math
import statistics

import numpy as np
import pytest

from cryprint.errors import DataError
from cryprint.scoring.metrics import compute_eer
from cryprint.scoring.normalization import as_norm_matrix, as_norm_pairs, cohort_statistics


def random_embeddings(seed: int, n_enrolment=5, n_test=7, n_cohort=12, dim=6):
    rng = np.random.default_rng(seed)
    # Row norms far from 1 so that missing normalisation would show.
    return tuple(
        rng.normal(size=(n, dim)) * rng.uniform(0.2, 5.0, size=(n, 1))
        for n in (n_enrolment, n_test, n_cohort)
    )


def unit_rows(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def cosine(x, y):
    return sum(a * b for a, b in zip(x, y, strict=True)) / (
        math.sqrt(sum(a * a for a in x)) * math.sqrt(sum(b * b for b in y))
    )


def naive_as_norm(enrolment, test, cohort, top_n):
    """One trial at a time, with plain Python: sort each side's cohort scores, keep the top."""
    result = np.zeros((len(enrolment), len(test)))
    for i, e in enumerate(enrolment):
        for j, t in enumerate(test):
            score = cosine(e, t)
            top_e = sorted((cosine(e, c) for c in cohort), reverse=True)[:top_n]
            top_t = sorted((cosine(t, c) for c in cohort), reverse=True)[:top_n]
            z_e = (score - statistics.fmean(top_e)) / statistics.pstdev(top_e)
            z_t = (score - statistics.fmean(top_t)) / statistics.pstdev(top_t)
            result[i, j] = 0.5 * (z_e + z_t)
    return result


@pytest.mark.parametrize(("seed", "top_n"), [(0, 2), (1, 5), (2, 12)])
def test_matrix_matches_naive_loop(seed, top_n):
    enrolment, test, cohort = random_embeddings(seed)
    expected = naive_as_norm(enrolment.tolist(), test.tolist(), cohort.tolist(), top_n)
    np.testing.assert_allclose(as_norm_matrix(enrolment, test, cohort, top_n), expected, atol=1e-10)


def test_pairs_match_matrix_entries():
    enrolment, test, cohort = random_embeddings(3)
    pairs = np.array([[0, 0], [4, 6], [2, 3], [2, 3], [1, 5]])
    matrix = as_norm_matrix(enrolment, test, cohort, top_n=4)
    np.testing.assert_allclose(
        as_norm_pairs(enrolment, test, cohort, pairs, top_n=4),
        matrix[pairs[:, 0], pairs[:, 1]],
        atol=1e-12,
    )


def test_symmetric_and_scale_invariant():
    enrolment, test, cohort = random_embeddings(4)
    matrix = as_norm_matrix(enrolment, test, cohort, top_n=3)
    # Symmetric: the roles of enrolment and test are interchangeable.
    np.testing.assert_allclose(
        as_norm_matrix(test, enrolment, cohort, top_n=3), matrix.T, atol=1e-12
    )
    # Cosine scores ignore each embedding's length.
    rng = np.random.default_rng(4)
    rescaled = as_norm_matrix(
        enrolment * rng.uniform(0.1, 10, size=(enrolment.shape[0], 1)),
        test * 3.0,
        cohort * rng.uniform(0.1, 10, size=(cohort.shape[0], 1)),
        top_n=3,
    )
    np.testing.assert_allclose(rescaled, matrix, atol=1e-10)


def test_cohort_statistics_use_the_highest_scores():
    # Unit cohort vectors at known cosines to the enrolment vector [1, 0].
    cosines = np.array([0.9, -0.2, 0.5, 0.1])
    cohort = np.column_stack([cosines, np.sqrt(1 - cosines**2)])
    mean, std = cohort_statistics(np.array([[2.0, 0.0]]), cohort, top_n=2)
    # Top two: 0.9 and 0.5 -> mean 0.7, population std 0.2.
    np.testing.assert_allclose(mean, [0.7])
    np.testing.assert_allclose(std, [0.2])


def synthetic_world(seed: int, offset_scale: float, n_trial_babies=30, n_cohort_babies=60):
    """Four recordings per baby around a baby direction, plus a shared "loudness" direction.

    Each baby gets a weight on the shared direction (0..offset_scale): babies with large
    weights score high against everybody, a speaker-dependent offset that raw cosine scoring
    mistakes for similarity. The cohort babies live in the same world but are not in trials.
    """
    rng = np.random.default_rng(seed)
    dim, per_baby = 32, 4
    n_babies = n_trial_babies + n_cohort_babies
    centroids = rng.normal(size=(n_babies, dim))
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    shared = rng.normal(size=dim)
    shared /= np.linalg.norm(shared)
    weight = rng.uniform(0.0, offset_scale, size=n_babies)
    baby_id = np.repeat(np.arange(n_babies), per_baby)
    noise = 0.9 * rng.normal(size=(baby_id.shape[0], dim)) / np.sqrt(dim)
    embeddings = centroids[baby_id] + weight[baby_id, None] * shared + noise
    in_trials = baby_id < n_trial_babies
    trial_embeddings, trial_ids = embeddings[in_trials], baby_id[in_trials]
    enrolment_mask = np.arange(trial_ids.shape[0]) % per_baby == 0
    return (
        trial_embeddings[enrolment_mask],
        trial_ids[enrolment_mask],
        trial_embeddings[~enrolment_mask],
        trial_ids[~enrolment_mask],
        embeddings[~in_trials],
    )


def raw_and_normalised_eer(seed: int, offset_scale: float) -> tuple[float, float]:
    enrolment, enrolment_ids, test, test_ids, cohort = synthetic_world(seed, offset_scale)
    labels = (enrolment_ids[:, None] == test_ids[None, :]).astype(int).ravel()
    raw = (unit_rows(enrolment) @ unit_rows(test).T).ravel()
    normalised = as_norm_matrix(enrolment, test, cohort, top_n=20).ravel()
    return compute_eer(raw, labels).eer, compute_eer(normalised, labels).eer


@pytest.mark.parametrize("seed", range(4))
def test_as_norm_removes_speaker_dependent_offsets(seed):
    raw_eer, normalised_eer = raw_and_normalised_eer(seed, offset_scale=1.5)
    # The offsets inflate raw impostor scores; AS-norm estimates each side's offset from its
    # nearest cohort impostors and should cut the EER substantially.
    assert raw_eer > 0.05
    assert normalised_eer < 0.6 * raw_eer


@pytest.mark.parametrize("seed", range(4))
def test_as_norm_costs_little_without_offsets(seed):
    raw_eer, normalised_eer = raw_and_normalised_eer(seed, offset_scale=0.0)
    # Nothing to remove: the normalised EER may move by noise, i.e. by a target trial or so
    # (90 target trials here, 1/90 ≈ 0.011 each), but not more.
    assert normalised_eer <= raw_eer + 0.015


def test_top_n_outside_range_is_an_error():
    enrolment, test, cohort = random_embeddings(5, n_cohort=4)
    with pytest.raises(DataError, match="cohort size 4"):
        as_norm_matrix(enrolment, test, cohort, top_n=5)
    with pytest.raises(DataError, match="between 2"):
        as_norm_matrix(enrolment, test, cohort, top_n=1)
    with pytest.raises(DataError, match="integer"):
        as_norm_matrix(enrolment, test, cohort, top_n=2.5)


def test_dimension_mismatch_is_an_error():
    enrolment, test, cohort = random_embeddings(6)
    with pytest.raises(DataError, match="dimensions differ"):
        as_norm_matrix(enrolment, test[:, :-1], cohort, top_n=3)
    with pytest.raises(DataError, match="dimensions differ"):
        as_norm_pairs(enrolment, test, cohort[:, :-1], [[0, 0]], top_n=3)
    with pytest.raises(DataError, match="2-D"):
        as_norm_matrix(enrolment[0], test, cohort, top_n=3)


def test_bad_embeddings_are_errors():
    enrolment, test, cohort = random_embeddings(7)
    zero = enrolment.copy()
    zero[1] = 0.0
    with pytest.raises(DataError, match="all zeros"):
        as_norm_matrix(zero, test, cohort, top_n=3)
    nan = test.copy()
    nan[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        as_norm_matrix(enrolment, nan, cohort, top_n=3)
    with pytest.raises(DataError, match="empty"):
        as_norm_matrix(enrolment, test, cohort[:0], top_n=3)
    # A cohort of copies has no spread to divide by.
    with pytest.raises(DataError, match="std 0"):
        as_norm_matrix(enrolment, test, np.repeat(cohort[:1], 5, axis=0), top_n=3)


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([[0, 7]], "test indices outside"),
        ([[-1, 0]], "enrolment indices outside"),
        ([[0, 1, 2]], "shape"),
        (np.zeros((0, 2), dtype=int), "empty"),
        ([[0.0, 1.0]], "integer"),
    ],
)
def test_bad_pairs_are_errors(pairs, message):
    enrolment, test, cohort = random_embeddings(8)
    with pytest.raises(DataError, match=message):
        as_norm_pairs(enrolment, test, cohort, pairs, top_n=3)
