"""Exported folders load in SpeechBrain with the same embeddings and carry a model card."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from cryprint.errors import ModelError, OutputError
from cryprint.evaluation.calibrate_model import calibrate_model
from cryprint.evaluation.evaluate import evaluate
from cryprint.models.folder import load_model, save_model_folder
from cryprint.packaging.card import model_card, write_model_card
from cryprint.packaging.speechbrain import export_model


def _header(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_speechbrain_embeddings_equal_cryprint_embeddings(
    model_folder: Path, tmp_path: Path, make_model
) -> None:
    from speechbrain.inference.speaker import SpeakerRecognition

    out = export_model(model_folder, tmp_path / "export")
    for name in ("hyperparams.yaml", "embedding_model.ckpt", "cryprint.json", "README.md"):
        assert (out / name).is_file()
    speechbrain_model = SpeakerRecognition.from_hparams(
        source=str(out), savedir=str(tmp_path / "speechbrain")
    )
    ours = load_model(model_folder).model.eval()
    torch.manual_seed(2)
    wavs = 0.1 * torch.randn(3, 24000)
    wav_lens = torch.tensor([1.0, 0.75, 0.4])
    with torch.inference_mode():
        expected = ours(wavs, wav_lens)
        theirs = speechbrain_model.encode_batch(wavs, wav_lens).squeeze(1)
        other = make_model(1)(wavs, wav_lens)
    assert theirs.shape == expected.shape == (3, 192)
    torch.testing.assert_close(theirs, expected, rtol=1e-5, atol=1e-6)
    # Other weights give other embeddings: the comparison above is not vacuous.
    assert (theirs - other).abs().max() > 1e-2


def test_export_copies_evaluation_and_calibration(
    small_corpus: Path, model_folder: Path, tmp_path: Path
) -> None:
    [report] = evaluate([model_folder], small_corpus, "dev", tmp_path / "out", cohort=False)
    calibrate_model(model_folder, small_corpus)
    out = export_model(model_folder, tmp_path / "export")
    for name in ("evaluation.json", "calibration.json"):
        assert (out / name).read_bytes() == (model_folder / name).read_bytes()
    info = json.loads((out / "cryprint.json").read_text())
    assert info["note"] == "test model"
    assert info["model_id"] == report["model_id"]
    assert info["exported_from"] == str(model_folder.resolve())

    header = _header((out / "README.md").read_text())
    assert header["library_name"] == "speechbrain"
    assert {"speaker-verification", "infant-cry", "ecapa-tdnn"} <= set(header["tags"])
    # Not trained by cryprint: the card cannot vouch for the weights' data or licence.
    assert header["license"] == "other"
    assert header["model-index"][0]["name"] == "export"
    [result] = header["model-index"][0]["results"]
    assert result["dataset"] == {
        "name": "cryprint synthetic corpus",
        "type": "synthetic",
        "split": "dev",
    }
    eer = next(m for m in result["metrics"] if m["type"] == "eer")
    assert eer["value"] == round(100 * report["eer"], 2)
    body = (out / "README.md").read_text()
    assert "SpeakerRecognition.from_hparams" in body
    assert f"{report['threshold']:.4f}" in body
    assert "Not fine-tuned by cryprint" in body and "## Limitations" in body


@pytest.mark.parametrize("synthetic", [False, True])
def test_card_of_a_training_run(
    small_corpus: Path, make_model, tmp_path: Path, synthetic: bool
) -> None:
    data = small_corpus if synthetic else tmp_path / "cryceleb"
    data.mkdir(exist_ok=True)
    run = tmp_path / "runs" / "triplet"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"data": str(data), "method": "triplet"}))
    info = {
        "trained_by": "cryprint",
        "method": "triplet",
        "initial_weights": "speechbrain/spkrec-ecapa-voxceleb",
        "epoch": 7,
        "validation_loss": 0.4,
        "validation_eer": 0.2125,
        "run": str(run),
    }
    folder = save_model_folder(make_model(0), run / "best", info)
    card = model_card(folder)
    header = _header(card)
    assert header["base_model"] == "speechbrain/spkrec-ecapa-voxceleb"
    assert "# triplet-best:" in card
    assert "- method: `triplet`" in card and "- epoch of these weights: `7`" in card
    assert "21.25%" in card
    if synthetic:
        assert header["license"] == "other" and "datasets" not in header
        assert "synthetic cry corpus" in card
    else:
        assert header["license"] == "cc-by-nc-nd-4.0"
        assert header["datasets"] == ["Ubenwa/CryCeleb2023"]
        assert "CC-BY-NC-ND-4.0" in card


def test_reexport_replaces_the_folder_whole(
    small_corpus: Path, model_folder: Path, make_model, tmp_path: Path
) -> None:
    evaluate([model_folder], small_corpus, "dev", tmp_path / "out")
    out = export_model(model_folder, tmp_path / "export")
    assert (out / "evaluation.json").is_file()
    export_model(make_model(3), out)  # no evaluation: the old one must not stay behind
    assert not (out / "evaluation.json").exists()
    assert json.loads((out / "cryprint.json").read_text())["exported_from"] == "in-memory model"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_export_refuses_unsafe_destinations(model_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="the model folder itself"):
        export_model(model_folder, model_folder)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.tex").write_text("precious")
    with pytest.raises(OutputError, match="holds what cryprint did not write"):
        export_model(model_folder, busy)
    assert (busy / "thesis.tex").read_text() == "precious"


def test_export_never_deletes_a_folder_it_did_not_write(model_folder: Path, tmp_path: Path) -> None:
    # Issue #10 item 4: a folder that merely holds a hyperparams.yaml (someone's SpeechBrain
    # recipe, say) was replaced whole, deleting its other files.
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    (recipe / "hyperparams.yaml").write_text("seed: 1\n")
    (recipe / "train.py").write_text("print('mine')\n")
    with pytest.raises(OutputError, match="holds what cryprint did not write"):
        export_model(model_folder, recipe)
    assert sorted(p.name for p in recipe.iterdir()) == ["hyperparams.yaml", "train.py"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_card_without_evaluation(model_folder: Path) -> None:
    card = model_card(model_folder)
    assert "model-index" not in _header(card)
    assert "Not evaluated yet" in card
    assert write_model_card(model_folder) == model_folder / "README.md"
    (model_folder / "embedding_model.ckpt").unlink()
    with pytest.raises(ModelError, match=r"missing embedding_model\.ckpt"):
        model_card(model_folder)


def test_an_export_keeps_the_as_norm_cohort_its_evaluation_calls_for(
    model_folder: Path, small_corpus: Path, tmp_path: Path
) -> None:
    """An export of an evaluated model scores as the model does: its cohort goes along."""
    from cryprint.inference.api import CryPrint

    evaluate([model_folder], small_corpus, "dev", tmp_path / "out")
    record = json.loads((model_folder / "evaluation.json").read_text())
    record["as_norm"]["helped"] = True  # the model normalises: the export must be able to
    (model_folder / "evaluation.json").write_text(json.dumps(record))
    out = export_model(model_folder, tmp_path / "export")
    assert (out / "cohort.npz").read_bytes() == (model_folder / "cohort.npz").read_bytes()
    assert CryPrint(out, store=False).as_norm is True
