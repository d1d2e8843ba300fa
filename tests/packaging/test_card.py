"""The model card's sections, each from what the model folder records."""

import json
from pathlib import Path

import pytest
import yaml

from cryprint.data.synth import MARKER_NAME
from cryprint.errors import ModelError
from cryprint.hub import DATASET_REPO_ID
from cryprint.packaging.card import model_card

SECTIONS = ["## Training data", "## Recipe", "## Evaluation", "## Use", "## Limitations"]


def _evaluated(folder: Path, splits: dict, threshold: float | None = None) -> Path:
    payload = {"splits": splits, **({} if threshold is None else {"threshold": threshold})}
    (folder / "evaluation.json").write_text(json.dumps(payload))
    return folder


def test_sections_come_once_each_in_order(model_folder: Path) -> None:
    card = model_card(model_folder, name="tiny")
    assert card.startswith("---\n") and card.endswith(".\n")
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["library_name"] == "speechbrain" and header["license"] == "other"
    assert "\n---\n\n# tiny: infant cry verification (ECAPA-TDNN)\n\n" in card
    assert [line for line in card.splitlines() if line.startswith("## ")] == SECTIONS
    # One blank line between a section's last line and the next heading.
    for heading in SECTIONS:
        assert f"\n\n{heading}\n\n" in card and f"\n\n\n{heading}" not in card


def test_evaluation_table_has_one_row_per_split(model_folder: Path, tmp_path: Path) -> None:
    synthetic = tmp_path / "synthetic"
    synthetic.mkdir()
    (synthetic / MARKER_NAME).write_text("{}")
    real = tmp_path / "real"
    real.mkdir()
    splits = {
        "test": {"eer": 0.3, "n_pairs": 6400, "data": str(real)},
        "dev": {
            "eer": 0.2125,
            "min_dcf": {"0.05": 0.61, "0.01": 0.83},
            "auc": 0.87,
            "n_pairs": 1600,
            "asnorm": {"eer": 0.2},
            "data": str(synthetic),
        },
    }
    card = model_card(_evaluated(model_folder, splits))
    rows = [line for line in card.splitlines() if line.startswith("| ") and "split" not in line]
    assert rows == [
        "| dev (synthetic) | 1600 | 21.25% | 0.6100 | 0.8300 | 0.8700 | 20.00% |",
        "| test | 6400 | 30.00% | – | – | – | – |",
    ]
    assert "Not evaluated yet" not in card
    [index] = yaml.safe_load(card.split("---\n")[1])["model-index"]
    datasets = {result["dataset"]["split"]: result["dataset"] for result in index["results"]}
    assert datasets["dev"]["type"] == "synthetic"
    assert datasets["test"] == {"name": "CryCeleb2023", "type": DATASET_REPO_ID, "split": "test"}


def test_use_section_states_the_threshold_and_the_calibration(model_folder: Path) -> None:
    card = model_card(model_folder)
    assert "same_baby = score.item() >= THRESHOLD" in card
    assert "No decision threshold is stored yet" in card
    assert "calibration.json" not in card

    _evaluated(model_folder, {"dev": {"eer": 0.25}}, threshold=0.43214)
    (model_folder / "calibration.json").write_text("{}")
    card = model_card(model_folder)
    assert "same_baby = score.item() >= 0.4321" in card
    assert "Decision threshold: **0.4321**, the EER threshold on the dev pairs." in card
    assert "No decision threshold" not in card
    use = card[card.index("## Use") : card.index("## Limitations")]
    assert "`calibration.json` maps a score to P(same baby)" in use


def test_a_folder_without_weights_is_not_a_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"missing hyperparams\.yaml, embedding_model\.ckpt"):
        model_card(tmp_path)


def test_the_verify_command_embeds_as_the_threshold_was_measured(model_folder: Path) -> None:
    """verify refuses a threshold measured with other TTA views or trimming, so the card's
    command carries them (a demo --recipe winners model is evaluated with --tta 5)."""
    assert "cryprint verify a.wav b.wav --model THIS_FOLDER\n" in model_card(model_folder)
    for basis, flags in (
        ({"tta": 5, "trim": True}, " --tta 5"),
        ({"tta": 1, "trim": False}, " --no-trim"),
        ({"tta": 1, "trim": True}, ""),
        ("junk", ""),
    ):
        eer = {"threshold": 0.4, "source": "dev", "embedding": basis}
        payload = {"splits": {"dev": {"eer": 0.25}}, "threshold": 0.4, "thresholds": {"eer": eer}}
        (model_folder / "evaluation.json").write_text(json.dumps(payload))
        assert f"--model THIS_FOLDER{flags}\n```" in model_card(model_folder), basis
