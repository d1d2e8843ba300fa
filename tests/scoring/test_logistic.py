"""The Newton logistic-regression solver (cryprint.scoring.logistic): the maximum of the
likelihood, found independently by scipy and scikit-learn; finite on separated scores; the
same fit whatever the features' units; and the error it documents."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression

from cryprint.errors import DataError
from cryprint.scoring.logistic import SLOPE_RIDGE, fit_logistic


def _overlapping(seed: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores of ``k`` models that overlap between target and non-target trials."""
    rng = np.random.default_rng(seed)
    target = rng.random(n) < 0.3
    shift = np.linspace(1.5, 0.2, k)
    features = rng.normal(size=(n, k)) * np.linspace(1.0, 3.0, k) + np.outer(target, shift)
    return features, target


def _mean_nll(params: np.ndarray, features: np.ndarray, target: np.ndarray) -> float:
    """Mean negative log-likelihood written out per trial, with no shared code."""
    k = features.shape[1]
    total = 0.0
    for x, y in zip(features, target, strict=True):
        z = float(np.dot(params[:k], x)) + float(params[k])
        p = 1.0 / (1.0 + math.exp(-z))
        total -= math.log(p) if y else math.log(1.0 - p)
    return total / len(target)


def _scipy_fit(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The unpenalised maximum-likelihood (weights, bias) by BFGS from zero."""
    y = target.astype(np.float64)

    def nll(params: np.ndarray) -> float:
        z = features @ params[:-1] + params[-1]
        return float(np.mean(np.logaddexp(0.0, z) - y * z))

    def gradient(params: np.ndarray) -> np.ndarray:
        z = features @ params[:-1] + params[-1]
        residual = 1.0 / (1.0 + np.exp(-z)) - y
        return np.append(features.T @ residual, residual.sum()) / len(y)

    start = np.zeros(features.shape[1] + 1)
    result = minimize(nll, start, jac=gradient, method="BFGS", options={"gtol": 1e-12})
    return result.x


@pytest.mark.parametrize(("seed", "n", "k"), [(0, 300, 1), (1, 500, 2), (2, 400, 3)])
def test_fit_is_the_maximum_likelihood_that_scipy_finds(seed: int, n: int, k: int) -> None:
    features, target = _overlapping(seed, n, k)
    weights, bias = fit_logistic(features, target)
    assert weights.shape == (k,)
    assert isinstance(bias, float)
    reference = _scipy_fit(features, target)
    # The ridge moves a slope by well below 1e-3 of itself (the module's promise).
    np.testing.assert_allclose(weights, reference[:k], rtol=1e-3, atol=1e-6)
    assert bias == pytest.approx(reference[k], rel=1e-3, abs=1e-6)
    # And the likelihood it reaches is the maximum's, to far better than that.
    fitted = _mean_nll(np.append(weights, bias), features, target)
    best = _mean_nll(reference, features, target)
    assert fitted == pytest.approx(best, abs=1e-9)


def test_fit_agrees_with_scikit_learn_without_penalty() -> None:
    features, target = _overlapping(3, 400, 2)
    weights, bias = fit_logistic(features, target)
    model = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(features, target)
    np.testing.assert_allclose(weights, model.coef_[0], rtol=1e-3)
    assert bias == pytest.approx(model.intercept_[0], rel=1e-3, abs=1e-6)


def test_fit_is_the_exact_optimum_of_the_ridged_objective() -> None:
    # The objective the module documents: mean NLL + SLOPE_RIDGE/2 * |slopes|² on standardised
    # features. Its gradient, computed here by hand, vanishes at the returned fit.
    features, target = _overlapping(4, 250, 2)
    weights, bias = fit_logistic(features, target)
    center, spread = features.mean(axis=0), features.std(axis=0)
    slopes = weights * spread  # back to the standardised features
    standard = (features - center) / spread
    offset = bias + float(np.sum(weights * center))
    y = target.astype(np.float64)
    p = 1.0 / (1.0 + np.exp(-(standard @ slopes + offset)))
    gradient_slopes = standard.T @ (p - y) / len(y) + SLOPE_RIDGE * slopes
    gradient_offset = float(np.mean(p - y))
    np.testing.assert_allclose(gradient_slopes, 0.0, atol=1e-10)
    assert gradient_offset == pytest.approx(0.0, abs=1e-10)


def test_bias_only_data_gives_the_log_odds_of_the_target_share() -> None:
    # A feature carrying no information: identical values for target and non-target trials.
    values = np.array([-1.0, 0.0, 2.0, 5.0])
    features = np.concatenate([values, values, values, values])[:, None]
    target = np.array([True] * 4 + [False] * 12)  # 1 in 4 at every value
    weights, bias = fit_logistic(features, target)
    assert weights[0] == pytest.approx(0.0, abs=1e-10)
    assert bias == pytest.approx(math.log(0.25 / 0.75), abs=1e-10)


def test_the_fit_does_not_depend_on_the_units_of_the_features() -> None:
    features, target = _overlapping(5, 300, 2)
    weights, bias = fit_logistic(features, target)
    scale, shift = np.array([1e4, 1e-3]), np.array([-50.0, 7.0])
    moved_weights, moved_bias = fit_logistic(features * scale + shift, target)
    # The same probabilities: w' = w / scale, b' = b - w' @ shift.
    np.testing.assert_allclose(moved_weights * scale, weights, rtol=1e-8)
    assert moved_bias == pytest.approx(bias - float(np.sum(moved_weights * shift)), rel=1e-8)


def test_bool_and_zero_one_targets_give_the_same_fit() -> None:
    features, target = _overlapping(6, 200, 1)
    as_bool = fit_logistic(features, target)
    as_int = fit_logistic(features, target.astype(np.int64))
    np.testing.assert_array_equal(as_bool[0], as_int[0])
    assert as_bool[1] == as_int[1]


def test_the_input_is_left_alone() -> None:
    features, target = _overlapping(7, 100, 2)
    before = features.copy(), target.copy()
    fit_logistic(features, target)
    np.testing.assert_array_equal(features, before[0])
    np.testing.assert_array_equal(target, before[1])


@pytest.mark.parametrize("gap", [0.1, 3.0])
def test_separated_scores_give_a_finite_fit_that_separates_them(gap: float) -> None:
    # Unpenalised, the likelihood keeps growing with the slope: only the ridge stops it.
    rng = np.random.default_rng(8)
    nontarget = rng.uniform(-2.0, 0.0, 60)
    target_scores = rng.uniform(gap, gap + 2.0, 20)
    features = np.concatenate([nontarget, target_scores])[:, None]
    target = np.concatenate([np.zeros(60, bool), np.ones(20, bool)])
    weights, bias = fit_logistic(features, target)
    assert np.all(np.isfinite(weights)) and math.isfinite(bias)
    assert weights[0] > 0
    z = features[:, 0] * weights[0] + bias
    assert np.all(z[target] > 0) and np.all(z[~target] < 0)
    # The boundary lies inside the gap.
    boundary = -bias / weights[0]
    assert nontarget.max() < boundary < target_scores.min()
    # Far steeper than any fit of overlapping scores: the probabilities are near 0 and 1.
    probability = 1.0 / (1.0 + np.exp(-z))
    assert np.all(probability[target] > 0.99) and np.all(probability[~target] < 0.01)


def test_reversed_scores_give_a_negative_slope() -> None:
    features, target = _overlapping(9, 300, 1)
    weights, bias = fit_logistic(-features, target)
    original = fit_logistic(features, target)
    assert weights[0] < 0
    np.testing.assert_allclose(weights, -original[0], rtol=1e-9)
    assert bias == pytest.approx(original[1], rel=1e-9)


@pytest.mark.parametrize("constant_column", [0, 1])
def test_a_constant_input_is_refused(constant_column: int) -> None:
    features, target = _overlapping(10, 50, 2)
    features[:, constant_column] = 0.5
    with pytest.raises(DataError, match="all scores of an input are equal: no slope can be fitted"):
        fit_logistic(features, target)


def test_a_constant_input_that_is_not_a_binary_fraction_is_refused() -> None:
    # The std of 50 copies of 0.7 rounds to 2e-16, not 0: the check must not rely on it.
    features, target = _overlapping(10, 50, 1)
    features[:, 0] = 0.7
    with pytest.raises(DataError, match="all scores of an input are equal"):
        fit_logistic(features, target)


@pytest.mark.parametrize("label", [0, 1])
def test_trials_of_one_class_are_refused(label: int) -> None:
    features, _ = _overlapping(10, 50, 1)
    with pytest.raises(DataError, match="all of one class"):
        fit_logistic(features, np.full(len(features), label))
