"""Named recipes: what ``cryprint demo --recipe NAME`` (and ``--full``) changes in training and
evaluation. Torch-free, so the CLI can list them in ``--help`` without importing torch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

# The CPU demo's training epochs (cryprint.demo.DEMO_TRAINING): here, torch-free, for the CLI.
DEMO_EPOCHS = 30


@dataclass(frozen=True)
class Recipe:
    """What a recipe changes: training options (``TrainConfig`` keys) and the test-time
    augmentation views every evaluation and the submission embed with."""

    training: Mapping[str, Any]
    tta: int
    summary: str

    def __post_init__(self) -> None:
        # Read-only: RECIPES is shared by every caller.
        object.__setattr__(self, "training", MappingProxyType(dict(self.training)))


# ``--recipe``: the reference (3rd-place) recipe as it is, or with what the 1st-place
# CryCeleb2023 system added: test-time augmentation and the dev babies' birth recordings.
RECIPES = {
    "reference": Recipe(
        {},
        1,
        "the reference triplet recipe (schedule: plateau with --full, as published; "
        "cosine in the CPU demo, measured better per CPU-minute)",
    ),
    "winners": Recipe(
        {"train_on": "train+dev-B"},
        5,
        "the 1st-place additions: train on train + dev births (train_on: train+dev-B), "
        "embed with 5 test-time augmentation views (schedule as reference)",
    ),
}
