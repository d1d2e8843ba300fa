"""Score fusion: the logistic fit against scikit-learn and a naive gradient, one input equal to
calibration, and two noisy models fused better than either alone."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from cryprint.errors import DataError, ModelError
from cryprint.scoring import compute_eer, fit_calibration
from cryprint.scoring.fusion import Fusion, fit_fusion, stack_scores


def _two_models(seed: int = 0, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Two models that see the same trials with independent noise (and other scales)."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.2
    truth = np.where(labels, 1.0, -1.0)
    first = 0.3 * truth + rng.normal(0, 0.6, n)
    second = 5.0 * truth + rng.normal(0, 9.0, n) + 3.0
    return stack_scores([first, second]), labels.astype(int)


def test_the_fit_is_the_maximum_likelihood_of_scikit_learn() -> None:
    scores, labels = _two_models()
    fusion = fit_fusion(scores, labels)
    # C huge = no penalty (scikit-learn's unpenalised option changes between versions).
    reference = LogisticRegression(C=1e12, tol=1e-12, max_iter=10_000).fit(scores, labels)
    np.testing.assert_allclose(fusion.weights, reference.coef_[0], rtol=1e-4)
    assert fusion.bias == pytest.approx(reference.intercept_[0], rel=1e-4)
    assert fusion.prior == pytest.approx(labels.mean())


def test_the_gradient_vanishes_at_the_fit() -> None:
    scores, labels = _two_models(1)
    fusion = fit_fusion(scores, labels)
    p = 1 / (1 + np.exp(-fusion.apply(scores)))
    # The naive mean log-likelihood gradient, per standardised input (the 1e-6 ridge on the
    # standardised slopes leaves ~1e-6 * slope there).
    standard = (scores - scores.mean(axis=0)) / scores.std(axis=0)
    design = np.column_stack([standard, np.ones(len(labels))])
    gradient = design.T @ (p - labels) / len(labels)
    np.testing.assert_allclose(gradient, 0.0, atol=1e-5)


def test_one_input_is_calibration() -> None:
    scores, labels = _two_models(2)
    fusion = fit_fusion(scores[:, :1], labels)
    calibration = fit_calibration(scores[:, 0], labels)
    assert fusion.weights[0] == pytest.approx(calibration.a, rel=1e-9)
    assert fusion.bias == pytest.approx(calibration.b, rel=1e-9)


def test_two_noisy_models_fused_verify_better_than_either() -> None:
    dev_scores, dev_labels = _two_models(3)
    test_scores, test_labels = _two_models(4)
    fused = fit_fusion(dev_scores, dev_labels).apply(test_scores)
    alone = [compute_eer(test_scores[:, i], test_labels).eer for i in range(2)]
    assert compute_eer(fused, test_labels).eer < min(alone) - 0.02


def test_round_trip_and_refusals() -> None:
    fusion = Fusion(weights=(1.5, 0.25), bias=-2.0, prior=0.1)
    assert Fusion.from_dict(fusion.to_dict()) == fusion
    with pytest.raises(ModelError, match="keys"):
        Fusion.from_dict({"weights": [1.0], "bias": 0.0})
    with pytest.raises(ModelError, match="finite"):
        Fusion(weights=(float("nan"),), bias=0.0, prior=0.5)
    with pytest.raises(ModelError, match="non-empty"):
        Fusion(weights=(), bias=0.0, prior=0.5)
    with pytest.raises(ModelError, match="prior"):
        Fusion(weights=(1.0,), bias=0.0, prior=1.0)
    with pytest.raises(DataError, match="shape"):
        fusion.apply(np.zeros((3, 3)))
    with pytest.raises(DataError, match="NaN"):
        fusion.apply([[np.nan, 0.0]])


def test_bad_trials_are_refused() -> None:
    scores, labels = _two_models(5, n=50)
    with pytest.raises(DataError, match="equal"):
        fit_fusion(np.column_stack([scores[:, 0], np.ones(50)]), labels)
    with pytest.raises(DataError, match="one class"):
        fit_fusion(scores, np.ones(50))
    with pytest.raises(DataError, match="one length"):
        stack_scores([np.zeros(3), np.zeros(4)])
