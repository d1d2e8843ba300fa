"""Where a verdict is decided: the thresholds and the calibration a model folder holds.

A verdict compares a cosine score with one operating point (:func:`operating_point`): a given
threshold, or the threshold where P(same baby) = 0.5 at a given prior, or a threshold that
``cryprint evaluate --split dev`` stored in the model folder's ``evaluation.json`` (the dev EER
threshold, or the one for a 1 % false-acceptance rate). With the folder's ``calibration.json``
(``cryprint calibrate``; read and written here) the verdict carries P(same baby) at that point's
prior, which is >= 0.5 exactly when the score reaches the threshold
(:mod:`cryprint.scoring.verdict`). Torch-free: the ONNX path decides without loading torch.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cryprint.errors import FIELD, ConfigError, ModelError
from cryprint.inference.options import check_score_basis
from cryprint.io import atomic_write_text, read_json
from cryprint.models.files import CALIBRATION_NAME, EVALUATION_NAME, FolderRef
from cryprint.scoring import Calibration
from cryprint.scoring.verdict import OperatingPoint, Verdict

if TYPE_CHECKING:  # loading models imports torch; the ONNX path verifies without it
    from cryprint.models.folder import LoadedModel

    # A model as thresholds need it: its folder, kind and source (weights loaded or not).
    ModelRef = LoadedModel | FolderRef

logger = logging.getLogger(__name__)

# Where evaluation.json keeps the thresholds of raw cosine scores and of AS-norm scores.
THRESHOLD_KEYS = {False: "thresholds", True: "asnorm_thresholds"}
# The advice that ends many refusals: a threshold given outright needs nothing stored.
_PASS_THRESHOLD = {"threshold": FIELD}
_THRESHOLD_ADVICE = (
    "run `cryprint evaluate --model FOLDER --data DIR --split dev` first (it stores the dev "
    "thresholds in the model folder), or pass {threshold}"
)
_CALIBRATE_ADVICE = "re-run `cryprint calibrate --model FOLDER --data DIR`"

__all__ = [
    "STORED_POINTS",
    "THRESHOLD_KEYS",
    "OperatingPoint",
    "Verdict",
    "evaluation_record",
    "load_calibration",
    "model_calibration",
    "operating_point",
    "save_calibration",
    "stored_nontarget_scores",
    "stored_threshold",
]

# The thresholds `cryprint evaluate --split dev` stores in evaluation.json ("thresholds"), by
# the name `--operating-point` takes, with how verify describes them.
STORED_POINTS = {
    "eer": "dev EER threshold",
    "far1": "dev threshold for a 1 % false-acceptance rate",
}


def _identity(model: ModelRef) -> str:
    """The model's identity, computed from its weights (only a loaded model has them)."""
    from cryprint.models.folder import model_identity

    if isinstance(model, FolderRef):
        raise ModelError(f"{model.source}: the identity of its weights is not known")
    return model_identity(model)


def stored_threshold(
    model: ModelRef,
    model_id: str | None = None,
    point: str = "eer",
    basis: dict[str, Any] | None = None,
) -> tuple[float, str]:
    """A threshold stored in the model folder's ``evaluation.json`` and a description.

    Args:
        model: the loaded model (its folder holds ``evaluation.json``).
        model_id: its :func:`model_identity`, when already known.
        point: a name of :data:`STORED_POINTS`: ``eer`` or ``far1``.
        basis: how the scores it will be applied to are embedded
            (:attr:`~cryprint.inference.options.EmbeddingOptions.score_basis`); None: not checked.

    Raises:
        ConfigError: an unknown point name, no model folder, no evaluation.json, no such
            threshold in it, or one measured on recordings embedded otherwise than ``basis``.
        ModelError: evaluation.json is unreadable or belongs to other weights.
    """
    if point not in STORED_POINTS:
        raise ConfigError(f"unknown operating point {point!r}; choose from {sorted(STORED_POINTS)}")
    record, path = evaluation_record(model, model_id)
    normalised = bool(basis and basis.get("as_norm"))
    entry = record.get(THRESHOLD_KEYS[normalised], {}).get(point)
    if entry is None and point == "eer" and "threshold" in record and not normalised:
        entry = {"threshold": record["threshold"]}  # written before "thresholds" existed
    if not isinstance(entry, dict) or "threshold" not in entry:
        scores = "AS-norm scores" if normalised else "raw cosine scores"
        raise ConfigError(
            f"{path} holds no {STORED_POINTS[point]} of {scores}: {_THRESHOLD_ADVICE}",
            fields=_PASS_THRESHOLD,
        )
    threshold = entry["threshold"]
    if threshold is None:
        raise ConfigError(
            f"{path} holds no finite {STORED_POINTS[point]} (a different-baby pair has the "
            "highest dev score): choose another {point} or pass {threshold}",
            fields={"point": FIELD, "threshold": FIELD},
        )
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ModelError(f"{path}: threshold must be a number, got {threshold!r}")
    check_score_basis(
        entry.get("embedding"),
        basis,
        f"the {STORED_POINTS[point]} in {path}",
        "evaluate the dev split again with these options, or pass {threshold}",
    )
    return float(threshold), f"{STORED_POINTS[point]} from {path}"


def stored_nontarget_scores(
    model: ModelRef, model_id: str | None = None, basis: dict[str, Any] | None = None
) -> tuple[np.ndarray, str]:
    """The dev different-baby scores ``evaluate --split dev`` kept in the model folder, of the
    kind ``basis`` makes (raw cosine or AS-norm), and where they came from.

    Raises:
        ConfigError: none stored (an older evaluation.json), or measured on scores made
            otherwise than ``basis``. ModelError: evaluation.json unreadable or of other weights.
    """
    record, path = evaluation_record(model, model_id)
    normalised = bool(basis and basis.get("as_norm"))
    kind = "as_norm" if normalised else "cosine"
    stored = record.get("nontarget_scores", {})
    scores = stored.get(kind) if isinstance(stored, dict) else None
    if not isinstance(scores, list) or not scores:
        raise ConfigError(
            f"{path} holds no dev different-baby scores ({kind}): re-run `cryprint evaluate "
            "--model FOLDER --data DIR --split dev`, or pass {threshold}",
            fields=_PASS_THRESHOLD,
        )
    measured_on = record.get(THRESHOLD_KEYS[normalised], {}).get("eer", {}).get("embedding")
    check_score_basis(measured_on, basis, f"the dev scores in {path}", _THRESHOLD_ADVICE)
    try:
        values = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ModelError(f"{path}: nontarget_scores must be numbers") from error
    if values.ndim != 1 or not np.all(np.isfinite(values)):
        raise ModelError(f"{path}: nontarget_scores must be finite numbers")
    return values, f"{len(values)} dev different-baby scores in {path}"


def evaluation_record(model: ModelRef, model_id: str | None) -> tuple[dict[str, Any], Path]:
    """The model folder's ``evaluation.json``, checked to be of these weights, and its path.

    Raises:
        ConfigError: no local model folder, or no evaluation.json in it.
        ModelError: unreadable, not an evaluation record, or of other weights.
    """
    if model.folder is None or model.kind != "folder":
        raise ConfigError(
            f"{model.source} is not a local model folder, so it has no stored threshold: "
            f"{_THRESHOLD_ADVICE}",
            fields=_PASS_THRESHOLD,
        )
    path = model.folder / EVALUATION_NAME
    if not path.is_file():
        raise ConfigError(
            f"no threshold known for {model.folder} (no {EVALUATION_NAME}): {_THRESHOLD_ADVICE}",
            fields=_PASS_THRESHOLD,
        )
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise ModelError(
            f"{path}: unreadable ({error}); {_THRESHOLD_ADVICE}", fields=_PASS_THRESHOLD
        ) from error
    if not isinstance(record, dict) or not ({"threshold", "thresholds"} & set(record)):
        raise ConfigError(
            f"{path} holds no dev threshold: {_THRESHOLD_ADVICE}", fields=_PASS_THRESHOLD
        )
    if record.get("model_id") != (model_id or _identity(model)):
        raise ModelError(
            f"{path} was computed for other weights (the model changed since): {_THRESHOLD_ADVICE}",
            fields=_PASS_THRESHOLD,
        )
    for key in THRESHOLD_KEYS.values():
        if not isinstance(record.get(key, {}), dict):
            raise ModelError(f"{path}: '{key}' must be an object")
    return record, path


def model_calibration(
    model: ModelRef, model_id: str | None = None, basis: dict[str, Any] | None = None
) -> tuple[Calibration | None, Path | None]:
    """The model folder's calibration and its path; ``(None, None)`` when it has none.

    Raises:
        ModelError: calibration.json is invalid or was fitted for other weights.
        ConfigError: it was fitted on recordings embedded otherwise than ``basis``.
    """
    if model.folder is None or not (model.folder / CALIBRATION_NAME).is_file():
        return None, None
    path = model.folder / CALIBRATION_NAME
    return load_calibration(path, model_id or _identity(model), basis), path


def operating_point(
    model: ModelRef,
    threshold: float | None = None,
    model_id: str | None = None,
    *,
    prior: float | None = None,
    point: str | None = None,
    inconclusive: float | None = None,
    basis: dict[str, Any] | None = None,
) -> OperatingPoint:
    """The model's operating point, with the folder's calibration when it has one.

    One of: ``threshold`` (given; the prior behind the probability is then the one it
    implies), else ``prior`` (the threshold is where P(same baby) = 0.5 at it; needs a
    calibration), else the stored threshold named ``point`` (default ``eer``; see
    :data:`STORED_POINTS`).

    Args:
        model: the loaded model. threshold: a cosine score. model_id: its identity, if known.
        prior: P(same baby) before the score is seen, in (0, 1).
        point: ``eer`` or ``far1``.
        inconclusive: ``q`` in (0, 0.5): probabilities in ``(q, 1 − q)`` give the verdict
            "inconclusive"; needs a calibration.
        basis: how the scores are embedded (:attr:`~cryprint.inference.options.EmbeddingOptions.
            score_basis`): a stored threshold measured otherwise is refused, and so is a
            calibration fitted otherwise when the prior or the band needs it (else it is left
            out, with a warning: the verdict then has no probability).

    Raises:
        ConfigError: more than one of threshold, prior and point; a prior or an inconclusive
            band without calibration; no threshold stored; a non-finite threshold.
        ModelError: a stale evaluation.json, or an invalid or stale calibration.json.
    """
    given = [
        name
        for name, value in (("threshold", threshold), ("prior", prior), ("point", point))
        if value is not None
    ]
    if len(given) > 1:
        raise ConfigError(
            " and ".join(f"{{{name}}}" for name in given)
            + " each set the operating point: give one",
            fields=dict.fromkeys(given, FIELD),
        )
    if point is not None and point not in STORED_POINTS:
        raise ConfigError(f"unknown operating point {point!r}; choose from {sorted(STORED_POINTS)}")
    try:
        calibration, path = model_calibration(model, model_id, basis)
    except ConfigError as fitted_otherwise:
        if prior is not None or inconclusive is not None:
            raise  # they need the calibration
        # The decision needs none: it stands, without a probability that would be off.
        logger.warning("%s. No P(same baby) is given.", fitted_otherwise)
        calibration, path = None, None
    if prior is not None:
        if calibration is None:
            raise ConfigError(
                f"{model.source} has no calibration, so a prior cannot set the threshold: run "
                "`cryprint calibrate --model FOLDER --data DIR`, or pass {threshold}",
                fields=_PASS_THRESHOLD,
            )
        return OperatingPoint.at_prior(
            calibration, prior, "given", str(path), inconclusive=inconclusive
        )
    if threshold is None:
        threshold, source = stored_threshold(model, model_id, point or "eer", basis)
    else:
        source = "given"
    return OperatingPoint(threshold, source, calibration, inconclusive=inconclusive)


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
        basis: how the scores it will calibrate are embedded (:attr:`~cryprint.inference.options.
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
            f"'calibration' (files from older versions lack them): {_CALIBRATE_ADVICE}"
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
            f"since): {_CALIBRATE_ADVICE}"
        )
    fitted_on = data.get("fitted_on")
    check_score_basis(
        fitted_on.get("embedding") if isinstance(fitted_on, dict) else None,
        basis,
        f"the calibration in {source}",
        f"{_CALIBRATE_ADVICE} with these options",
    )
    return calibration
