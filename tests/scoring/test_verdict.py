"""Tests for cryprint.scoring.verdict: priors and thresholds, and a verdict whose decision and
probability can never disagree (issue #11 item 6)."""

import json
import math

import numpy as np
import pytest

from cryprint.errors import ConfigError, DataError, ModelError
from cryprint.scoring.calibration import Calibration
from cryprint.scoring.verdict import (
    DIFFERENT_BABIES,
    INCONCLUSIVE,
    SAME_BABY,
    OperatingPoint,
    format_fraction,
    prior_for_threshold,
    probability,
    threshold_for_prior,
)

PRIORS = [1e-6, 0.001, 0.025, 0.1, 0.5, 0.9, 0.999]
BANDS = [0.05, 0.2, 0.45]


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def random_calibrations(n: int = 12, seed: int = 0) -> list[Calibration]:
    """Slopes from 1e-3 (so flat that the sigmoid rounds to 0.5 next to the threshold) to
    several hundred, any offset, any fit prior."""
    rng = np.random.default_rng(seed)
    calibrations = [
        Calibration(a=1e-3, b=0.2, prior=0.3),
        Calibration(a=500.0, b=-200.0, prior=0.02),
    ]
    for _ in range(n - len(calibrations)):
        calibrations.append(
            Calibration(
                a=float(np.exp(rng.uniform(np.log(0.05), np.log(200.0)))),
                b=float(rng.normal(0.0, 5.0)),
                prior=float(rng.uniform(0.005, 0.995)),
            )
        )
    return calibrations


def grid_scores(threshold: float, seed: int) -> list[float]:
    """Cosine scores across [-1, 1], the threshold itself and the floats right beside it."""
    rng = np.random.default_rng(seed)
    near = threshold + rng.normal(0.0, 1e-9, size=20)
    beside = [np.nextafter(threshold, -np.inf), threshold, np.nextafter(threshold, np.inf)]
    return [float(s) for s in [*np.linspace(-1.0, 1.0, 61), *near, *beside]]


def check_verdicts(point: OperatingPoint, scores: list[float]) -> None:
    for score in scores:
        verdict = point.decide(score)
        assert verdict.same_baby is not None or verdict.decision == INCONCLUSIVE
        p = verdict.probability
        band = point.inconclusive
        if band is not None and band < p < 1 - band:
            assert verdict.decision == INCONCLUSIVE
            assert verdict.same_baby is None
            continue
        assert verdict.decision == (SAME_BABY if score >= point.threshold else DIFFERENT_BABIES)
        assert verdict.same_baby == (score >= point.threshold)
        assert verdict.same_baby == (p >= 0.5), (score, point, p)


@pytest.mark.parametrize("prior", PRIORS)
def test_decision_and_probability_agree_at_a_given_prior(prior):
    for index, calibration in enumerate(random_calibrations()):
        for band in (None, BANDS[index % len(BANDS)]):
            point = OperatingPoint.at_prior(calibration, prior, inconclusive=band)
            assert point.prior == prior
            scores = grid_scores(point.threshold, index)
            check_verdicts(point, scores)
            # The probability is the prior-shifted calibration, written from the threshold.
            for score in scores[::7]:
                expected = float(probability(score, calibration, prior))
                assert point.decide(score).probability == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("threshold", [-0.5, 0.0, 0.2, 0.4545, 0.8])
def test_decision_and_probability_agree_at_a_given_threshold(threshold):
    for index, calibration in enumerate(random_calibrations(seed=1)):
        point = OperatingPoint(threshold, "given", calibration, inconclusive=BANDS[index % 3])
        implied = prior_for_threshold(calibration, threshold)
        assert point.prior == implied
        check_verdicts(point, grid_scores(threshold, index))
        check_verdicts(OperatingPoint(threshold, "given", calibration), grid_scores(threshold, 0))
        # The prior's log-odds lose digits as it nears 0 or 1 (the threshold form does not).
        if 1e-6 < implied < 1 - 1e-6:
            for score in (-0.3, threshold, 0.7):
                expected = float(probability(score, calibration, implied))
                assert point.decide(score).probability == pytest.approx(expected, abs=1e-9)


def test_the_issue_example_no_longer_disagrees():
    # Issue #11 item 6: "same baby: score 0.6185 vs threshold 0.4545" then P(same) = 0.134 at
    # the dev prior of 2 %. A calibration giving exactly that P at 0.6185:
    a = 12.0
    calibration = Calibration(a=a, b=logit(0.134) - a * 0.6185, prior=0.02)
    assert float(calibration.probability(0.6185)) == pytest.approx(0.134)
    verdict = OperatingPoint(0.4545, "dev EER threshold", calibration).decide(0.6185)
    assert verdict.decision == SAME_BABY
    assert verdict.probability >= 0.5
    # The prior is the one that puts P = 0.5 at 0.4545, above the dev share of 2 %.
    assert float(probability(0.4545, calibration, verdict.prior)) == pytest.approx(0.5)
    assert verdict.prior > 0.02
    assert "0.0200 of the calibration pairs" in verdict.prior_source


def test_threshold_and_prior_by_hand():
    calibration = Calibration(a=10.0, b=-5.0, prior=0.2)
    # P = 0.5 where 10 s - 5 + logit(0.5) - logit(0.2) = 0: s = (5 + ln(0.25)) / 10.
    assert threshold_for_prior(calibration, 0.5) == pytest.approx((5 + math.log(0.25)) / 10)
    # At the fit prior the shift is 0: P = 0.5 where 10 s = 5.
    assert threshold_for_prior(calibration, 0.2) == pytest.approx(0.5)
    # The prior that puts P = 0.5 at s = 0.3: logit(prior) = logit(0.2) - 3 + 5.
    assert prior_for_threshold(calibration, 0.3) == pytest.approx(
        1 / (1 + math.exp(-(math.log(0.25) + 2)))
    )
    scores = np.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(
        probability(scores, calibration, 0.2), calibration.probability(scores)
    )
    np.testing.assert_allclose(
        probability(scores, calibration, 0.5), 1 / (1 + np.exp(-(10 * scores - 5 - math.log(0.25))))
    )


@pytest.mark.parametrize("calibration", random_calibrations(6, seed=2))
def test_threshold_for_prior_and_prior_for_threshold_invert_each_other(calibration):
    thresholds = [threshold_for_prior(calibration, prior) for prior in PRIORS]
    assert np.all(np.diff(thresholds) < 0)  # a higher prior needs less evidence
    for prior, threshold in zip(PRIORS, thresholds, strict=True):
        assert prior_for_threshold(calibration, threshold) == pytest.approx(prior, rel=1e-9)
        assert float(probability(threshold, calibration, prior)) == pytest.approx(0.5)
    for threshold in (-0.2, 0.1, 0.3):
        prior = prior_for_threshold(calibration, threshold)
        if 1e-12 < prior < 1 - 1e-12:
            assert threshold_for_prior(calibration, prior) == pytest.approx(threshold, abs=1e-9)


def test_a_falling_calibration_has_no_threshold():
    for a in (0.0, -2.0):
        calibration = Calibration(a=a, b=0.0, prior=0.1)
        with pytest.raises(ModelError, match="not positive"):
            threshold_for_prior(calibration, 0.5)
        with pytest.raises(ModelError, match="not positive"):
            OperatingPoint(0.4, "given", calibration)


@pytest.mark.parametrize("prior", [0.0, 1.0, -0.1, float("nan"), True])
def test_priors_outside_0_1_are_refused(prior):
    calibration = Calibration(a=5.0, b=-2.0, prior=0.1)
    with pytest.raises(DataError, match="prior"):
        threshold_for_prior(calibration, prior)
    with pytest.raises(DataError, match="prior"):
        probability(0.5, calibration, prior)
    with pytest.raises(ConfigError, match="prior"):
        OperatingPoint.at_prior(calibration, prior)


def test_a_point_whose_prior_and_threshold_disagree_is_refused():
    calibration = Calibration(a=5.0, b=-2.0, prior=0.1)
    threshold = threshold_for_prior(calibration, 0.3)
    assert OperatingPoint(threshold, "t", calibration, prior=0.3).prior == 0.3
    with pytest.raises(ConfigError, match="disagree"):
        OperatingPoint(threshold, "t", calibration, prior=0.1)
    with pytest.raises(ConfigError, match="needs a calibration"):
        OperatingPoint(0.4, "t", None, prior=0.1)


def test_no_calibration_no_probability_and_no_band():
    verdict = OperatingPoint(0.4, "given").decide(0.41)
    assert (verdict.same_baby, verdict.probability, verdict.prior) == (True, None, None)
    assert verdict.decision == SAME_BABY
    assert "no calibration" in verdict.explain()[1]
    with pytest.raises(ConfigError, match=r"inconclusive band needs .*calibration"):
        OperatingPoint(0.4, "given", inconclusive=0.2)


@pytest.mark.parametrize("band", [0.0, 0.5, 0.7, -0.1, True])
def test_band_outside_0_half_is_refused(band):
    with pytest.raises(ConfigError, match="inconclusive band"):
        OperatingPoint(0.4, "given", Calibration(a=5.0, b=-2.0, prior=0.1), inconclusive=band)


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), True, "0.5"])
def test_threshold_must_be_a_finite_number(threshold):
    with pytest.raises(ConfigError, match="threshold must be a"):
        OperatingPoint(threshold, "given")


@pytest.mark.parametrize("score", [float("nan"), float("inf")])
def test_a_non_finite_score_is_refused(score):
    with pytest.raises(DataError, match="finite"):
        OperatingPoint(0.4, "given").decide(score)


def test_explain_names_threshold_source_and_prior_together():
    calibration = Calibration(a=10.0, b=-5.0, prior=0.025)
    point = OperatingPoint.at_prior(calibration, 0.5, calibration_source="m/calibration.json")
    below = point.decide(point.threshold - 0.1)
    decision, chance = below.explain()
    assert decision.startswith(f"different babies: score {below.score:.4f} < threshold ")
    assert "m/calibration.json" in decision
    assert (
        chance == f"P(same baby) = {format_fraction(below.probability)} at a prior of 0.500 (given)"
    )
    # A probability just under 0.5 is never shown as 0.5.
    edge = OperatingPoint(0.4, "given", Calibration(a=1e-3, b=0.0, prior=0.5))
    verdict = edge.decide(float(np.nextafter(0.4, 0.0)))
    assert verdict.decision == DIFFERENT_BABIES and verdict.probability < 0.5
    assert float(verdict.explain()[1].split("= ")[1].split(" ")[0]) < 0.5
    # Inconclusive: the band is named.
    unsure = OperatingPoint.at_prior(calibration, 0.5, inconclusive=0.2).decide(point.threshold)
    assert unsure.explain()[0].startswith(
        "inconclusive: P(same baby) = 0.500 is between 0.2 and 0.8"
    )


def test_to_dict_holds_every_field_as_json():
    calibration = Calibration(a=10.0, b=-5.0, prior=0.025)
    verdict = OperatingPoint(0.45, "given", calibration, inconclusive=0.1).decide(0.7)
    data = json.loads(json.dumps(verdict.to_dict()))
    assert set(data) == {
        "score", "threshold", "threshold_source", "same_baby", "probability", "prior",
        "prior_source", "decision", "inconclusive_band",
    }  # fmt: skip
    assert (data["decision"], data["same_baby"], data["inconclusive_band"]) == (
        SAME_BABY,
        True,
        0.1,
    )
    assert data["prior"] == prior_for_threshold(calibration, 0.45)


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0.08, "0.0800"), (0.5, "0.500"), (0.4996, "0.4996"), (0.50004, "0.500"),
     (0.9996, "0.9996"), (0.025, "0.0250"), (1e-30, "1.00e-30"), (0.0, "0.00"), (1.0, "1.00"),
     (0.98, "0.980"), (0.973, "0.973")],
)  # fmt: skip
def test_format_fraction(value, shown):
    assert format_fraction(value) == shown


def test_format_fraction_keeps_the_side_of_one_half():
    for value in (np.nextafter(0.5, 0.0), 0.49999999, 0.4999999999996):
        assert float(format_fraction(float(value))) < 0.5
