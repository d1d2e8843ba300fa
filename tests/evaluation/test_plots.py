"""Evaluation figures: real PNGs, and what they draw agrees with the scores: each class's
histogram has area 1 and stands under its scores, the DET line passes through every (FAR, FRR)
point of a naive threshold loop."""

from __future__ import annotations

import io
from collections.abc import Callable

import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy.stats import norm

from cryprint.evaluation import plots
from cryprint.evaluation.plots import DetCurve, det_curve_png, score_histogram_png

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ORANGE = (1.0, 0.498, 0.055)  # matplotlib's C1 (tab:orange), the second DET curve


def _trials(seed: int, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.2).astype(int)
    labels[:2] = [0, 1]  # both classes, whatever the draw
    return rng.normal(labels * 1.5, 1.0), labels


def _pixels(png: bytes) -> np.ndarray:
    """The decoded image, float [height, width, channels], after checking it is a PNG."""
    assert png.startswith(PNG_SIGNATURE)
    image = matplotlib.image.imread(io.BytesIO(png))
    assert image.ndim == 3 and image.shape[0] > 0 and image.shape[1] > 0
    return image


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """The figures the plot functions render, kept for inspection (they still return bytes)."""
    figures: list[Figure] = []
    render = plots._png

    def keep(figure: Figure) -> bytes:
        figures.append(figure)
        return render(figure)

    monkeypatch.setattr(plots, "_png", keep)
    return figures


SCORE_SETS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "random": lambda: _trials(0),
    "all scores equal": lambda: (np.full(6, 0.5), np.array([1, 0, 0, 1, 0, 0])),
    "one trial of each": lambda: (np.array([0.9, 0.1]), np.array([1, 0])),
    "perfectly separated": lambda: (np.array([0.9, 0.8, 0.1, 0.2, 0.3]), np.array([1, 1, 0, 0, 0])),
}


@pytest.mark.parametrize("name", SCORE_SETS)
def test_score_histogram_draws_each_class_with_area_one_and_the_threshold(
    drawn: list[Figure], name: str
) -> None:
    scores, labels = SCORE_SETS[name]()
    threshold = float(np.median(scores))
    _pixels(score_histogram_png(scores, labels, threshold, "title"))
    (axes,) = drawn[0].axes
    non_target, target = axes.containers
    classes = ((non_target, labels == 0, "different babies"), (target, labels == 1, "same baby"))
    for bars, mask, legend in classes:
        left = np.array([bar.get_x() for bar in bars])
        width = np.array([bar.get_width() for bar in bars])
        height = np.array([bar.get_height() for bar in bars])
        assert np.sum(height * width) == pytest.approx(1.0)  # a density: area one per class
        centre_mean = np.sum(height * width * (left + width / 2))
        assert abs(centre_mean - scores[mask].mean()) <= width.max() / 2
        for score in scores[mask]:  # a bar stands under every score of its class
            under = (left - 1e-9 <= score) & (score <= left + width + 1e-9)
            assert np.any(height[under] > 0)
        assert np.all(scores >= left.min() - 1e-9) and np.all(scores <= (left + width).max() + 1e-9)
        assert bars.patches[0].get_label() == f"{legend} ({mask.sum()} pairs)"
    (line,) = [line for line in axes.lines if line.get_label().startswith("EER threshold")]
    assert list(line.get_xdata()) == [threshold, threshold]


def test_score_histogram_changes_with_its_threshold() -> None:
    scores, labels = _trials(1)
    low, high = (score_histogram_png(scores, labels, t, "title") for t in (-1.0, 2.0))
    assert not np.array_equal(_pixels(low), _pixels(high))


def _naive_det(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FAR, FRR) accepting score >= t, for t over the sorted distinct scores and then +inf."""
    far, frr = [], []
    for threshold in [*np.unique(scores), np.inf]:
        far.append(np.mean(scores[labels == 0] >= threshold))
        frr.append(np.mean(scores[labels == 1] < threshold))
    return np.array(far), np.array(frr)


@pytest.mark.parametrize("count", [1, 2])
@pytest.mark.parametrize("name", SCORE_SETS)
def test_det_curve_draws_every_operating_point_on_probit_axes(
    drawn: list[Figure], name: str, count: int
) -> None:
    scores, labels = SCORE_SETS[name]()
    curves = [DetCurve(f"system {i}", scores + i, labels, 0.1 * (i + 1)) for i in range(count)]
    _pixels(det_curve_png(curves, "title"))
    (axes,) = drawn[0].axes
    lines = {line.get_label(): line for line in axes.lines}
    for curve in curves:
        (label,) = [label for label in lines if label.startswith(curve.name)]
        assert f"EER {100 * curve.eer:.2f}%" in label
        far, frr = _naive_det(curve.scores, curve.labels)
        low, high = 0.0005, 0.995
        assert lines[label].get_xdata() == pytest.approx(norm.ppf(np.clip(far, low, high)))
        assert lines[label].get_ydata() == pytest.approx(norm.ppf(np.clip(frr, low, high)))


def _orange_pixels(png: bytes) -> int:
    rgb = _pixels(png)[..., :3]
    return int(np.sum(np.all(np.abs(rgb - ORANGE) < 0.02, axis=-1)))


def test_second_det_curve_has_its_own_colour() -> None:
    scores, labels = _trials(2)
    first = DetCurve("cosine", scores, labels, 0.2)
    second = DetCurve("AS-norm", scores * 2 + labels, labels, 0.1)
    assert _orange_pixels(det_curve_png([first], "one")) == 0
    assert _orange_pixels(det_curve_png([first, second], "two")) > 100
