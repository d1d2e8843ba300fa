"""Score calibration: map a raw verification score to P(same baby) with a logistic model.

``p = sigmoid(a * score + b)``, fitted by maximum likelihood on labelled trials. The
probability is a posterior under the calibration trials' own proportion of target trials
(``b`` absorbs that prior): calibrate on trials whose target share matches the use case.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cryprint.errors import DataError, ModelError, OutputError
from cryprint.scoring.metrics import validate_trials

__all__ = ["Calibration", "fit_calibration", "load_calibration", "save_calibration"]

# Ridge on the slope of the standardised score. Small enough to leave the fit on overlapping
# scores unchanged (well below 1e-3 of the slope), but it keeps the slope finite when target
# and non-target scores are perfectly separated, where the unpenalised maximum is at infinity.
_SLOPE_RIDGE = 1e-6
_MAX_NEWTON_STEPS = 100


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # exp of a negative argument only, so no overflow warnings for large |z|.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@dataclass(frozen=True)
class Calibration:
    """Logistic calibration ``P(same baby | score) = sigmoid(a * score + b)``.

    Attributes:
        a: slope (positive when higher scores mean "same baby").
        b: offset.
    """

    a: float
    b: float

    def __post_init__(self) -> None:
        for name in ("a", "b"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(
                value, int | float | np.integer | np.floating
            ):
                raise ModelError(f"calibration {name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ModelError(f"calibration {name} must be finite, got {value}")
            object.__setattr__(self, name, float(value))

    def probability(self, scores: ArrayLike) -> np.ndarray:
        """Probability that each trial is a target trial.

        Args:
            scores: float [n_trials] (any shape works; it is kept).

        Returns:
            float64 array of the same shape, values in [0, 1].
        """
        values = np.asarray(scores, dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise DataError("scores to calibrate contain NaN or infinite values")
        return _sigmoid(self.a * values + self.b)

    def to_dict(self) -> dict[str, float]:
        """``{"a": ..., "b": ...}``, JSON-ready."""
        return {"a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, data: Any) -> Calibration:
        """Build from :meth:`to_dict` output; exactly the keys ``a`` and ``b``.

        Raises:
            ModelError: not a dict, missing or unknown keys, or non-finite values.
        """
        if not isinstance(data, dict):
            raise ModelError(f"calibration must be a JSON object, got {type(data).__name__}")
        keys = set(data)
        if keys != {"a", "b"}:
            raise ModelError(
                f"calibration must have exactly the keys ['a', 'b'], got {sorted(keys)}"
            )
        return cls(a=data["a"], b=data["b"])


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
        The fitted :class:`Calibration`.

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
        p = _sigmoid(design @ weights)
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
    return Calibration(a=slope / spread, b=offset - slope * center / spread)


def save_calibration(path: str | os.PathLike[str], calibration: Calibration) -> None:
    """Write a calibration as JSON, atomically (a temp file in the same folder, then rename).

    Args:
        path: destination ``.json`` file; its folder must exist.
        calibration: what to write.

    Raises:
        OutputError: the file could not be written.
    """
    destination = Path(path)
    text = json.dumps(calibration.to_dict(), indent=2) + "\n"
    temp_name = None
    try:
        # Same folder as the destination so that os.replace is a rename, not a copy: readers
        # see either the old file or the complete new one.
        with tempfile.NamedTemporaryFile(
            "w",
            encoding="utf-8",
            dir=destination.parent,
            prefix=f".{destination.name}.",
            suffix=".tmp",
            delete=False,
        ) as handle:
            temp_name = handle.name
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, destination)
    except OSError as error:
        if temp_name is not None and os.path.exists(temp_name):
            os.unlink(temp_name)
        raise OutputError(f"could not write calibration to {destination}: {error}") from error


def load_calibration(path: str | os.PathLike[str]) -> Calibration:
    """Read a calibration written by :func:`save_calibration`.

    Args:
        path: the ``.json`` file.

    Returns:
        The :class:`Calibration`.

    Raises:
        ModelError: the file is missing, unreadable, not JSON, or not a calibration; the
            message names the file.
    """
    source = Path(path)
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except OSError as error:
        raise ModelError(f"could not read calibration file {source}: {error}") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelError(f"calibration file {source} is not valid JSON: {error}") from error
    try:
        return Calibration.from_dict(data)
    except ModelError as error:
        raise ModelError(f"calibration file {source} is invalid: {error}") from error
