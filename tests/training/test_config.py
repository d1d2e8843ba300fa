"""The run config: typed, validated, unknown keys refused."""

from dataclasses import fields
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
        ({"epochs": 0}, r"epochs must be in \[1, 100000\]"),
        # Issue #10 item 10: non-finite floats and out-of-range values, named by their key.
        ({"learning_rate": float("inf")}, "learning_rate must be finite"),
        ({"margin": float("inf")}, "margin must be finite"),
        ({"aam_scale": float("nan")}, "aam_scale must be finite"),
        ({"aam_margin": -5}, "aam_margin must be in"),
        ({"crop_max_seconds": float("inf")}, "crop_max_seconds must be finite"),
        ({"crop_max_seconds": "nan"}, "crop_max_seconds must be finite"),
        ({"seed": -1}, "seed must be in"),
        ({"seed": 2**64}, "seed must be in"),
        ({"channels": 40_000}, "at most 4096"),
        ({"method": "svm"}, "method must be one of"),
        ({"crops_per_baby": 1}, "crops_per_baby"),
        ({"channels": 30}, "multiple of 8"),
        ({"crop_min_seconds": 5.0, "crop_max_seconds": 3.0}, "crop_min_seconds"),
        ({"amp": "perhaps"}, "expected bool"),
        ({"run": "runs/a\x00b"}, "run holds a NUL byte"),  # was ValueError: exit 70
    ],
)
def test_bad_values_are_named(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(values)


def test_yaml_round_trip() -> None:
    config = make_config({"data": "d", "run": "r", "channels": 32, "amp": True})
    assert TrainConfig(**__import__("yaml").safe_load(config.to_yaml())) == config


def test_yaml_infinities_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("learning_rate: .inf\n")
    with pytest.raises(ConfigError, match="learning_rate must be finite"):
        make_config(yaml_file=path)


def test_every_option_has_help_and_a_flag() -> None:
    from cryprint.cli import build_parser
    from cryprint.training.config import FIELD_HELP

    assert set(FIELD_HELP) == {field.name for field in fields(TrainConfig)}
    train_help = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for name in FIELD_HELP:
        assert f"--{name.replace('_', '-')}" in train_help
