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

import numpy as np
import soundfile

from cryprint.data.activity import check_cry
from cryprint.data.audio import check_duration, read_audio
from cryprint.embedding import embed_waveforms
from cryprint.errors import AudioError, ConfigError, ModelError
from cryprint.evaluation.embed import embedder_of, model_identity
from cryprint.models.device import resolve_device
from cryprint.models.folder import (
    CALIBRATION_NAME,
    EVALUATION_NAME,
    LoadedModel,
    ModelSpec,
    as_loaded,
)
from cryprint.scoring import cosine_matrix, load_calibration

# Suffixes of the formats libsndfile reads (wav, flac, ogg, mp3, aiff, ...) and common aliases.
AUDIO_SUFFIXES = frozenset(
    {f".{name.lower()}" for name in soundfile.available_formats()}
    | {".aif", ".oga", ".opus", ".wave"}
)


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


def read_recording(path: Path | str) -> np.ndarray:
    """A recording as float32 mono 16 kHz [samples]: an audio file, or a folder's audio files
    (sorted by name, hidden files and other files ignored) concatenated.

    Raises:
        AudioError: missing path, no audio files in the folder, an unreadable/empty file, or
            less than 0.25 s of audio in all.
    """
    path = Path(path)
    try:
        kind = "folder" if path.is_dir() else "file" if path.exists() else None
    except OSError as error:  # a name too long to look up, a file used as a folder...
        raise AudioError(f"{path}: cannot be read ({error.strerror})") from error
    if kind == "folder":
        files = sorted(
            entry
            for entry in path.iterdir()
            if entry.is_file()
            and not entry.name.startswith(".")
            and entry.suffix.lower() in AUDIO_SUFFIXES
        )
        if not files:
            raise AudioError(
                f"{path}: no audio files in the folder (.wav, .flac, .ogg, .mp3 or another "
                "format libsndfile reads)"
            )
        waveform = np.concatenate([read_audio(file) for file in files])
        name = f"{path} ({len(files)} audio file(s))"
    elif kind == "file":
        waveform = read_audio(path)
        name = str(path)
    else:
        raise AudioError(f"{path}: no such audio file or folder")
    check_duration(waveform, name)
    check_cry(waveform, name)
    return waveform


def stored_threshold(model: LoadedModel) -> tuple[float, str]:
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
    if record.get("model_id") != model_identity(model):
        raise ModelError(
            f"{path} was computed for other weights (the model changed since): {advice}"
        )
    threshold = record["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ModelError(f"{path}: threshold must be a number, got {threshold!r}")
    return float(threshold), f"dev EER threshold from {path}"


def verify(
    model: ModelSpec,
    a: Path | str,
    b: Path | str,
    threshold: float | None = None,
    *,
    device: str = "cpu",
) -> VerifyResult:
    """Decide whether recordings ``a`` and ``b`` are of the same baby.

    Args:
        model: a model spec (folder, checkpoint, hub id) or a loaded model.
        a, b: audio files or folders of segments (see :func:`read_recording`).
        threshold: same baby when the cosine score is >= this; None to use the model folder's
            dev EER threshold (``evaluation.json``).
        device: ``auto``, ``cpu``, ``cuda``...

    Returns:
        A :class:`VerifyResult`.

    Raises:
        ConfigError: no threshold given and none stored. AudioError: bad or too short audio.
        ModelError: bad model folder, stale evaluation.json, invalid calibration.json.
    """
    torch_device = resolve_device(device)
    loaded = as_loaded(model)
    if threshold is None:
        threshold, source = stored_threshold(loaded)
    else:
        source = "given"
    if not math.isfinite(threshold):
        raise ConfigError(f"threshold must be a finite number, got {threshold}")
    waveforms = [read_recording(a), read_recording(b)]
    embedder = embedder_of(loaded)
    embedder.to(torch_device)
    # One recording per forward pass: no padding, so a side's embedding does not depend on the
    # length of the other side.
    embeddings = embed_waveforms(embedder, waveforms, torch_device, max_batch_size=1)
    score = float(cosine_matrix(embeddings[:1], embeddings[1:])[0, 0])
    probability = None
    if loaded.folder is not None and (loaded.folder / CALIBRATION_NAME).is_file():
        calibration = load_calibration(loaded.folder / CALIBRATION_NAME)
        probability = float(calibration.probability(score))
    return VerifyResult(score, float(threshold), source, score >= threshold, probability)
