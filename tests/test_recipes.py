"""Named recipes (cryprint.recipes): training keys that TrainConfig takes and keeps, a valid
number of test-time augmentation views, and exactly the recipes ``demo --recipe`` offers."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys

import pytest

from cryprint.inference.options import EmbeddingOptions
from cryprint.recipes import RECIPES, Recipe
from cryprint.training.config import TrainConfig, make_config

TRAIN_FIELDS = {field.name for field in dataclasses.fields(TrainConfig)}


def _demo_parser() -> argparse.ArgumentParser:
    from cryprint.cli import build_parser

    return build_parser()._subparsers._group_actions[0].choices["demo"]


def _recipe_option(parser: argparse.ArgumentParser) -> argparse.Action:
    (action,) = [action for action in parser._actions if "--recipe" in action.option_strings]
    return action


def test_the_reference_and_the_winners_recipes_exist() -> None:
    assert {"reference", "winners"} <= set(RECIPES)
    assert all(isinstance(recipe, Recipe) for recipe in RECIPES.values())


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_training_keys_are_train_config_fields_and_land(name: str) -> None:
    training = RECIPES[name].training
    assert set(training) <= TRAIN_FIELDS, set(training) - TRAIN_FIELDS
    config = make_config(dict(training))
    defaults = make_config({})
    for key, value in training.items():
        assert getattr(config, key) == value, key
        # A recipe key that only restates the default would change nothing.
        assert getattr(defaults, key) != value, key
    # Nothing besides the recipe's keys moves.
    untouched = TRAIN_FIELDS - set(training)
    assert {key: getattr(config, key) for key in untouched} == {
        key: getattr(defaults, key) for key in untouched
    }


def test_reference_is_the_default_training_and_no_tta() -> None:
    reference = RECIPES["reference"]
    assert make_config(dict(reference.training)) == make_config({})
    assert reference.tta == EmbeddingOptions().tta == 1


def test_winners_train_on_dev_births_and_embed_five_views() -> None:
    winners = RECIPES["winners"]
    assert make_config(dict(winners.training)).train_on == "train+dev-B"
    assert winners.tta == 5


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_tta_is_a_valid_number_of_views(name: str) -> None:
    tta = RECIPES[name].tta
    assert type(tta) is int
    assert EmbeddingOptions(tta=tta).tta == tta  # raises ConfigError when not valid


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_has_a_summary(name: str) -> None:
    summary = RECIPES[name].summary
    assert isinstance(summary, str) and summary.strip()


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_says_which_schedule_it_trains_with(name: str) -> None:
    assert "schedule" in RECIPES[name].summary


def test_the_demo_trains_with_the_cosine_schedule() -> None:
    from cryprint.demo import DEMO_TRAINING

    assert DEMO_TRAINING.schedule == "cosine"
    assert make_config({}).schedule == "plateau"  # --full keeps the published recipe's


def test_recipes_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RECIPES["winners"].tta = 1  # type: ignore[misc]


def test_demo_recipe_choices_are_the_recipes() -> None:
    action = _recipe_option(_demo_parser())
    assert sorted(action.choices) == sorted(RECIPES)
    assert action.default in RECIPES
    # Its help lists what each recipe does.
    help_text = " ".join(_demo_parser().format_help().split())
    for name, recipe in RECIPES.items():
        assert f"{name}: {' '.join(recipe.summary.split())}" in help_text


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_demo_accepts_each_recipe(name: str) -> None:
    from cryprint.cli import build_parser

    assert build_parser().parse_args(["demo", "--recipe", name]).recipe == name


def test_demo_refuses_an_unknown_recipe(capsys: pytest.CaptureFixture) -> None:
    from cryprint.cli import build_parser

    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["demo", "--recipe", "no-such-recipe"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_the_demo_applies_a_recipe(name: str) -> None:
    from cryprint.demo import DemoSettings

    settings = DemoSettings()
    applied = settings.with_recipe(name)
    recipe = RECIPES[name]
    assert applied.tta == recipe.tta
    for key, value in recipe.training.items():
        assert getattr(applied.training, key) == value
    # The demo's own training options stay (they are not the library defaults).
    untouched = TRAIN_FIELDS - set(recipe.training)
    assert {key: getattr(applied.training, key) for key in untouched} == {
        key: getattr(settings.training, key) for key in untouched
    }


def test_recipes_import_without_torch() -> None:
    # The module docstring's promise: the CLI lists recipes in --help without importing torch.
    code = "import sys, cryprint.recipes; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"
