"""Is recording A the same baby as recording B? One trial, from audio files or folders.

Each side is an audio file (WAV, FLAC, ... any rate and channel count: it is downmixed to mono
and resampled to 16 kHz) or a folder of cry segments (every audio file in it, sorted by name,
concatenated, as evaluation joins a recording's segments). The score is the cosine similarity
of the two embeddings; it is compared with a threshold — the one given, else the dev EER
threshold that ``cryprint evaluate --split dev`` stored in the model folder — and turned into a
probability when the model folder holds a ``calibration.json`` (``cryprint calibrate``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryprint.errors import ConfigError, ModelError
from cryprint.models.folder import (
    CALIBRATION_NAME,
    EVALUATION_NAME,
    LoadedModel,
    ModelSpec,
    model_identity,
)
from cryprint.scoring import Calibration, load_calibration


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of one trial.

    score: cosine similarity of A and B, in [-1, 1]. threshold: same baby when
    ``score >= threshold``. threshold_source: where the threshold came from. same_baby: the
    decision. probability: P(same baby) from the model's calibration, None without one.
    """

    score: float
    threshold: float
    threshold_source: str
    same_baby: bool
    probability: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stored_threshold(model: LoadedModel, model_id: str | None = None) -> tuple[float, str]:
    """The dev EER threshold in the model folder's ``evaluation.json`` and a description.

    Raises:
        ConfigError: no model folder, no evaluation.json, or no dev threshold in it.
        ModelError: evaluation.json is unreadable or belongs to other weights.
    """
    advice = (
        "run `cryprint evaluate --model FOLDER --data DIR --split dev` first (it stores the dev "
        "EER threshold in the model folder), or pass --threshold"
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
    if not isinstance(record, dict) or "threshold" not in record:
        raise ConfigError(f"{path} holds no dev threshold: {advice}")
    if record.get("model_id") != (model_id or model_identity(model)):
        raise ModelError(
            f"{path} was computed for other weights (the model changed since): {advice}"
        )
    threshold = record["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ModelError(f"{path}: threshold must be a number, got {threshold!r}")
    return float(threshold), f"dev EER threshold from {path}"


@dataclass(frozen=True)
class OperatingPoint:
    """How a score becomes a decision: same baby when ``score >= threshold``."""

    threshold: float
    source: str
    calibration: Calibration | None = None

    def decide(self, score: float) -> VerifyResult:
        probability = None
        if self.calibration is not None:
            probability = float(self.calibration.probability(score))
        return VerifyResult(
            score, self.threshold, self.source, score >= self.threshold, probability
        )


def operating_point(
    model: LoadedModel, threshold: float | None = None, model_id: str | None = None
) -> OperatingPoint:
    """The model's operating point: the given threshold, else the dev EER threshold stored in
    its folder; with the folder's calibration when it has one.

    Raises:
        ConfigError: no threshold given and none stored, or a non-finite threshold.
        ModelError: a stale evaluation.json or an invalid calibration.json.
    """
    if threshold is None:
        threshold, source = stored_threshold(model, model_id)
    else:
        source = "given"
    if not math.isfinite(threshold):
        raise ConfigError(f"threshold must be a finite number, got {threshold}")
    calibration = None
    if model.folder is not None and (model.folder / CALIBRATION_NAME).is_file():
        calibration = load_calibration(model.folder / CALIBRATION_NAME)
    return OperatingPoint(float(threshold), source, calibration)


def verify(
    model: ModelSpec,
    a: Path | str,
    b: Path | str,
    threshold: float | None = None,
    *,
    device: str = "cpu",
    store: bool | Path | str = True,
) -> VerifyResult:
    """Decide whether recordings ``a`` and ``b`` are of the same baby (one-off: to verify many
    pairs, load the model once with :class:`cryprint.CryPrint`).

    Args:
        model: a model spec (folder, checkpoint, hub id) or a loaded model.
        a, b: audio files or folders of segments (see :func:`cryprint.data.inputs.read_recording`).
        threshold: same baby when the cosine score is >= this; None to use the model folder's
            dev EER threshold (``evaluation.json``).
        device: ``auto``, ``cpu``, ``cuda``...
        store: the embedding store (see :class:`cryprint.CryPrint`).

    Raises:
        ConfigError: no threshold given and none stored. AudioError: bad or too short audio, or
            no cry in it. ModelError: bad model folder, stale evaluation.json, invalid
            calibration.json.
    """
    from cryprint.api import CryPrint

    return CryPrint(model, device=device, store=store).verify(a, b, threshold=threshold)
