"""Cosine scoring of embeddings: the one place where embeddings are scaled to unit length."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from cryprint.errors import DataError

__all__ = ["cosine_matrix", "cosine_pairs", "unit_rows"]


def unit_rows(embeddings: ArrayLike, name: str = "the") -> np.ndarray:
    """Validate an embedding matrix and scale each row to unit L2 norm.

    Args:
        embeddings: float [n, dim].
        name: what the embeddings are, for error messages (``enroll``, ``cohort`` ...).

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
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    n_zero = int(np.count_nonzero(norms == 0))
    if n_zero:
        raise DataError(f"{n_zero} {name} embeddings are all zeros: cosine score undefined")
    return matrix / norms


def cosine_matrix(left: ArrayLike, right: ArrayLike) -> np.ndarray:
    """Cosine similarity of every row of ``left`` [n, dim] with every row of ``right`` [m, dim].

    Returns:
        float64 [n, m] in [-1, 1].
    """
    return unit_rows(left, "left") @ unit_rows(right, "right").T


def cosine_pairs(left: ArrayLike, right: ArrayLike, pairs: np.ndarray) -> np.ndarray:
    """Cosine similarity of the rows ``left[i]`` and ``right[j]`` of each trial ``(i, j)``.

    Args:
        left: float [n, dim]. right: float [m, dim].
        pairs: int [n_pairs, 2], row ``(i, j)``.

    Returns:
        float64 [n_pairs] in [-1, 1], without building the [n, m] matrix.
    """
    left_unit, right_unit = unit_rows(left, "left"), unit_rows(right, "right")
    return np.einsum("pd,pd->p", left_unit[pairs[:, 0]], right_unit[pairs[:, 1]])
