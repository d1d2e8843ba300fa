"""Whose cry is this? Probabilities over a ward's enrolled babies and "none of these".

A cry is scored against each of the N enrolled babies. The calibration turns each score into a
likelihood ratio ``LR_i = p(s_i | baby i crying) / p(s_i | another baby)``
(:meth:`~cryprint.scoring.calibration.Calibration.log_likelihood_ratio`). With a prior ``π``
that the crying baby is enrolled at all, spread over the babies as ``π · w_i``, and ``1 − π``
that it is none of them (open set), Bayes' rule over the N + 1 hypotheses gives

    P(baby i | cry) = π w_i LR_i / ((1 − π) + Σ_j π w_j LR_j),
    P(none | cry)   = (1 − π)     / ((1 − π) + Σ_j π w_j LR_j),

which sum to one. (Each score is taken to depend on its own baby only — the usual assumption of
open-set speaker identification with calibrated scores.)

:func:`decide` states one rule over those probabilities (:class:`WardRule`);
:func:`stranger_threshold` is the score rule for a user who wants a threshold: the score a
stranger's best match reaches at most a chosen share of the time, for this gallery's size.
Pure numpy, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import logsumexp, ndtri

from cryprint.errors import FIELD, ConfigError, DataError
from cryprint.scoring.verdict import format_fraction

__all__ = [
    "DEFAULT_ENROLLED_PRIOR",
    "DEFAULT_MAX_FALSE_ALARM",
    "DEFAULT_MIN_PROBABILITY",
    "DEFAULT_REVIEW_LEVEL",
    "NAMED",
    "NONE_OF_THESE",
    "REVIEW",
    "UNCERTAIN",
    "StrangerThreshold",
    "WardAnswer",
    "WardRule",
    "decide",
    "decide_at_threshold",
    "stranger_threshold",
    "ward_probabilities",
]

# A cry on a ward usually comes from a baby of the ward: the default prior that it is enrolled.
DEFAULT_ENROLLED_PRIOR = 0.9
# A baby is named only at this probability or more (a nurse acts on the name).
DEFAULT_MIN_PROBABILITY = 0.8
# Two babies this likely or more: a close call, for a person to review.
DEFAULT_REVIEW_LEVEL = 0.2
# Without a calibration, a gallery's threshold lets a stranger be named at most this often.
DEFAULT_MAX_FALSE_ALARM = 0.05

NAMED = "named"
NONE_OF_THESE = "none of these"
UNCERTAIN = "uncertain"
REVIEW = "review"
# Below this many dev different-baby scores beyond the threshold, the empirical tail is too
# thin to trust (its share is off by 1/sqrt(count): 14 % here) and a normal fit to those
# scores sets the threshold instead.
_MIN_TAIL_SCORES = 50
# Fewer dev different-baby scores than this pin down not even a normal fit.
_MIN_SCORES = 10


def _probability(value: float, name: str, low_open: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ConfigError(f"{{{name}}} must be a number, got {value!r}", fields={name: FIELD})
    if not math.isfinite(value) or not (0.0 < value <= 1.0 if low_open else 0.0 <= value <= 1.0):
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise ConfigError(f"{{{name}}} must be in {interval}, got {value}", fields={name: FIELD})
    return float(value)


def ward_probabilities(
    log_likelihood_ratios: ArrayLike,
    enrolled_prior: float = DEFAULT_ENROLLED_PRIOR,
    baby_priors: ArrayLike | None = None,
) -> tuple[np.ndarray, float]:
    """P(baby i | cry) for every enrolled baby and P(none of these | cry) (module docstring).

    Args:
        log_likelihood_ratios: float [n_babies], natural log of each baby's LR.
        enrolled_prior: π, P(the crying baby is enrolled), in (0, 1]; 1 = closed set.
        baby_priors: float [n_babies] >= 0, how π is spread (normalised here); None: evenly.

    Returns:
        (float64 [n_babies], float): the babies' probabilities and P(none); they sum to 1.

    Raises:
        ConfigError: a prior out of range. DataError: no babies, non-finite LRs, or baby priors
            of the wrong length or all zero.
    """
    llr = np.asarray(log_likelihood_ratios, dtype=np.float64)
    if llr.ndim != 1 or len(llr) == 0:
        raise DataError(f"need one log likelihood ratio per enrolled baby, got shape {llr.shape}")
    if not np.all(np.isfinite(llr)):
        raise DataError("log likelihood ratios must be finite")
    prior = _probability(enrolled_prior, "enrolled_prior")
    if baby_priors is None:
        weights = np.full(len(llr), 1.0 / len(llr))
    else:
        weights = np.asarray(baby_priors, dtype=np.float64)
        if weights.shape != llr.shape or not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise DataError(f"baby priors must be {len(llr)} finite numbers >= 0")
        if weights.sum() <= 0:
            raise DataError("baby priors are all zero")
        weights = weights / weights.sum()
    with np.errstate(divide="ignore"):  # a baby with prior 0 gets log 0 = -inf: P = 0
        log_babies = math.log(prior) + np.log(weights) + llr
    log_none = math.log1p(-prior) if prior < 1.0 else -math.inf
    total = logsumexp(np.append(log_babies, log_none))
    return np.exp(log_babies - total), float(math.exp(log_none - total))


@dataclass(frozen=True)
class WardRule:
    """The decision over a ward's probabilities, stated in full.

    min_probability: a baby is named only when its P reaches this. review_level: when two or
    more babies each reach ``min(review_level, min_probability)`` the answer is "review: more
    than one baby is likely", never a name.
    """

    min_probability: float = DEFAULT_MIN_PROBABILITY
    review_level: float = DEFAULT_REVIEW_LEVEL

    def __post_init__(self) -> None:
        _probability(self.min_probability, "min_probability")
        _probability(self.review_level, "review_level")

    def describe(self) -> str:
        return (
            f"a baby is named at P >= {self.min_probability:g}; two babies at P >= "
            f"{min(self.review_level, self.min_probability):g} are a close call to review; "
            "else none of these when that is most probable, else uncertain"
        )


@dataclass(frozen=True)
class WardAnswer:
    """The answer to "whose cry is this?": ``kind`` is :data:`NAMED` (``baby``, with its
    ``probability``), :data:`NONE_OF_THESE` (``probability`` = P(none)), :data:`REVIEW` or
    :data:`UNCERTAIN` (``leading``: the babies worth a look, with their probabilities;
    ``probability``: the leader's)."""

    kind: str
    baby: str | None
    probability: float | None
    leading: tuple[tuple[str, float | None], ...]

    def words(self) -> str:
        """The answer as a nurse reads it first (probabilities as in the table below it: 3
        significant digits, when known)."""
        chance = "" if self.probability is None else f", P = {format_fraction(self.probability)}"
        if self.kind == NAMED:
            return f"most likely {self.baby}{chance}"
        if self.kind == NONE_OF_THESE:
            return f"none of these babies{chance}"
        listed = ", ".join(
            baby if p is None else f"{baby} {format_fraction(p)}" for baby, p in self.leading
        )
        if self.kind == REVIEW:
            return f"review: more than one baby is likely: {listed}"
        return f"uncertain: {listed}"

    def to_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["leading"] = [{"baby_id": baby, "probability": p} for baby, p in self.leading]
        result["answer"] = self.words()
        return result


def decide(
    baby_ids: list[str], p_babies: ArrayLike, p_none: float, rule: WardRule | None = None
) -> WardAnswer:
    """The rule's answer (:class:`WardRule`, checked in this order): two or more babies at
    ``min(review_level, min_probability)`` → review; the leader at ``min_probability`` →
    named; P(none) at least every baby's → none of these; else uncertain. Ties between babies
    go to the lower baby id.

    Args:
        baby_ids: [n_babies]. p_babies: float [n_babies]. p_none: P(none of these).
    """
    rule = rule or WardRule()
    p = np.asarray(p_babies, dtype=np.float64)
    if p.shape != (len(baby_ids),) or len(baby_ids) == 0:
        raise DataError(f"{len(baby_ids)} babies but probabilities of shape {p.shape}")
    order = np.lexsort((np.asarray(baby_ids, dtype=str), -p))
    leader = int(order[0])
    close = [int(i) for i in order if p[i] >= min(rule.review_level, rule.min_probability)]
    if len(close) >= 2:
        leading = tuple((baby_ids[i], float(p[i])) for i in close)
        return WardAnswer(REVIEW, None, float(p[leader]), leading)
    if p[leader] >= rule.min_probability:
        return WardAnswer(
            NAMED, baby_ids[leader], float(p[leader]), ((baby_ids[leader], float(p[leader])),)
        )
    if p_none >= p[leader]:
        return WardAnswer(NONE_OF_THESE, None, float(p_none), ())
    # Worth a look: the babies that together with the leader hold most of what is not "none".
    leading = tuple((baby_ids[i], float(p[i])) for i in order[:3] if p[i] >= p[leader] / 4)
    return WardAnswer(UNCERTAIN, None, float(p[leader]), leading)


def decide_at_threshold(
    baby_ids: list[str],
    scores: ArrayLike,
    threshold: float,
    p_babies: ArrayLike | None = None,
    p_none: float | None = None,
) -> WardAnswer:
    """The answer of a score threshold: the one baby whose score reaches it is named; two or
    more reaching it are a close call to review; none reaching it: none of these. With the
    probabilities, the answer carries them (they do not decide).

    Args:
        baby_ids: [n_babies]. scores: float [n_babies]. threshold: a finite score.
        p_babies: float [n_babies] and p_none: the ward's probabilities, or None.
    """
    if isinstance(threshold, bool) or not math.isfinite(threshold):
        raise ConfigError(
            f"{{threshold}} must be a finite number, got {threshold}", fields={"threshold": FIELD}
        )
    values = np.asarray(scores, dtype=np.float64)
    if values.shape != (len(baby_ids),) or len(baby_ids) == 0:
        raise DataError(f"{len(baby_ids)} babies but scores of shape {values.shape}")
    chances = None if p_babies is None else np.asarray(p_babies, dtype=np.float64)
    order = np.lexsort((np.asarray(baby_ids, dtype=str), -values))
    passing = [int(i) for i in order if values[i] >= threshold]

    def chance(i: int) -> float | None:
        return None if chances is None else float(chances[i])

    if len(passing) >= 2:
        leading = tuple((baby_ids[i], chance(i)) for i in passing)
        return WardAnswer(REVIEW, None, chance(passing[0]), leading)
    if passing:
        i = passing[0]
        return WardAnswer(NAMED, baby_ids[i], chance(i), ((baby_ids[i], chance(i)),))
    return WardAnswer(NONE_OF_THESE, None, p_none, ())


def _tail_normal(sorted_scores: np.ndarray, per_pair: float) -> float:
    """The upper ``per_pair`` quantile of the normal through the scores' own upper tail: the
    points with 50 and 10 scores beyond them. Different-baby cosines are bounded, with tails
    lighter than a normal fitted to all of them (measured on the demo model: that fit put the
    1-in-1,000 point 1.6 AS-norm units too high; this one 0.2)."""
    n = len(sorted_scores)
    shares = np.array([_MIN_TAIL_SCORES, _MIN_SCORES]) / n
    anchors = np.quantile(sorted_scores, 1.0 - shares)
    z = -ndtri(shares)
    spread = (anchors[1] - anchors[0]) / (z[1] - z[0])
    return float(anchors[0] + spread * (-ndtri(per_pair) - z[0]))


@dataclass(frozen=True)
class StrangerThreshold:
    """A score threshold for a gallery of ``n_babies``: a cry of a baby who is not enrolled has
    its best match reach it at most ``max_false_alarm`` of the time. ``per_pair``: the share of
    single different-baby scores at or above it; ``method``: how it was read from the dev
    different-baby scores (``empirical`` quantile, or ``normal fit`` of a thin tail)."""

    threshold: float
    max_false_alarm: float
    n_babies: int
    per_pair: float
    method: str
    n_scores: int

    def describe(self) -> str:
        return (
            f"threshold {self.threshold:.4f}: a baby not enrolled is named at most "
            f"{100 * self.max_false_alarm:g} % of the time among {self.n_babies} babies "
            f"({self.method} of {self.n_scores} dev different-baby scores)"
        )


def stranger_threshold(
    nontarget_scores: ArrayLike, n_babies: int, max_false_alarm: float
) -> StrangerThreshold:
    """The score a stranger's best match among ``n_babies`` reaches with probability at most
    ``max_false_alarm`` (F): with each of the N scores exceeding ``t`` with probability
    ``q(t)``, independently, P(best >= t) = 1 − (1 − q)^N, so ``q = 1 − (1 − F)^(1/N)`` and
    ``t`` is the dev different-baby scores' upper ``q`` quantile — read from the scores (at most
    a share ``q`` of them reach it) when at least 50 of them lie beyond it, else from a normal
    through their upper tail (100 scores or more), else from a normal fit to them all.

    Raises:
        ConfigError: F outside (0, 1), or fewer than one baby. DataError: fewer than 10 finite
            different-baby scores.
    """
    rate = _probability(max_false_alarm, "max_false_alarm")
    if rate >= 1.0:
        raise ConfigError("{max_false_alarm} must be below 1", fields={"max_false_alarm": FIELD})
    if isinstance(n_babies, bool) or not isinstance(n_babies, int | np.integer) or n_babies < 1:
        raise ConfigError(f"a gallery needs at least one baby, got {n_babies!r}")
    scores = np.sort(np.asarray(nontarget_scores, dtype=np.float64))
    if scores.ndim != 1 or len(scores) < _MIN_SCORES or not np.all(np.isfinite(scores)):
        raise DataError(f"need at least {_MIN_SCORES} finite dev different-baby scores")
    per_pair = -math.expm1(math.log1p(-rate) / n_babies)  # 1 − (1 − F)^(1/N), accurately
    allowed = math.floor(per_pair * len(scores))  # dev scores that may reach the threshold
    if allowed >= _MIN_TAIL_SCORES:
        # Just above the highest score that must stay below: at most ``allowed`` reach it.
        threshold = float(np.nextafter(scores[len(scores) - allowed - 1], np.inf))
        method = "empirical quantile"
    elif len(scores) >= 2 * _MIN_TAIL_SCORES:
        threshold, method = _tail_normal(scores, per_pair), "normal fit of the upper tail"
    else:
        # The normal's upper per_pair quantile: mean + std * z, z = -ndtri(per_pair).
        threshold = float(scores.mean() - scores.std(ddof=1) * ndtri(per_pair))
        method = "normal fit"
    return StrangerThreshold(threshold, rate, int(n_babies), per_pair, method, len(scores))
