"""Cosine scoring (cryprint.scoring.cosine): against a naive loop of dot products over norms,
invariant to the embeddings' scale, and refusing embeddings on which a cosine is undefined."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cryprint.errors import DataError
from cryprint.scoring.cosine import cosine_matrix, cosine_pairs, unit_rows


def _naive_cosine(a: np.ndarray, b: np.ndarray) -> float:
    dot = sum(float(x) * float(y) for x, y in zip(a, b, strict=True))
    norm_a = math.sqrt(sum(float(x) ** 2 for x in a))
    norm_b = math.sqrt(sum(float(y) ** 2 for y in b))
    return dot / (norm_a * norm_b)


def _embeddings(seed: int, rows: int, dim: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, dim))


def test_cosine_matrix_matches_a_naive_double_loop() -> None:
    left, right = _embeddings(0, 4), _embeddings(1, 5)
    scores = cosine_matrix(left, right)
    assert scores.shape == (4, 5)
    assert scores.dtype == np.float64
    for i in range(4):
        for j in range(5):
            assert scores[i, j] == pytest.approx(_naive_cosine(left[i], right[j]), abs=1e-12)


def test_cosine_pairs_matches_the_naive_cosine_of_each_pair() -> None:
    left, right = _embeddings(2, 6), _embeddings(3, 4)
    pairs = np.array([[0, 0], [5, 3], [2, 1], [2, 1], [4, 0]])
    scores = cosine_pairs(left, right, pairs)
    assert scores.shape == (len(pairs),)
    expected = [_naive_cosine(left[i], right[j]) for i, j in pairs]
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-12)
    # The same numbers as the full matrix at those cells.
    np.testing.assert_allclose(
        scores, cosine_matrix(left, right)[pairs[:, 0], pairs[:, 1]], rtol=0, atol=1e-12
    )


def test_known_angles() -> None:
    left = np.array([[1.0, 0.0], [1.0, 1.0]])
    right = np.array([[0.0, 2.0], [-3.0, 0.0], [5.0, 5.0]])
    expected = np.array([[0.0, -1.0, math.sqrt(0.5)], [math.sqrt(0.5), -math.sqrt(0.5), 1.0]])
    np.testing.assert_allclose(cosine_matrix(left, right), expected, atol=1e-12)


def test_scores_do_not_depend_on_the_length_of_the_embeddings() -> None:
    left, right = _embeddings(4, 3), _embeddings(5, 4)
    row_scale = np.array([[1e-6], [3.0], [1e6]])
    column_scale = np.array([[0.5], [2.0], [7.0], [1e3]])
    base = cosine_matrix(left, right)
    np.testing.assert_allclose(
        cosine_matrix(left * row_scale, right * column_scale), base, atol=1e-12
    )
    # A negative scale turns the direction round: the scores change sign.
    np.testing.assert_allclose(cosine_matrix(-left, right), -base, atol=1e-12)
    pairs = np.array([[0, 3], [2, 0]])
    np.testing.assert_allclose(
        cosine_pairs(left * row_scale, right * column_scale, pairs),
        cosine_pairs(left, right, pairs),
        atol=1e-12,
    )


def test_scores_lie_in_minus_one_to_one() -> None:
    left, right = _embeddings(6, 50, 3), _embeddings(7, 60, 3)
    scores = cosine_matrix(np.vstack([left, -left]), np.vstack([right, left]))
    assert np.all(np.abs(scores) <= 1 + 1e-12)
    # An embedding with itself scores 1.
    np.testing.assert_allclose(np.diag(cosine_matrix(left, left)), 1.0, atol=1e-12)


def test_unit_rows_divides_each_row_by_its_norm() -> None:
    embeddings = [[3, 4], [0, -2], [1, 1]]  # ints and lists are accepted
    unit = unit_rows(embeddings)
    assert unit.dtype == np.float64
    expected = [[0.6, 0.8], [0.0, -1.0], [1 / math.sqrt(2), 1 / math.sqrt(2)]]
    np.testing.assert_allclose(unit, expected, atol=1e-15)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-15)


def test_unit_rows_leaves_its_input_alone() -> None:
    embeddings = np.array([[3.0, 4.0], [1.0, 0.0]])
    before = embeddings.copy()
    unit_rows(embeddings)
    np.testing.assert_array_equal(embeddings, before)


def test_float32_input_is_scored_in_float64() -> None:
    left = _embeddings(8, 3).astype(np.float32)
    right = _embeddings(9, 2).astype(np.float32)
    scores = cosine_matrix(left, right)
    assert scores.dtype == np.float64
    for i in range(3):
        for j in range(2):
            assert scores[i, j] == pytest.approx(_naive_cosine(left[i], right[j]), abs=1e-12)


@pytest.mark.parametrize(
    ("embeddings", "message"),
    [
        (np.ones(3), r"^enroll embeddings must be a 2-D array \[n, dim\], got shape \(3,\)$"),
        (np.ones((2, 3, 4)), r"got shape \(2, 3, 4\)$"),
        (np.zeros((0, 4)), r"^enroll embeddings are empty$"),
        (np.array([[1.0, np.nan]]), r"^enroll embeddings contain NaN or infinite values$"),
        (np.array([[1.0, 2.0], [np.inf, 0.0]]), "contain NaN or infinite values"),
        (np.array([[1.0, 2.0], [-np.inf, 0.0]]), "contain NaN or infinite values"),
        (
            np.array([[0.0, 0.0], [1.0, 2.0], [0.0, 0.0]]),
            r"^2 enroll embeddings are all zeros: cosine score undefined$",
        ),
    ],
)
def test_unit_rows_refuses_what_has_no_cosine(embeddings: np.ndarray, message: str) -> None:
    with pytest.raises(DataError, match=message):
        unit_rows(embeddings, "enroll")


def test_the_default_name_reads_as_a_sentence() -> None:
    with pytest.raises(DataError, match=r"^input embeddings are empty$"):
        unit_rows(np.zeros((0, 2)))


def test_very_small_and_very_large_rows_are_scored() -> None:
    unit = unit_rows(np.array([[1e-100, 0.0], [0.0, -1e100], [3e-100, 4e-100]]))
    np.testing.assert_allclose(unit, [[1.0, 0.0], [0.0, -1.0], [0.6, 0.8]], atol=1e-15)


def test_errors_name_the_side_of_the_comparison() -> None:
    good = _embeddings(10, 2)
    with pytest.raises(DataError, match=r"^1 left embeddings are all zeros"):
        cosine_matrix(np.vstack([good[:1], np.zeros((1, 7))]), good)
    with pytest.raises(DataError, match=r"^right embeddings contain NaN"):
        cosine_matrix(good, np.full((1, 7), np.nan))
    with pytest.raises(DataError, match=r"^right embeddings are empty"):
        cosine_pairs(good, np.zeros((0, 7)), np.array([[0, 0]]))
    with pytest.raises(DataError, match=r"^left embeddings must be a 2-D array"):
        cosine_pairs(good[0], good, np.array([[0, 0]]))


def test_embeddings_of_different_sizes_are_not_scored() -> None:
    with pytest.raises(DataError, match="4-d, right ones 5-d"):
        cosine_matrix(_embeddings(11, 2, 4), _embeddings(12, 3, 5))
    with pytest.raises(DataError, match="4-d, right ones 5-d"):
        cosine_pairs(_embeddings(11, 2, 4), _embeddings(12, 3, 5), np.array([[0, 0]]))


@pytest.mark.parametrize("pairs", [[[-1, 0]], [[0, 3]], [[2, 0]]])
def test_pair_indices_outside_the_embeddings_are_refused(pairs: list) -> None:
    # A negative index would wrap round to another recording: never a silent wrong score.
    with pytest.raises(DataError, match="pair indices outside"):
        cosine_pairs(_embeddings(1, 2, 4), _embeddings(2, 3, 4), np.array(pairs))
