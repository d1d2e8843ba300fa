"""score: any list of trials, scored and evaluated exactly as evaluate does a split's pairs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryprint.cli import main
from cryprint.errors import DataError
from cryprint.evaluation.evaluate import evaluate
from cryprint.evaluation.trials import read_trials, score_trials


def _dev_trials(corpus: Path, path: Path, label_words: bool = False) -> pd.DataFrame:
    """The dev pairs as a trials file: B and D folders of segments, relative to ``path``."""
    pairs = pd.read_csv(corpus / "dev_pairs.csv", dtype=str)
    rows = pd.DataFrame(
        {
            "enrolment": [f"audio/dev/{baby}/B" for baby in pairs["baby_id_B"]],
            "test": [f"audio/dev/{baby}/D" for baby in pairs["baby_id_D"]],
            "label": pairs["label"].map({"1": "target", "0": "nontarget"})
            if label_words
            else pairs["label"],
        }
    )
    rows.to_csv(path, index=False)
    return pairs


def test_trials_of_the_dev_pairs_score_as_evaluate_does(
    corpus_copy: Path, model_folder: Path, tmp_path: Path
) -> None:
    trials = corpus_copy / "trials.csv"
    pairs = _dev_trials(corpus_copy, trials, label_words=True)
    report = score_trials(model_folder, trials, tmp_path / "scored")
    [reference] = evaluate([model_folder], corpus_copy, "dev", tmp_path / "evaluated", cohort=False)
    scores = pd.read_csv(tmp_path / "scored" / "scores.csv")
    expected = pd.read_csv(tmp_path / "evaluated" / "scores.csv")
    np.testing.assert_allclose(scores["score"], expected["score"], rtol=0, atol=1e-6)
    assert list(scores["enrolment"][:1]) == [f"audio/dev/{pairs['baby_id_B'][0]}/B"]
    assert report["eer"] == pytest.approx(reference["eer"])
    assert report["min_dcf"] == pytest.approx(reference["min_dcf"])
    assert report["n_recordings"] == reference["n_recordings"]
    assert report["embedded_with"] == "torch fp32, 1 TTA view, trimmed"
    on_disk = json.loads((tmp_path / "scored" / "report.json").read_text())
    assert on_disk["eer"] == report["eer"]
    assert (tmp_path / "scored" / "det_curve.png").is_file()


def test_trials_without_labels_give_scores_only(
    corpus_copy: Path, model_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    trials = corpus_copy / "unlabelled.csv"
    _dev_trials(corpus_copy, trials)
    frame = pd.read_csv(trials, dtype=str).drop(columns="label").head(5)
    frame.to_csv(trials, index=False)
    assert main(["score", "--model", str(model_folder), "--trials", str(trials)]) == 0
    out = corpus_copy / "unlabelled-scores"  # the default: beside the trials file
    assert len(pd.read_csv(out / "scores.csv")) == 5
    assert json.loads((out / "report.json").read_text())["eer"] is None
    assert "5 trial scores" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("../outside.wav,audio/dev/x/B,1", "leads outside"),
        ("/etc/passwd,audio/dev/x/B,1", "must be a path relative"),
        ("audio/dev/x/B,audio/dev/x/D,maybe", "label 'maybe'"),
        ("audio/a\x00.wav,audio/b.wav,1", "NUL byte"),  # was an internal error (exit 70)
    ],
)
def test_bad_rows_are_named_by_line(tmp_path: Path, row: str, message: str) -> None:
    trials = tmp_path / "trials.csv"
    trials.write_text(f"enrolment,test,label\naudio/a.wav,audio/b.wav,1\n{row}\n")
    with pytest.raises(DataError, match=rf"line 3: .*{message}"):
        read_trials(trials)


def test_cli_exit_codes(tmp_path: Path, model_folder: Path, capsys: pytest.CaptureFixture) -> None:
    trials = tmp_path / "trials.csv"
    trials.write_text("enrol,test\na.wav,b.wav\n")
    assert main(["score", "--model", str(model_folder), "--trials", str(trials)]) == 3
    assert "enrolment" in capsys.readouterr().err
    trials.write_text("enrolment,test\nmissing.wav,b.wav\n")
    assert main(["score", "--model", str(model_folder), "--trials", str(trials)]) == 4
    assert not (tmp_path / "trials-scores").exists()
