"""The typed, validated configuration of a training run.

One :class:`TrainConfig` per run, built from defaults, then a YAML file, then command-line
overrides (in that order). An unknown key or a value of the wrong type is a
:class:`~cryprint.errors.ConfigError` naming it — never silently ignored.
"""

from __future__ import annotations

import types
import typing
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from cryprint.errors import ConfigError

METHODS = ("triplet", "aam")
SELECT_BY = ("loss", "eer")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run's result.

    Defaults are the reference recipe on the real data (3rd-place CryCeleb2023 solution: triplet
    loss, margin 1.0, batch-hard mining, Adam 1e-3, plateau scheduler), from the VoxCeleb ECAPA.
    """

    data: str = ""
    run: str = ""
    method: str = "triplet"
    init: str = "speechbrain/spkrec-ecapa-voxceleb"
    # ECAPA width for --init random or a bare checkpoint; None = VoxCeleb's 1024 (a folder or hub
    # model brings its own architecture).
    channels: int | None = None
    epochs: int = 40
    seed: int = 0
    batch_babies: int = 32
    crops_per_baby: int = 4
    crop_min_seconds: float = 3.0
    crop_max_seconds: float = 5.0
    validation_fraction: float = 0.15
    # None = the method's reference learning rate: 1e-3 for triplet, 1e-4 for aam.
    learning_rate: float | None = None
    margin: float = 1.0
    aam_margin: float = 0.2
    aam_scale: float = 30.0
    plateau_factor: float = 0.5
    plateau_patience: int = 8
    keep_best: int = 5
    select_by: str = "loss"
    validation_batches: int = 4
    device: str = "auto"
    amp: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        checks = [
            (self.method in METHODS, f"method must be one of {', '.join(METHODS)}"),
            (self.select_by in SELECT_BY, f"select_by must be one of {', '.join(SELECT_BY)}"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_babies >= 2, "batch_babies (P) must be >= 2"),
            (self.crops_per_baby >= 2, "crops_per_baby (K) must be >= 2"),
            (
                0 < self.crop_min_seconds <= self.crop_max_seconds,
                "need 0 < crop_min_seconds <= crop_max_seconds",
            ),
            (0 < self.validation_fraction < 1, "validation_fraction must be in (0, 1)"),
            (self.learning_rate is None or self.learning_rate > 0, "learning_rate must be > 0"),
            (self.margin > 0, "margin must be > 0"),
            (0 < self.plateau_factor < 1, "plateau_factor must be in (0, 1)"),
            (self.plateau_patience >= 0, "plateau_patience must be >= 0"),
            (self.keep_best >= 1, "keep_best must be >= 1"),
            (self.validation_batches >= 1, "validation_batches must be >= 1"),
            (
                self.channels is None or (self.channels > 0 and self.channels % 8 == 0),
                "channels must be a positive multiple of 8",
            ),
            (
                self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps"),
                "device must be auto, cpu, cuda[:N] or mps",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"invalid training config: {message}")

    @property
    def lr(self) -> float:
        """The learning rate in force."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 1e-3 if self.method == "triplet" else 1e-4

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Check/convert one value to the field's type (int, float, bool, str, or X | None)."""
    hint = annotation
    optional = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        members = [m for m in typing.get_args(hint) if m is not type(None)]
        optional = len(members) < len(typing.get_args(hint))
        hint = members[0]
    if value is None:
        if optional:
            return None
        raise ConfigError(f"config key '{name}' cannot be empty")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str and isinstance(value, str | Path):
        return str(value)
    raise ConfigError(f"config key '{name}': expected {hint.__name__}, got {value!r}")


def make_config(
    overrides: dict[str, Any] | None = None, yaml_file: Path | str | None = None
) -> TrainConfig:
    """Defaults ← ``yaml_file`` ← ``overrides``, validated.

    Raises:
        ConfigError: an unknown key, a value of the wrong type, or an invalid value.
    """
    values: dict[str, Any] = {}
    if yaml_file is not None:
        path = Path(yaml_file)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path}: cannot read the config ({error})") from error
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the config must be a mapping of keys to values")
        values.update(loaded)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    hints = typing.get_type_hints(TrainConfig)
    known = {field.name for field in fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown config key(s): {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}"
        )
    return TrainConfig(**{key: _coerce(key, value, hints[key]) for key, value in values.items()})
