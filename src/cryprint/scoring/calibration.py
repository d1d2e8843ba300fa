"""Score calibration: map a raw verification score to P(same baby) with a logistic model.

``p = sigmoid(a * score + b)``, fitted by maximum likelihood on labelled trials. The
probability is a posterior under the calibration trials' own share of target trials, the fit
prior ``prior`` (``b`` absorbs it); :mod:`cryprint.scoring.verdict` moves it to another prior.
Pure numpy, no file I/O: ``calibration.json`` is read and written by
:mod:`cryprint.evaluation.calibrate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cryprint.errors import DataError, ModelError
from cryprint.scoring.metrics import validate_trials

__all__ = ["Calibration", "fit_calibration", "reliability_bins", "sigmoid"]

# Ridge on the slope of the standardised score. Small enough to leave the fit on overlapping
# scores unchanged (well below 1e-3 of the slope), but it keeps the slope finite when target
# and non-target scores are perfectly separated, where the unpenalised maximum is at infinity.
_SLOPE_RIDGE = 1e-6
_MAX_NEWTON_STEPS = 100


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

    A two-parameter Newton solver in numpy rather than scikit-learn's LogisticRegression:
    the gradient and 2×2 Hessian are exact, it converges in a few steps, and it does not
    depend on scikit-learn's changing regularisation options (``penalty`` is deprecated in
    1.8+). Scores are standardised for the fit, so the result does not depend on their scale.
    A 1e-6 ridge on the standardised slope keeps perfectly separated scores finite.

    Args:
        scores: float [n_trials], finite.
        labels: 0/1 or bool [n_trials], 1 = target trial; both classes needed.

    Returns:
        The fitted :class:`Calibration`; its ``prior`` is the share of target trials.

    Raises:
        DataError: invalid trials (see :func:`~cryprint.scoring.metrics.validate_trials`),
            or all scores equal (no slope can be fitted).
    """
    scores, labels = validate_trials(scores, labels)
    center = scores.mean()
    spread = scores.std()
    if spread == 0:
        raise DataError("all calibration scores are equal: no slope can be fitted")
    standard = (scores - center) / spread
    target = labels.astype(np.float64)
    n = scores.shape[0]
    design = np.column_stack([standard, np.ones(n)])  # [n, 2]: slope, offset
    ridge = np.array([_SLOPE_RIDGE, 0.0])

    def objective(weights: np.ndarray) -> float:
        # Mean negative log-likelihood: log(1 + e^z) - y z, written stably.
        z = design @ weights
        nll = np.logaddexp(0.0, z) - target * z
        return float(nll.mean() + 0.5 * np.sum(ridge * weights**2))

    # Start at the intercept-only solution (slope 0, offset = log-odds of the target share).
    share = target.mean()
    weights = np.array([0.0, math.log(share / (1.0 - share))])
    loss = objective(weights)
    for _ in range(_MAX_NEWTON_STEPS):
        p = sigmoid(design @ weights)
        gradient = design.T @ (p - target) / n + ridge * weights
        hessian = (design.T * (p * (1.0 - p))) @ design / n + np.diag(ridge)
        # On separated scores p * (1 - p) underflows to 0 and only the ridge keeps the Hessian
        # from being singular; lstsq still gives a usable step if it becomes singular anyway.
        step = np.linalg.lstsq(hessian, gradient, rcond=None)[0]
        # Backtracking: a full Newton step can overshoot far from the optimum (separated data).
        scale = 1.0
        while scale > 1e-10:
            candidate = weights - scale * step
            candidate_loss = objective(candidate)
            if candidate_loss <= loss:
                break
            scale *= 0.5
        else:
            break
        weights, previous_loss, loss = candidate, loss, candidate_loss
        if previous_loss - loss < 1e-15 and np.max(np.abs(scale * step)) < 1e-10:
            break
    slope, offset = weights
    # Undo the standardisation: a * s + b == slope * (s - center) / spread + offset.
    return Calibration(a=slope / spread, b=offset - slope * center / spread, prior=share)


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
