"""P×K training batches of random crops, built from in-memory recordings.

Why our own sampler instead of pytorch-metric-learning's ``MPerClassSampler``: that sampler
draws from the library's module-level ``NUMPY_RANDOM`` state, which a run cannot seed without
touching global state, cannot be saved in a checkpoint, and is shared by every DDP process.
Here batch ``b`` of epoch ``e`` on process ``r`` is a pure function of ``(seed, e, b, r)``, so the
same seed gives the same batches, and resuming at an epoch boundary needs no saved RNG state.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cryprint.data.audio import SAMPLE_RATE, to_float32
from cryprint.data.corpus import Recording
from cryprint.errors import DataError


@dataclass(frozen=True)
class Batch:
    """One training batch.

    waveforms: float32 [batch, samples], zero-padded at the end.
    lengths: float32 [batch], each crop's length relative to the longest (SpeechBrain's
        ``wav_lens``), in (0, 1].
    labels: int64 [batch], the baby's index in the training groups.
    """

    waveforms: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor


def pad_batch(waveforms: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack float32 [samples] arrays of different lengths.

    Returns:
        (float32 [batch, max_samples] zero-padded, float32 [batch] relative lengths).
    """
    if not waveforms:
        raise DataError("cannot build an empty batch")
    longest = max(len(w) for w in waveforms)
    padded = np.zeros((len(waveforms), longest), dtype=np.float32)
    for row, waveform in enumerate(waveforms):
        padded[row, : len(waveform)] = waveform
    lengths = np.array([len(w) / longest for w in waveforms], dtype=np.float32)
    return torch.from_numpy(padded), torch.from_numpy(lengths)


def random_crop(recording: Recording, samples: int, rng: np.random.Generator) -> np.ndarray:
    """A random window of ``samples`` samples of ``recording``; a shorter recording is taken
    whole. float32 [samples]."""
    audio = np.concatenate(recording.segments)
    if len(audio) <= samples:
        return to_float32(audio)
    start = int(rng.integers(0, len(audio) - samples + 1))
    return to_float32(audio[start : start + samples])


class PKSampler:
    """Batches of P babies with K crops each, so every anchor has a positive in its batch.

    Each epoch shuffles the babies and cuts the order into consecutive groups of P; a group that
    would be incomplete is dropped. With ``world_size`` processes, process ``rank`` takes every
    ``world_size``-th group, so the processes see different babies in the same step.

    Args:
        num_babies: how many training babies (labels 0 .. num_babies-1).
        babies_per_batch: P.
        crops_per_baby: K (>= 2: a baby needs a positive).
        seed: the run's seed.
        rank, world_size: this process and how many there are (1 without DDP).
    """

    def __init__(
        self,
        num_babies: int,
        babies_per_batch: int,
        crops_per_baby: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if crops_per_baby < 2:
            raise DataError("crops per baby (K) must be at least 2 so every anchor has a positive")
        if babies_per_batch < 2:
            raise DataError(
                "babies per batch (P) must be at least 2 so every anchor has a negative"
            )
        if num_babies < babies_per_batch * world_size:
            raise DataError(
                f"{num_babies} training babies are fewer than P={babies_per_batch} babies per batch"
                f" × {world_size} process(es)"
            )
        self.num_babies = num_babies
        self.babies_per_batch = babies_per_batch
        self.crops_per_baby = crops_per_baby
        self.seed = seed
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        """Batches per epoch on this process."""
        return (self.num_babies // self.babies_per_batch) // self.world_size

    def epoch(self, epoch: int) -> list[np.ndarray]:
        """This process's batches of ``epoch``: each an int64 [P*K] array of baby labels,
        K copies of each of P babies, baby by baby."""
        order = np.random.default_rng([self.seed, epoch]).permutation(self.num_babies)
        groups = order[: len(self) * self.world_size * self.babies_per_batch].reshape(
            -1, self.babies_per_batch
        )
        return [
            np.repeat(group, self.crops_per_baby) for group in groups[self.rank :: self.world_size]
        ]


class CropBatches:
    """Turns a :class:`PKSampler`'s labels into batches of random crops.

    Each batch draws one crop length in [min_seconds, max_seconds]; each crop picks one of the
    baby's recordings at random (B or D alike under the unified grouping), then a random window
    of that length (a shorter recording is taken whole and padded). Crop randomness of batch
    ``b`` in epoch ``e`` comes from ``default_rng([seed, e, b, rank])``: reproducible and
    independent of any earlier batch.

    Args:
        groups: for each label, the baby's recordings.
        sampler: which labels go into each batch.
        min_seconds, max_seconds: crop length range.
    """

    def __init__(
        self,
        groups: Sequence[Sequence[Recording]],
        sampler: PKSampler,
        min_seconds: float = 3.0,
        max_seconds: float = 5.0,
    ) -> None:
        if len(groups) != sampler.num_babies:
            raise DataError(f"{len(groups)} groups for a sampler of {sampler.num_babies} babies")
        if any(len(group) == 0 for group in groups):
            raise DataError("every training baby needs at least one recording")
        if not 0 < min_seconds <= max_seconds:
            raise DataError(f"bad crop range {min_seconds}–{max_seconds} s")
        self.groups = groups
        self.sampler = sampler
        self.min_seconds = min_seconds
        self.max_seconds = max_seconds

    def __len__(self) -> int:
        return len(self.sampler)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """Yield the batches of ``epoch`` in order."""
        for index, labels in enumerate(self.sampler.epoch(epoch)):
            rng = np.random.default_rng([self.sampler.seed, epoch, index, self.sampler.rank])
            # One length per batch: crops of one batch pad only where a recording is shorter.
            # Padding frames would otherwise enter ECAPA's BatchNorm statistics, which do not
            # mask them.
            samples = int(rng.uniform(self.min_seconds, self.max_seconds) * SAMPLE_RATE)
            crops = []
            for label in labels:
                group = self.groups[label]
                recording = group[int(rng.integers(len(group)))]
                crops.append(random_crop(recording, samples, rng))
            waveforms, lengths = pad_batch(crops)
            yield Batch(waveforms, lengths, torch.from_numpy(labels.astype(np.int64)))
