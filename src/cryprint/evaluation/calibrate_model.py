"""Fit a model's score calibration on labelled pairs and store it in its model folder
(``cryprint calibrate``; the file itself is read and written by
:mod:`cryprint.inference.operating_point`).

``calibration.json`` (``P(same baby | score) = sigmoid(a * score + b)``, see
:mod:`cryprint.scoring.calibration`) is fitted on the raw cosine scores of the dev pairs, the
scores ``cryprint verify`` computes, and saved next to the weights with the weights'
``model_id``, so that verify reports a probability and refuses a calibration of other weights.
Its ``prior`` is the fit pairs' share of same-baby pairs (1 in 40 on the real data); verify
moves the probability to the prior of its operating point (:mod:`cryprint.scoring.verdict`).
Beside it, ``calibration_reliability.png``: predicted P against the observed same-baby rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cryprint.errors import DataError, ModelError
from cryprint.inference.operating_point import save_calibration
from cryprint.inference.options import EmbeddingOptions
from cryprint.io import atomic_write_bytes
from cryprint.models.files import CALIBRATION_NAME
from cryprint.scoring import Calibration, fit_calibration, reliability_bins

if TYPE_CHECKING:  # the model-loading side imports torch: verify's ONNX path reads calibrations
    from cryprint.models.folder import ModelSpec

# Written beside calibration.json by calibrate_model.
RELIABILITY_PLOT_NAME = "calibration_reliability.png"


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
        embedding: how recordings are embedded (:class:`~cryprint.EmbeddingOptions`;
            None: the defaults): as verify will embed them.
        progress: show progress bars.

    Raises:
        ModelError: the model is not a local folder (export it first).
        DataError: the pairs have no labels, or only one class.
        OutputError: the model folder cannot be written.
    """
    from cryprint.data.layout import read_pairs
    from cryprint.evaluation.pairs import pair_indices
    from cryprint.inference.api import embedder_for
    from cryprint.inference.splits import embed_split
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
    # Scores as verify makes them: raw cosine, or AS-norm where the model normalises.
    embedder = embedder_for(loaded, embedding)
    embeddings = embed_split(embedder, root, split, progress=progress)
    labels = pairs["label"].to_numpy()
    scores = embedder.score_pairs(embeddings.embeddings, pair_indices(embeddings, pairs))
    calibration = fit_calibration(scores, labels)
    n_target = int(labels.sum())
    name = "/".join(Path(loaded.source).parts[-2:])  # runs/triplet/best: "triplet/best"
    title = (
        f"{name}\ncalibration of {embedder.scoring} scores on {len(pairs)} {split} "
        f"pairs ({n_target} same baby, prior {calibration.prior:.3g})"
    )
    plot = _write_reliability_plot(
        loaded.folder / RELIABILITY_PLOT_NAME, calibration.probability(scores), labels, title
    )
    fitted_on = {
        "split": split,
        "n_pairs": len(pairs),
        "n_target": n_target,
        "embedding": embedder.score_basis,
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
