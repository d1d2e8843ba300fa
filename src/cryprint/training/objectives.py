"""Training objectives, built from components and chosen by name.

- ``triplet``: pytorch-metric-learning's ``TripletMarginLoss`` on hardest triplets from
  ``BatchHardMiner``, both with the same ``LpDistance`` on L2-normalised embeddings (the 3rd-place
  CryCeleb2023 recipe). Under DDP both are wrapped so hard examples are mined across processes.
- ``aam``: the official baseline — SpeechBrain's ECAPA ``Classifier`` head (cosine logits) with
  ``AdditiveAngularMargin`` inside ``LogSoftmaxWrapper``.

Each objective maps (embeddings [batch, dim], labels [batch]) to a scalar loss; batch statistics
(distances) are computed apart, by :func:`distance_stats`, not inside the loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from pytorch_metric_learning import distances, losses, miners
from pytorch_metric_learning.utils import distributed as pml_distributed
from speechbrain.lobes.models.ECAPA_TDNN import Classifier
from speechbrain.nnet.losses import AdditiveAngularMargin, LogSoftmaxWrapper

from cryprint.errors import ConfigError


class TripletObjective(torch.nn.Module):
    """Batch-hard triplet loss: for each anchor its farthest positive and nearest negative.

    Args:
        loss: a pytorch-metric-learning loss taking (embeddings, labels, indices_tuple).
        miner: a pytorch-metric-learning miner giving the triplets.
    """

    def __init__(self, loss: torch.nn.Module, miner: torch.nn.Module) -> None:
        super().__init__()
        self.loss = loss
        self.miner = miner

    @property
    def loss_scale(self) -> float:
        """pytorch-metric-learning's DistributedLossWrapper multiplies its loss by the world size
        (to undo DDP's gradient averaging); divide logged losses by this."""
        wrapped = isinstance(self.loss, pml_distributed.DistributedLossWrapper)
        if wrapped and torch.distributed.is_available() and torch.distributed.is_initialized():
            return float(torch.distributed.get_world_size())
        return 1.0

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        triplets = self.miner(embeddings, labels)
        return self.loss(embeddings, labels, triplets)


class ClassifierObjective(torch.nn.Module):
    """A classification head and its loss (the AAM-softmax baseline).

    Its loss is a mean over this process's examples; under DDP the gradients are averaged by DDP
    itself, so nothing is wrapped and the logged loss is the loss (``loss_scale`` 1).
    """

    loss_scale = 1.0

    def __init__(self, head: torch.nn.Module, loss: torch.nn.Module) -> None:
        super().__init__()
        self.head = head
        self.loss = loss

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = self.head(embeddings.unsqueeze(1))  # [batch, 1, classes] cosines
        return self.loss(logits, labels.unsqueeze(1))


def build_triplet(margin: float, distributed: bool) -> TripletObjective:
    """Triplet margin loss + batch-hard miner sharing one Euclidean distance on the unit sphere.

    Args:
        margin: the triplet margin (on distances in [0, 2]).
        distributed: mine hard triplets across all DDP processes (pml's distributed wrappers).
    """
    distance = distances.LpDistance(normalize_embeddings=True, p=2)
    loss: torch.nn.Module = losses.TripletMarginLoss(margin=margin, distance=distance)
    miner: torch.nn.Module = miners.BatchHardMiner(distance=distance)
    if distributed:
        loss = pml_distributed.DistributedLossWrapper(loss)
        miner = pml_distributed.DistributedMinerWrapper(miner)
    return TripletObjective(loss, miner)


def build_aam(
    num_classes: int, embedding_dim: int, margin: float, scale: float
) -> ClassifierObjective:
    """SpeechBrain's Classifier head + AdditiveAngularMargin, the official baseline's recipe.

    Args:
        num_classes: training babies (one class each).
        embedding_dim: the embedder's output size.
        margin, scale: the additive angular margin (radians) and the logit scale.
    """
    head = Classifier(input_size=embedding_dim, out_neurons=num_classes)
    loss = LogSoftmaxWrapper(AdditiveAngularMargin(margin=margin, scale=scale))
    return ClassifierObjective(head, loss)


@dataclass(frozen=True)
class ObjectiveOptions:
    """Everything any objective is built from; each builder takes the fields it needs."""

    num_classes: int
    embedding_dim: int
    margin: float = 1.0
    aam_margin: float = 0.2
    aam_scale: float = 30.0
    distributed: bool = False


OBJECTIVES: dict[str, Callable[[ObjectiveOptions], torch.nn.Module]] = {
    "triplet": lambda options: build_triplet(options.margin, options.distributed),
    # A per-example classification loss needs no cross-process wrapper (see ClassifierObjective).
    "aam": lambda options: build_aam(
        options.num_classes, options.embedding_dim, options.aam_margin, options.aam_scale
    ),
}


def build_objective(method: str, options: ObjectiveOptions) -> torch.nn.Module:
    """The objective called ``method`` (see :data:`OBJECTIVES`)."""
    try:
        builder = OBJECTIVES[method]
    except KeyError:
        raise ConfigError(f"unknown method '{method}'; valid: {', '.join(OBJECTIVES)}") from None
    return builder(options)


@dataclass(frozen=True)
class DistanceStats:
    """Mean Euclidean distance between L2-normalised embeddings of the same baby (positive) and of
    different babies (negative). Both near 0 means the embedding has collapsed to a point."""

    positive: float
    negative: float


@torch.no_grad()
def distance_stats(embeddings: torch.Tensor, labels: torch.Tensor) -> DistanceStats:
    """Mean positive and negative pair distances of a batch (NaN where there are none)."""
    unit = torch.nn.functional.normalize(embeddings.float(), dim=1)
    dist = torch.cdist(unit, unit)
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive = dist[same & off_diagonal]
    negative = dist[~same]
    return DistanceStats(
        float(positive.mean()) if positive.numel() else float("nan"),
        float(negative.mean()) if negative.numel() else float("nan"),
    )


# Below this mean distance (on the unit sphere, where distances run 0..2) for both positives and
# negatives, the embeddings have collapsed: the loss sits at the margin and nothing separates.
COLLAPSE_DISTANCE = 0.05


def is_collapsed(stats: DistanceStats) -> bool:
    return stats.positive < COLLAPSE_DISTANCE and stats.negative < COLLAPSE_DISTANCE
