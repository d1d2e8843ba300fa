"""The tiny training recipe shared by the training and reliability tests: a tiny ECAPA and short
crops, a few seconds per epoch on 2 CPU cores."""

from typing import Any

TINY_TRAINING: dict[str, Any] = {
    "init": "random",
    "channels": 16,
    "batch_babies": 4,
    "crops_per_baby": 3,
    "crop_min_seconds": 1.0,
    "crop_max_seconds": 1.5,
    "validation_fraction": 0.3,
    "validation_batches": 1,
    "seed": 0,
}
