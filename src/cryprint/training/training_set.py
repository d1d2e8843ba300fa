"""What a run trains and validates on: the train split's babies split at random into training
and validation babies, the method's crop batches (augmented or not), and the dev recordings that
``train_on`` adds."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from cryprint.data.batches import CropBatches, PKSampler
from cryprint.data.corpus import (
    Corpus,
    Recording,
    baseline_groups,
    recordings,
    split_babies,
    unified_groups,
)
from cryprint.training.augment import AugmentedBatches
from cryprint.training.augment_settings import AugmentSettings, augment_settings
from cryprint.training.config import TrainConfig, dev_warning
from cryprint.training.distributed import Distributed
from cryprint.training.validation import ValidationSet, validation_sides

logger = logging.getLogger("cryprint.train")

# The dev split's periods each ``train_on`` adds to the training babies. The test split never.
DEV_PERIODS_TRAINED_ON = {"train": (), "train+dev-B": ("B",), "train+dev": ("B", "D")}


@dataclass
class TrainingData:
    """The batches to train on and the held-out babies to validate on."""

    batches: CropBatches
    validation: ValidationSet
    num_classes: int
    train_babies: int
    validation_babies: int
    dev_babies: int = 0  # dev babies trained on as well (train_on train+dev-B or train+dev)
    dev_recordings: int = 0
    augmentation: AugmentSettings | None = None  # None: batches are not augmented


def training_splits(config: TrainConfig) -> tuple[str, ...]:
    """The splits whose audio a run reads: train, and dev when it trains on dev recordings."""
    return ("train", "dev") if DEV_PERIODS_TRAINED_ON[config.train_on] else ("train",)


def dev_training_groups(config: TrainConfig, corpus: Corpus) -> list[list[Recording]]:
    """Per dev baby, its recordings of the periods ``config.train_on`` trains on (none for
    ``train``): B only for train+dev-B, B and D for train+dev."""
    periods = DEV_PERIODS_TRAINED_ON[config.train_on]
    if not periods:
        return []
    chosen = [recording for recording in recordings(corpus, "dev") if recording.period in periods]
    return list(unified_groups(chosen).values())


def build_training_data(
    config: TrainConfig,
    corpus: Corpus,
    context: Distributed,
    device: torch.device | None = None,
) -> TrainingData:
    """Split the train split's babies, and build the method's batches and the validation set.

    The triplet method trains on every recording of each training baby (B and D unified). The
    AAM baseline, like the official one, classifies the B recordings of babies with both periods
    and measures its loss on their D recordings. With ``train_on`` train+dev-B (train+dev), each
    dev baby joins as one more training baby with its B (B and D) recordings, for either method;
    validation babies always come from the train split.

    Args:
        device: where batches are augmented (the training device; default the CPU).
    """
    items = recordings(corpus, "train")
    groups = unified_groups(items)
    train_ids, validation_ids = split_babies(groups, config.validation_fraction, config.seed)
    if config.method == "triplet":
        train_groups = [groups[b] for b in train_ids]
        loss_groups = [groups[b] for b in validation_ids]
    else:
        chosen = set(train_ids)
        b_side, d_side = baseline_groups([r for r in items if r.baby_id in chosen])
        train_groups, loss_groups = _one_group_each(b_side), _one_group_each(d_side)
    # After the train babies: the AAM's D-side loss labels still name the same babies.
    dev_groups = dev_training_groups(config, corpus)
    train_groups += dev_groups
    if dev_groups:
        logger.warning("train_on %s: %s", config.train_on, dev_warning(config.train_on))
    sampler = PKSampler(
        len(train_groups),
        config.batch_babies,
        config.crops_per_baby,
        config.seed,
        context.rank,
        context.world_size,
    )
    settings = augment_settings(config.augment)
    batches = _training_batches(train_groups, sampler, config, settings, device)
    validation_sampler = PKSampler(
        len(loss_groups),
        min(config.batch_babies, len(loss_groups)),
        config.crops_per_baby,
        seed=config.seed + 1,
    )
    left, right = validation_sides({b: groups[b] for b in validation_ids})
    loss_batches = CropBatches(
        loss_groups, validation_sampler, config.crop_min_seconds, config.crop_max_seconds
    )
    validation = ValidationSet(left, right, loss_batches, config.validation_batches)
    return TrainingData(
        batches,
        validation,
        len(train_groups),
        len(train_ids),
        len(validation_ids),
        dev_babies=len(dev_groups),
        dev_recordings=sum(len(group) for group in dev_groups),
        augmentation=settings if isinstance(batches, AugmentedBatches) else None,
    )


def _training_batches(
    groups: list[list[Recording]], sampler: PKSampler, config: TrainConfig,
    settings: AugmentSettings, device: torch.device | None,
) -> CropBatches:  # fmt: skip
    """Crop batches, augmented when ``settings`` enable an augmentation."""
    crops = (config.crop_min_seconds, config.crop_max_seconds)
    if not settings.enabled:
        if config.augment != "none":
            logger.warning("augment: the block enables no augmentation; training without")
        return CropBatches(groups, sampler, *crops)
    return AugmentedBatches(groups, sampler, *crops, settings, device or torch.device("cpu"))


def _one_group_each(items: list[Recording]) -> list[list[Recording]]:
    return [[recording] for recording in items]
