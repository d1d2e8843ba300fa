"""Probabilities over a ward, one decision rule over them, and the gallery-size-aware score
threshold — each against a naive computation or a simulation with known score distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from cryprint.errors import ConfigError, DataError
from cryprint.scoring import Calibration
from cryprint.scoring.open_set import (
    NAMED,
    NONE_OF_THESE,
    REVIEW,
    UNCERTAIN,
    WardRule,
    decide,
    stranger_threshold,
    ward_probabilities,
)
from cryprint.scoring.verdict import format_fraction


def naive_probabilities(llr, prior, weights=None):
    """Bayes' rule written out with plain floats."""
    n = len(llr)
    weights = [1 / n] * n if weights is None else [w / sum(weights) for w in weights]
    joint = [prior * w * math.exp(x) for w, x in zip(weights, llr, strict=True)]
    evidence = (1 - prior) + sum(joint)
    return [j / evidence for j in joint], (1 - prior) / evidence


@pytest.mark.parametrize("prior", [0.5, 0.9, 0.99, 1.0])
def test_probabilities_match_bayes_rule_and_sum_to_one(prior: float) -> None:
    rng = np.random.default_rng(1)
    for n in (1, 3, 30):
        llr = rng.normal(0, 3, n)
        babies, none = ward_probabilities(llr, prior)
        expected, expected_none = naive_probabilities(llr, prior)
        np.testing.assert_allclose(babies, expected, rtol=1e-12)
        assert none == pytest.approx(expected_none, abs=1e-15)
        assert babies.sum() + none == pytest.approx(1.0, abs=1e-12)
    assert ward_probabilities([0.0, 0.0], 1.0)[1] == 0.0  # closed set: never none of these


def test_uneven_baby_priors_and_extreme_ratios() -> None:
    babies, none = ward_probabilities([0.5, -1.0, 2.0], 0.8, baby_priors=[2, 1, 1])
    expected, expected_none = naive_probabilities([0.5, -1.0, 2.0], 0.8, [2, 1, 1])
    np.testing.assert_allclose(babies, expected, rtol=1e-12)
    assert none == pytest.approx(expected_none)
    # exp(900) overflows a float: the log-sum-exp keeps the answer exact.
    babies, none = ward_probabilities([900.0, 0.0, -900.0], 0.9)
    assert babies[0] == pytest.approx(1.0) and none == pytest.approx(0.0, abs=1e-300)
    babies, _ = ward_probabilities([5.0, 5.0], 0.9, baby_priors=[1, 0])
    assert babies[1] == 0.0


def test_probabilities_from_a_calibration_agree_with_its_pairwise_probability() -> None:
    """One enrolled baby at the calibration's own prior: the ward's P(baby) is verify's
    P(same baby)."""
    calibration = Calibration(a=8.0, b=-3.0, prior=0.3)
    for score in (-0.2, 0.3, 0.9):
        llr = calibration.log_likelihood_ratio([score])
        babies, _ = ward_probabilities(llr, 0.3)
        assert babies[0] == pytest.approx(float(calibration.probability(score)))


@pytest.mark.parametrize(
    ("values", "error"),
    [
        (dict(log_likelihood_ratios=[]), DataError),
        (dict(log_likelihood_ratios=[np.nan]), DataError),
        (dict(log_likelihood_ratios=[0.0], enrolled_prior=0.0), ConfigError),
        (dict(log_likelihood_ratios=[0.0], enrolled_prior=1.5), ConfigError),
        (dict(log_likelihood_ratios=[0.0, 1.0], baby_priors=[1.0]), DataError),
        (dict(log_likelihood_ratios=[0.0, 1.0], baby_priors=[0.0, 0.0]), DataError),
    ],
)
def test_bad_inputs_are_refused(values: dict, error: type) -> None:
    with pytest.raises(error):
        ward_probabilities(**values)


def _check_answer(answer, ids, p, p_none, rule) -> None:
    """The rule, restated: the answer must be the one its probabilities give."""
    level = min(rule.review_level, rule.min_probability)
    close = [b for b, q in zip(ids, p, strict=True) if q >= level]
    top = float(p.max())
    if len(close) >= 2:
        assert answer.kind == REVIEW and {b for b, _ in answer.leading} == set(close)
    elif top >= rule.min_probability:
        assert answer.kind == NAMED and answer.baby == ids[int(np.argmax(p))]
        assert answer.probability == top >= rule.min_probability
    elif p_none >= top:
        assert answer.kind == NONE_OF_THESE and answer.probability == p_none
    else:
        assert answer.kind == UNCERTAIN and answer.leading[0][1] == top
    assert answer.baby is None or answer.kind == NAMED
    words = answer.words()
    assert answer.to_dict()["answer"] == words and format_fraction(answer.probability) in words


def test_the_answer_follows_from_the_probabilities_on_a_grid() -> None:
    rng = np.random.default_rng(0)
    ids = [f"baby{i:02d}" for i in range(6)]
    seen = set()
    for min_probability in (0.3, 0.5, 0.8, 0.95):
        for review_level in (0.1, 0.2, 0.4):
            rule = WardRule(min_probability, review_level)
            for concentration in (0.1, 0.5, 2.0):
                for _ in range(100):
                    drawn = rng.dirichlet([concentration] * (len(ids) + 1))
                    p, p_none = drawn[:-1], float(drawn[-1])
                    answer = decide(ids, p, p_none, rule)
                    _check_answer(answer, ids, p, p_none, rule)
                    seen.add(answer.kind)
    assert seen == {NAMED, NONE_OF_THESE, REVIEW, UNCERTAIN}


def test_ties_go_to_the_lower_baby_id_and_rules_are_checked() -> None:
    answer = decide(["b", "a"], [0.45, 0.45], 0.1, WardRule(0.4, 0.5))
    assert answer.kind == REVIEW and answer.leading[0][0] == "a"
    with pytest.raises(ConfigError, match="min_probability"):
        WardRule(min_probability=0.0)
    with pytest.raises(DataError):
        decide(["a"], [0.5, 0.5], 0.0)


def _exact_false_alarm(threshold: float, n_babies: int, mean: float, std: float) -> float:
    """P(the best of n_babies normal scores reaches the threshold)."""
    return 1.0 - (1.0 - norm.sf(threshold, mean, std)) ** n_babies


@pytest.mark.parametrize("n_babies", [1, 10, 30, 100, 157])
@pytest.mark.parametrize("max_false_alarm", [0.01, 0.05, 0.2])
def test_the_stranger_threshold_holds_in_simulation(n_babies: int, max_false_alarm: float) -> None:
    """Different-baby scores from a known distribution, its quantiles as the dev scores (so the
    rule, not an estimate's noise, is tested): among N babies, a stranger's best score reaches
    the threshold F of the time — in a simulation of 40,000 strangers and by the exact formula."""
    rng = np.random.default_rng(n_babies)
    dev = norm.ppf((np.arange(200_000) + 0.5) / 200_000, 0.1, 0.15)
    chosen = stranger_threshold(dev, n_babies, max_false_alarm)
    strangers = rng.normal(0.1, 0.15, (40_000, n_babies)).max(axis=1)
    named = float((strangers >= chosen.threshold).mean())
    noise = 3 * math.sqrt(max_false_alarm * (1 - max_false_alarm) / len(strangers))
    assert abs(named - max_false_alarm) <= noise + 0.002, (named, chosen)
    exact = _exact_false_alarm(chosen.threshold, n_babies, 0.1, 0.15)
    assert exact == pytest.approx(max_false_alarm, rel=0.05), chosen


@pytest.mark.parametrize("n_babies", [10, 100, 1000])
def test_a_thin_tail_is_read_from_a_normal_fit(n_babies: int) -> None:
    """1,560 dev scores (CryCeleb's dev split) cannot show a 1-in-100,000 tail: the normal
    fit puts the threshold where the true distribution has it."""
    rng = np.random.default_rng(7)
    chosen = stranger_threshold(rng.normal(0.1, 0.15, 1560), n_babies, 0.01)
    assert chosen.method == "normal fit of the upper tail"
    # The estimated tail lands within a factor of 3 of F: the error of a mean and a spread
    # estimated from 1,560 scores, magnified at 1e-5 per pair.
    exact = _exact_false_alarm(chosen.threshold, n_babies, 0.1, 0.15)
    assert 0.003 <= exact <= 0.03, (exact, chosen)  # the fit's own error on 1,560 scores


def test_the_empirical_threshold_lets_through_at_most_its_share() -> None:
    scores = np.linspace(0, 1, 1001)
    chosen = stranger_threshold(scores, 1, 0.1)
    assert (scores >= chosen.threshold).sum() <= 100 < (scores >= chosen.threshold - 1e-3).sum()
    with pytest.raises(ConfigError):
        stranger_threshold(scores, 0, 0.1)
    with pytest.raises(ConfigError):
        stranger_threshold(scores, 5, 1.0)
    with pytest.raises(DataError):
        stranger_threshold(scores[:5], 5, 0.1)
