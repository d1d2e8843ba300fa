"""One training epoch, and the metrics row it leaves in ``metrics.csv``."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from cryprint.data.batches import CropBatches
from cryprint.training.objectives import distance_stats


@dataclass(frozen=True)
class EpochMetrics:
    """One row of ``metrics.csv`` (epoch 0 is the initial weights, before any training).

    ``seconds``: the whole epoch with validation; ``train_seconds``: the training batches alone,
    over which ``crops_per_second`` (all processes) is measured. Distances are mean Euclidean
    distances of L2-normalised embeddings of the same baby (positive) and of different babies
    (negative) in the training batches.
    """

    epoch: int
    train_loss: float
    validation_loss: float
    validation_eer: float
    positive_distance: float
    negative_distance: float
    learning_rate: float
    seconds: float
    train_seconds: float = math.nan
    crops_per_second: float = math.nan
    collapsed: bool = False

    def to_row(self) -> dict[str, Any]:
        """The row as plain values (what checkpoints store: loadable with weights_only)."""
        return asdict(self)


@dataclass(frozen=True)
class EpochTraining:
    """What one pass over the training batches measured."""

    loss: float
    positive_distance: float
    negative_distance: float
    crops: int
    seconds: float

    @property
    def crops_per_second(self) -> float:
        return self.crops / self.seconds if self.crops else math.nan


def train_one_epoch(
    trained: torch.nn.Module,
    batches: CropBatches,
    epoch: int,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    *,
    use_amp: bool = False,
    loss_scale: float = 1.0,
    world_size: int = 1,
    progress: bool = False,
) -> EpochTraining:
    """One pass over ``batches.epoch(epoch)``: forward, backward, optimiser step per batch.

    Args:
        trained: maps (waveforms, lengths, labels) to (loss, embeddings); possibly DDP-wrapped.
        loss_scale: the factor the objective multiplies its loss by (a distributed loss
            wrapper's world size); logged losses are divided by it.
        world_size: processes training together (each draws its own batches).
    """
    started = time.perf_counter()
    trained.train()
    losses, positives, negatives = [], [], []
    crops = 0
    for batch in tqdm(
        batches.epoch(epoch),
        total=len(batches),
        desc=f"epoch {epoch}",
        disable=not progress,
        leave=False,
        unit="batch",
    ):
        labels = batch.labels.to(device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            loss, embeddings = trained(batch.waveforms.to(device), batch.lengths.to(device), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        stats = distance_stats(embeddings.detach(), labels)
        losses.append(float(loss.detach()) / loss_scale)
        positives.append(stats.positive)
        negatives.append(stats.negative)
        crops += len(labels) * world_size
    return EpochTraining(
        float(np.mean(losses)),
        float(np.nanmean(positives)),
        float(np.nanmean(negatives)),
        crops,
        time.perf_counter() - started,
    )
