"""The import paths of 0.1 still work for one release, each with a DeprecationWarning that
names the new home (CHANGELOG.md lists them)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import cryprint
from cryprint._moved import MOVED, RENAMED
from cryprint.inference.api import CryPrint, verify
from cryprint.scoring.verdict import Verdict
from cryprint.ward.enrol import enrol
from cryprint.ward.gallery import Gallery


@pytest.mark.parametrize(
    ("old", "name", "new"),
    [
        ("cryprint.api", "CryPrint", CryPrint),
        ("cryprint.gallery", "Gallery", Gallery),
        ("cryprint.gallery", "enroll", enrol),
        ("cryprint.evaluation.verify", "verify", verify),
        ("cryprint.evaluation.verify", "VerifyResult", Verdict),
    ],
)
def test_an_old_path_gives_the_new_object_with_a_warning(old: str, name: str, new: object) -> None:
    sys.modules.pop(old, None)
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=f"{old}.{name} moved to"):
        assert getattr(module, name) is new


def test_every_old_path_resolves_to_modules_that_exist() -> None:
    for homes in MOVED.values():
        for home in homes:
            importlib.import_module(home)  # raises when a home is misspelt
    for (old, name), new in RENAMED.items():
        assert any(hasattr(importlib.import_module(home), new) for home in MOVED[old]), name


def test_an_unknown_name_of_an_old_path_is_an_attribute_error() -> None:
    module = importlib.import_module("cryprint.store")
    with pytest.raises(AttributeError, match="CHANGELOG"):
        module.no_such_thing  # noqa: B018


def test_the_old_torchrun_entry_point_still_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cryprint.train", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "--batch-babies" in done.stdout


def test_the_package_lists_its_api() -> None:
    assert dir(cryprint) == ["CryPrint", "EmbeddingOptions", "__version__", "verify"]
    assert cryprint.CryPrint is CryPrint and cryprint.verify is verify
