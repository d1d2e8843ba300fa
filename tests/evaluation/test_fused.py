"""evaluate --fuse / --fusion and fused submissions: fitted on dev only, stored, checked
against the models it fuses, and the fused scores are exactly the stored fusion of each
model's own cosine scores."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryprint.cli import main
from cryprint.errors import ConfigError, DataError, ModelError
from cryprint.evaluation.evaluate import evaluate
from cryprint.evaluation.fused import load_fusion
from cryprint.evaluation.submit import write_fused_submission
from cryprint.inference.options import EmbeddingOptions
from cryprint.models.folder import save_model_folder
from cryprint.scoring import compute_eer
from cryprint.scoring.fusion import fit_fusion


@pytest.fixture
def two_models(make_model, tmp_path: Path) -> list[Path]:
    return [save_model_folder(make_model(seed), tmp_path / f"m{seed}", {}) for seed in (0, 1)]


def _scores(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "scores.csv", dtype={"id": str})


def test_fused_scores_are_the_dev_fitted_fusion_of_each_models_scores(
    small_corpus: Path, two_models: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    reports = evaluate(two_models, small_corpus, "test", out, fusion="dev")
    names = [r["model"] for r in reports[:2]]
    assert names[0].endswith("m0") and reports[-1]["model"] == f"fused({names[0]} + {names[1]})"
    fused = reports[-1]
    # The naive computation: fit on the dev cosine scores of each model, apply to test's.
    dev = evaluate(two_models, small_corpus, "dev", tmp_path / "dev")
    dev_columns = np.column_stack([_scores(tmp_path / "dev" / name)["score"] for name in names])
    expected = fit_fusion(dev_columns, _scores(tmp_path / "dev" / names[0])["label"])
    stored = load_fusion(out / "fused" / "fusion.json")
    np.testing.assert_allclose(stored.fusion.weights, expected.weights, rtol=1e-5)
    assert stored.fitted_on["split"] == "dev" and stored.fitted_on["n_pairs"] == dev[0]["n_pairs"]
    table = _scores(out / "fused")
    columns = np.column_stack([_scores(out / name)["score"] for name in names])
    np.testing.assert_allclose(table[[f"score_{name}" for name in names]], columns, atol=1e-7)
    np.testing.assert_allclose(table["score"], stored.fusion.apply(columns), atol=1e-6)
    assert fused["eer"] == pytest.approx(compute_eer(table["score"], table["label"]).eer)
    assert fused["warning"] is None  # only a dev evaluation of a dev-fitted fusion warns
    assert {"report.json", "fusion.json", "scores.csv", "det_curve.png"} <= {
        p.name for p in (out / "fused").iterdir()
    }


def test_the_fusion_never_reads_test_labels(
    corpus_copy: Path, two_models: list[Path], tmp_path: Path
) -> None:
    evaluate(two_models, corpus_copy, "test", tmp_path / "a", fusion="dev")
    pairs = pd.read_csv(corpus_copy / "test_pairs.csv", dtype=str)
    pairs["label"] = 1 - pairs["label"].astype(int)  # every test label wrong
    pairs.to_csv(corpus_copy / "test_pairs.csv", index=False)
    evaluate(two_models, corpus_copy, "test", tmp_path / "b", fusion="dev")
    first = load_fusion(tmp_path / "a" / "fused" / "fusion.json").fusion
    assert load_fusion(tmp_path / "b" / "fused" / "fusion.json").fusion == first


def test_a_stored_fusion_applies_only_to_its_models(
    small_corpus: Path, two_models: list[Path], make_model, tmp_path: Path
) -> None:
    evaluate(two_models, small_corpus, "dev", tmp_path / "dev", fusion="dev")
    stored = tmp_path / "dev" / "fused" / "fusion.json"
    report = json.loads((tmp_path / "dev" / "fused" / "report.json").read_text())
    assert "optimistic" in report["warning"]  # dev metrics of a dev-fitted fusion
    reports = evaluate(two_models, small_corpus, "test", tmp_path / "test", fusion=stored)
    assert load_fusion(tmp_path / "test" / "fused" / "fusion.json") == load_fusion(stored)
    # Fitted from the dev evaluation's own scores or from a fresh embedding of dev: the same.
    refit = evaluate(two_models, small_corpus, "test", tmp_path / "refit", fusion="dev")
    assert refit[-1]["fusion"]["fusion"] == load_fusion(stored).fusion.to_dict()
    assert reports[-1]["fusion"]["fitted_on"]["split"] == "dev"
    with pytest.raises(ModelError, match="another order"):
        evaluate(two_models[::-1], small_corpus, "test", tmp_path / "x", fusion=stored)
    other = save_model_folder(make_model(2), tmp_path / "m2", {})
    with pytest.raises(ModelError, match="other model"):
        evaluate([two_models[0], other], small_corpus, "test", tmp_path / "x", fusion=stored)
    tta3 = EmbeddingOptions(tta=3)
    with pytest.raises(ModelError, match="embedded with"):
        evaluate(two_models, small_corpus, "test", tmp_path / "x", fusion=stored, embedding=tta3)
    with pytest.raises(ConfigError, match="two models"):
        evaluate(two_models[:1], small_corpus, "test", tmp_path / "x", fusion="dev")
    with pytest.raises(ConfigError, match="AS-norm"):
        evaluate(two_models, small_corpus, "test", tmp_path / "x", "auto", fusion="dev")
    assert not (tmp_path / "x").exists()


def test_a_fused_submission_has_the_fused_test_scores(
    small_corpus: Path, two_models: list[Path], tmp_path: Path
) -> None:
    evaluate(two_models, small_corpus, "test", tmp_path / "eval", fusion="dev")
    stored = tmp_path / "eval" / "fused" / "fusion.json"
    result = write_fused_submission(two_models, small_corpus, tmp_path / "sub.csv", stored)
    assert result.n_pairs == 64 and result.model_id.count("+") == 1
    submission = pd.read_csv(tmp_path / "sub.csv", dtype={"id": str}).set_index("id")
    fused = _scores(tmp_path / "eval" / "fused").set_index("id")
    np.testing.assert_allclose(submission["score"], fused.loc[submission.index, "score"], atol=1e-6)
    refit = write_fused_submission(two_models, small_corpus, tmp_path / "sub2.csv", "dev")
    assert (tmp_path / "sub2.csv").read_bytes() == (tmp_path / "sub.csv").read_bytes()
    assert refit.computed == 0  # every recording from the embedding store


def test_cli_fuse_and_its_mistakes(
    small_corpus: Path, two_models: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    models = [arg for model in two_models for arg in ("--model", str(model))]
    out = tmp_path / "eval"
    assert (
        main(["evaluate", *models, "--data", str(small_corpus), "--out", str(out), "--fuse"]) == 0
    )
    assert "fused(" in capsys.readouterr().out
    sub = tmp_path / "sub.csv"
    fusion = str(out / "fused" / "fusion.json")
    base = ["submit", *models, "--data", str(small_corpus), "--out", str(sub)]
    assert main([*base, "--fusion", fusion]) == 0
    assert "fused (2 models: weights" in capsys.readouterr().out
    sub.unlink()
    assert main(base) == 2
    assert "add --fuse or --fusion" in capsys.readouterr().err
    assert main([*base, "--fuse", "--as-norm"]) == 2
    with pytest.raises(SystemExit) as parse_error:  # one or the other
        main([*base, "--fuse", "--fusion", fusion])
    assert parse_error.value.code == 2
    assert main([*base[:3], "--data", str(small_corpus), "--out", str(sub), "--fuse"]) == 2
    assert "two models" in capsys.readouterr().err
    assert main([*base, "--fusion", str(out / "fused" / "report.json")]) == 5
    assert "not a cryprint fusion file" in capsys.readouterr().err
    assert not sub.exists()


def test_fusion_mistakes_fail_before_any_work(
    corpus_copy: Path, two_models: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    pairs = pd.read_csv(corpus_copy / "dev_pairs.csv", dtype=str)
    pairs.drop(columns="label").to_csv(corpus_copy / "dev_pairs.csv", index=False)
    with pytest.raises(DataError, match="no labels"):
        evaluate(two_models, corpus_copy, "test", out, fusion="dev")
    assert not out.exists()  # no model's folder written before the failure
    with pytest.raises(ModelError, match="could not read fusion file"):
        evaluate(two_models, corpus_copy, "test", out, fusion="no-such-fusion.json")
    assert not out.exists()


def test_a_fusion_given_as_text_is_loaded_not_refitted(
    small_corpus: Path, two_models: list[Path], tmp_path: Path
) -> None:
    evaluate(two_models, small_corpus, "dev", tmp_path / "dev", fusion="dev")
    stored = tmp_path / "dev" / "fused" / "fusion.json"
    record = json.loads(stored.read_text())
    record["fusion"]["bias"] = 123.0  # a fusion no dev fit gives
    stored.write_text(json.dumps(record))
    reports = evaluate(two_models, small_corpus, "test", tmp_path / "test", fusion=str(stored))
    assert reports[-1]["fusion"]["fusion"]["bias"] == 123.0
    record["fusion"]["bias"] = int("9" * 400)  # hand-edited beyond a float
    stored.write_text(json.dumps(record))
    with pytest.raises(ModelError, match="invalid"):
        evaluate(two_models, small_corpus, "test", tmp_path / "x", fusion=stored)


def test_a_fusion_of_other_precision_is_refused(
    small_corpus: Path, two_models: list[Path], tmp_path: Path
) -> None:
    evaluate(two_models, small_corpus, "dev", tmp_path / "dev", fusion="dev")
    stored = tmp_path / "dev" / "fused" / "fusion.json"
    bf16 = EmbeddingOptions(precision="bf16")
    with pytest.raises(ModelError, match="another precision or backend"):
        evaluate(two_models, small_corpus, "test", tmp_path / "x", fusion=stored, embedding=bf16)


def test_a_fusion_fifo_is_refused_not_waited_on(
    small_corpus: Path, two_models: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    fifo = tmp_path / "fusion.json"
    os.mkfifo(fifo)
    models = [arg for model in two_models for arg in ("--model", str(model))]
    out = ["--out", str(tmp_path / "sub.csv")]
    code = main(["submit", *models, "--data", str(small_corpus), *out, "--fusion", str(fifo)])
    assert code == 5
    assert "not a regular file" in capsys.readouterr().err
    code = main(
        ["submit", *models, "--data", str(small_corpus), *out, "--fuse", "--cohort-top-n", "5"]
    )
    assert code == 2
    assert "--cohort-top-n needs --as-norm" in capsys.readouterr().err
