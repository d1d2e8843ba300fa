"""The triplet objective equals a naive batch-hard computation, triplet by triplet."""

import math

import pytest
import torch

from cryprint.errors import ConfigError
from cryprint.training.objectives import (
    ClassifierObjective,
    DistanceStats,
    ObjectiveOptions,
    build_objective,
    build_triplet,
    distance_stats,
    is_collapsed,
)


def _angles(*degrees: float) -> torch.Tensor:
    """Unit vectors on a circle: the geometry, hence the hardest triplets, is known."""
    radians = torch.tensor([math.radians(d) for d in degrees])
    return torch.stack([torch.cos(radians), torch.sin(radians)], dim=1)


def naive_hardest_triplets(
    embeddings: torch.Tensor, labels: torch.Tensor, normalize: bool = True
) -> list[tuple[int, int, int]]:
    """For each anchor with a positive and a negative: (anchor, farthest positive, nearest
    negative), by Euclidean distance between L2-normalised (or, ``normalize=False``, raw)
    embeddings."""
    unit = torch.nn.functional.normalize(embeddings, dim=1) if normalize else embeddings
    triplets = []
    for a in range(len(labels)):
        positives = [p for p in range(len(labels)) if p != a and labels[p] == labels[a]]
        negatives = [n for n in range(len(labels)) if labels[n] != labels[a]]
        if not positives or not negatives:
            continue
        positive = max(positives, key=lambda p: float(torch.dist(unit[a], unit[p])))
        negative = min(negatives, key=lambda n: float(torch.dist(unit[a], unit[n])))
        triplets.append((a, positive, negative))
    return triplets


def naive_batch_hard(embeddings: torch.Tensor, labels: torch.Tensor, margin: float) -> float:
    """For each anchor: farthest positive, nearest negative; mean of the non-zero losses."""
    unit = torch.nn.functional.normalize(embeddings, dim=1)
    losses = [
        max(0.0, float(torch.dist(unit[a], unit[p]) - torch.dist(unit[a], unit[n])) + margin)
        for a, p, n in naive_hardest_triplets(embeddings, labels)
    ]
    nonzero = [loss for loss in losses if loss > 0]
    return sum(nonzero) / len(nonzero) if nonzero else 0.0


def _mined(embeddings: torch.Tensor, labels: torch.Tensor) -> list[tuple[int, int, int]]:
    """The (anchor, positive, negative) triplets the triplet objective's miner returns."""
    anchors, positives, negatives = build_triplet(margin=1.0, distributed=False).miner(
        embeddings, labels
    )
    return sorted(zip(anchors.tolist(), positives.tolist(), negatives.tolist(), strict=True))


def test_miner_picks_the_hardest_positive_and_negative_of_each_anchor() -> None:
    # Angles with no ties among each anchor's hardest choices; baby 3 (300°) has no positive,
    # so it is no anchor. The lengths differ: only normalised distances give the naive answer.
    lengths = torch.tensor([1, 1, 3, 1, 0.5, 2, 1, 1, 0.6])[:, None]
    embeddings = _angles(0, 10, 40, 100, 120, 170, 200, 260, 300) * lengths
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1, 3])
    expected = naive_hardest_triplets(embeddings, labels)
    assert [a for a, _, _ in expected] == list(range(8))
    assert naive_hardest_triplets(embeddings, labels, normalize=False) != expected
    assert _mined(embeddings, labels) == expected


def test_miner_on_random_embeddings_equals_naive() -> None:
    generator = torch.Generator().manual_seed(1)
    embeddings = torch.randn(24, 16, generator=generator)
    labels = torch.arange(6).repeat_interleave(4)[torch.randperm(24, generator=generator)]
    assert _mined(embeddings, labels) == naive_hardest_triplets(embeddings, labels)


@pytest.mark.parametrize(
    "labels", [torch.zeros(5, dtype=torch.long), torch.arange(5)], ids=["one baby", "all differ"]
)
def test_miner_finds_no_triplet_without_a_positive_and_a_negative(labels: torch.Tensor) -> None:
    embeddings = _angles(0, 30, 60, 90, 120)
    assert naive_hardest_triplets(embeddings, labels) == []
    assert _mined(embeddings, labels) == []


def test_miner_and_loss_share_one_distance() -> None:
    objective = build_triplet(margin=1.0, distributed=False)
    assert objective.miner.distance is objective.loss.distance
    assert objective.miner.distance.normalize_embeddings


@pytest.mark.parametrize("margin", [0.2, 1.0])
def test_triplet_loss_equals_naive_batch_hard(margin: float) -> None:
    embeddings = _angles(0, 10, 40, 100, 120, 170, 200, 260)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    loss = build_objective("triplet", ObjectiveOptions(2, 2, margin=margin))(embeddings, labels)
    assert float(loss) == pytest.approx(naive_batch_hard(embeddings, labels, margin), abs=1e-5)


def test_triplet_loss_on_random_embeddings_equals_naive() -> None:
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn(24, 16, generator=generator)
    labels = torch.arange(6).repeat_interleave(4)
    loss = build_objective("triplet", ObjectiveOptions(2, 2, margin=1.0))(embeddings, labels)
    assert float(loss) == pytest.approx(naive_batch_hard(embeddings, labels, 1.0), abs=1e-5)


def test_well_separated_batch_has_zero_loss() -> None:
    embeddings = _angles(0, 1, 90, 91, 180, 181)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    # nearest negative is ~1.41 away, farthest positive ~0.02: no triplet violates margin 1.0
    assert (
        float(build_objective("triplet", ObjectiveOptions(2, 2, margin=1.0))(embeddings, labels))
        == 0.0
    )


def test_no_valid_triplet_gives_zero_loss_with_gradient() -> None:
    embeddings = torch.randn(4, 8, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3])  # no positive for any anchor
    loss = build_objective("triplet", ObjectiveOptions(2, 2, margin=1.0))(embeddings, labels)
    assert float(loss.detach()) == 0.0
    loss.backward()  # must not fail
    assert naive_batch_hard(embeddings.detach(), labels, 1.0) == 0.0


def test_aam_objective_learns_its_classes() -> None:
    torch.manual_seed(0)
    objective = build_objective("aam", ObjectiveOptions(num_classes=3, embedding_dim=8))
    assert isinstance(objective, ClassifierObjective)
    embeddings = torch.randn(12, 8)
    labels = torch.arange(3).repeat(4)
    optimizer = torch.optim.Adam(objective.parameters(), lr=0.05)
    first = float(objective(embeddings, labels).detach())
    for _ in range(50):
        optimizer.zero_grad()
        loss = objective(embeddings, labels)
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < first / 2


def test_unknown_method_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="triplet, aam"):
        build_objective("contrastive", ObjectiveOptions(2, 2))


def test_distance_stats_and_collapse() -> None:
    embeddings = _angles(0, 0, 180, 180)
    stats = distance_stats(embeddings, torch.tensor([0, 0, 1, 1]))
    assert stats.positive == pytest.approx(0.0, abs=1e-6)
    assert stats.negative == pytest.approx(4 * 2.0 / 4, abs=1e-5)
    assert not is_collapsed(stats)
    collapsed = distance_stats(_angles(0, 0.1, 0.2, 0.3), torch.tensor([0, 0, 1, 1]))
    assert is_collapsed(collapsed)
    assert is_collapsed(DistanceStats(0.01, 0.01)) and not is_collapsed(DistanceStats(0.01, 1.0))
