"""EmbeddingOptions: one checked value for how every command embeds recordings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cryprint.cli.common import flag_wording
from cryprint.errors import ConfigError, ModelError
from cryprint.inference.api import CryPrint, embedder_for
from cryprint.inference.options import EmbeddingOptions, check_score_basis


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"backend": "tensorrt"}, "backend"),
        ({"precision": "fp16"}, "precision"),
        ({"tta": 0}, "tta"),
        ({"tta": 65}, "tta"),
        ({"tta": True}, "tta"),
        ({"tta": 2.0}, "tta"),
        ({"trim": "yes"}, "trim"),
    ],
)
def test_bad_options_are_named(changes: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        EmbeddingOptions(**changes)


def test_cryprint_checks_its_options_the_same_way(model_folder: Path) -> None:
    with pytest.raises(ConfigError, match="tta"):
        CryPrint(model_folder, tta=0, store=False)
    with pytest.raises(ConfigError, match="backend"):
        CryPrint(model_folder, backend="x", store=False)


def test_the_embedder_carries_the_options_and_a_loaded_one_is_kept(model_folder: Path) -> None:
    options = EmbeddingOptions(tta=3, trim=False, backend="torch", precision="fp32")
    embedder = embedder_for(model_folder, options, store=False)
    assert embedder.options == options and (embedder.tta, embedder.trim) == (3, False)
    assert embedder.store is None
    assert embedder_for(embedder, EmbeddingOptions(tta=5)) is embedder
    assert embedder.scoring_key == f"{embedder.model_id}|tta3"  # untrimmed: no "|trim"
    assert embedder.embedding_description == "torch fp32, 3 TTA views, untrimmed"


def test_a_mismatch_names_both_ways_and_the_options_to_pass() -> None:
    stored, given = {"tta": 5, "trim": True}, {"tta": 1, "trim": False}
    with pytest.raises(ConfigError) as refused:
        check_score_basis(stored, given, "the threshold in X", "evaluate again")
    message = str(refused.value)
    assert "5 TTA views, trimmed" in message and "1 TTA view, untrimmed" in message
    # The library names its fields; the CLI words the same error with its flags.
    assert "(tta=5, trim=True, as_norm=False)" in message
    assert "(--tta 5, without --no-trim, --no-as-norm)" in refused.value.worded(flag_wording)
    check_score_basis(None, given, "an older file", "-")  # nothing recorded: nothing to check
    check_score_basis(stored, None, "unchecked", "-")
    with pytest.raises(ModelError, match="'embedding' must be"):
        check_score_basis({"tta": True, "trim": True}, given, "X", "-")


def test_scores_normalised_otherwise_are_refused_and_older_records_are_raw() -> None:
    raw, normalised = {"tta": 1, "trim": True}, {"tta": 1, "trim": True, "as_norm": True}
    check_score_basis(raw, {**raw, "as_norm": False}, "an older threshold", "-")  # raw scores
    with pytest.raises(ConfigError, match="made with 1 TTA view, trimmed, AS-norm") as refused:
        check_score_basis(normalised, {**raw, "as_norm": False}, "the threshold", "-")
    assert "--as-norm)" in refused.value.worded(flag_wording)
    with pytest.raises(ModelError, match="'embedding' must be"):
        check_score_basis({**raw, "as_norm": "yes"}, raw, "X", "-")


def test_checking_options_imports_no_torch() -> None:
    code = "import sys, cryprint; cryprint.EmbeddingOptions(tta=2); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"  # fmt: skip
