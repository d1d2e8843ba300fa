"""calibrate: calibration.json (with its model_id and fit prior) and the reliability plot."""

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from cryprint.errors import ModelError, OutputError
from cryprint.evaluation.calibrate_model import RELIABILITY_PLOT_NAME, calibrate_model
from cryprint.evaluation.plots import reliability_png
from cryprint.inference.operating_point import load_calibration, save_calibration
from cryprint.models.folder import load_model, model_identity
from cryprint.scoring import Calibration, reliability_bins

CALIBRATION = Calibration(a=3.141592653589793, b=-0.1, prior=0.025)


def test_json_round_trip_holds_the_model_id(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    fitted_on = {"split": "dev", "n_pairs": 40, "n_target": 1}
    assert save_calibration(path, CALIBRATION, "weights-1", fitted_on) == path
    assert json.loads(path.read_text()) == {
        "model_id": "weights-1",
        "calibration": {"a": 3.141592653589793, "b": -0.1, "prior": 0.025},
        "fitted_on": fitted_on,
    }
    assert load_calibration(path) == CALIBRATION
    assert load_calibration(path, "weights-1") == CALIBRATION
    with pytest.raises(ModelError, match=r"fitted for other weights.*cryprint calibrate"):
        load_calibration(path, "weights-2")
    assert os.listdir(tmp_path) == ["calibration.json"]  # no temp file left behind


def test_failed_save_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "calibration.json"
    save_calibration(path, CALIBRATION, "weights-1")

    def refuse(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OutputError, match=r"calibration\.json.*disk full"):
        save_calibration(path, Calibration(a=2.0, b=5.0, prior=0.5), "weights-2")
    monkeypatch.undo()
    assert load_calibration(path, "weights-1") == CALIBRATION
    assert os.listdir(tmp_path) == ["calibration.json"]


def test_a_folder_in_the_way_is_an_output_error(tmp_path: Path) -> None:
    (tmp_path / "calibration.json").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        save_calibration(tmp_path / "calibration.json", CALIBRATION, "weights-1")


GOOD = {"a": 1.0, "b": 2.0, "prior": 0.1}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "could not read"),
        ("{not json", "not valid JSON"),
        # Written before the model_id and the prior were stored: not trusted.
        ('{"a": 1.0, "b": 2.0}', "needs the keys 'model_id' and 'calibration'.*cryprint calibrate"),
        (json.dumps({"model_id": "m", "calibration": GOOD, "x": 1}), r"unknown keys \['x'\]"),
        (json.dumps({"model_id": "m", "calibration": {"a": 1.0, "b": 2.0}}), "exactly the keys"),
        (json.dumps({"model_id": "m", "calibration": {**GOOD, "a": "1"}}), "must be a number"),
        ('{"model_id": "m", "calibration": {"a": NaN, "b": 2.0, "prior": 0.1}}', "finite"),
        ("[1.0, 2.0]", "needs the keys"),
    ],
)
def test_bad_calibration_files_are_model_errors_naming_the_file(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "broken_calibration.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ModelError, match=message) as caught:
        load_calibration(path)
    assert "broken_calibration.json" in str(caught.value)


def test_calibrate_writes_the_calibration_and_its_reliability_plot(
    small_corpus: Path, model_folder: Path
) -> None:
    result = calibrate_model(model_folder, small_corpus)
    record = json.loads(result.path.read_text())
    assert record["model_id"] == model_identity(load_model(model_folder))
    assert record["fitted_on"] == {
        "split": "dev",
        "n_pairs": 16,
        "n_target": 4,
        "embedding": {"tta": 1, "trim": True, "as_norm": False},  # raw scores: no cohort
    }
    assert result.calibration.prior == 4 / 16
    assert load_calibration(result.path, record["model_id"]) == result.calibration
    assert result.plot == model_folder / RELIABILITY_PLOT_NAME
    image = imread(io.BytesIO(result.plot.read_bytes()), format="png")
    assert image.shape[:2] == (660, 660)  # 6 × 6 inches at 110 dpi
    # A deterministic fit: calibrating again gives the same plot.
    first = result.plot.read_bytes()
    assert calibrate_model(model_folder, small_corpus).plot.read_bytes() == first


def test_reliability_plot_draws_its_bins() -> None:
    rng = np.random.default_rng(0)
    probabilities = rng.random(500)
    labels = (rng.random(500) < probabilities).astype(int)
    calibrated = reliability_png(*reliability_bins(probabilities, labels), "calibrated")
    flipped = reliability_png(*reliability_bins(probabilities, 1 - labels), "calibrated")
    assert calibrated.startswith(b"\x89PNG\r\n\x1a\n")
    pixels = [imread(io.BytesIO(png), format="png") for png in (calibrated, flipped)]
    assert pixels[0].shape == pixels[1].shape
    assert not np.array_equal(pixels[0], pixels[1])  # the points are where the data put them
