"""Validation during training: held-out babies' EER and the objective's loss on their crops."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cryprint.data.batches import CropBatches
from cryprint.data.corpus import Recording
from cryprint.errors import DataError
from cryprint.models.embed import embed_waveforms
from cryprint.scoring import compute_eer, cosine_matrix


@dataclass
class ValidationSet:
    """Held-out babies: pairs of recordings for the EER, crop batches for the loss.

    ``left[i]`` and ``right[i]`` are the same baby; every other pairing is a different baby.
    """

    left: list[np.ndarray]
    right: list[np.ndarray]
    loss_batches: CropBatches
    max_loss_batches: int


def validation_sides(
    groups: dict[str, list[Recording]],
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """For each baby two sides to compare: its B and D recordings where it has both, else its
    even- and odd-numbered segments (different cries of one period). Babies with a single
    segment are left out. Side i of ``left`` and side i of ``right`` are the same baby."""
    left, right = [], []
    for baby_id in sorted(groups):
        by_period = {recording.period: recording for recording in groups[baby_id]}
        if {"B", "D"} <= set(by_period):
            left.append(by_period["B"].waveform())
            right.append(by_period["D"].waveform())
            continue
        only = next(iter(by_period.values()))
        if len(only.segments) >= 2:
            left.append(Recording(baby_id, only.period, only.split, only.segments[0::2]).waveform())
            right.append(
                Recording(baby_id, only.period, only.split, only.segments[1::2]).waveform()
            )
    if len(left) < 2:
        raise DataError("fewer than 2 validation babies with two comparable recordings")
    return left, right


def validation_eer(
    embedder: torch.nn.Module, validation: ValidationSet, device: torch.device
) -> float:
    """EER of every left side against every right side (the diagonal are the same babies)."""
    embeddings = embed_waveforms(embedder, validation.left + validation.right, device)
    count = len(validation.left)
    scores = cosine_matrix(embeddings[:count], embeddings[count:])
    return float(compute_eer(scores.ravel(), np.eye(count, dtype=int).ravel()).eer)


@torch.no_grad()
def validation_loss(
    embedder: torch.nn.Module,
    objective: torch.nn.Module,
    validation: ValidationSet,
    device: torch.device,
) -> float:
    """The objective's mean loss over the first ``max_loss_batches`` fixed validation batches."""
    losses = []
    was_training = embedder.training
    embedder.eval()
    try:
        for index, batch in enumerate(validation.loss_batches.epoch(0)):
            if index >= validation.max_loss_batches:
                break
            output = embedder(batch.waveforms.to(device), batch.lengths.to(device))
            losses.append(float(objective(output.float(), batch.labels.to(device))))
    finally:
        embedder.train(was_training)
    return float(np.mean(losses))
