"""The cry embedder: SpeechBrain's own Fbank → sentence mean normalisation → ECAPA-TDNN.

Exactly the pipeline of ``speechbrain/spkrec-ecapa-voxceleb`` (80 mel filters, mean
normalisation per recording without std, ECAPA channels [1024]*4 + [3072], kernels
[5,3,3,3,1], dilations [1,2,3,4,1], attention 128, 192-d output) with the channel widths
configurable so tests and CPU demos can use a small ECAPA (``ModelConfig.small(C)``).

The submodules carry SpeechBrain's names (``compute_features``, ``mean_var_norm``,
``embedding_model``) so a model folder written by cryprint is also a SpeechBrain model folder.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import torch
from speechbrain.lobes.features import Fbank
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
from speechbrain.processing.features import InputNormalization

from cryprint.data.audio import MIN_SECONDS, SAMPLE_RATE
from cryprint.errors import ModelError

VOXCELEB_CHANNELS = (1024, 1024, 1024, 1024, 3072)
# Fbank frames (10 ms hop, centred) of the shortest recording cryprint embeds.
MIN_FEATURE_FRAMES = 1 + int(MIN_SECONDS * SAMPLE_RATE) // 160


def _positive_integer(name: str, value: object) -> int:
    """``value`` as an int, or a ModelError: a whole number above 0 (not a bool or a float)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ModelError(f"{name}: {value!r} is not a whole number")
    if value <= 0:
        raise ModelError(f"{name} must be positive, got {value}")
    return int(value)


@dataclass(frozen=True)
class ModelConfig:
    """The embedder's architecture. The defaults are ``speechbrain/spkrec-ecapa-voxceleb``'s."""

    n_mels: int = 80
    channels: tuple[int, ...] = VOXCELEB_CHANNELS
    kernel_sizes: tuple[int, ...] = (5, 3, 3, 3, 1)
    dilations: tuple[int, ...] = (1, 2, 3, 4, 1)
    attention_channels: int = 128
    embedding_dim: int = 192

    def __post_init__(self) -> None:
        """Check the architecture is one ECAPA_TDNN can build and run on the shortest recording
        cryprint accepts; anything else is a ModelError, never a crash inside SpeechBrain."""
        for name in ("n_mels", "attention_channels", "embedding_dim"):
            object.__setattr__(self, name, _positive_integer(name, getattr(self, name)))
        for name in ("channels", "kernel_sizes", "dilations"):
            values = getattr(self, name)
            if isinstance(values, str | bytes) or not isinstance(values, Sequence):
                raise ModelError(f"ECAPA {name} must be a list of whole numbers, got {values!r}")
            object.__setattr__(
                self, name, tuple(_positive_integer(f"ECAPA {name}", value) for value in values)
            )
        if not len(self.channels) == len(self.kernel_sizes) == len(self.dilations):
            raise ModelError("channels, kernel_sizes and dilations must have the same length")
        # One TDNN block, 1 to 4 SE-Res2Net blocks, the aggregation layer: SpeechBrain's ECAPA
        # gives the blocks 5 group settings, so more than 6 layers fail inside it.
        if not 3 <= len(self.channels) <= 6:
            raise ModelError(f"ECAPA needs 3 to 6 layers, got {len(self.channels)}")
        # SpeechBrain's Res2Net blocks split channels into 8 scales.
        if any(c % 8 for c in self.channels[:-1]):
            raise ModelError(f"ECAPA channels must be positive multiples of 8, got {self.channels}")
        # The aggregation layer concatenates the SE-Res2Net outputs as (layers - 2) equal parts.
        if len(set(self.channels[1:-1])) > 1:
            raise ModelError(
                f"ECAPA's SE-Res2Net blocks (channels[1:-1]) must have the same width, "
                f"got {self.channels}"
            )
        # Convolutions pad by reflection, which needs the padding below the number of frames.
        for kernel, dilation in zip(self.kernel_sizes, self.dilations, strict=True):
            if dilation * (kernel - 1) // 2 >= MIN_FEATURE_FRAMES:
                raise ModelError(
                    f"ECAPA kernel {kernel} with dilation {dilation} is too wide for the "
                    f"{MIN_FEATURE_FRAMES} feature frames of a {MIN_SECONDS} s recording "
                    f"(dilation x (kernel - 1) / 2 must stay below {MIN_FEATURE_FRAMES})"
                )

    @classmethod
    def small(cls, channels: int) -> ModelConfig:
        """A narrower ECAPA: ``channels`` for the four blocks, 3× for the last (the VoxCeleb model
        is ``small(1024)``)."""
        return cls(channels=(channels,) * 4 + (3 * channels,))

    @property
    def width(self) -> int:
        """The width C of the SE-Res2Net blocks, where most of the work is (1024 for VoxCeleb's)."""
        return self.channels[1]

    def to_dict(self) -> dict:
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        known = {field.name for field in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ModelError(f"unknown model config key(s): {', '.join(sorted(unknown))}")
        return cls(**values)


class CryEmbedder(torch.nn.Module):
    """Waveforms in, one embedding per waveform out.

    Args:
        config: the architecture.

    Example:
        >>> model = CryEmbedder(ModelConfig.small(16))
        >>> model(torch.randn(2, 16000), torch.tensor([1.0, 0.5])).shape
        torch.Size([2, 192])
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        self.compute_features = Fbank(n_mels=self.config.n_mels)
        self.mean_var_norm = InputNormalization(norm_type="sentence", std_norm=False)
        self.embedding_model = ECAPA_TDNN(
            self.config.n_mels,
            lin_neurons=self.config.embedding_dim,
            channels=list(self.config.channels),
            kernel_sizes=list(self.config.kernel_sizes),
            dilations=list(self.config.dilations),
            attention_channels=self.config.attention_channels,
        )

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Embed a batch.

        Args:
            waveforms: float32 [batch, samples] at 16 kHz, zero-padded.
            lengths: float32 [batch] relative lengths in (0, 1] (SpeechBrain's ``wav_lens``);
                None means all full length.

        Returns:
            float32 [batch, embedding_dim], not normalised (score with cosine similarity).
        """
        if lengths is None:
            lengths = torch.ones(waveforms.shape[0], device=waveforms.device)
        # Features in float32 even under autocast: log-mel of fp16 power spectra underflows.
        with torch.autocast(device_type=waveforms.device.type, enabled=False):
            features = self.compute_features(waveforms.float())
            features = self.mean_var_norm(features, lengths)
        return self.embedding_model(features, lengths).squeeze(1)
