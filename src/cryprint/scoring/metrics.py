"""Verification metrics from trial scores: FRR/FAR curves, EER, minDCF, AUC, DET points, the
threshold for a target false-acceptance rate.

Every function takes ``scores`` (float [n_trials], higher means "more likely the same baby")
and ``labels`` (int or bool [n_trials], 1 = target trial, i.e. same baby; 0 = non-target).
A trial is *accepted* at threshold ``t`` when ``score >= t``.

All curves come from one sort and two cumulative sums (O(n log n)), the way wespeaker's
``compute_pmiss_pfa_rbst`` does it. Tied scores form a single threshold step: a threshold
cannot separate trials with equal scores, so they are accepted or rejected together.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from cryprint.errors import DataError

__all__ = [
    "DCFResult",
    "EERResult",
    "FalseAcceptResult",
    "compute_auc",
    "compute_eer",
    "compute_min_dcf",
    "det_points",
    "error_rates",
    "threshold_at_false_accept_rate",
    "validate_trials",
]


class EERResult(NamedTuple):
    """Equal error rate (a fraction in [0, 1]) and the threshold closest to it."""

    eer: float
    threshold: float


class DCFResult(NamedTuple):
    """Normalised minimum detection cost and the threshold that reaches it."""

    min_dcf: float
    threshold: float


class FalseAcceptResult(NamedTuple):
    """The lowest threshold whose false acceptance rate is within a target, and the false
    acceptance and false rejection rates it reaches (fractions)."""

    threshold: float
    far: float
    frr: float


def validate_trials(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Check a set of trials and return it as arrays.

    Args:
        scores: float [n_trials], finite.
        labels: [n_trials], values in {0, 1} (or bool); both classes must be present.

    Returns:
        ``(scores, labels)`` as float64 [n_trials] and bool [n_trials] (True = target).

    Raises:
        DataError: not 1-D, lengths differ, empty, non-finite scores, labels outside {0, 1},
            or only one class present.
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.ndim != 1 or labels.ndim != 1:
        raise DataError(
            f"scores and labels must be 1-D arrays, got shapes {scores.shape} and {labels.shape}"
        )
    if scores.shape[0] != labels.shape[0]:
        raise DataError(
            f"scores and labels differ in length: {scores.shape[0]} scores, "
            f"{labels.shape[0]} labels"
        )
    if scores.shape[0] == 0:
        raise DataError("no trials: scores and labels are empty")
    if not (np.issubdtype(scores.dtype, np.number) or scores.dtype == bool):
        raise DataError(f"scores must be numeric, got dtype {scores.dtype}")
    scores = scores.astype(np.float64)
    n_bad = int(np.count_nonzero(~np.isfinite(scores)))
    if n_bad:
        raise DataError(f"{n_bad} of {scores.shape[0]} scores are NaN or infinite")
    if not (np.issubdtype(labels.dtype, np.number) or labels.dtype == bool):
        raise DataError(f"labels must be 0/1 or bool, got dtype {labels.dtype}")
    is_binary = (labels == 0) | (labels == 1)
    if not np.all(is_binary):
        bad = np.unique(labels[~is_binary])[:5]
        raise DataError(f"labels must be 0 or 1, found {bad.tolist()}")
    labels = labels.astype(bool)
    n_target = int(np.count_nonzero(labels))
    if n_target == 0 or n_target == labels.shape[0]:
        missing = "target (label 1)" if n_target == 0 else "non-target (label 0)"
        raise DataError(
            f"labels hold only one class: no {missing} trials among {labels.shape[0]}; "
            "error rates need both"
        )
    return scores, labels


def _score_groups(
    scores: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique scores (ascending) with the count of target and non-target trials at each."""
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    sorted_labels = labels[order]
    unique_scores, first_index = np.unique(sorted_scores, return_index=True)
    # Targets before each group's first index, and per group via differences.
    target_before = np.concatenate([[0], np.cumsum(sorted_labels)])[first_index]
    boundaries = np.append(first_index, sorted_scores.shape[0])
    group_size = np.diff(boundaries)
    target_count = np.diff(np.append(target_before, np.count_nonzero(sorted_labels)))
    return unique_scores, target_count, group_size - target_count


def error_rates(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False rejection and false acceptance rates at every distinct threshold.

    Args:
        scores: float [n_trials].
        labels: 0/1 or bool [n_trials], 1 = target trial.

    Returns:
        ``(thresholds, frr, far)``, each float64 [n_unique_scores + 1]. ``thresholds`` are the
        distinct scores in ascending order followed by ``+inf``; at ``thresholds[k]`` a trial is
        accepted when ``score >= thresholds[k]``. So the first point accepts everything
        (frr 0, far 1) and the last rejects everything (frr 1, far 0). ``frr`` is
        non-decreasing, ``far`` non-increasing.

    Example:
        >>> t, frr, far = error_rates([0.1, 0.5, 0.5, 0.9], [0, 0, 1, 1])
        >>> t.tolist(), frr.tolist(), far.tolist()
        ([0.1, 0.5, 0.9, inf], [0.0, 0.0, 0.5, 1.0], [1.0, 0.5, 0.0, 0.0])
    """
    scores, labels = validate_trials(scores, labels)
    unique_scores, target_count, nontarget_count = _score_groups(scores, labels)
    n_target = target_count.sum()
    n_nontarget = nontarget_count.sum()
    # Trials strictly below a threshold are rejected: prepend 0 so that index k counts the
    # groups below unique_scores[k]; the final entry (all groups) is the +inf threshold.
    target_rejected = np.concatenate([[0], np.cumsum(target_count)])
    nontarget_rejected = np.concatenate([[0], np.cumsum(nontarget_count)])
    frr = target_rejected / n_target
    far = (n_nontarget - nontarget_rejected) / n_nontarget
    thresholds = np.append(unique_scores, np.inf)
    return thresholds, frr, far


def compute_eer(scores: ArrayLike, labels: ArrayLike) -> EERResult:
    """Equal error rate: where the FRR and FAR curves cross.

    Definition: the operating points ``(frr, far)`` of :func:`error_rates` are joined by
    straight lines; the EER is where the line between the two consecutive points that bracket
    the crossing (``far - frr`` changes sign between them) meets ``frr == far``. When an
    operating point has ``frr == far`` exactly, that value is the EER.

    The interpolated point is not reachable by any single threshold (no score lies between the
    two bracketing points), so ``threshold`` is the threshold of whichever bracketing point has
    the smaller ``|far - frr|`` (the lower one on a tie); accept when ``score >= threshold``.
    It is always finite.

    Args:
        scores: float [n_trials].
        labels: 0/1 or bool [n_trials], 1 = target trial.

    Returns:
        ``EERResult(eer, threshold)``, with ``eer`` a fraction in [0, 1] (not a percentage).
        Perfectly separated scores give 0, perfectly inverted ones 1, all-equal scores 0.5.
    """
    thresholds, frr, far = error_rates(scores, labels)
    gap = far - frr
    # gap falls strictly (every step moves at least one trial) from +1 to -1, so the first
    # index where it is <= 0 is the unique crossing.
    upper = int(np.argmax(gap <= 0))
    if gap[upper] == 0:
        return EERResult(float(frr[upper]), float(thresholds[upper]))
    lower = upper - 1
    fraction = gap[lower] / (gap[lower] - gap[upper])
    eer = frr[lower] + fraction * (frr[upper] - frr[lower])
    closest = lower if abs(gap[lower]) <= abs(gap[upper]) else upper
    return EERResult(float(eer), float(thresholds[closest]))


def compute_min_dcf(
    scores: ArrayLike,
    labels: ArrayLike,
    p_target: float = 0.05,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> DCFResult:
    """Normalised minimum detection cost function (NIST SRE).

    ``DCF(t) = c_miss * frr(t) * p_target + c_fa * far(t) * (1 - p_target)``, minimised over
    every threshold of :func:`error_rates` (accept-all and reject-all included) and divided by
    ``min(c_miss * p_target, c_fa * (1 - p_target))``, the cost of the better trivial system.
    So 1.0 means "no better than always accepting or always rejecting".

    Note: SpeechBrain's ``speechbrain.utils.metric_stats.minDCF`` returns the *unnormalised*
    minimum; multiply ``min_dcf`` by the normaliser to compare.

    Args:
        scores: float [n_trials].
        labels: 0/1 or bool [n_trials], 1 = target trial.
        p_target: prior probability of a target trial, in (0, 1).
        c_miss: cost of a false rejection, > 0.
        c_fa: cost of a false acceptance, > 0.

    Returns:
        ``DCFResult(min_dcf, threshold)``; accept when ``score >= threshold``. The lowest such
        threshold is returned on ties; it is ``+inf`` when only rejecting everything is optimal.
    """
    if not 0.0 < p_target < 1.0:
        raise DataError(f"p_target must be in (0, 1), got {p_target}")
    if not (c_miss > 0 and c_fa > 0):
        raise DataError(f"c_miss and c_fa must be positive, got {c_miss} and {c_fa}")
    thresholds, frr, far = error_rates(scores, labels)
    cost = c_miss * frr * p_target + c_fa * far * (1.0 - p_target)
    best = int(np.argmin(cost))
    normaliser = min(c_miss * p_target, c_fa * (1.0 - p_target))
    return DCFResult(float(cost[best] / normaliser), float(thresholds[best]))


def compute_auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve: P(target score > non-target score), ties counting half.

    This is the Mann–Whitney U statistic divided by ``n_target * n_nontarget``, computed from
    the tied score groups (equal to the trapezoid area under the ROC curve).

    Args:
        scores: float [n_trials].
        labels: 0/1 or bool [n_trials], 1 = target trial.

    Returns:
        AUC in [0, 1]; 1 for perfect separation, 0.5 for all-equal scores.
    """
    scores, labels = validate_trials(scores, labels)
    _, target_count, nontarget_count = _score_groups(scores, labels)
    nontarget_below = np.concatenate([[0], np.cumsum(nontarget_count)[:-1]])
    wins = np.sum(target_count * (nontarget_below + 0.5 * nontarget_count))
    return float(wins / (target_count.sum() * nontarget_count.sum()))


def det_points(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Operating points for a DET curve (plot on probit axes, e.g. ``scipy.stats.norm.ppf``).

    Args:
        scores: float [n_trials].
        labels: 0/1 or bool [n_trials], 1 = target trial.

    Returns:
        ``(far, frr)``, float64 [n_unique_scores + 1] each, ordered by rising threshold
        (``far`` from 1 down to 0, ``frr`` from 0 up to 1), as in :func:`error_rates`.
        The end points contain exact 0 and 1, which are infinite on probit axes: clip before
        transforming.
    """
    _, frr, far = error_rates(scores, labels)
    return far, frr


def threshold_at_false_accept_rate(
    scores: ArrayLike, labels: ArrayLike, rate: float
) -> FalseAcceptResult:
    """The lowest threshold that accepts at most ``rate`` of the non-target trials.

    Among the thresholds of :func:`error_rates` (the distinct scores, then ``+inf``), the
    lowest one with ``far <= rate``, accepting when ``score >= threshold``. The lowest one
    because it rejects the fewest targets. Tied scores are accepted together, so the reached
    ``far`` may be well below ``rate`` on few trials.

    Args:
        scores: float [n_trials].
        labels: 0/1 or bool [n_trials], 1 = target trial.
        rate: the largest acceptable false acceptance rate, a fraction in [0, 1].

    Returns:
        ``FalseAcceptResult(threshold, far, frr)``. ``threshold`` is ``+inf`` (reject every
        trial) when every finite threshold accepts too many non-targets, e.g. when a
        non-target has the highest score and ``rate`` is below ``1 / n_nontarget``.

    Example:
        >>> threshold_at_false_accept_rate([0.1, 0.5, 0.7, 0.9], [0, 0, 1, 1], 0.5)
        FalseAcceptResult(threshold=0.5, far=0.5, frr=0.0)
    """
    if isinstance(rate, bool) or not 0.0 <= rate <= 1.0:
        raise DataError(f"rate must be a fraction in [0, 1], got {rate!r}")
    thresholds, frr, far = error_rates(scores, labels)
    # far falls from 1 to 0 with the threshold, so the first index within the rate is lowest.
    first = int(np.argmax(far <= rate))
    return FalseAcceptResult(float(thresholds[first]), float(far[first]), float(frr[first]))
