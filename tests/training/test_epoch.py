"""One training epoch (cryprint.training.epoch): an optimiser step per batch of the epoch, and
metrics recomputed here from what the model saw and returned."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import cryprint.training.epoch as epoch_module
from cryprint.data.audio import SAMPLE_RATE
from cryprint.data.batches import CropBatches, PKSampler
from cryprint.data.corpus import Recording
from cryprint.models.ecapa import CryEmbedder, ModelConfig
from cryprint.training.epoch import EpochMetrics, EpochTraining, train_one_epoch
from cryprint.training.objectives import ObjectiveOptions, build_objective
from cryprint.training.trainer import TrainModule

BABIES, P, K = 6, 2, 2  # 3 batches of 4 crops per epoch
CPU = torch.device("cpu")


def _groups(seed: int = 0) -> list[list[Recording]]:
    """Each baby: two recordings of noise at its own pitch, 0.6-0.8 s long."""
    rng = np.random.default_rng(seed)
    groups = []
    for baby in range(BABIES):
        recordings = []
        for period in ("B", "D"):
            samples = int(rng.uniform(0.6, 0.8) * SAMPLE_RATE)
            t = np.arange(samples) / SAMPLE_RATE
            tone = np.sin(2 * np.pi * (300 + 80 * baby) * t)
            audio = 8000 * tone + 2000 * rng.normal(size=samples)
            segments = (audio.astype(np.int16),)
            recordings.append(Recording(f"{baby:04d}", period, "train", segments))
        groups.append(recordings)
    return groups


def _batches(seed: int = 0) -> CropBatches:
    sampler = PKSampler(BABIES, P, K, seed=seed)
    return CropBatches(_groups(), sampler, min_seconds=0.4, max_seconds=0.5)


def _module(seed: int = 0, method: str = "triplet") -> TrainModule:
    torch.manual_seed(seed)
    embedder = CryEmbedder(ModelConfig.small(8))
    options = ObjectiveOptions(num_classes=BABIES, embedding_dim=embedder.config.embedding_dim)
    return TrainModule(embedder, build_objective(method, options))


class Recorder(torch.nn.Module):
    """The trained module, remembering what each call got and gave back."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls: list[dict[str, torch.Tensor]] = []

    def forward(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        loss, embeddings = self.inner(waveforms, lengths, labels)
        self.calls.append(
            {
                "waveforms": waveforms.detach().clone(),
                "labels": labels.detach().clone(),
                "loss": loss.detach().clone(),
                "embeddings": embeddings.detach().clone(),
            }
        )
        return loss, embeddings


def _naive_distances(embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Mean Euclidean distance of unit embeddings over ordered pairs of the same / different
    babies, by a double loop."""
    unit = [e / math.sqrt(float((e.double() ** 2).sum())) for e in embeddings.double()]
    positive, negative = [], []
    for i in range(len(unit)):
        for j in range(len(unit)):
            if i == j:
                continue
            distance = math.sqrt(float(((unit[i] - unit[j]) ** 2).sum()))
            (positive if labels[i] == labels[j] else negative).append(distance)
    return float(np.mean(positive)), float(np.mean(negative))


def _train(
    recorder: Recorder, epoch: int = 1, lr: float = 1e-2, **options: object
) -> EpochTraining:
    optimizer = torch.optim.Adam(recorder.parameters(), lr=lr)
    return train_one_epoch(recorder, _batches(), epoch, optimizer, CPU, **options)


def test_one_epoch_steps_once_per_batch_and_changes_the_weights() -> None:
    module = _module()
    before = {name: value.detach().clone() for name, value in module.named_parameters()}
    recorder = Recorder(module)
    optimizer = torch.optim.Adam(recorder.parameters(), lr=1e-2)
    batches = _batches()
    train_one_epoch(recorder, batches, 1, optimizer, CPU)
    assert len(recorder.calls) == len(batches) == BABIES // P
    steps = {int(state["step"]) for state in optimizer.state.values()}
    assert steps == {len(batches)}
    changed = [
        name
        for name, value in module.named_parameters()
        if not torch.equal(value.detach(), before[name])
    ]
    embedder_parameters = [name for name, _ in module.named_parameters() if "embedder" in name]
    assert embedder_parameters and set(embedder_parameters) <= set(changed)


def test_it_trains_the_batches_of_the_epoch_it_is_given() -> None:
    recorder = Recorder(_module())
    _train(recorder, epoch=4)
    expected = list(_batches().epoch(4))
    assert len(recorder.calls) == len(expected)
    for call, batch in zip(recorder.calls, expected, strict=True):
        assert torch.equal(call["labels"], batch.labels)
        assert torch.equal(call["waveforms"], batch.waveforms)
    # A different epoch brings different batches.
    other = next(iter(_batches().epoch(5)))
    assert not torch.equal(recorder.calls[0]["waveforms"], other.waveforms)


def test_metrics_are_what_the_batches_gave() -> None:
    recorder = Recorder(_module())
    result = _train(recorder)
    losses = [float(call["loss"]) for call in recorder.calls]
    # The loss: the plain mean over batches (each batch has P*K crops).
    assert result.loss == pytest.approx(sum(losses) / len(losses), rel=1e-6)
    distances = [_naive_distances(call["embeddings"], call["labels"]) for call in recorder.calls]
    assert result.positive_distance == pytest.approx(np.mean([p for p, _ in distances]), rel=1e-5)
    assert result.negative_distance == pytest.approx(np.mean([n for _, n in distances]), rel=1e-5)
    assert 0 <= result.positive_distance <= 2 and 0 <= result.negative_distance <= 2
    assert result.crops == sum(len(call["labels"]) for call in recorder.calls) == BABIES * K
    assert result.seconds > 0
    assert result.crops_per_second == pytest.approx(result.crops / result.seconds)


def test_logged_losses_are_divided_by_the_loss_scale() -> None:
    plain_recorder, scaled_recorder = Recorder(_module()), Recorder(_module())
    plain = _train(plain_recorder)
    scaled = _train(scaled_recorder, loss_scale=4.0)
    losses = [float(call["loss"]) for call in scaled_recorder.calls]
    assert scaled.loss == pytest.approx(np.mean(losses) / 4.0, rel=1e-6)
    # Same seed, same batches: the scale changes what is logged, not what is trained.
    assert losses == pytest.approx([float(call["loss"]) for call in plain_recorder.calls])
    assert scaled.loss == pytest.approx(plain.loss / 4.0, rel=1e-6)
    assert scaled.positive_distance == pytest.approx(plain.positive_distance, rel=1e-6)


def test_crops_count_every_process() -> None:
    single = _train(Recorder(_module()))
    three = _train(Recorder(_module()), world_size=3)
    assert three.crops == 3 * single.crops == 3 * BABIES * K


def test_seconds_and_throughput_come_from_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = iter([100.0, 104.0])
    fake_time = SimpleNamespace(perf_counter=lambda: next(readings))
    monkeypatch.setattr(epoch_module, "time", fake_time)
    result = _train(Recorder(_module()))
    assert result.seconds == 4.0
    assert result.crops_per_second == BABIES * K / 4.0


def test_the_module_is_put_in_training_mode() -> None:
    recorder = Recorder(_module()).eval()
    _train(recorder)
    assert recorder.training and recorder.inner.embedder.training


def test_the_same_seed_gives_the_same_epoch() -> None:
    first, second = _train(Recorder(_module(3))), _train(Recorder(_module(3)))
    assert dataclasses.replace(first, seconds=0.0) == dataclasses.replace(second, seconds=0.0)


def test_aam_objective_trains_too() -> None:
    recorder = Recorder(_module(method="aam"))
    result = _train(recorder, lr=1e-3)
    losses = [float(call["loss"]) for call in recorder.calls]
    assert math.isfinite(result.loss)
    assert result.loss == pytest.approx(np.mean(losses), rel=1e-6)


def test_throughput_of_no_crops_is_nan() -> None:
    assert math.isnan(EpochTraining(0.5, 0.1, 0.2, 0, 2.0).crops_per_second)
    assert EpochTraining(0.5, 0.1, 0.2, 30, 2.0).crops_per_second == 15.0


def test_metrics_row_has_the_documented_keys() -> None:
    metrics = EpochMetrics(3, 0.4, 0.5, 0.25, 0.3, 1.1, 1e-3, 12.0, 10.0, 6.4, True)
    row = metrics.to_row()
    assert list(row) == [
        "epoch",
        "train_loss",
        "validation_loss",
        "validation_eer",
        "positive_distance",
        "negative_distance",
        "learning_rate",
        "seconds",
        "train_seconds",
        "crops_per_second",
        "collapsed",
    ]
    assert row == {
        "epoch": 3,
        "train_loss": 0.4,
        "validation_loss": 0.5,
        "validation_eer": 0.25,
        "positive_distance": 0.3,
        "negative_distance": 1.1,
        "learning_rate": 1e-3,
        "seconds": 12.0,
        "train_seconds": 10.0,
        "crops_per_second": 6.4,
        "collapsed": True,
    }


def test_epoch_zero_row_leaves_the_training_numbers_unset() -> None:
    # As the trainer writes epoch 0 (the initial weights): no training, so NaN and not collapsed.
    row = EpochMetrics(0, math.nan, 0.7, 0.4, math.nan, math.nan, 1e-3, 1.5).to_row()
    assert math.isnan(row["train_seconds"]) and math.isnan(row["crops_per_second"])
    assert row["collapsed"] is False
    assert row["epoch"] == 0 and row["validation_loss"] == 0.7


def test_the_row_loads_with_weights_only(tmp_path: Path) -> None:
    row = EpochMetrics(2, 0.4, 0.5, 0.25, 0.3, 1.1, 1e-3, 12.0, 10.0, 6.4).to_row()
    path = tmp_path / "row.pt"
    torch.save(row, path)
    assert torch.load(path, weights_only=True) == row
    assert all(type(value) in (int, float, bool) for value in row.values())
