"""Tests for cryprint.scoring.calibration: logistic fit, fit prior, probabilities, reliability
bins. (calibration.json files: tests/evaluation/test_calibrate.py.)"""

import re

import numpy as np
import pytest
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from cryprint.errors import DataError, ModelError
from cryprint.scoring.calibration import Calibration, fit_calibration, reliability_bins, sigmoid


def logistic_trials(seed: int, a: float, b: float, n: int = 20_000):
    """Scores from a wide normal, labels drawn from the logistic model itself."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(0.3, 1.5, size=n)
    labels = rng.random(n) < 1.0 / (1.0 + np.exp(-(a * scores + b)))
    return scores, labels.astype(int)


@pytest.mark.parametrize(("seed", "a", "b"), [(0, 2.5, -1.0), (1, 0.8, 1.5)])
def test_recovers_known_logistic_model(seed, a, b):
    scores, labels = logistic_trials(seed, a, b)
    calibration = fit_calibration(scores, labels)
    # 20 000 trials: standard errors are a few hundredths; 0.15 leaves room without being vague.
    assert calibration.a == pytest.approx(a, abs=0.15)
    assert calibration.b == pytest.approx(b, abs=0.15)


def test_matches_nearly_unregularised_sklearn():
    scores, labels = logistic_trials(2, a=1.7, b=-0.4, n=3000)
    calibration = fit_calibration(scores, labels)
    reference = LogisticRegression(C=1e10, tol=1e-10, max_iter=1000).fit(scores[:, None], labels)
    assert calibration.a == pytest.approx(reference.coef_[0, 0], abs=1e-4)
    assert calibration.b == pytest.approx(reference.intercept_[0], abs=1e-4)


def test_fit_does_not_depend_on_score_units():
    scores, labels = logistic_trials(3, a=1.2, b=0.2, n=3000)
    calibration = fit_calibration(scores, labels)
    scaled = fit_calibration(100.0 * scores - 40.0, labels)
    np.testing.assert_allclose(
        scaled.probability(100.0 * scores - 40.0), calibration.probability(scores), atol=1e-8
    )


def test_probability_is_monotone_and_bounded():
    scores, labels = logistic_trials(4, a=2.0, b=0.5, n=2000)
    calibration = fit_calibration(scores, labels)
    grid = np.linspace(-3, 3, 201)
    probability = calibration.probability(grid)
    assert np.all(np.diff(probability) > 0)
    assert np.all((probability > 0) & (probability < 1))
    # Extreme scores saturate instead of overflowing.
    np.testing.assert_array_equal(calibration.probability([-1e6, 1e6]), [0.0, 1.0])
    assert calibration.probability(np.zeros((2, 3))).shape == (2, 3)


def test_probability_by_hand():
    calibration = Calibration(a=2.0, b=-1.0, prior=0.3)
    # sigmoid(2 * 0.5 - 1) = sigmoid(0) = 0.5; sigmoid(2 * 1 - 1) = 1 / (1 + e^-1).
    np.testing.assert_allclose(calibration.probability([0.5, 1.0]), [0.5, 1 / (1 + np.exp(-1))])


def test_separated_scores_give_a_finite_steep_fit():
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    labels = np.array([0, 0, 0, 1, 1, 1])
    calibration = fit_calibration(scores, labels)
    assert np.isfinite(calibration.a) and calibration.a > 0
    probability = calibration.probability(scores)
    assert np.all(probability[labels == 1] > 0.99)
    assert np.all(probability[labels == 0] < 0.01)
    # The 50 % point falls in the gap between the classes.
    assert 0.3 < -calibration.b / calibration.a < 0.6


def test_one_class_labels_are_an_error():
    with pytest.raises(DataError, match="only one class"):
        fit_calibration([0.1, 0.5, 0.9], [1, 1, 1])


def test_equal_scores_are_an_error():
    with pytest.raises(DataError, match="all calibration scores are equal"):
        fit_calibration([0.5, 0.5, 0.5], [0, 1, 1])


def test_nan_scores_are_an_error():
    with pytest.raises(DataError, match="NaN"):
        fit_calibration([0.1, np.nan, 0.9], [0, 1, 1])
    with pytest.raises(DataError, match="NaN"):
        Calibration(a=1.0, b=0.0, prior=0.5).probability([0.1, np.nan])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_fit_prior_is_the_share_of_target_trials(seed):
    scores, labels = logistic_trials(seed, a=1.5, b=-2.0, n=500)
    calibration = fit_calibration(scores, labels)
    assert calibration.prior == labels.sum() / len(labels)
    assert 0.05 < calibration.prior < 0.5  # b = -2 makes targets a minority, not a rarity
    assert fit_calibration([0.1, 0.2, 0.3, 0.9], [0, 0, 1, 1]).prior == 0.5


def test_dict_round_trip_keeps_the_prior():
    calibration = Calibration(a=3.141592653589793, b=-0.1, prior=0.025)
    assert calibration.to_dict() == {"a": 3.141592653589793, "b": -0.1, "prior": 0.025}
    assert Calibration.from_dict(calibration.to_dict()) == calibration


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"a": 1.0, "b": 2.0}, "exactly the keys"),  # before the prior was stored
        ({"a": 1.0, "b": 2.0, "prior": 0.1, "c": 3.0}, "exactly the keys"),
        ({"a": "1.0", "b": 2.0, "prior": 0.1}, "must be a number"),
        ({"a": float("nan"), "b": 2.0, "prior": 0.1}, "must be finite"),
        ({"a": 1.0, "b": 2.0, "prior": True}, "must be a number"),
        ({"a": 1.0, "b": 2.0, "prior": 0.0}, r"prior must be in \(0, 1\)"),
        ({"a": 1.0, "b": 2.0, "prior": 1.0}, r"prior must be in \(0, 1\)"),
        ([1.0, 2.0, 0.1], "JSON object"),
    ],
)
def test_invalid_calibrations_are_model_errors(data, message):
    with pytest.raises(ModelError, match=message):
        Calibration.from_dict(data)


def test_sigmoid_is_stable_and_on_the_side_of_its_argument():
    z = np.array([-1e6, -40.0, -1e-15, -1e-300, 0.0, 1e-300, 40.0, 1e6])
    p = sigmoid(z)
    np.testing.assert_allclose(p, expit(z), rtol=1e-12, atol=0)
    assert np.all(p[z >= 0] >= 0.5)
    assert np.all(p[z < 0] <= 0.5)
    assert sigmoid(-1e-15) < 0.5
    assert sigmoid(-1e-300) == 0.5  # rounding: why a verdict rounds it below 0.5 itself


def naive_reliability(probabilities, labels, n_bins):
    """Per bin, by a loop: the trials with k/n <= p < (k+1)/n (p == 1 in the last bin)."""
    rows = []
    for k in range(n_bins):
        members = [
            (p, y)
            for p, y in zip(probabilities, labels, strict=True)
            if k / n_bins <= p < (k + 1) / n_bins or (k == n_bins - 1 and p == 1.0)
        ]
        if members:
            predicted = sum(p for p, _ in members) / len(members)
            observed = sum(y for _, y in members) / len(members)
            rows.append((predicted, observed, len(members)))
    return [np.array(column) for column in zip(*rows, strict=True)]


@pytest.mark.parametrize(("seed", "n_bins"), [(0, 10), (1, 7), (2, 1), (3, 25)])
def test_reliability_bins_match_a_naive_loop(seed, n_bins):
    rng = np.random.default_rng(seed)
    probabilities = np.concatenate([rng.random(300) ** 3, [0.0, 1.0, 0.5]])
    labels = (rng.random(303) < probabilities).astype(int)
    predicted, observed, counts = reliability_bins(probabilities, labels, n_bins)
    expected = naive_reliability(probabilities.tolist(), labels.tolist(), n_bins)
    np.testing.assert_allclose(predicted, expected[0], rtol=1e-12)
    np.testing.assert_allclose(observed, expected[1], rtol=1e-12)
    np.testing.assert_array_equal(counts, expected[2])
    assert counts.sum() == 303


def test_a_calibrated_model_lies_near_the_diagonal():
    scores, labels = logistic_trials(5, a=2.0, b=-0.5)
    calibration = fit_calibration(scores, labels)
    predicted, observed, counts = reliability_bins(calibration.probability(scores), labels)
    # Bins of hundreds of trials: the observed rate is within a few points of the prediction.
    well_filled = counts >= 500
    assert well_filled.sum() >= 5
    np.testing.assert_allclose(observed[well_filled], predicted[well_filled], atol=0.05)
    # Flipped labels are far from it.
    _, flipped, _ = reliability_bins(calibration.probability(scores), 1 - labels)
    assert np.max(np.abs(flipped[well_filled] - predicted[well_filled])) > 0.5


@pytest.mark.parametrize(
    ("probabilities", "labels", "n_bins", "message"),
    [
        ([0.1, 1.2], [0, 1], 10, r"in \[0, 1\]"),
        ([0.1, np.nan], [0, 1], 10, r"in \[0, 1\]"),
        ([0.1, 0.2], [0, 2], 10, "0 or 1"),
        ([0.1, 0.2], [0, 1, 1], 10, "one length"),
        ([0.1, 0.2], [0, 1], 0, "positive integer"),
    ],
)
def test_reliability_bins_refuse_bad_input(probabilities, labels, n_bins, message):
    with pytest.raises(DataError, match=message):
        reliability_bins(probabilities, labels, n_bins)


@pytest.mark.parametrize(
    ("a", "b", "named"),
    [
        (1e308, -1e308, "a = 1e+308"),
        (2e6, 0.0, "a = 2e+06"),
        (-2e6, 0.0, "a = -2e+06"),
        (5.0, -3e6, "b = -3e+06"),
        (1e-300, 0.0, "a = 1e-300"),  # so flat that a prior's threshold overflows
        (1e-9, 0.0, "a = 1e-09"),
    ],
)
def test_absurd_calibrations_are_model_errors_naming_their_values(a, b, named):
    with pytest.raises(ModelError, match=re.escape(named)):
        Calibration.from_dict({"a": a, "b": b, "prior": 0.5})


def test_a_fit_that_would_be_absurd_is_a_data_error():
    # Separated scores a billionth apart: the steepest fit the ridge allows is far too steep.
    with pytest.raises(DataError, match="calibration scores"):
        fit_calibration([0.0, 1e-9, 2e-9, 3e-9], [0, 0, 1, 1])


def test_the_most_extreme_accepted_calibrations_give_an_operating_point_at_any_prior():
    """At the bounds, every prior's threshold is finite and implies that prior back, so a
    verdict at a prior never blames a threshold nobody gave."""
    from cryprint.scoring.calibration import MAX_PARAMETER, MIN_SLOPE
    from cryprint.scoring.verdict import OperatingPoint

    for a in (MIN_SLOPE, 1.0, MAX_PARAMETER):
        for b in (-MAX_PARAMETER, 0.0, MAX_PARAMETER):
            for fit_prior in (1e-300, 0.5, 1 - 1e-12):
                calibration = Calibration(a=a, b=b, prior=fit_prior)
                for prior in (5e-324, 1e-12, 0.3, 1 - 1e-9):
                    point = OperatingPoint.at_prior(calibration, prior)
                    assert np.isfinite(point.threshold) and point.prior == prior
                    assert point.decide(0.5).probability is not None
