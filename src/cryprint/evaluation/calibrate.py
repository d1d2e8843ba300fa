"""Fit a model's score calibration on labelled pairs and store it in its model folder.

``calibration.json`` (``P(same baby | score) = sigmoid(a * score + b)``, see
:mod:`cryprint.scoring.calibration`) is fitted on the raw cosine scores of the dev pairs, the
scores ``cryprint verify`` computes, and saved next to the weights so that verify reports a
probability. The probability assumes the dev pairs' share of same-baby pairs (1 in 40 on the
real data) as its prior.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryprint.data.layout import read_pairs
from cryprint.errors import DataError, ModelError
from cryprint.evaluation.embed import embed_split
from cryprint.evaluation.pairs import score_pairs
from cryprint.models.folder import CALIBRATION_NAME, ModelSpec, as_loaded
from cryprint.scoring import Calibration, fit_calibration, save_calibration


@dataclass(frozen=True)
class CalibrationResult:
    """The fitted calibration, where it was saved, and the trials it was fitted on."""

    calibration: Calibration
    path: Path
    split: str
    n_pairs: int
    n_target: int


def calibrate_model(
    model: ModelSpec,
    root: Path | str,
    split: str = "dev",
    *,
    device: str = "auto",
    progress: bool = False,
) -> CalibrationResult:
    """Fit logistic calibration on the labelled pairs of ``split`` and save
    ``calibration.json`` in the model folder.

    Args:
        model: a local model folder (or a model loaded from one).
        root: a CryCeleb-layout data directory.
        split: the labelled pairs to fit on (``dev``).
        device: ``auto``, ``cpu``, ``cuda``...
        progress: show progress bars.

    Raises:
        ModelError: the model is not a local folder (export it first).
        DataError: the pairs have no labels, or only one class.
    """
    if isinstance(model, str | Path):
        # Refuse before loading: a hub model would be downloaded for nothing.
        spec, path = str(model), Path(model).expanduser()
        looks_like_hub_id = spec.count("/") == 1 and not spec.startswith((".", "/", "~"))
        if path.is_file() or spec == "random" or (looks_like_hub_id and not path.exists()):
            _not_a_folder(spec)
    loaded = as_loaded(model)
    if loaded.kind != "folder" or loaded.folder is None:
        _not_a_folder(loaded.source)
    pairs = read_pairs(root, split)
    if "label" not in pairs.columns:
        raise DataError(f"{split}_pairs.csv has no label column: nothing to calibrate on")
    embeddings = embed_split(loaded, root, split, device=device, progress=progress)
    labels = pairs["label"].to_numpy()
    calibration = fit_calibration(score_pairs(embeddings, pairs), labels)
    path = loaded.folder / CALIBRATION_NAME
    save_calibration(path, calibration)
    return CalibrationResult(calibration, path, split, len(pairs), int(labels.sum()))


def _not_a_folder(source: str) -> None:
    raise ModelError(
        f"{source}: calibration is stored in a local model folder, and this model is not one. "
        "Export it first (cryprint export --model MODEL --out FOLDER), then calibrate FOLDER."
    )
