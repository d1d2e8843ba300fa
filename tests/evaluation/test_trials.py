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


def _trials_folder(tmp_path: Path) -> Path:
    """A trials folder with two recordings: a.wav and a folder b/ of two segments."""
    folder = tmp_path / "trials"
    (folder / "b").mkdir(parents=True)
    for name in ("a.wav", "b/1.wav", "b/2.wav"):
        (folder / name).write_bytes(b"RIFF")
    return folder


def test_a_linked_segment_leading_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    folder = _trials_folder(tmp_path)
    secret = tmp_path / "outside" / "secret.wav"
    secret.parent.mkdir()
    secret.write_bytes(b"RIFF")
    (folder / "b" / "3.wav").symlink_to(secret)
    trials = folder / "trials.csv"
    trials.write_text("enrolment,test,label\na.wav,a.wav,1\na.wav,b,0\n")
    with pytest.raises(DataError, match=r"line 3: 'b' holds 3.wav, which leads outside"):
        read_trials(trials)
    (folder / "b" / "3.wav").unlink()
    (folder / "b" / "3.wav").symlink_to(folder / "a.wav")  # a link inside the folder is fine
    assert list(read_trials(trials)["label"]) == [1, 0]


def test_the_same_trial_labelled_both_ways_is_refused(tmp_path: Path) -> None:
    folder = _trials_folder(tmp_path)
    trials = folder / "trials.csv"
    trials.write_text("enrolment,test,label\na.wav,b,1\nb/1.wav,a.wav,0\n./a.wav,b/,0\n")
    with pytest.raises(DataError, match=r"lines 2 and 4: .*labelled 1 and 0"):
        read_trials(trials)
    trials.write_text("enrolment,test,label\na.wav,b,1\nb,a.wav,0\n")  # the same pair turned
    with pytest.raises(DataError, match=r"lines 2 and 3"):
        read_trials(trials)
    trials.write_text("enrolment,test,label\na.wav,b,1\na.wav,b,1\n")  # repeated, agreeing
    assert len(read_trials(trials)) == 2


@pytest.mark.parametrize(
    "rows",
    [
        "x.wav,a.wav,b,1\n",  # every row one field too many: pandas took x.wav as an index
        "a.wav,b,1\nx.wav,a.wav,b,0\n",
        "x.wav,a.wav,b,1\na.wav,b,1\n",
        "a.wav,b,1,\n",
    ],
)
def test_a_row_with_more_fields_than_the_header_is_refused(tmp_path: Path, rows: str) -> None:
    folder = _trials_folder(tmp_path)
    trials = folder / "trials.csv"
    trials.write_text("enrolment,test,label\n" + rows)
    line = 2 + rows.split("\n").index(next(r for r in rows.split("\n") if r.count(",") > 2))
    with pytest.raises(DataError, match=rf"line {line}: .*4 fields.* 3 columns"):
        read_trials(trials)


def test_a_utf16_trials_file_is_refused(tmp_path: Path) -> None:
    folder = _trials_folder(tmp_path)
    trials = folder / "trials.csv"
    trials.write_bytes("enrolment,test,label\na.wav,b,1\n".encode("utf-16"))
    with pytest.raises(DataError, match="not a readable trials CSV"):
        read_trials(trials)
