"""Adaptive symmetric score normalisation (AS-norm) of cosine scores.

A raw cosine score mixes "same baby?" with how similar each recording is to *everyone*: some
recordings (a loud cry, a noisy room) score high against all others. AS-norm measures that from
a cohort of recordings of other babies: for each side of a trial, the mean and standard
deviation of its ``top_n`` highest cohort scores (the "adaptive" part: only the nearest
impostors), then

    normalised = 0.5 * ((s - mean_enrolment) / std_enrolment + (s - mean_test) / std_test)

(Cumani et al. 2011; Matějka et al. 2017, as in wespeaker's ``score_norm.py``).

The standard deviation is the population one (``ddof=0``, as in wespeaker). SpeechBrain's
recipe uses ``ddof=1``; that only multiplies every normalised score by the same constant
``sqrt((top_n - 1) / top_n)``, so rankings, EER and minDCF do not change.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from cryprint.errors import DataError
from cryprint.scoring.cosine import unit_rows

__all__ = ["as_norm_matrix", "as_norm_pairs", "cohort_statistics"]


def _check_top_n(top_n: int, n_cohort: int) -> None:
    if isinstance(top_n, bool) or not isinstance(top_n, int | np.integer):
        raise DataError(f"top_n must be an integer, got {top_n!r}")
    # One score has no spread, so the division by the standard deviation needs at least two.
    if not 2 <= top_n <= n_cohort:
        raise DataError(f"top_n must be between 2 and the cohort size {n_cohort}, got {top_n}")


def _check_dims(*matrices: tuple[str, np.ndarray]) -> None:
    dims = {name: matrix.shape[1] for name, matrix in matrices}
    if len(set(dims.values())) != 1:
        raise DataError(f"embedding dimensions differ: {dims}")


def _top_n_statistics(
    unit: np.ndarray, cohort_unit: np.ndarray, top_n: int
) -> tuple[np.ndarray, np.ndarray]:
    cohort_scores = unit @ cohort_unit.T  # [n, n_cohort]
    n_cohort = cohort_scores.shape[1]
    # partition puts the top_n largest scores (in no particular order) at the end: O(n_cohort).
    top = np.partition(cohort_scores, n_cohort - top_n, axis=1)[:, n_cohort - top_n :]
    mean = top.mean(axis=1)
    std = top.std(axis=1)
    # Equal scores can leave a rounding-level std (~1e-17) rather than an exact 0; cosine scores
    # lie in [-1, 1], so anything this small means "no spread" and would blow scores up.
    n_flat = int(np.count_nonzero(std < 1e-12))
    if n_flat:
        raise DataError(
            f"{n_flat} embeddings have identical top-{top_n} cohort scores (std 0): "
            "the cohort holds duplicates; use a larger top_n or a more varied cohort"
        )
    return mean, std


def cohort_statistics(
    embeddings: ArrayLike, cohort: ArrayLike, top_n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each embedding's ``top_n`` highest cohort cosine scores.

    Args:
        embeddings: float [n, dim]; need not be normalised.
        cohort: float [n_cohort, dim], recordings of babies in neither side of the trials.
        top_n: how many of the highest cohort scores to use, 2 <= top_n <= n_cohort.

    Returns:
        ``(mean, std)``, float64 [n] each.
    """
    unit = unit_rows(embeddings, "input")
    cohort_unit = unit_rows(cohort, "cohort")
    _check_dims(("input", unit), ("cohort", cohort_unit))
    _check_top_n(top_n, cohort_unit.shape[0])
    return _top_n_statistics(unit, cohort_unit, top_n)


def as_norm_matrix(
    enrolment: ArrayLike, test: ArrayLike, cohort: ArrayLike, top_n: int
) -> np.ndarray:
    """AS-norm cosine scores of every enrolment embedding against every test embedding.

    Args:
        enrolment: float [n_enrolment, dim]; L2-normalised here.
        test: float [n_test, dim]; L2-normalised here.
        cohort: float [n_cohort, dim]; L2-normalised here.
        top_n: number of highest cohort scores per embedding, 2 <= top_n <= n_cohort.

    Returns:
        float64 [n_enrolment, n_test]; entry ``[i, j]`` is the normalised score of ``enrolment[i]``
        against ``test[j]``. Swapping ``enrolment`` and ``test`` transposes the result.
    """
    enrolment_unit = unit_rows(enrolment, "enrolment")
    test_unit = unit_rows(test, "test")
    cohort_unit = unit_rows(cohort, "cohort")
    _check_dims(("enrolment", enrolment_unit), ("test", test_unit), ("cohort", cohort_unit))
    _check_top_n(top_n, cohort_unit.shape[0])
    enrolment_mean, enrolment_std = _top_n_statistics(enrolment_unit, cohort_unit, top_n)
    test_mean, test_std = _top_n_statistics(test_unit, cohort_unit, top_n)
    raw = enrolment_unit @ test_unit.T
    enrolment_side = (raw - enrolment_mean[:, None]) / enrolment_std[:, None]
    test_side = (raw - test_mean[None, :]) / test_std[None, :]
    return 0.5 * (enrolment_side + test_side)


def as_norm_pairs(
    enrolment: ArrayLike,
    test: ArrayLike,
    cohort: ArrayLike,
    pairs: ArrayLike,
    top_n: int,
) -> np.ndarray:
    """AS-norm cosine scores for a list of trials, without building the full score matrix.

    Args:
        enrolment: float [n_enrolment, dim]; L2-normalised here.
        test: float [n_test, dim]; L2-normalised here.
        cohort: float [n_cohort, dim]; L2-normalised here.
        pairs: int [n_pairs, 2]; row ``(i, j)`` is the trial ``enrolment[i]`` vs ``test[j]``.
        top_n: number of highest cohort scores per embedding, 2 <= top_n <= n_cohort.

    Returns:
        float64 [n_pairs], equal to ``as_norm_matrix(...)[pairs[:, 0], pairs[:, 1]]``.
    """
    enrolment_unit = unit_rows(enrolment, "enrolment")
    test_unit = unit_rows(test, "test")
    cohort_unit = unit_rows(cohort, "cohort")
    _check_dims(("enrolment", enrolment_unit), ("test", test_unit), ("cohort", cohort_unit))
    _check_top_n(top_n, cohort_unit.shape[0])
    pair_array = np.asarray(pairs)
    if pair_array.ndim != 2 or pair_array.shape[1] != 2:
        raise DataError(f"pairs must have shape [n_pairs, 2], got {pair_array.shape}")
    if pair_array.shape[0] == 0:
        raise DataError("pairs is empty")
    if not np.issubdtype(pair_array.dtype, np.integer):
        raise DataError(f"pairs must hold integer indices, got dtype {pair_array.dtype}")
    enrolment_index, test_index = pair_array[:, 0], pair_array[:, 1]
    for name, index, size in (
        ("enrolment", enrolment_index, enrolment_unit.shape[0]),
        ("test", test_index, test_unit.shape[0]),
    ):
        # Negative indices would silently wrap around in numpy: reject them too.
        if index.min() < 0 or index.max() >= size:
            raise DataError(
                f"pairs hold {name} indices outside [0, {size}): "
                f"min {index.min()}, max {index.max()}"
            )
    # Statistics only for embeddings that appear in some pair.
    used_enrolment, enrolment_pos = np.unique(enrolment_index, return_inverse=True)
    used_test, test_pos = np.unique(test_index, return_inverse=True)
    enrolment_mean, enrolment_std = _top_n_statistics(
        enrolment_unit[used_enrolment], cohort_unit, top_n
    )
    test_mean, test_std = _top_n_statistics(test_unit[used_test], cohort_unit, top_n)
    raw = np.einsum("pd,pd->p", enrolment_unit[enrolment_index], test_unit[test_index])
    enrolment_side = (raw - enrolment_mean[enrolment_pos]) / enrolment_std[enrolment_pos]
    test_side = (raw - test_mean[test_pos]) / test_std[test_pos]
    return 0.5 * (enrolment_side + test_side)
