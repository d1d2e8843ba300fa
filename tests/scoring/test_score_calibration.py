"""Tests for cryprint.scoring.calibration: logistic fit, probabilities, JSON files."""

import json
import os

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from cryprint.errors import DataError, ModelError, OutputError
from cryprint.scoring.calibration import (
    Calibration,
    fit_calibration,
    load_calibration,
    save_calibration,
)


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
    calibration = Calibration(a=2.0, b=-1.0)
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
        Calibration(a=1.0, b=0.0).probability([0.1, np.nan])


def test_json_round_trip(tmp_path):
    calibration = Calibration(a=3.141592653589793, b=-0.1)
    path = tmp_path / "calibration.json"
    save_calibration(path, calibration)
    assert json.loads(path.read_text()) == {"a": 3.141592653589793, "b": -0.1}
    assert load_calibration(path) == calibration
    assert Calibration.from_dict(calibration.to_dict()) == calibration
    assert os.listdir(tmp_path) == ["calibration.json"]  # no temp file left behind


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "calibration.json"
    save_calibration(path, Calibration(a=1.0, b=0.0))

    def refuse(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OutputError, match=r"calibration\.json.*disk full"):
        save_calibration(path, Calibration(a=2.0, b=5.0))
    monkeypatch.undo()
    assert load_calibration(path) == Calibration(a=1.0, b=0.0)
    assert os.listdir(tmp_path) == ["calibration.json"]


def test_save_into_missing_folder_is_an_output_error(tmp_path):
    with pytest.raises(OutputError, match="no_such_folder"):
        save_calibration(tmp_path / "no_such_folder" / "c.json", Calibration(a=1.0, b=0.0))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "could not read"),
        ("{not json", "not valid JSON"),
        ('{"a": 1.0}', "exactly the keys"),
        ('{"a": 1.0, "b": 2.0, "c": 3.0}', "exactly the keys"),
        ('{"a": "1.0", "b": 2.0}', "must be a number"),
        ('{"a": NaN, "b": 2.0}', "must be finite"),
        ("[1.0, 2.0]", "JSON object"),
    ],
)
def test_bad_calibration_files_are_model_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "broken_calibration.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ModelError, match=message) as caught:
        load_calibration(path)
    assert "broken_calibration.json" in str(caught.value)
