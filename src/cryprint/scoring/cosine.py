"""Cosine scoring of embeddings: the one place where embeddings are scaled to unit length."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from cryprint.errors import DataError

__all__ = ["cosine_matrix", "cosine_pairs", "unit_rows"]


def unit_rows(embeddings: ArrayLike, name: str = "input") -> np.ndarray:
    """Validate an embedding matrix and scale each row to unit L2 norm.

    Args:
        embeddings: float [n, dim].
        name: what the embeddings are, for error messages (``enrolment``, ``cohort`` ...).

    Returns:
        float64 [n, dim], every row of norm 1.

    Raises:
        DataError: not 2-D, empty, NaN/inf values, or an all-zero row (cosine undefined).
    """
    matrix = np.asarray(embeddings, dtype=np.float64)
    if matrix.ndim != 2:
        raise DataError(f"{name} embeddings must be a 2-D array [n, dim], got shape {matrix.shape}")
    if matrix.shape[0] == 0:
        raise DataError(f"{name} embeddings are empty")
    if not np.all(np.isfinite(matrix)):
        raise DataError(f"{name} embeddings contain NaN or infinite values")
    peaks = np.max(np.abs(matrix), axis=1, keepdims=True)
    n_zero = int(np.count_nonzero(peaks == 0))
    if n_zero:
        raise DataError(f"{n_zero} {name} embeddings are all zeros: cosine score undefined")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    # Squaring overflows past ~1e154 and underflows below ~1e-162: such rows are scaled by
    # their largest value first (the rest exactly as before, bit for bit).
    extreme = ~np.isfinite(norms[:, 0]) | (norms[:, 0] < 1e-150)
    if extreme.any():
        scaled = matrix[extreme] / peaks[extreme]
        matrix, norms = matrix.copy(), norms.copy()
        matrix[extreme] = scaled
        norms[extreme] = np.linalg.norm(scaled, axis=1, keepdims=True)
    return matrix / norms


def _same_dim(left: np.ndarray, right: np.ndarray) -> None:
    if left.shape[1] != right.shape[1]:
        raise DataError(
            f"left embeddings are {left.shape[1]}-d, right ones {right.shape[1]}-d: they are not "
            "of one model"
        )


def cosine_matrix(left: ArrayLike, right: ArrayLike) -> np.ndarray:
    """Cosine similarity of every row of ``left`` [n, dim] with every row of ``right`` [m, dim].

    Returns:
        float64 [n, m] in [-1, 1].
    """
    left_unit, right_unit = unit_rows(left, "left"), unit_rows(right, "right")
    _same_dim(left_unit, right_unit)
    # Rounding can put a row against itself at 1 + 4e-16: kept inside [-1, 1].
    return np.clip(left_unit @ right_unit.T, -1.0, 1.0)


def cosine_pairs(left: ArrayLike, right: ArrayLike, pairs: np.ndarray) -> np.ndarray:
    """Cosine similarity of the rows ``left[i]`` and ``right[j]`` of each trial ``(i, j)``.

    Args:
        left: float [n, dim]. right: float [m, dim].
        pairs: int [n_pairs, 2], row ``(i, j)``.

    Returns:
        float64 [n_pairs] in [-1, 1], without building the [n, m] matrix.
    """
    left_unit, right_unit = unit_rows(left, "left"), unit_rows(right, "right")
    _same_dim(left_unit, right_unit)
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or not np.issubdtype(pairs.dtype, np.integer):
        raise DataError(f"pairs must be integers [n_pairs, 2], got {pairs.dtype} {pairs.shape}")
    for column, rows, side in ((0, len(left_unit), "left"), (1, len(right_unit), "right")):
        if len(pairs) and not (pairs[:, column].min() >= 0 and pairs[:, column].max() < rows):
            raise DataError(f"pair indices outside the {rows} {side} embeddings")
    scores = np.einsum("pd,pd->p", left_unit[pairs[:, 0]], right_unit[pairs[:, 1]])
    return np.clip(scores, -1.0, 1.0)
