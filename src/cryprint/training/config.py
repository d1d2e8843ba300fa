"""The typed, validated configuration of a training run.

One :class:`TrainConfig` per run, built from defaults, then a YAML file, then command-line
overrides (in that order). An unknown key or a value of the wrong type is a
:class:`~cryprint.errors.ConfigError` naming it — never silently ignored.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from cryprint.errors import ConfigError
from cryprint.hub import DEFAULT_HUB_MODEL
from cryprint.models import DEVICE_HELP
from cryprint.training.augment_settings import PRESETS, canonical_block

METHODS = ("triplet", "aam")
# The learning-rate schedules (cryprint.training.schedule).
SCHEDULES = ("plateau", "cosine", "exponential", "onecycle")
SELECT_BY = ("loss", "eer")
# What a run trains on besides the train split's babies: nothing, the dev split's birth (B)
# recordings (as the 1st-place CryCeleb2023 system did), or all of the dev split. Never test.
TRAIN_ON = ("train", "train+dev-B", "train+dev")
# Augmentation presets (cryprint.training.augment_settings); a YAML block may also be given.
AUGMENT_PRESETS = tuple(PRESETS)
# The options that take one of a few names, by field (the CLI's choices).
CHOICES = {
    "method": METHODS,
    "select_by": SELECT_BY,
    "train_on": TRAIN_ON,
    "augment": AUGMENT_PRESETS,
    "schedule": SCHEDULES,
}


# One line of help per option: shown by `cryprint train --help` and checked to cover every field.
FIELD_HELP = {
    "data": "a CryCeleb-layout data directory",
    "run": "the run folder to write (runs/NAME)",
    "method": "triplet (batch-hard triplet loss) or aam (the AAM-softmax baseline)",
    "init": "initial weights: a hub model id, a model folder, an embedding_model.ckpt file, "
    "or 'random'",
    "channels": "ECAPA width C (C×4 blocks, 3C last) for --init random or a bare checkpoint; "
    "default the VoxCeleb model's 1024",
    "epochs": "training epochs",
    "seed": "random seed (0 to 2^32-1): the same seed gives the same batches and weights",
    "batch_babies": "P: babies per batch",
    "crops_per_baby": "K: crops per baby in a batch",
    "crop_min_seconds": "shortest training crop, seconds",
    "crop_max_seconds": "longest training crop, seconds",
    "validation_fraction": "share of the train split's babies held out for validation",
    "learning_rate": "Adam learning rate (default 1e-3 for triplet, 1e-4 for aam)",
    "margin": "triplet margin, on distances between unit vectors (0 to 2)",
    "aam_margin": "AAM-softmax additive angular margin, radians",
    "aam_scale": "AAM-softmax logit scale",
    "schedule": "learning-rate schedule: plateau (halve on a validation-loss plateau), cosine or "
    "exponential (warm-up, then decay to lr_floor by the last epoch), onecycle",
    "warmup_epochs": "cosine/exponential: epochs of linear warm-up from a tenth of the rate",
    "lr_floor": "cosine/exponential/onecycle: the last epoch's rate, a fraction of the peak",
    "plateau_factor": "learning-rate factor when the validation loss plateaus",
    "plateau_patience": "epochs without improvement before the learning rate drops",
    "keep_best": "checkpoints kept besides the latest",
    "select_by": "how the best epoch is chosen: validation loss or validation EER",
    "validation_batches": "validation crop batches for the validation loss",
    "device": DEVICE_HELP,
    "amp": "bfloat16 mixed precision (CUDA only)",
    "compile": "torch.compile (CUDA only)",
    "train_on": "train: the train split; train+dev-B: also the dev babies' birth (B) recordings; "
    "train+dev: also all dev recordings (dev is then no fair evaluation)",
    "augment": "waveform augmentation: none, light or strong (or a YAML block in --config)",
}
MAX_SEED = 2**32 - 1
MAX_CHANNELS = 4096


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run's result.

    Defaults are the reference recipe on the real data (3rd-place CryCeleb2023 solution: triplet
    loss, margin 1.0, batch-hard mining, Adam 1e-3, plateau scheduler), from the VoxCeleb ECAPA.
    """

    data: str = ""
    run: str = ""
    method: str = "triplet"
    init: str = DEFAULT_HUB_MODEL
    # None = VoxCeleb's 1024 (a folder or hub model brings its own architecture).
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
    schedule: str = "plateau"
    warmup_epochs: int = 2
    lr_floor: float = 0.01
    plateau_factor: float = 0.5
    plateau_patience: int = 8
    keep_best: int = 5
    select_by: str = "loss"
    validation_batches: int = 4
    device: str = "auto"
    amp: bool = False
    compile: bool = False
    train_on: str = "train"
    # A preset name or a block of cryprint.training.augment.AugmentSettings fields.
    augment: str | dict[str, Any] = "none"

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"invalid training config: {name} must be finite, got {value}")
            if isinstance(value, str) and "\0" in value:  # no path or name can hold one
                raise ConfigError(f"invalid training config: {name} holds a NUL byte")
        for ok, message in self._checks():
            if not ok:
                raise ConfigError(f"invalid training config: {message}")
        object.__setattr__(self, "augment", _checked_augment(self.augment))

    def _checks(self) -> list[tuple[bool, str]]:
        return [
            (self.method in METHODS, f"method must be one of {', '.join(METHODS)}"),
            (self.select_by in SELECT_BY, f"select_by must be one of {', '.join(SELECT_BY)}"),
            (self.train_on in TRAIN_ON, f"train_on must be one of {', '.join(TRAIN_ON)}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (0 <= self.warmup_epochs <= 100_000, "warmup_epochs must be in [0, 100000]"),
            (0 < self.lr_floor <= 1, "lr_floor must be in (0, 1]"),
            (1 <= self.epochs <= 100_000, "epochs must be in [1, 100000]"),
            (0 <= self.seed <= MAX_SEED, f"seed must be in [0, {MAX_SEED}]"),
            (2 <= self.batch_babies <= 100_000, "batch_babies (P) must be in [2, 100000]"),
            (2 <= self.crops_per_baby <= 1000, "crops_per_baby (K) must be in [2, 1000]"),
            (
                0 < self.crop_min_seconds <= self.crop_max_seconds <= 600,
                "need 0 < crop_min_seconds <= crop_max_seconds <= 600",
            ),
            (0 < self.validation_fraction < 1, "validation_fraction must be in (0, 1)"),
            (self.learning_rate is None or self.learning_rate > 0, "learning_rate must be > 0"),
            (0 < self.margin <= 4, "margin must be in (0, 4]"),
            (0 <= self.aam_margin < math.pi / 2, "aam_margin must be in [0, pi/2) radians"),
            (self.aam_scale > 0, "aam_scale must be > 0"),
            (0 < self.plateau_factor < 1, "plateau_factor must be in (0, 1)"),
            (self.plateau_patience >= 0, "plateau_patience must be >= 0"),
            (self.keep_best >= 1, "keep_best must be >= 1"),
            (self.validation_batches >= 1, "validation_batches must be >= 1"),
            (
                self.channels is None
                or (0 < self.channels <= MAX_CHANNELS and self.channels % 8 == 0),
                f"channels must be a positive multiple of 8, at most {MAX_CHANNELS}",
            ),
            (
                self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps"),
                "device must be auto, cpu, cuda[:N] or mps",
            ),
        ]

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


def _checked_augment(value: Any) -> str | dict[str, Any]:
    """A preset name, or a block checked and with plain values (lists, floats), so that it
    compares equal to itself after a round trip through config.yaml or a checkpoint."""
    if isinstance(value, str):
        if value not in AUGMENT_PRESETS:
            raise ConfigError(
                f"invalid training config: augment must be one of {', '.join(AUGMENT_PRESETS)}"
                " or a block of settings"
            )
        return value
    if not isinstance(value, dict):
        raise ConfigError("invalid training config: augment must be a preset name or a block")
    return canonical_block(value)


def _to_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.lower() in ("true", "yes", "1")
    return None


def _to_number(kind: type) -> Any:
    def convert(value: Any) -> Any:
        if isinstance(value, bool):
            return None
        if isinstance(value, int) or (kind is float and isinstance(value, float)):
            return kind(value)
        if isinstance(value, str):
            try:
                return kind(value)
            except ValueError:
                return None
        return None

    return convert


# Each converter returns the value as the field's type, or None when it cannot.
_CONVERTERS = {
    bool: _to_bool,
    int: _to_number(int),
    float: _to_number(float),
    str: lambda value: str(value) if isinstance(value, str | Path) else None,
    # A YAML block (augment); its keys are checked by the field's own validation.
    dict: lambda value: dict(value) if isinstance(value, dict) else None,
}


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Check/convert one value to the field's type (int, float, bool, str, dict, or a union
    of them, tried in order, possibly with None)."""
    members = [annotation]
    optional = False
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [m for m in typing.get_args(annotation) if m is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
    if value is None:
        if optional:
            return None
        raise ConfigError(f"config key '{name}' cannot be empty")
    kinds = [typing.get_origin(member) or member for member in members]
    for kind in kinds:
        converted = _CONVERTERS[kind](value)
        if converted is not None:
            return converted
    expected = " or ".join(kind.__name__ for kind in kinds)
    raise ConfigError(f"config key '{name}': expected {expected}, got {value!r}")


def dev_warning(train_on: str | None) -> str | None:
    """What ``evaluate --split dev`` must say about a model trained on ``train_on`` (the
    ``train_on`` of its cryprint.json; None or "train": nothing to say)."""
    if train_on == "train+dev-B":
        return (
            "this model was trained on the dev babies' birth (B) recordings: dev is no longer "
            "unseen data. Its discharge (D) recordings were not trained on, so the B-vs-D dev "
            "pairs stay usable, as the CryCeleb2023 winners argued, but expect an optimistic "
            "EER; the test split is the fair measure."
        )
    if train_on == "train+dev":
        return (
            "this model was trained on ALL dev recordings (B and D): the dev pairs are not a "
            "fair evaluation (every dev baby was seen in training); use the test split."
        )
    return None


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
        if path.exists() and not path.is_file():  # a FIFO would block the read forever
            raise ConfigError(f"{path} is not a regular file; give a YAML config file")
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
