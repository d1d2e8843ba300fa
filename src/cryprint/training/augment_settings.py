"""What augments training batches, as settings: the presets and a YAML block's checks.

Torch-free, so that a training config can be checked without loading torch; the augmentation
itself is :mod:`cryprint.training.augment`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryprint.errors import ConfigError


@dataclass(frozen=True)
class AugmentSettings:
    """What augments a training batch; an augmentation whose setting is None is off.

    probability: the share of batches augmented (the rest are left clean).
    min_augmentations, max_augmentations: how many of the enabled augmentations a batch gets,
        drawn uniformly (at most all of them), applied in a random order.
    noise_snr_db: (low, high) signal-to-noise ratio of the added noise, dB.
    noise_colour: (low, high) exponent a of the generated 1/f^a noise (0 white, 1 pink,
        2 brown; negative: blue).
    noise_folder: take the noise from the audio files of this folder (held in memory) instead of
        generating it.
    reverb_rt60_seconds: (low, high) reverberation time of the simulated rooms, seconds.
    speeds: the speeds to pick from, percent of the original (100 = unchanged).
    drop_freq_count: (low, high) frequency bands removed; drop_freq_width: each band's width,
        a fraction of the Nyquist frequency.
    drop_chunk_count: (low, high) chunks set to silence; drop_chunk_seconds: (low, high) their
        lengths, seconds.
    """

    probability: float = 1.0
    min_augmentations: int = 1
    max_augmentations: int = 5
    noise_snr_db: tuple[float, float] | None = None
    noise_colour: tuple[float, float] = (0.0, 2.0)
    noise_folder: str | None = None
    reverb_rt60_seconds: tuple[float, float] | None = None
    speeds: tuple[int, ...] | None = None
    drop_freq_count: tuple[int, int] | None = None
    drop_freq_width: float = 0.05
    drop_chunk_count: tuple[int, int] | None = None
    drop_chunk_seconds: tuple[float, float] = (0.02, 0.1)

    @property
    def enabled(self) -> bool:
        """Whether any batch can be changed at all."""
        switches = (
            self.noise_snr_db,
            self.reverb_rt60_seconds,
            self.speeds,
            self.drop_freq_count,
            self.drop_chunk_count,
        )
        usable = self.probability > 0 and self.max_augmentations > 0
        return usable and any(switch is not None for switch in switches)

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON values (lists for pairs)."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }


PRESETS = {
    "none": AugmentSettings(),
    "light": AugmentSettings(
        probability=0.5,
        min_augmentations=1,
        max_augmentations=2,
        noise_snr_db=(15.0, 30.0),
        reverb_rt60_seconds=(0.1, 0.4),
        drop_freq_count=(1, 2),
        drop_chunk_count=(1, 2),
        drop_chunk_seconds=(0.02, 0.1),
    ),
    "strong": AugmentSettings(
        probability=0.9,
        min_augmentations=1,
        max_augmentations=3,
        noise_snr_db=(5.0, 20.0),
        reverb_rt60_seconds=(0.2, 0.8),
        speeds=(95, 100, 105),
        drop_freq_count=(1, 3),
        drop_chunk_count=(1, 4),
        drop_chunk_seconds=(0.02, 0.2),
    ),
}


def _number(key: str, value: Any, kind: type, low: float, high: float) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"augment.{key}: expected a number, got {value!r}")
    if kind is int and value != int(value):
        raise ConfigError(f"augment.{key}: expected a whole number, got {value!r}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ConfigError(f"augment.{key}: {value!r} is not in [{low}, {high}]")
    return kind(value)


def _pair(key: str, value: Any, kind: type, low: float, high: float) -> tuple[Any, Any]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ConfigError(f"augment.{key}: expected [low, high], got {value!r}")
    first, second = (_number(key, item, kind, low, high) for item in value)
    if first > second:
        raise ConfigError(f"augment.{key}: low {first} is above high {second}")
    return first, second


def _speeds(key: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise ConfigError(f"augment.{key}: expected a list of percentages, got {value!r}")
    return tuple(_number(key, item, int, 50, 200) for item in value)


def _folder(key: str, value: Any) -> str:
    if not isinstance(value, str | Path) or not str(value):
        raise ConfigError(f"augment.{key}: expected a folder of noise recordings, got {value!r}")
    return str(value)


# Each key of a YAML block: how its value is checked and converted (None switches it off).
_PARSERS = {
    "probability": functools.partial(_number, kind=float, low=0.0, high=1.0),
    "min_augmentations": functools.partial(_number, kind=int, low=0, high=5),
    "max_augmentations": functools.partial(_number, kind=int, low=0, high=5),
    "noise_snr_db": functools.partial(_pair, kind=float, low=-20.0, high=100.0),
    "noise_colour": functools.partial(_pair, kind=float, low=-3.0, high=3.0),
    "noise_folder": _folder,
    "reverb_rt60_seconds": functools.partial(_pair, kind=float, low=0.01, high=5.0),
    "speeds": _speeds,
    "drop_freq_count": functools.partial(_pair, kind=int, low=1, high=20),
    "drop_freq_width": functools.partial(_number, kind=float, low=1e-3, high=0.5),
    "drop_chunk_count": functools.partial(_pair, kind=int, low=1, high=50),
    "drop_chunk_seconds": functools.partial(_pair, kind=float, low=1e-3, high=10.0),
}
_SWITCHABLE = ("noise_snr_db", "noise_folder", "reverb_rt60_seconds", "speeds")
_SWITCHABLE += ("drop_freq_count", "drop_chunk_count")


def augment_settings(value: str | Mapping[str, Any]) -> AugmentSettings:
    """The settings a config's ``augment`` names: a preset, or a YAML block.

    A block may start from a ``preset`` (default: nothing enabled, every batch augmented) and
    set any :class:`AugmentSettings` field; ``null`` switches an augmentation off. Example::

        augment:
          preset: light
          noise_snr_db: [5, 20]
          noise_folder: /data/noises
          speeds: [95, 100, 105]

    Raises:
        ConfigError: an unknown preset or key, or a value out of range (named by its key).
    """
    if isinstance(value, str):
        if value not in PRESETS:
            raise ConfigError(f"augment must be one of {', '.join(PRESETS)} or a block")
        return PRESETS[value]
    block = dict(value)
    preset = block.pop("preset", None)
    base = AugmentSettings() if preset is None else augment_settings(str(preset))
    unknown = sorted(set(block) - set(_PARSERS))
    if unknown:
        raise ConfigError(
            f"unknown augment key(s): {', '.join(map(str, unknown))}; "
            f"valid keys: preset, {', '.join(_PARSERS)}"
        )
    changes = {}
    for key, item in block.items():
        if item is None and key not in _SWITCHABLE:
            raise ConfigError(f"augment.{key} cannot be empty")
        changes[key] = None if item is None else _PARSERS[key](key, item)
    settings = dataclasses.replace(base, **changes)
    if settings.min_augmentations > settings.max_augmentations:
        raise ConfigError("augment: min_augmentations is above max_augmentations")
    return settings


def canonical_block(block: Mapping[str, Any]) -> dict[str, Any]:
    """``block`` checked (see :func:`augment_settings`), with the values it sets as plain
    values (lists, floats): the same block compares equal after a round trip through YAML."""
    settings = augment_settings(block).to_dict()
    return {key: (item if key == "preset" else settings[key]) for key, item in block.items()}
