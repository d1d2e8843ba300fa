"""Linear logistic regression by Newton's method: the one solver behind score calibration
(one score) and score fusion (one score per model).

A numpy Newton solver rather than scikit-learn's LogisticRegression: the gradient and the
(k+1)×(k+1) Hessian are exact, it converges in a few steps, scikit-learn is not a runtime
dependency, and its regularisation options keep changing (``penalty`` is deprecated in 1.8+).
Features are standardised for the fit, so the result does not depend on their scale.
"""

from __future__ import annotations

import math

import numpy as np

from cryprint.errors import DataError

# Ridge on the slopes of the standardised features. Small enough to leave the fit on
# overlapping scores unchanged (well below 1e-3 of a slope), but it keeps the slopes finite when
# target and non-target trials are perfectly separated, where the unpenalised maximum is at
# infinity.
SLOPE_RIDGE = 1e-6
_MAX_NEWTON_STEPS = 100


def fit_logistic(features: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    """Maximum-likelihood ``P(target | x) = sigmoid(weights @ x + bias)``.

    Args:
        features: float64 [n_trials, k], finite.
        target: bool or 0/1 [n_trials]; both classes present (callers validate the trials).

    Returns:
        ``(weights [k], bias)`` in the units of ``features``.

    Raises:
        DataError: a feature column has all values equal (no slope can be fitted), or the
            trials are all of one class.
    """
    center = features.mean(axis=0)
    spread = features.std(axis=0)
    # The range, not the std: the std of equal values can round to 2e-16 instead of 0.
    if np.any(np.ptp(features, axis=0) == 0):
        raise DataError("all scores of an input are equal: no slope can be fitted")
    if np.all(target) or not np.any(target):
        raise DataError("the trials are all of one class: both are needed for a fit")
    n, k = features.shape
    design = np.column_stack([(features - center) / spread, np.ones(n)])  # [n, k + 1]
    y = np.asarray(target, dtype=np.float64)
    ridge = np.append(np.full(k, SLOPE_RIDGE), 0.0)
    # Start at the intercept-only solution (slopes 0, offset = log-odds of the target share).
    share = y.mean()
    weights = np.append(np.zeros(k), math.log(share / (1.0 - share)))
    weights = _newton(design, y, ridge, weights)
    slopes, offset = weights[:k], weights[k]
    # Undo the standardisation: slopes @ ((x - center) / spread) + offset.
    return slopes / spread, float(offset - np.sum(slopes * center / spread))


def _newton(
    design: np.ndarray, y: np.ndarray, ridge: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    n = design.shape[0]

    def objective(w: np.ndarray) -> float:
        # Mean negative log-likelihood: log(1 + e^z) - y z, written stably.
        z = design @ w
        return float((np.logaddexp(0.0, z) - y * z).mean() + 0.5 * np.sum(ridge * w**2))

    loss = objective(weights)
    for _ in range(_MAX_NEWTON_STEPS):
        z = design @ weights
        p = np.exp(-np.logaddexp(0.0, -z))  # sigmoid without overflow
        gradient = design.T @ (p - y) / n + ridge * weights
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
    return weights
