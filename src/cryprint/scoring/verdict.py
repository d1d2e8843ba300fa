"""One trial's verdict at one operating point: decision and probability that cannot disagree.

A calibration (:class:`~cryprint.scoring.calibration.Calibration`) gives
``P(same | s) = sigmoid(a * s + b)`` at its fit prior ``π0``, the share of same-baby pairs
among the pairs it was fitted on. At another prior ``π`` only the prior odds change:

    logit P(same | s, π) = a * s + b + logit(π) − logit(π0)

So with ``a > 0`` each prior has one score where ``P = 0.5`` (:func:`threshold_for_prior`)
and each threshold one prior that puts ``P = 0.5`` there (:func:`prior_for_threshold`). An
:class:`OperatingPoint` holds the threshold together with that prior, and
``P = sigmoid(a * (score − threshold))``, the same number written from the threshold; hence
``P >= 0.5`` exactly when ``score >= threshold``.

Pure: numbers in, numbers (and sentences) out; no file I/O.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cryprint.errors import ConfigError, DataError, ModelError
from cryprint.scoring.calibration import Calibration, sigmoid

__all__ = [
    "DIFFERENT_BABIES",
    "INCONCLUSIVE",
    "SAME_BABY",
    "OperatingPoint",
    "Verdict",
    "format_fraction",
    "prior_for_threshold",
    "probability",
    "threshold_for_prior",
]

SAME_BABY = "same baby"
DIFFERENT_BABIES = "different babies"
INCONCLUSIVE = "inconclusive"
# The largest float below 0.5: what a "different babies" verdict reports when a · (score −
# threshold) is so close to 0 that the sigmoid rounds to 0.5 (rounding toward the decision).
_JUST_BELOW_HALF = float(np.nextafter(0.5, 0.0))


def _logit(prior: float) -> float:
    if isinstance(prior, bool) or not isinstance(prior, int | float | np.integer | np.floating):
        raise DataError(f"a prior must be a number, got {prior!r}")
    if not 0.0 < prior < 1.0:
        raise DataError(f"a prior must be in (0, 1), got {prior}")
    return math.log(prior) - math.log1p(-prior)


def _rising(calibration: Calibration) -> None:
    if calibration.a <= 0:
        raise ModelError(
            f"the calibration's slope a = {calibration.a:g} is not positive (higher scores do "
            "not mean 'same baby'), so no threshold matches a prior: re-run cryprint calibrate"
        )


def probability(score: ArrayLike, calibration: Calibration, prior: float) -> np.ndarray:
    """P(same baby | score) at ``prior``: ``sigmoid(a*s + b + logit(prior) − logit(π0))``.

    Args:
        score: cosine score(s), float of any shape.
        calibration: fitted at its prior ``π0 = calibration.prior``.
        prior: P(same baby) before the score is seen, in (0, 1).

    Returns:
        float64 of the shape of ``score``, in [0, 1]. At ``prior == calibration.prior`` it
        equals ``calibration.probability(score)``.
    """
    values = np.asarray(score, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise DataError("scores contain NaN or infinite values")
    shift = _logit(prior) - _logit(calibration.prior)
    return sigmoid(calibration.a * values + calibration.b + shift)


def threshold_for_prior(calibration: Calibration, prior: float) -> float:
    """The score where P(same baby) = 0.5 at ``prior``: ``(logit(π0) − logit(π) − b) / a``.

    Args:
        calibration: with ``a > 0``.
        prior: in (0, 1).

    Returns:
        The threshold (cosine-score units); a higher prior gives a lower threshold.

    Raises:
        ModelError: ``a <= 0``. DataError: a prior outside (0, 1).
    """
    _rising(calibration)
    offset = _logit(calibration.prior) - _logit(prior) - calibration.b
    return offset / calibration.a


def prior_for_threshold(calibration: Calibration, threshold: float) -> float:
    """The prior at which P(same baby | threshold) = 0.5 (inverse of
    :func:`threshold_for_prior`): ``sigmoid(logit(π0) − a * threshold − b)``.

    Args:
        calibration: with ``a > 0``.
        threshold: a finite score.

    Returns:
        The prior in [0, 1] (0 or 1 only where float rounding reaches them, for thresholds
        far outside the calibrated scores).

    Raises:
        ModelError: ``a <= 0``.
    """
    _rising(calibration)
    log_odds = _logit(calibration.prior) - calibration.a * threshold - calibration.b
    return float(sigmoid(log_odds))


def format_fraction(value: float) -> str:
    """``value`` (in [0, 1]) with 3 significant digits, trailing zeros kept (0.98 is "0.980",
    as 0.973 is "0.973"), more where 3 would show 0 or 1 for a value that is neither, or put
    it on the other side of 0.5 (0.4996 is not "0.500")."""
    for digits in range(3, 18):
        text = f"{value:#.{digits}g}".rstrip(".")
        shown = float(text)
        if shown == value or (0.0 < shown < 1.0 and (shown >= 0.5) == (value >= 0.5)):
            return text
    return repr(value)


@dataclass(frozen=True)
class Verdict:
    """The outcome of one trial at one operating point.

    Attributes:
        score: cosine similarity of A and B, in [-1, 1].
        threshold: the operating point's threshold; same baby when ``score >= threshold``.
        threshold_source: where the threshold came from.
        same_baby: the decision; None when it is inconclusive.
        probability: P(same baby) at ``prior``, None without a calibration. ``>= 0.5``
            exactly when ``score >= threshold``.
        prior: the prior behind ``probability`` (None without a calibration).
        prior_source: where the prior came from (given, or implied by the threshold).
        decision: ``"same baby"``, ``"different babies"`` or ``"inconclusive"``.
        inconclusive_band: ``q`` when probabilities in ``(q, 1 − q)`` are inconclusive.
    """

    score: float
    threshold: float
    threshold_source: str
    same_baby: bool | None
    probability: float | None
    prior: float | None = None
    prior_source: str | None = None
    decision: str = ""
    inconclusive_band: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready."""
        return asdict(self)

    def explain(self) -> list[str]:
        """Two lines for a person: the decision with its threshold and source, then the
        probability with its prior and source (or why there is none)."""
        side = ">=" if self.score >= self.threshold else "<"
        comparison = f"score {self.score:.4f} {side} threshold {self.threshold:.4f}"
        if self.decision == INCONCLUSIVE and self.probability is not None:
            band = self.inconclusive_band
            first = (
                f"{INCONCLUSIVE}: P(same baby) = {format_fraction(self.probability)} is "
                f"between {band:g} and {1 - band:g} ({comparison}; {self.threshold_source})"
            )
        else:
            first = f"{self.decision}: {comparison} ({self.threshold_source})"
        if self.probability is None or self.prior is None:
            second = "no probability: this model has no calibration (run cryprint calibrate)"
        else:
            second = (
                f"P(same baby) = {format_fraction(self.probability)} at a prior of "
                f"{format_fraction(self.prior)} ({self.prior_source})"
            )
        return [first, second]


@dataclass(frozen=True)
class OperatingPoint:
    """How a score becomes a verdict: same baby when ``score >= threshold``; with a
    calibration, P(same baby) at the prior for which ``threshold`` is the P = 0.5 point.

    Build it from a threshold (the prior is then implied: :func:`prior_for_threshold`) or with
    :meth:`at_prior`. A prior that does not match the threshold is refused, so the two can
    never disagree.

    Attributes:
        threshold: finite, in score units.
        source: where the threshold came from.
        calibration: None for a decision without probability.
        prior: the prior behind the probability; None without calibration, and implied by the
            threshold when not given.
        prior_source: where the prior came from.
        inconclusive: ``q`` in (0, 0.5): a probability in ``(q, 1 − q)`` gives the verdict
            "inconclusive"; needs a calibration.
    """

    threshold: float
    source: str
    calibration: Calibration | None = None
    prior: float | None = None
    prior_source: str | None = None
    inconclusive: float | None = None

    def __post_init__(self) -> None:
        threshold = self.threshold
        if isinstance(threshold, bool) or not isinstance(
            threshold, int | float | np.integer | np.floating
        ):
            raise ConfigError(f"threshold must be a number, got {threshold!r}")
        if not math.isfinite(threshold):
            raise ConfigError(f"threshold must be a finite number, got {threshold}")
        object.__setattr__(self, "threshold", float(threshold))
        if self.calibration is None:
            if self.prior is not None:
                raise ConfigError("a prior needs a calibration: run cryprint calibrate")
            if self.inconclusive is not None:
                raise ConfigError(
                    "an inconclusive band needs a probability, and this model has no "
                    "calibration: run cryprint calibrate"
                )
            return
        implied = prior_for_threshold(self.calibration, self.threshold)
        if self.prior is None:
            object.__setattr__(self, "prior", implied)
            if self.prior_source is None:
                object.__setattr__(self, "prior_source", _implied_source(self.calibration))
        elif not math.isclose(self.prior, implied, rel_tol=1e-9, abs_tol=1e-12):
            raise ConfigError(
                f"threshold {self.threshold:g} and prior {self.prior:g} disagree: with this "
                f"calibration that threshold is the P = 0.5 point at a prior of {implied:g}"
            )
        band = self.inconclusive
        if band is not None and (isinstance(band, bool) or not 0.0 < band < 0.5):
            raise ConfigError(f"the inconclusive band must be in (0, 0.5), got {band!r}")

    @classmethod
    def at_prior(
        cls,
        calibration: Calibration,
        prior: float,
        prior_source: str = "given",
        calibration_source: str = "the calibration",
        inconclusive: float | None = None,
    ) -> OperatingPoint:
        """The point whose threshold is where P(same baby) = 0.5 at ``prior`` (the Bayes
        decision for equal costs)."""
        if isinstance(prior, bool) or not isinstance(prior, int | float) or not 0 < prior < 1:
            raise ConfigError(f"the prior must be a number in (0, 1), got {prior!r}")
        threshold = threshold_for_prior(calibration, prior)
        source = f"the score where P(same baby) = 0.5 at this prior, from {calibration_source}"
        return cls(threshold, source, calibration, float(prior), prior_source, inconclusive)

    def decide(self, score: float) -> Verdict:
        """The verdict for one trial's cosine ``score``."""
        if isinstance(score, bool) or not math.isfinite(score):
            raise DataError(f"a score must be a finite number, got {score!r}")
        score = float(score)
        same_baby = score >= self.threshold
        decision = SAME_BABY if same_baby else DIFFERENT_BABIES
        chance = None
        if self.calibration is not None:
            # score − threshold is >= 0 exactly when score >= threshold, and the sigmoid is
            # >= 0.5 exactly for log-odds >= 0; only an underflow to 0.5 needs rounding down.
            chance = float(sigmoid(self.calibration.a * (score - self.threshold)))
            if not same_baby:
                chance = min(chance, _JUST_BELOW_HALF)
            band = self.inconclusive
            if band is not None and band < chance < 1.0 - band:
                decision = INCONCLUSIVE
        return Verdict(
            score=score,
            threshold=self.threshold,
            threshold_source=self.source,
            same_baby=None if decision == INCONCLUSIVE else same_baby,
            probability=chance,
            prior=self.prior,
            prior_source=self.prior_source,
            decision=decision,
            inconclusive_band=self.inconclusive,
        )


def _implied_source(calibration: Calibration) -> str:
    return (
        "the prior that puts P(same baby) = 0.5 at this threshold; "
        f"{format_fraction(calibration.prior)} of the calibration pairs were same-baby pairs"
    )
