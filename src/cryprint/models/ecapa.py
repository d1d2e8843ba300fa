"""The cry embedder: SpeechBrain's own Fbank → sentence mean normalisation → ECAPA-TDNN.

Exactly the pipeline of ``speechbrain/spkrec-ecapa-voxceleb`` (80 mel filters, mean
normalisation per recording without std, ECAPA channels [1024]*4 + [3072], kernels
[5,3,3,3,1], dilations [1,2,3,4,1], attention 128, 192-d output) with the channel widths
configurable so tests and CPU demos can use a small ECAPA (``ModelConfig.small(C)``).

The submodules carry SpeechBrain's names (``compute_features``, ``mean_var_norm``,
``embedding_model``) so a model folder written by cryprint is also a SpeechBrain model folder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from speechbrain.lobes.features import Fbank
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
from speechbrain.processing.features import InputNormalization

from cryprint.errors import ModelError

VOXCELEB_CHANNELS = (1024, 1024, 1024, 1024, 3072)


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
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "kernel_sizes", tuple(int(k) for k in self.kernel_sizes))
        object.__setattr__(self, "dilations", tuple(int(d) for d in self.dilations))
        if not len(self.channels) == len(self.kernel_sizes) == len(self.dilations):
            raise ModelError("channels, kernel_sizes and dilations must have the same length")
        # SpeechBrain's Res2Net blocks split channels into 8 scales.
        if any(c <= 0 or c % 8 for c in self.channels[:-1]):
            raise ModelError(f"ECAPA channels must be positive multiples of 8, got {self.channels}")
        if self.n_mels <= 0 or self.embedding_dim <= 0 or self.attention_channels <= 0:
            raise ModelError("n_mels, embedding_dim and attention_channels must be positive")

    @classmethod
    def small(cls, channels: int) -> ModelConfig:
        """A narrower ECAPA: ``channels`` for the four blocks, 3× for the last (the VoxCeleb model
        is ``small(1024)``)."""
        return cls(channels=(channels,) * 4 + (3 * channels,))

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
