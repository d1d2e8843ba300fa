"""evaluate: scores of every pair, metrics that agree with the scores, report, figures."""

import json
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import torch

from cryprint.errors import OutputError
from cryprint.evaluation import report as report_module
from cryprint.evaluation.evaluate import evaluate, output_names
from cryprint.evaluation.report import format_table
from cryprint.io import folder_lock
from cryprint.models.ecapa import CryEmbedder, ModelConfig
from cryprint.models.folder import load_model, model_identity, save_model_folder
from cryprint.scoring import compute_auc, compute_eer, compute_min_dcf


@pytest.fixture(scope="module")
def evaluated(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One evaluation with AS-norm of a tiny model folder on the dev split."""
    root = tmp_path_factory.mktemp("evaluated")
    torch.manual_seed(0)
    folder = save_model_folder(CryEmbedder(ModelConfig.small(16)), root / "model")
    [report] = evaluate([folder], small_corpus, "dev", root / "out", as_norm_top_n="auto")
    return {"report": report, "out": root / "out", "model": folder}


def test_report_has_the_metrics_of_every_dev_pair(evaluated: dict, small_corpus: Path) -> None:
    report, out = evaluated["report"], evaluated["out"]
    pairs = pd.read_csv(small_corpus / "dev_pairs.csv", dtype={"baby_id_B": str, "baby_id_D": str})
    on_disk = json.loads((out / "report.json").read_text())
    answer = json.loads(json.dumps(report))
    # Where the model folder's record went is part of the answer, not of the run's report.
    assert answer.pop("recorded_in") == str(evaluated["model"] / "evaluation.json")
    assert on_disk == answer
    for key in ("eer", "threshold", "min_dcf", "auc", "n_pairs", "model_source", "model_id"):
        assert key in on_disk
    assert on_disk["n_pairs"] == len(pairs) == 16
    assert on_disk["split"] == "dev"
    assert on_disk["embedded_with"] == "torch fp32, 1 TTA view, trimmed"  # as it was embedded
    assert on_disk["model_id"] == model_identity(load_model(evaluated["model"]))
    assert on_disk["dcf_parameters"] == {
        "p_targets": [0.05, 0.01],
        "c_miss": 1.0,
        "c_fa": 1.0,
        "normalised": True,
    }

    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns) == ["id", "score", "score_asnorm", "label"]
    assert scores["id"].tolist() == pairs["id"].tolist()
    assert scores["label"].tolist() == pairs["label"].tolist()
    # The metrics are those of the written scores (recomputed independently of the report).
    eer = compute_eer(scores["score"], scores["label"])
    assert on_disk["eer"] == pytest.approx(eer.eer)
    assert on_disk["threshold"] == pytest.approx(eer.threshold, abs=1e-7)
    assert on_disk["auc"] == pytest.approx(compute_auc(scores["score"], scores["label"]))
    for p_target in (0.05, 0.01):
        dcf = compute_min_dcf(scores["score"], scores["label"], p_target=p_target)
        assert on_disk["min_dcf"][f"{p_target:g}"] == pytest.approx(dcf.min_dcf)


def test_as_norm_reports_raw_and_normalised_numbers(evaluated: dict) -> None:
    report, out = evaluated["report"], evaluated["out"]
    scores = pd.read_csv(out / "scores.csv")
    asnorm = report["asnorm"]
    # 28 train babies, 44 train recordings: the default top_n is min(100, 44).
    assert asnorm["cohort_split"] == "train"
    assert asnorm["cohort_size"] == 44
    assert asnorm["top_n"] == 44
    assert asnorm["eer"] == pytest.approx(compute_eer(scores["score_asnorm"], scores["label"]).eer)
    assert "min_dcf" in asnorm and "auc" in asnorm
    assert not np.allclose(scores["score"], scores["score_asnorm"])
    assert report["eer"] == pytest.approx(compute_eer(scores["score"], scores["label"]).eer)


def test_figures_are_pngs(evaluated: dict) -> None:
    out = evaluated["out"]
    for name in ("score_histogram.png", "score_histogram_asnorm.png", "det_curve.png"):
        image = matplotlib.image.imread(out / name)
        assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 300
        assert image[..., :3].std() > 0.05  # not a blank canvas


def test_dev_threshold_is_stored_in_the_model_folder(evaluated: dict) -> None:
    stored = json.loads((evaluated["model"] / "evaluation.json").read_text())
    report = evaluated["report"]
    assert stored["threshold"] == report["threshold"]
    assert stored["model_id"] == report["model_id"]
    assert stored["splits"]["dev"]["eer"] == report["eer"]
    assert stored["splits"]["dev"]["asnorm"]["eer"] == report["asnorm"]["eer"]


def test_several_models_side_by_side(small_corpus: Path, tmp_path: Path, make_model) -> None:
    folders = [save_model_folder(make_model(s), tmp_path / f"run{s}" / "best") for s in (0, 1)]
    reports = evaluate(folders, small_corpus, "dev", tmp_path / "out")
    assert [r["model"] for r in reports] == ["run0_best", "run1_best"]
    for report in reports:
        assert (tmp_path / "out" / report["model"] / "report.json").is_file()
        # The dev split of a model folder measures AS-norm with the train split as cohort.
        assert report["asnorm"]["cohort_split"] == "train"
    assert reports[0]["model_id"] != reports[1]["model_id"]
    table = format_table(reports).splitlines()
    assert table[1].split() == ["model", "EER", "minDCF@0.05", "minDCF@0.01", "AUC", "n_pairs"]
    assert table[3].split()[0] == "run0_best" and table[3].split()[-1] == "16"
    assert table[3].split()[1] == f"{100 * reports[0]['eer']:.2f}%"


def test_output_names_are_unique() -> None:
    assert output_names(["runs/a/best", "runs/b/best", "runs/a/best", "owner/model"]) == [
        "a_best",
        "b_best",
        "a_best-2",
        "owner_model",
    ]


def test_unlabelled_pairs_give_scores_without_metrics(
    corpus_copy: Path, model_folder: Path, tmp_path: Path
) -> None:
    pairs = pd.read_csv(corpus_copy / "test_pairs.csv", dtype=str)
    pairs.drop(columns="label").to_csv(corpus_copy / "test_pairs.csv", index=False)
    [report] = evaluate([model_folder], corpus_copy, "test", tmp_path / "out")
    assert report["n_pairs"] == len(pairs) == 64
    assert report["eer"] is None and report["n_target"] is None
    scores = pd.read_csv(tmp_path / "out" / "scores.csv")
    assert list(scores.columns) == ["id", "score"]
    assert not (tmp_path / "out" / "det_curve.png").exists()
    assert not (model_folder / "evaluation.json").exists()


def test_a_failed_write_leaves_the_earlier_scores_intact(
    small_corpus: Path, model_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    evaluate([model_folder], small_corpus, "dev", out)
    before = (out / "scores.csv").read_bytes()
    report_before = (out / "report.json").read_bytes()

    def half_then_full_disk(self, file, *args, **kwargs):
        file.write(b"id,score\n0260B_0260D,0.5\n")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_full_disk)
    with pytest.raises(OutputError, match="no space left"):
        evaluate([model_folder], small_corpus, "dev", out)
    assert (out / "scores.csv").read_bytes() == before
    assert (out / "report.json").read_bytes() == report_before
    assert not [path.name for path in out.iterdir() if path.name.endswith(".tmp")]


def test_a_failed_evaluation_leaves_no_file_of_the_new_model(
    small_corpus: Path, model_folder: Path, make_model, tmp_path: Path, monkeypatch
) -> None:
    # Issue #10 item 6: a second evaluation that failed on a full disk after writing its scores
    # left the new model's scores.csv and embeddings beside the old model's report and figures.
    out = tmp_path / "out"
    evaluate([model_folder], small_corpus, "dev", out)
    before = {path.name: path.read_bytes() for path in out.iterdir()}

    real_atomic_write = report_module.atomic_write

    def full_disk_at_the_figures(path, write):
        if Path(path).name == "det_curve.png":  # after scores.csv and the embeddings
            raise OutputError(f"{path}: no space left on the device")
        return real_atomic_write(path, write)

    monkeypatch.setattr(report_module, "atomic_write", full_disk_at_the_figures)
    with pytest.raises(OutputError, match="no space left"):
        evaluate([make_model(5)], small_corpus, "dev", out)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model", "out"]


def test_evaluate_refuses_an_output_folder_it_did_not_write(
    small_corpus: Path, model_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.tex").write_text("precious")
    with pytest.raises(OutputError, match="holds what cryprint did not write"):
        evaluate([model_folder], small_corpus, "dev", out)
    assert [path.name for path in out.iterdir()] == ["chapter1.tex"]


def test_a_second_evaluation_into_the_same_folder_fails_at_once(
    small_corpus: Path, model_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with folder_lock(out, "another evaluation"), pytest.raises(OutputError, match="is in use"):
        evaluate([model_folder], small_corpus, "dev", out)


def test_a_dev_evaluation_of_a_model_trained_on_dev_births_warns(
    small_corpus: Path, make_model, tmp_path: Path
) -> None:
    folder = save_model_folder(make_model(0), tmp_path / "model", {"train_on": "train+dev-B"})
    [report] = evaluate([folder], small_corpus, "dev", tmp_path / "out")
    assert "no longer unseen" in report["warning"]
    stored = json.loads((folder / "evaluation.json").read_text())
    assert stored["splits"]["dev"]["warning"] == report["warning"]
    [test_report] = evaluate([folder], small_corpus, "test", tmp_path / "out-test")
    assert test_report["warning"] is None  # test babies were never trained on


def test_test_plots_carry_the_card_name_and_the_dev_threshold(
    small_corpus: Path, model_folder: Path, tmp_path: Path
) -> None:
    [dev] = evaluate([model_folder], small_corpus, "dev", tmp_path / "dev")
    [test] = evaluate([model_folder], small_corpus, "test", tmp_path / "test")
    assert test["title"] == "model" and dev["dev_threshold"] is None
    assert test["dev_threshold"] == pytest.approx(dev["threshold"])  # what verify decides at
