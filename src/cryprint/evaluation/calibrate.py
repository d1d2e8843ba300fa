"""Fit a model's score calibration on labelled pairs and store it in its model folder.

``calibration.json`` (``P(same baby | score) = sigmoid(a * score + b)``, see
:mod:`cryprint.scoring.calibration`) is fitted on the raw cosine scores of the dev pairs, the
scores ``cryprint verify`` computes, and saved next to the weights with the weights'
``model_id``, so that verify reports a probability and refuses a calibration of other weights.
Its ``prior`` is the fit pairs' share of same-baby pairs (1 in 40 on the real data); verify
moves the probability to the prior of its operating point (:mod:`cryprint.scoring.verdict`).
Beside it, ``calibration_reliability.png``: predicted P against the observed same-baby rate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cryprint.errors import DataError, ModelError
from cryprint.io import atomic_write_bytes, atomic_write_text, read_json
from cryprint.models.files import CALIBRATION_NAME
from cryprint.options import EmbeddingOptions, check_score_basis
from cryprint.scoring import Calibration, fit_calibration, reliability_bins

if TYPE_CHECKING:  # the model-loading side imports torch: verify's ONNX path reads calibrations
    from cryprint.models.folder import ModelSpec

# Written beside calibration.json by calibrate_model.
RELIABILITY_PLOT_NAME = "calibration_reliability.png"
_ADVICE = "re-run `cryprint calibrate --model FOLDER --data DIR`"


@dataclass(frozen=True)
class CalibrationResult:
    """The fitted calibration, where it and its reliability plot were saved, and the trials it
    was fitted on."""

    calibration: Calibration
    path: Path
    split: str
    n_pairs: int
    n_target: int
    plot: Path | None = None


def save_calibration(
    path: Path | str,
    calibration: Calibration,
    model_id: str,
    fitted_on: dict[str, Any] | None = None,
) -> Path:
    """Write ``calibration.json`` atomically: the weights' ``model_id``, the calibration
    (``a``, ``b``, ``prior``) and what it was fitted on.

    Args:
        path: destination ``.json`` file.
        calibration: what to write.
        model_id: :func:`~cryprint.models.folder.model_identity` of the weights it calibrates.
        fitted_on: e.g. ``{"split": "dev", "n_pairs": 16, "n_target": 4}``.

    Raises:
        OutputError: the file could not be written (the old one, if any, is kept).
    """
    record = {"model_id": model_id, "calibration": calibration.to_dict()}
    if fitted_on is not None:
        record["fitted_on"] = fitted_on
    return atomic_write_text(path, json.dumps(record, indent=2, allow_nan=False) + "\n")


def load_calibration(
    path: Path | str, model_id: str | None = None, basis: dict[str, Any] | None = None
) -> Calibration:
    """Read a calibration written by :func:`save_calibration`.

    Args:
        path: the ``.json`` file.
        model_id: the weights it must belong to; None to check only the file's form.
        basis: how the scores it will calibrate are embedded (:attr:`~cryprint.options.
            EmbeddingOptions.score_basis`): one fitted otherwise is refused (ConfigError).

    Raises:
        ModelError: missing, unreadable, not JSON, not a calibration (an older file without
            ``model_id`` and ``prior`` included), or fitted for other weights; the message
            names the file.
    """
    source = Path(path)
    data = read_json(source, "calibration file", ModelError)
    if not isinstance(data, dict) or not {"model_id", "calibration"} <= set(data):
        raise ModelError(
            f"calibration file {source} is invalid: it needs the keys 'model_id' and "
            f"'calibration' (files from older versions lack them): {_ADVICE}"
        )
    unknown = set(data) - {"model_id", "calibration", "fitted_on"}
    if unknown:
        raise ModelError(f"calibration file {source} is invalid: unknown keys {sorted(unknown)}")
    try:
        calibration = Calibration.from_dict(data["calibration"])
    except ModelError as error:
        raise ModelError(f"calibration file {source} is invalid: {error}") from error
    if model_id is not None and data["model_id"] != model_id:
        raise ModelError(
            f"calibration file {source} was fitted for other weights (the model changed "
            f"since): {_ADVICE}"
        )
    fitted_on = data.get("fitted_on")
    check_score_basis(
        fitted_on.get("embedding") if isinstance(fitted_on, dict) else None,
        basis,
        f"the calibration in {source}",
        f"{_ADVICE} with these options",
    )
    return calibration


def calibrate_model(
    model: ModelSpec,
    root: Path | str,
    split: str = "dev",
    *,
    embedding: EmbeddingOptions | None = None,
    progress: bool = False,
) -> CalibrationResult:
    """Fit logistic calibration on the labelled pairs of ``split``; save ``calibration.json``
    and its reliability plot (:data:`RELIABILITY_PLOT_NAME`) in the model folder.

    Args:
        model: a local model folder (or a model loaded from one).
        root: a CryCeleb-layout data directory.
        split: the labelled pairs to fit on (``dev``).
        embedding: how recordings are embedded (:class:`cryprint.options.EmbeddingOptions`;
            None: the defaults): as verify will embed them.
        progress: show progress bars.

    Raises:
        ModelError: the model is not a local folder (export it first).
        DataError: the pairs have no labels, or only one class.
        OutputError: the model folder cannot be written.
    """
    from cryprint.data.layout import read_pairs
    from cryprint.evaluation.embed import embed_split
    from cryprint.evaluation.pairs import score_pairs
    from cryprint.models.folder import as_loaded

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
    embeddings = embed_split(loaded, root, split, embedding=embedding, progress=progress)
    labels = pairs["label"].to_numpy()
    scores = score_pairs(embeddings, pairs)
    calibration = fit_calibration(scores, labels)
    n_target = int(labels.sum())
    title = (
        f"{loaded.source}\ncalibration on {len(pairs)} {split} pairs ({n_target} same baby, "
        f"prior {calibration.prior:.3g})"
    )
    plot = _write_reliability_plot(
        loaded.folder / RELIABILITY_PLOT_NAME, calibration.probability(scores), labels, title
    )
    fitted_on = {
        "split": split,
        "n_pairs": len(pairs),
        "n_target": n_target,
        "embedding": (embedding or EmbeddingOptions()).score_basis,
    }
    path = save_calibration(
        loaded.folder / CALIBRATION_NAME, calibration, embeddings.model_id, fitted_on
    )
    return CalibrationResult(calibration, path, split, len(pairs), n_target, plot)


def _write_reliability_plot(
    path: Path, probabilities: np.ndarray, labels: np.ndarray, title: str
) -> Path:
    # Imported here: matplotlib is slow to import, and verify imports this module.
    from cryprint.evaluation.plots import reliability_png

    predicted, observed, counts = reliability_bins(probabilities, labels)
    return atomic_write_bytes(path, reliability_png(predicted, observed, counts, title))


def _not_a_folder(source: str) -> None:
    raise ModelError(
        f"{source}: calibration is stored in a local model folder, and this model is not one. "
        "Export it first (cryprint export --model MODEL --out FOLDER), then calibrate FOLDER."
    )
