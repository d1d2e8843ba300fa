"""Tests for cryprint.scoring.metrics: hand-built cases, naive loops, scikit-learn, SpeechBrain."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score, roc_curve

from cryprint.errors import DataError
from cryprint.scoring.metrics import (
    compute_auc,
    compute_eer,
    compute_min_dcf,
    det_points,
    error_rates,
    threshold_at_false_accept_rate,
    validate_trials,
)

SEEDS = [0, 1, 2, 3, 4]


def random_trials(seed: int, n: int = 300, tied: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping target/non-target scores; rounding to 1 decimal makes many ties."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.3
    labels[:2] = [True, False]  # both classes always present
    scores = rng.normal(size=n) + 1.2 * labels
    if tied:
        scores = np.round(scores, 1)
    return scores, labels.astype(int)


def naive_error_rates(scores, labels, thresholds):
    """O(n²): count each trial at each threshold, accept when score >= threshold."""
    targets = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    nontargets = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    frr, far = [], []
    for threshold in thresholds:
        frr.append(sum(s < threshold for s in targets) / len(targets))
        far.append(sum(s >= threshold for s in nontargets) / len(nontargets))
    return np.array(frr), np.array(far)


def naive_auc(scores, labels):
    """Every target/non-target pair: 1 if the target scores higher, 0.5 on a tie."""
    targets = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    nontargets = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    wins = sum(1.0 if t > n else 0.5 if t == n else 0.0 for t in targets for n in nontargets)
    return wins / (len(targets) * len(nontargets))


# --- hand-built cases -------------------------------------------------------------------------


def test_perfect_separation_gives_zero_eer_and_min_dcf():
    scores = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]
    labels = [0, 0, 0, 1, 1, 1]
    eer = compute_eer(scores, labels)
    assert eer.eer == 0.0
    # Accepting from the lowest target score up separates the classes exactly.
    assert eer.threshold == 0.7
    assert compute_min_dcf(scores, labels) == (0.0, 0.7)
    assert compute_auc(scores, labels) == 1.0


def test_inverted_scores_give_eer_one():
    scores = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]
    labels = [1, 1, 1, 0, 0, 0]
    assert compute_eer(scores, labels).eer == 1.0
    assert compute_auc(scores, labels) == 0.0
    # Nothing beats a trivial system: normalised minDCF is exactly 1.
    assert compute_min_dcf(scores, labels).min_dcf == pytest.approx(1.0)


def test_all_tied_scores_give_half():
    scores = [0.4] * 6
    labels = [1, 0, 1, 0, 0, 1]
    thresholds, frr, far = error_rates(scores, labels)
    # One tie group: only accept-all and reject-all exist.
    np.testing.assert_array_equal(thresholds, [0.4, np.inf])
    np.testing.assert_array_equal(frr, [0.0, 1.0])
    np.testing.assert_array_equal(far, [1.0, 0.0])
    assert compute_eer(scores, labels) == (0.5, 0.4)
    assert compute_auc(scores, labels) == 0.5
    assert compute_min_dcf(scores, labels, p_target=0.05) == (1.0, np.inf)


def test_error_rates_by_hand_with_a_tie():
    # Non-target 0.5 and target 0.5 tie: they are accepted or rejected together.
    thresholds, frr, far = error_rates([0.1, 0.5, 0.5, 0.9], [0, 0, 1, 1])
    np.testing.assert_array_equal(thresholds, [0.1, 0.5, 0.9, np.inf])
    np.testing.assert_array_equal(frr, [0.0, 0.0, 0.5, 1.0])
    np.testing.assert_array_equal(far, [1.0, 0.5, 0.0, 0.0])
    far_det, frr_det = det_points([0.1, 0.5, 0.5, 0.9], [0, 0, 1, 1])
    np.testing.assert_array_equal(far_det, far)
    np.testing.assert_array_equal(frr_det, frr)


def test_eer_exact_crossing_at_an_operating_point():
    # thresholds 1..6: frr 0,0,0,1/3,1/3,2/3 and far 1,2/3,1/3,1/3,0,0 -> equal at threshold 4.
    result = compute_eer([1, 2, 3, 4, 5, 6], [0, 0, 1, 0, 1, 1])
    assert result.eer == pytest.approx(1 / 3)
    assert result.threshold == 4.0


def test_eer_interpolates_between_bracketing_points():
    # At threshold 3: frr 0, far 1/3. At threshold 4: frr 1/2, far 1/3. The segment between
    # them crosses frr == far at 1/3; threshold 4 has the smaller |far - frr| (1/6 vs 1/3).
    result = compute_eer([1, 2, 3, 4, 5], [0, 0, 1, 0, 1])
    assert result.eer == pytest.approx(1 / 3)
    assert result.threshold == 4.0


def test_eer_interpolates_across_a_mixed_tie_group():
    # Threshold 2: (frr 0, far 1/2); threshold 3: (frr 1/2, far 0). Midpoint of the segment:
    # 1/4. Both points are 1/2 away from equal, so the lower threshold is reported.
    result = compute_eer([1, 2, 2, 3], [0, 1, 0, 1])
    assert result.eer == pytest.approx(0.25)
    assert result.threshold == 2.0


def test_min_dcf_by_hand():
    # Targets 3, 5; non-targets 1, 2, 4. Costs c_miss*frr*p + c_fa*far*(1-p) with p=0.25:
    # threshold 3: frr 0, far 1/3 -> 0.25; threshold 5: frr 1/2, far 0 -> 0.125;
    # reject all: 0.25. Normaliser min(0.25, 0.75) = 0.25 -> 0.5 at threshold 5.
    result = compute_min_dcf([1, 2, 3, 4, 5], [0, 0, 1, 0, 1], p_target=0.25)
    assert result.min_dcf == pytest.approx(0.5)
    assert result.threshold == 5.0
    # c_fa 3: threshold 3 costs 3*(1/3)*0.75 = 0.75, threshold 5 costs 0.125 -> same winner.
    # Normaliser min(0.25, 2.25) = 0.25.
    result = compute_min_dcf([1, 2, 3, 4, 5], [0, 0, 1, 0, 1], p_target=0.25, c_fa=3.0)
    assert result.min_dcf == pytest.approx(0.5)


def test_auc_by_hand_with_tie():
    # Pairs (target, non-target): (2,1) win, (2,2) half, (4,1) win, (4,2) win -> 3.5 / 4.
    assert compute_auc([1, 2, 2, 4], [0, 1, 0, 1]) == pytest.approx(0.875)


def test_input_order_does_not_matter():
    scores, labels = random_trials(7)
    order = np.random.default_rng(7).permutation(scores.shape[0])
    assert compute_eer(scores, labels) == compute_eer(scores[order], labels[order])
    assert compute_min_dcf(scores, labels) == compute_min_dcf(scores[order], labels[order])


# --- naive loops and scikit-learn -------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_error_rates_match_naive_loop(seed):
    scores, labels = random_trials(seed, n=120)
    thresholds, frr, far = error_rates(scores, labels)
    np.testing.assert_array_equal(thresholds, np.append(np.unique(scores), np.inf))
    naive_frr, naive_far = naive_error_rates(scores.tolist(), labels.tolist(), thresholds)
    np.testing.assert_allclose(frr, naive_frr, rtol=0, atol=1e-12)
    np.testing.assert_allclose(far, naive_far, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_auc_matches_naive_pairs_and_sklearn(seed):
    scores, labels = random_trials(seed, n=120)
    auc = compute_auc(scores, labels)
    assert auc == pytest.approx(naive_auc(scores.tolist(), labels.tolist()), abs=1e-12)
    assert auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("seed", SEEDS)
def test_curves_and_eer_match_sklearn_roc_curve(seed, tied):
    scores, labels = random_trials(seed, tied=tied)
    thresholds, frr, far = error_rates(scores, labels)
    fpr, tpr, sk_thresholds = roc_curve(labels, scores, drop_intermediate=False)
    # scikit-learn also accepts score >= threshold, but walks from reject-all downwards.
    np.testing.assert_array_equal(thresholds[::-1], sk_thresholds)
    np.testing.assert_allclose(far[::-1], fpr, rtol=0, atol=1e-12)
    np.testing.assert_allclose(frr[::-1], 1 - tpr, rtol=0, atol=1e-12)
    # Independent interpolated EER: fpr - fnr rises strictly along the ROC, so np.interp can
    # find where it is 0 and read fpr (== fnr) there.
    fnr = 1 - tpr
    expected_eer = np.interp(0.0, fpr - fnr, fpr)
    assert compute_eer(scores, labels).eer == pytest.approx(expected_eer, abs=1e-12)


def naive_threshold_at_false_accept_rate(scores, labels, rate):
    """Try every candidate (each score, then +inf) from the lowest; the first whose share of
    accepted non-targets (score >= candidate) is within the rate wins."""
    nontargets = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    targets = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    for candidate in [*sorted(set(scores)), float("inf")]:
        far = sum(s >= candidate for s in nontargets) / len(nontargets)
        if far <= rate:
            return candidate, far, sum(s < candidate for s in targets) / len(targets)
    raise AssertionError("+inf accepts nothing, so it is always within the rate")


@pytest.mark.parametrize("rate", [0.0, 0.01, 0.05, 0.2, 0.5, 1.0])
@pytest.mark.parametrize("seed", SEEDS)
def test_far_threshold_matches_naive_loop(seed, rate):
    scores, labels = random_trials(seed, n=150, tied=seed % 2 == 0)
    result = threshold_at_false_accept_rate(scores, labels, rate)
    expected = naive_threshold_at_false_accept_rate(scores.tolist(), labels.tolist(), rate)
    assert tuple(result) == pytest.approx(expected, abs=1e-12)
    assert result.far <= rate


def test_far_threshold_hand_built():
    # Non-targets 0.1, 0.2, 0.3, 0.6; targets 0.5, 0.7, 0.9.
    scores = [0.1, 0.2, 0.3, 0.6, 0.5, 0.7, 0.9]
    labels = [0, 0, 0, 0, 1, 1, 1]
    # At most 1 non-target of 4: from 0.5 up only the non-target 0.6 is accepted (and every
    # target); 0.3 would accept two.
    assert threshold_at_false_accept_rate(scores, labels, 0.25) == (0.5, 0.25, 0.0)
    # No non-target at all: the first score above the highest non-target.
    assert threshold_at_false_accept_rate(scores, labels, 0.0) == (0.7, 0.0, 1 / 3)
    # Everything allowed: accept everything.
    assert threshold_at_false_accept_rate(scores, labels, 1.0) == (0.1, 1.0, 0.0)
    # A non-target on top: only rejecting everything accepts none.
    result = threshold_at_false_accept_rate([0.1, 0.5, 0.9], [1, 1, 0], 0.0)
    assert result == (np.inf, 0.0, 1.0)


@pytest.mark.parametrize("rate", [-0.01, 1.5, np.nan, True])
def test_far_threshold_refuses_a_rate_outside_0_1(rate):
    with pytest.raises(DataError, match="rate must be a fraction"):
        threshold_at_false_accept_rate([0.1, 0.9], [0, 1], rate)


# --- SpeechBrain ------------------------------------------------------------------------------


def speechbrain_inputs(scores, labels):
    torch = pytest.importorskip("torch")
    metric_stats = pytest.importorskip("speechbrain.utils.metric_stats")
    # float64 so that torch sees exactly the same ties as numpy.
    positive = torch.tensor(scores[labels == 1], dtype=torch.float64)
    negative = torch.tensor(scores[labels == 0], dtype=torch.float64)
    return metric_stats, positive, negative


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("seed", SEEDS)
def test_eer_agrees_with_speechbrain_within_one_step(seed, tied):
    scores, labels = random_trials(seed, n=200, tied=tied)
    metric_stats, positive, negative = speechbrain_inputs(scores, labels)
    sb_eer, _ = metric_stats.EER(positive, negative)
    ours = compute_eer(scores, labels).eer
    # SpeechBrain picks the operating point with the smallest |far - frr| and returns
    # (far + frr) / 2 there; ours interpolates between the two points that bracket the
    # crossing. Both points lie on the segment, so the two differ by at most half of
    # |far - frr| at the chosen point, which is at most half of one step's
    # (targets in the tie group / n_target + non-targets in it / n_nontarget).
    n_target, n_nontarget = int(labels.sum()), int((1 - labels).sum())
    _, inverse = np.unique(scores, return_inverse=True)
    step = np.bincount(inverse, weights=labels) / n_target + (
        np.bincount(inverse, weights=1 - labels) / n_nontarget
    )
    tolerance = step.max() / 2 + 1e-6  # + float32 rounding of SpeechBrain's rates
    assert abs(ours - sb_eer) <= tolerance
    if not tied:
        assert tolerance < 0.02  # the bound is tight enough to mean something


@pytest.mark.parametrize(
    ("p_target", "c_miss", "c_fa"),
    [(0.01, 1.0, 1.0), (0.05, 1.0, 1.0), (0.3, 1.0, 1.0), (0.05, 10.0, 1.0), (0.5, 1.0, 2.0)],
)
@pytest.mark.parametrize("seed", SEEDS[:3])
def test_min_dcf_matches_speechbrain(seed, p_target, c_miss, c_fa):
    scores, labels = random_trials(seed, n=200)
    metric_stats, positive, negative = speechbrain_inputs(scores, labels)
    sb_cost, _ = metric_stats.minDCF(positive, negative, c_miss, c_fa, p_target)
    ours = compute_min_dcf(scores, labels, p_target=p_target, c_miss=c_miss, c_fa=c_fa)
    # SpeechBrain does not normalise, and it never evaluates "accept all"; with
    # c_miss * p_target <= c_fa * (1 - p_target) (true for every case here) reject-all is at
    # least as cheap as accept-all, so the minima coincide.
    normaliser = min(c_miss * p_target, c_fa * (1 - p_target))
    assert ours.min_dcf * normaliser == pytest.approx(sb_cost, abs=1e-6)


# --- properties -------------------------------------------------------------------------------


trial_sets = st.lists(
    st.tuples(st.integers(min_value=-20, max_value=20), st.booleans()), min_size=2, max_size=60
).filter(lambda trials: len({label for _, label in trials}) == 2)


@settings(max_examples=150, deadline=None)
@given(trials=trial_sets)
def test_eer_properties(trials):
    scores = np.array([score for score, _ in trials], dtype=np.float64)
    labels = np.array([label for _, label in trials], dtype=int)
    result = compute_eer(scores, labels)
    assert 0.0 <= result.eer <= 1.0
    assert np.isfinite(result.threshold)
    # A strictly increasing transform keeps the order and the ties, so nothing changes.
    transformed = compute_eer(np.arctan(scores / 7.0) * 3.0 + 1.0, labels)
    assert transformed.eer == pytest.approx(result.eer, abs=1e-12)
    # Calling the non-targets the targets and flipping the score direction is the same system.
    swapped = compute_eer(-scores, 1 - labels)
    assert swapped.eer == pytest.approx(result.eer, abs=1e-12)
    assert compute_auc(-scores, 1 - labels) == pytest.approx(compute_auc(scores, labels))
    dcf = compute_min_dcf(scores, labels)
    assert 0.0 <= dcf.min_dcf <= 1.0 + 1e-12


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        ([], [], "empty"),
        ([[0.1, 0.2]], [[0, 1]], "1-D"),
        ([0.1, 0.2, 0.3], [0, 1], "differ in length"),
        ([0.1, np.nan, 0.3], [0, 1, 1], "NaN or infinite"),
        ([0.1, np.inf, 0.3], [0, 1, 1], "NaN or infinite"),
        ([0.1, 0.2, 0.3], [0, 1, 2], "must be 0 or 1"),
        ([0.1, 0.2, 0.3], [1, 1, 1], "only one class"),
        ([0.1, 0.2, 0.3], [0, 0, 0], "only one class"),
        (["a", "b"], [0, 1], "numeric"),
        ([0.1, 0.2], ["0", "1"], "0/1 or bool"),
    ],
)
def test_invalid_trials_raise_data_error(scores, labels, message):
    with pytest.raises(DataError, match=message):
        validate_trials(scores, labels)
    with pytest.raises(DataError, match=message):
        compute_eer(scores, labels)


def test_bool_labels_accepted():
    assert compute_eer([0.1, 0.9], [False, True]).eer == 0.0


@pytest.mark.parametrize("p_target", [0.0, 1.0, -0.1])
def test_min_dcf_rejects_bad_prior(p_target):
    with pytest.raises(DataError, match="p_target"):
        compute_min_dcf([0.1, 0.9], [0, 1], p_target=p_target)
