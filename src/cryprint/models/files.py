"""What a model folder holds, by name — importable without torch (the ONNX path needs it).

A model folder (``runs/NAME/best``, an export) is a SpeechBrain model folder plus cryprint's
records; :class:`FolderRef` names one without loading its weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CHECKPOINT_NAME = "embedding_model.ckpt"
HPARAMS_NAME = "hyperparams.yaml"
INFO_NAME = "cryprint.json"
# Written into a model folder by `cryprint evaluate --split dev` and `cryprint calibrate`.
EVALUATION_NAME = "evaluation.json"
CALIBRATION_NAME = "calibration.json"
# Written by `cryprint evaluate --split dev`: the AS-norm cohort (train-split embeddings).
COHORT_NAME = "cohort.npz"


@dataclass
class FolderRef:
    """A model known by its folder, without its weights loaded (as the ONNX backend runs it).
    Has the fields of :class:`cryprint.models.folder.LoadedModel` that thresholds need."""

    source: str
    kind: str
    folder: Path | None
