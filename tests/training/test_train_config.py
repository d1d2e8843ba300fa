"""The run config: typed, validated, unknown keys refused."""

from pathlib import Path

import pytest

from cryprint.errors import ConfigError
from cryprint.training.config import TrainConfig, make_config


def test_defaults_are_the_reference_recipe() -> None:
    config = make_config({"data": "d", "run": "r"})
    assert (config.method, config.margin, config.lr) == ("triplet", 1.0, 1e-3)
    assert (config.plateau_factor, config.plateau_patience, config.keep_best) == (0.5, 8, 5)
    assert (config.crop_min_seconds, config.crop_max_seconds) == (3.0, 5.0)
    assert config.validation_fraction == 0.15
    assert config.init == "speechbrain/spkrec-ecapa-voxceleb"
    assert make_config({"method": "aam"}).lr == 1e-4


def test_yaml_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 7\nmargin: 0.5\nmethod: aam\n")
    config = make_config({"epochs": 9, "seed": None}, path)
    assert (config.epochs, config.margin, config.method, config.seed) == (9, 0.5, "aam", 0)


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("epochz: 7\n")
    with pytest.raises(ConfigError, match=r"unknown config key.*epochz.*valid keys"):
        make_config(yaml_file=path)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"epochs": "many"}, "expected int"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"method": "svm"}, "method must be one of"),
        ({"crops_per_baby": 1}, "crops_per_baby"),
        ({"channels": 30}, "multiple of 8"),
        ({"crop_min_seconds": 5.0, "crop_max_seconds": 3.0}, "crop_min_seconds"),
        ({"amp": "perhaps"}, "expected bool"),
    ],
)
def test_bad_values_are_named(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(values)


def test_yaml_round_trip() -> None:
    config = make_config({"data": "d", "run": "r", "channels": 32, "amp": True})
    assert TrainConfig(**__import__("yaml").safe_load(config.to_yaml())) == config
