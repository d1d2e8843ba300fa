"""Is recording A the same baby as recording B? One trial, from audio files or folders.

Each side is an audio file (WAV, FLAC, ... any rate and channel count: it is downmixed to mono
and resampled to 16 kHz) or a folder of cry segments (every audio file in it, sorted by name,
concatenated, as evaluation joins a recording's segments). The score is the cosine similarity
of the two embeddings; it is decided at one operating point (:func:`operating_point`): a given
threshold, or the threshold where P(same baby) = 0.5 at a given prior, or a threshold that
``cryprint evaluate --split dev`` stored in the model folder (the dev EER threshold, or the one
for a 1 % false-acceptance rate). With the folder's ``calibration.json`` (``cryprint
calibrate``) the verdict carries P(same baby) at that point's prior, which is >= 0.5 exactly
when the score reaches the threshold (:mod:`cryprint.scoring.verdict`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryprint.errors import ConfigError, ModelError
from cryprint.evaluation.calibrate import load_calibration
from cryprint.models.files import CALIBRATION_NAME, EVALUATION_NAME, FolderRef
from cryprint.options import EmbeddingOptions, check_score_basis, embedder_for

if TYPE_CHECKING:  # loading models imports torch; the ONNX path verifies without it
    from cryprint.models.folder import LoadedModel, ModelSpec

    # A model as thresholds need it: its folder, kind and source (weights loaded or not).
    ModelRef = LoadedModel | FolderRef
from cryprint.scoring import Calibration
from cryprint.scoring.verdict import OperatingPoint, Verdict

logger = logging.getLogger(__name__)

__all__ = [
    "STORED_POINTS",
    "OperatingPoint",
    "Verdict",
    "VerifyResult",
    "operating_point",
    "stored_threshold",
    "verify",
]

VerifyResult = Verdict  # its name before issue #11 item 6

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
            (:attr:`~cryprint.options.EmbeddingOptions.score_basis`); None: not checked.

    Raises:
        ConfigError: an unknown point name, no model folder, no evaluation.json, no such
            threshold in it, or one measured on recordings embedded otherwise than ``basis``.
        ModelError: evaluation.json is unreadable or belongs to other weights.
    """
    if point not in STORED_POINTS:
        raise ConfigError(f"unknown operating point {point!r}; choose from {sorted(STORED_POINTS)}")
    record, path, advice = _evaluation_record(model, model_id)
    entry = record.get("thresholds", {}).get(point)
    if entry is None and point == "eer" and "threshold" in record:
        entry = {"threshold": record["threshold"]}  # written before "thresholds" existed
    if not isinstance(entry, dict) or "threshold" not in entry:
        raise ConfigError(f"{path} holds no {STORED_POINTS[point]}: {advice}")
    threshold = entry["threshold"]
    if threshold is None:
        raise ConfigError(
            f"{path} holds no finite {STORED_POINTS[point]} (a different-baby pair has the "
            "highest dev score): choose another --operating-point or pass --threshold"
        )
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ModelError(f"{path}: threshold must be a number, got {threshold!r}")
    check_score_basis(
        entry.get("embedding"),
        basis,
        f"the {STORED_POINTS[point]} in {path}",
        "evaluate the dev split again with these options, or pass --threshold",
    )
    return float(threshold), f"{STORED_POINTS[point]} from {path}"


def _evaluation_record(model: ModelRef, model_id: str | None) -> tuple[dict[str, Any], Path, str]:
    """The model folder's evaluation.json, checked to be of these weights; its path; advice."""
    advice = (
        "run `cryprint evaluate --model FOLDER --data DIR --split dev` first (it stores the dev "
        "thresholds in the model folder), or pass --threshold"
    )
    if model.folder is None or model.kind != "folder":
        raise ConfigError(
            f"{model.source} is not a local model folder, so it has no stored threshold: {advice}"
        )
    path = model.folder / EVALUATION_NAME
    if not path.is_file():
        raise ConfigError(f"no threshold known for {model.folder} (no {EVALUATION_NAME}): {advice}")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise ModelError(f"{path}: unreadable ({error}); {advice}") from error
    if not isinstance(record, dict) or not ({"threshold", "thresholds"} & set(record)):
        raise ConfigError(f"{path} holds no dev threshold: {advice}")
    if record.get("model_id") != (model_id or _identity(model)):
        raise ModelError(
            f"{path} was computed for other weights (the model changed since): {advice}"
        )
    if not isinstance(record.get("thresholds", {}), dict):
        raise ModelError(f"{path}: 'thresholds' must be an object")
    return record, path, advice


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
        basis: how the scores are embedded (:attr:`~cryprint.options.EmbeddingOptions.
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
        for name, value in (
            ("--threshold", threshold),
            ("--prior", prior),
            ("--operating-point", point),
        )
        if value is not None
    ]
    if len(given) > 1:
        raise ConfigError(f"{' and '.join(given)} each set the operating point: give one")
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
                "`cryprint calibrate --model FOLDER --data DIR`, or pass --threshold"
            )
        return OperatingPoint.at_prior(
            calibration, prior, "given", str(path), inconclusive=inconclusive
        )
    if threshold is None:
        threshold, source = stored_threshold(model, model_id, point or "eer", basis)
    else:
        source = "given"
    return OperatingPoint(threshold, source, calibration, inconclusive=inconclusive)


def verify(
    model: ModelSpec,
    a: Path | str,
    b: Path | str,
    threshold: float | None = None,
    *,
    prior: float | None = None,
    point: str | None = None,
    inconclusive: float | None = None,
    embedding: EmbeddingOptions | None = None,
    store: bool | Path | str = True,
) -> Verdict:
    """Decide whether recordings ``a`` and ``b`` are of the same baby (one-off: to verify many
    pairs, load the model once with :class:`cryprint.CryPrint`).

    Args:
        model: a model spec (folder, checkpoint, hub id) or a loaded model.
        a, b: audio files or folders of segments (see :func:`cryprint.data.inputs.read_recording`).
        threshold, prior, point, inconclusive: the operating point (see
            :func:`operating_point`); none of them: the model folder's dev EER threshold.
        embedding: how recordings are embedded (device, backend, precision, TTA, trimming;
            None: the defaults). store: the embedding store (see :class:`cryprint.CryPrint`).

    Raises:
        ConfigError: no threshold given and none stored, a bad operating point, or a stored
            one measured on recordings embedded with other TTA views or trimming.
        AudioError: bad or too short audio, or no cry in it.
        ModelError: bad model folder, stale evaluation.json, invalid or stale calibration.json.
    """
    embedder = embedder_for(model, embedding, store)
    return embedder.verify(a, b, threshold, prior=prior, point=point, inconclusive=inconclusive)
