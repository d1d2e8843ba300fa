"""Score fusion: several models' scores of the same trials combined into one log-likelihood
ratio-like score by linear logistic regression (as in BOSARIS/FoCal fusion).

``fused = weights @ scores + bias``: the log-odds that a trial is a target trial, at the share
of target trials of the trials the fusion was fitted on (``prior``). Fitted on labelled dev
trials only, then applied unchanged to test. Pure numpy, no file I/O (``fusion.json`` is read
and written by :mod:`cryprint.evaluation.fused`).
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

__all__ = ["Fusion", "fit_fusion", "stack_scores"]


@dataclass(frozen=True)
class Fusion:
    """``fused = sum_i weights[i] * scores[:, i] + bias``.

    Attributes:
        weights: one per input (model), in the order of the score columns.
        bias: the offset.
        prior: the share of target trials among the trials it was fitted on, in (0, 1).
    """

    weights: tuple[float, ...]
    bias: float
    prior: float

    def __post_init__(self) -> None:
        weights = tuple(self.weights) if isinstance(self.weights, list | tuple) else None
        if not weights:
            raise ModelError(f"fusion weights must be a non-empty list, got {self.weights!r}")
        values = [*weights, self.bias, self.prior]
        for value in values:
            if isinstance(value, bool) or not isinstance(
                value, int | float | np.integer | np.floating
            ):
                raise ModelError(f"fusion parameters must be numbers, got {value!r}")
            if not math.isfinite(value):
                raise ModelError(f"fusion parameters must be finite, got {value}")
        if not 0.0 < self.prior < 1.0:
            raise ModelError(f"fusion prior must be in (0, 1), got {self.prior}")
        object.__setattr__(self, "weights", tuple(float(w) for w in weights))
        object.__setattr__(self, "bias", float(self.bias))
        object.__setattr__(self, "prior", float(self.prior))

    def apply(self, scores: ArrayLike) -> np.ndarray:
        """Fused scores.

        Args:
            scores: float [n_trials, n_inputs], one column per fused model, finite.

        Returns:
            float64 [n_trials]: log-odds of a target trial at the fit prior.
        """
        values = np.asarray(scores, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(self.weights):
            raise DataError(
                f"fusion of {len(self.weights)} inputs needs scores of shape [n, "
                f"{len(self.weights)}], got {values.shape}"
            )
        if not np.all(np.isfinite(values)):
            raise DataError("scores to fuse contain NaN or infinite values")
        return values @ np.asarray(self.weights) + self.bias

    def to_dict(self) -> dict[str, Any]:
        """``{"weights": [...], "bias": ..., "prior": ...}``, JSON-ready."""
        return {"weights": list(self.weights), "bias": self.bias, "prior": self.prior}

    @classmethod
    def from_dict(cls, data: Any) -> Fusion:
        """Build from :meth:`to_dict` output; exactly the keys ``weights``, ``bias``, ``prior``.

        Raises:
            ModelError: not a dict, missing or unknown keys, or invalid values.
        """
        if not isinstance(data, dict) or set(data) != {"weights", "bias", "prior"}:
            keys = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ModelError(f"fusion must have exactly the keys bias, prior, weights; got {keys}")
        return cls(weights=data["weights"], bias=data["bias"], prior=data["prior"])


def stack_scores(columns: list[np.ndarray]) -> np.ndarray:
    """One column per model's scores of the same trials → float64 [n_trials, n_models]."""
    if not columns or len({len(column) for column in columns}) != 1:
        raise DataError("the scores to fuse must be one array per model, all of one length")
    return np.column_stack([np.asarray(column, dtype=np.float64) for column in columns])


def fit_fusion(scores: ArrayLike, labels: ArrayLike) -> Fusion:
    """Fit a :class:`Fusion` by maximum likelihood on labelled trials.

    Args:
        scores: float [n_trials, n_inputs], finite (:func:`stack_scores`).
        labels: 0/1 or bool [n_trials], 1 = target trial; both classes needed.

    Raises:
        DataError: invalid trials, or an input whose scores are all equal.
    """
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] == 0:
        raise DataError(f"scores to fuse must be [n_trials, n_inputs], got shape {values.shape}")
    for index, column in enumerate(values.T):
        column, target = validate_trials(column, labels)
        if column.std() == 0:
            raise DataError(f"all scores of input {index + 1} are equal: it cannot be fused")
    slopes, bias = fit_logistic(values, target)
    return Fusion(weights=tuple(slopes.tolist()), bias=bias, prior=float(target.mean()))
