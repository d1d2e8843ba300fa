"""Waveform augmentation of training batches with SpeechBrain's own augmentation classes.

``augment`` in the run config is a preset name or a YAML block (see :func:`augment_settings`):

- ``none``: no augmentation (the default).
- ``light``: half the batches, each given 1–2 of: coloured noise at 15–30 dB SNR (spectrum
  1/f^a, a in 0–2), reverberation (RT60 0.1–0.4 s), 1–2 dropped frequency bands (width 0.05 of
  Nyquist), 1–2 dropped chunks of 20–100 ms.
- ``strong``: 90% of the batches, each given 1–3 of: coloured noise at 5–20 dB SNR, reverberation
  (RT60 0.2–0.8 s), speed 95/100/105%, 1–3 dropped bands, 1–4 dropped chunks of 20–200 ms.

The chosen augmentations apply to the whole batch, each drawing its own parameters per crop where
SpeechBrain does (noise SNR and colour, reverberation room, dropped chunks) and per batch where it
does not (speed, dropped frequency bands). Speed perturbation also moves the cry's pitch, which is
part of a baby's voice: the strong preset keeps it within ±5%.

Classes used: :class:`~speechbrain.augment.augmenter.Augmenter` (which augmentations, how many,
in which order, how often), ``AddNoise`` (with ``pink_noise_like`` coloured noise, or noise
recordings from a folder), ``SpeedPerturb``, ``DropFreq`` (frequency masking), ``DropChunk``
(time masking), and SpeechBrain's ``reverberate`` with room impulse responses simulated here.

Randomness: SpeechBrain draws from torch's global generators and the Augmenter from Python's
``random``. Each batch is augmented under forked generators seeded from ``(seed, epoch, batch
index, rank)`` — the key :class:`~cryprint.data.batches.CropBatches` draws its crops from — so a
batch's augmentation is a pure function of that key and the device: the same seed augments the
same way, a resumed run augments exactly as an uninterrupted one without saving any generator
state, and the caller's generators are left as they were.
"""

from __future__ import annotations

import contextlib
import functools
import math
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from speechbrain.augment.augmenter import Augmenter
from speechbrain.augment.time_domain import (
    AddNoise,
    DropChunk,
    DropFreq,
    SpeedPerturb,
    pink_noise_like,
)
from speechbrain.processing.signal_processing import reverberate

from cryprint.data.audio import SAMPLE_RATE, read_audio, to_int16
from cryprint.data.batches import Batch, CropBatches, PKSampler
from cryprint.data.corpus import Recording
from cryprint.data.inputs import recording_files
from cryprint.errors import AudioError, ConfigError
from cryprint.training.augment_settings import AugmentSettings

# Appended to the crop key: the augmentation's stream differs from the crops' one.
_AUGMENT_STREAM = 1
# ln(10^3): an RT60 is the time the reverberant energy takes to fall by 60 dB (amplitude by 10^3).
_LN_1000 = math.log(1000.0)


class SimulatedReverb(torch.nn.Module):
    """Reverberation of each crop by its own simulated room.

    Why not SpeechBrain's ``AddReverb``: it reads recorded impulse responses listed in a CSV
    through a DataLoader whose position a resumed run would lose. Each impulse response here is
    a direct path followed by Gaussian noise decaying 60 dB over an RT60 drawn in
    [``rt60_low``, ``rt60_high``] s; SpeechBrain's ``reverberate`` convolves and keeps the level.
    """

    def __init__(self, rt60_low: float, rt60_high: float) -> None:
        super().__init__()
        self.rt60_low = rt60_low
        self.rt60_high = rt60_high

    def impulse_response(self, device: torch.device) -> torch.Tensor:
        """float32 [samples]: one room's impulse response at 16 kHz, peak 1 at sample 0."""
        rt60 = self.rt60_low + (self.rt60_high - self.rt60_low) * float(torch.rand(()))
        samples = max(2, int(rt60 * SAMPLE_RATE))
        time = torch.arange(samples, device=device) / SAMPLE_RATE
        tail = torch.randn(samples, device=device) * torch.exp(-_LN_1000 * time / rt60)
        # The direct path stays the strongest sample: reverberate aligns the output on it.
        response = 0.5 * tail / tail.abs().max().clamp(min=1e-12)
        response[0] = 1.0
        return response

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """waveforms: float32 [batch, samples] → the same shape, reverberated."""
        rows = [
            reverberate(row.unsqueeze(0), self.impulse_response(waveforms.device))
            for row in waveforms
        ]
        return torch.cat(rows)


class NoiseFolder:
    """Noise recordings of a folder, held in memory (int16), drawn from as ``AddNoise``'s noise.

    Why not ``AddNoise(csv_file=...)``: it reads the noises through a DataLoader whose position a
    resumed run would lose; drawing a recording and an offset per crop from the batch's seeded
    generator keeps the augmentation resumable. Recordings shorter than a crop are repeated.
    """

    def __init__(self, folder: Path | str) -> None:
        try:
            files = recording_files(folder)
            self.noises = [torch.from_numpy(to_int16(read_audio(file))) for file in files]
        except AudioError as error:
            raise ConfigError(f"augment.noise_folder: {error}") from error

    def __call__(self, waveforms: torch.Tensor) -> torch.Tensor:
        """float32 noise shaped like ``waveforms`` [batch, samples], one recording per row."""
        samples = waveforms.shape[1]
        rows = []
        for choice in torch.randint(len(self.noises), (len(waveforms),)).tolist():
            noise = self.noises[choice]
            noise = noise.repeat(math.ceil(samples / len(noise)))
            start = int(torch.randint(len(noise) - samples + 1, ()))
            rows.append(noise[start : start + samples])
        return (torch.stack(rows).float() / 32768.0).to(waveforms.device)


def build_augmenter(settings: AugmentSettings, device: torch.device) -> Augmenter | None:
    """SpeechBrain's Augmenter for ``settings`` on ``device``; None when nothing is enabled."""
    if not settings.enabled:
        return None
    augmentations: list[torch.nn.Module] = []
    if settings.noise_snr_db is not None:
        low, high = settings.noise_colour
        noise = (
            NoiseFolder(settings.noise_folder)
            if settings.noise_folder is not None
            else functools.partial(
                pink_noise_like, alpha_low=low, alpha_high=high, sample_rate=SAMPLE_RATE
            )
        )
        snr_low, snr_high = settings.noise_snr_db
        augmentations.append(
            AddNoise(snr_low=snr_low, snr_high=snr_high, noise_funct=noise, normalize=True)
        )
    if settings.reverb_rt60_seconds is not None:
        augmentations.append(SimulatedReverb(*settings.reverb_rt60_seconds))
    if settings.speeds is not None:
        augmentations.append(SpeedPerturb(SAMPLE_RATE, list(settings.speeds), device=str(device)))
    if settings.drop_freq_count is not None:
        augmentations.append(
            DropFreq(
                drop_freq_count_low=settings.drop_freq_count[0],
                drop_freq_count_high=settings.drop_freq_count[1],
                drop_freq_width=settings.drop_freq_width,
            )
        )
    if settings.drop_chunk_count is not None:
        shortest, longest = (round(s * SAMPLE_RATE) for s in settings.drop_chunk_seconds)
        augmentations.append(
            DropChunk(
                drop_length_low=shortest,
                drop_length_high=longest,
                drop_count_low=settings.drop_chunk_count[0],
                drop_count_high=settings.drop_chunk_count[1],
            )
        )
    return Augmenter(
        min_augmentations=settings.min_augmentations,
        max_augmentations=settings.max_augmentations,
        shuffle_augmentations=True,
        augment_prob=settings.probability,
        augmentations=augmentations,
    )


def _seed_of(key: Sequence[int]) -> int:
    """A 63-bit seed from a batch key, independent of the crops' stream."""
    state = np.random.SeedSequence([*key, _AUGMENT_STREAM]).generate_state(1, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


@contextlib.contextmanager
def seeded_random(key: Sequence[int], device: torch.device) -> Iterator[None]:
    """Run the block with torch's CPU generator, ``device``'s CUDA generator and Python's
    ``random`` seeded from ``key``; all three are restored afterwards."""
    seed = _seed_of(key)
    cuda = []
    if device.type == "cuda":
        cuda = [device.index if device.index is not None else torch.cuda.current_device()]
    python_state = random.getstate()
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        for index in cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)  # this device only, as fork_rng restores only it
        random.seed(seed)
        try:
            yield
        finally:
            random.setstate(python_state)


def augment_batch(
    augmenter: Augmenter, batch: Batch, key: Sequence[int], device: torch.device
) -> Batch:
    """``batch`` augmented on ``device`` under generators seeded from ``key``.

    The waveforms may come back longer or shorter (speed perturbation); ``lengths`` stay the
    crops' shares of the longest, and the padding after a shorter crop is zero again.
    """
    waveforms, lengths = batch.waveforms.to(device), batch.lengths.to(device)
    with seeded_random(key, device):
        waveforms, lengths = augmenter(waveforms, lengths)
    samples = waveforms.shape[1]
    # Noise and reverberation also fill the zero padding after a shorter crop: clear it, as
    # padding frames enter ECAPA's BatchNorm statistics (see CropBatches).
    inside = torch.arange(samples, device=device) < torch.round(lengths * samples).unsqueeze(1)
    return Batch(waveforms * inside, lengths, batch.labels)


class AugmentedBatches(CropBatches):
    """:class:`CropBatches` whose batches are augmented, batch ``b`` of epoch ``e`` on process
    ``r`` under generators seeded from ``(seed, e, b, r)``.

    Args:
        groups, sampler, min_seconds, max_seconds: as for :class:`CropBatches`.
        settings: what to augment with (must be enabled).
        device: where to augment: the training device when it is a GPU, else the CPU. The same
            key gives the same augmentation on the same kind of device.
    """

    def __init__(
        self,
        groups: Sequence[Sequence[Recording]],
        sampler: PKSampler,
        min_seconds: float,
        max_seconds: float,
        settings: AugmentSettings,
        device: torch.device,
    ) -> None:
        super().__init__(groups, sampler, min_seconds, max_seconds)
        self.device = device if device.type == "cuda" else torch.device("cpu")
        augmenter = build_augmenter(settings, self.device)
        if augmenter is None:
            raise ConfigError("augment: no augmentation is enabled")
        self.augmenter = augmenter
        self.settings = settings

    def epoch(self, epoch: int) -> Iterator[Batch]:
        for index, batch in enumerate(super().epoch(epoch)):
            key = (self.sampler.seed, epoch, index, self.sampler.rank)
            yield augment_batch(self.augmenter, batch, key, self.device)
