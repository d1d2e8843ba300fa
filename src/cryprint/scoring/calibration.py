"""Score calibration: map a raw verification score to P(same baby) with a logistic model.

``p = sigmoid(a * score + b)``, fitted by maximum likelihood on labelled trials. The
probability is a posterior under the calibration trials' own share of target trials, the fit
prior ``prior`` (``b`` absorbs it); :mod:`cryprint.scoring.verdict` moves it to another prior.
Pure numpy, no file I/O: ``calibration.json`` is read and written by
:mod:`cryprint.inference.operating_point`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cryprint.errors import DataError, ModelError
from cryprint.scoring.logistic import fit_logistic
from cryprint.scoring.metrics import validate_trials

__all__ = [
    "MAX_PARAMETER",
    "MIN_SLOPE",
    "Calibration",
    "fit_calibration",
    "reliability_bins",
    "sigmoid",
]

# The largest |a| and |b| a calibration may have. Scores are cosines (or AS-norm z-scores of a
# few units) and a fit on real trials gives slopes of tens; beyond 1e6 a calibration says
# nothing a person could use, and the threshold of a prior, (logit(π0) − logit(π) − b) / a, no
# longer implies that prior back to 1e-9 (float64 rounding of a·t + b).
MAX_PARAMETER = 1e6
# The smallest |a| of a sloped calibration (a = 0 is allowed: flat, no threshold matches a prior).
# Below it the scores move the log-odds by less than 1e-5 over [-1, 1], and a prior's threshold
# can overflow to infinity.
MIN_SLOPE = 1e-6


def sigmoid(z: ArrayLike) -> np.ndarray:
    """The logistic function ``1 / (1 + exp(-z))``, elementwise, without overflow.

    Args:
        z: log-odds, float of any shape.

    Returns:
        float64 of the same shape, in [0, 1]; ``>= 0.5`` where ``z >= 0`` and ``<= 0.5``
        where ``z < 0`` (a negative ``z`` within about 1e-16 of 0 rounds to 0.5).
    """
    z = np.asarray(z, dtype=np.float64)
    # exp of a negative argument only, so no overflow warnings for large |z|.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@dataclass(frozen=True)
class Calibration:
    """Logistic calibration ``P(same baby | score) = sigmoid(a * score + b)``.

    Attributes:
        a: slope (positive when higher scores mean "same baby").
        b: offset.
        prior: the fit prior, the share of target trials among the trials it was fitted on,
            in (0, 1): the prior behind :meth:`probability`.

    Raises:
        ModelError: a value that is not a finite number, a prior outside (0, 1), ``|a|`` or
            ``|b|`` above :data:`MAX_PARAMETER`, or ``0 < |a| <`` :data:`MIN_SLOPE`.
    """

    a: float
    b: float
    prior: float

    def __post_init__(self) -> None:
        for name in ("a", "b", "prior"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(
                value, int | float | np.integer | np.floating
            ):
                raise ModelError(f"calibration {name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ModelError(f"calibration {name} must be finite, got {value}")
            object.__setattr__(self, name, float(value))
        if not 0.0 < self.prior < 1.0:
            raise ModelError(f"calibration prior must be in (0, 1), got {self.prior}")
        absurd = _absurd_parameters(self.a, self.b)
        if absurd:
            raise ModelError(f"calibration {absurd}")

    def probability(self, scores: ArrayLike) -> np.ndarray:
        """Probability that each trial is a target trial, at the fit prior ``self.prior``
        (at another prior: :func:`cryprint.scoring.verdict.probability`).

        Args:
            scores: float [n_trials] (any shape works; it is kept).

        Returns:
            float64 array of the same shape, values in [0, 1].
        """
        values = np.asarray(scores, dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise DataError("scores to calibrate contain NaN or infinite values")
        return sigmoid(self.a * values + self.b)

    def log_likelihood_ratio(self, scores: ArrayLike) -> np.ndarray:
        """ln p(score | same baby) / p(score | different babies): the log-odds of
        :meth:`probability` without the fit prior's, ``a * s + b − logit(prior)``; float64 of
        the shape of ``scores``."""
        values = np.asarray(scores, dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise DataError("scores to calibrate contain NaN or infinite values")
        return self.a * values + self.b - (math.log(self.prior) - math.log1p(-self.prior))

    def to_dict(self) -> dict[str, float]:
        """``{"a": ..., "b": ..., "prior": ...}``, JSON-ready."""
        return {"a": self.a, "b": self.b, "prior": self.prior}

    @classmethod
    def from_dict(cls, data: Any) -> Calibration:
        """Build from :meth:`to_dict` output; exactly the keys ``a``, ``b`` and ``prior``.

        Raises:
            ModelError: not a dict, missing or unknown keys, or invalid values.
        """
        if not isinstance(data, dict):
            raise ModelError(f"calibration must be a JSON object, got {type(data).__name__}")
        keys = set(data)
        if keys != {"a", "b", "prior"}:
            raise ModelError(
                f"calibration must have exactly the keys ['a', 'b', 'prior'], got {sorted(keys)}"
            )
        return cls(a=data["a"], b=data["b"], prior=data["prior"])


def fit_calibration(scores: ArrayLike, labels: ArrayLike) -> Calibration:
    """Fit ``P(target | score) = sigmoid(a * score + b)`` by maximum likelihood.

    Newton's method (:func:`cryprint.scoring.logistic.fit_logistic`) on standardised scores,
    so the result does not depend on their scale; a 1e-6 ridge on the standardised slope keeps
    perfectly separated scores finite.

    Args:
        scores: float [n_trials], finite.
        labels: 0/1 or bool [n_trials], 1 = target trial; both classes needed.

    Returns:
        The fitted :class:`Calibration`; its ``prior`` is the share of target trials.

    Raises:
        DataError: invalid trials (see :func:`~cryprint.scoring.metrics.validate_trials`),
            all scores equal (no slope can be fitted), or a fit whose ``a`` or ``b`` is absurd
            (scores a billionth apart, say; see :data:`MAX_PARAMETER`, :data:`MIN_SLOPE`).
    """
    scores, labels = validate_trials(scores, labels)
    if scores.std() == 0:
        raise DataError("all calibration scores are equal: no slope can be fitted")
    slopes, offset = fit_logistic(scores[:, None], labels)
    absurd = _absurd_parameters(float(slopes[0]), offset)
    if absurd:
        raise DataError(f"these calibration scores give no usable calibration: the fit's {absurd}")
    return Calibration(a=float(slopes[0]), b=offset, prior=float(labels.mean()))


def _absurd_parameters(a: float, b: float) -> str:
    """What is absurd about a calibration's ``a`` and ``b`` (see :data:`MAX_PARAMETER`,
    :data:`MIN_SLOPE`), worded with their values; "" when nothing is."""
    if abs(a) > MAX_PARAMETER or abs(b) > MAX_PARAMETER:
        return f"a = {a:g}, b = {b:g} is absurd: |a| and |b| must be at most {MAX_PARAMETER:g}"
    if 0.0 < abs(a) < MIN_SLOPE:
        return f"a = {a:g} is absurd: a sloped calibration has |a| of at least {MIN_SLOPE:g}"
    return ""


def reliability_bins(
    probabilities: ArrayLike, labels: ArrayLike, n_bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A reliability (calibration) curve: trials binned by predicted probability.

    Bins are ``n_bins`` equal widths of [0, 1]; bin ``k`` holds ``k/n <= p < (k+1)/n`` (the
    last one also ``p == 1``). Empty bins are dropped.

    Args:
        probabilities: float [n_trials], predicted P(target), in [0, 1].
        labels: 0/1 or bool [n_trials], 1 = target trial (one class alone is allowed).
        n_bins: number of bins, >= 1.

    Returns:
        ``(predicted, observed, counts)``, each [n_nonempty_bins] in rising order:
        the mean predicted probability, the share of target trials, and the number of trials
        of each bin. A well calibrated model has ``observed ≈ predicted``.
    """
    predicted = np.asarray(probabilities, dtype=np.float64)
    target = np.asarray(labels)
    if predicted.ndim != 1 or predicted.shape != target.shape:
        raise DataError(
            f"probabilities and labels must be 1-D of one length, got shapes {predicted.shape} "
            f"and {target.shape}"
        )
    if not np.all((predicted >= 0.0) & (predicted <= 1.0)):
        raise DataError("probabilities must be in [0, 1]")
    if not np.all((target == 0) | (target == 1)):
        raise DataError("labels must be 0 or 1")
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise DataError(f"n_bins must be a positive integer, got {n_bins!r}")
    which = np.minimum((predicted * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(which, minlength=n_bins)
    sums = np.bincount(which, weights=predicted, minlength=n_bins)
    hits = np.bincount(which, weights=target.astype(np.float64), minlength=n_bins)
    full = counts > 0
    return sums[full] / counts[full], hits[full] / counts[full], counts[full]
