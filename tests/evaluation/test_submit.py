"""Submissions follow sample_submission.csv exactly, or nothing is written."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryprint.errors import DataError
from cryprint.evaluation.pairs import score_pairs
from cryprint.evaluation.submit import check_submission, write_submission
from cryprint.inference.api import CryPrint
from cryprint.inference.splits import embed_split


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"id": str}, keep_default_na=False)


def test_submission_matches_the_sample(small_corpus: Path, make_model, tmp_path: Path) -> None:
    model = make_model(0)
    result = write_submission(model, small_corpus, tmp_path / "submission.csv")
    submission = _read(tmp_path / "submission.csv")
    sample = _read(small_corpus / "sample_submission.csv")
    assert list(submission.columns) == ["id", "score"]
    assert submission["id"].tolist() == sample["id"].tolist()
    assert result.n_pairs == len(sample) == 64
    pairs = pd.read_csv(small_corpus / "test_pairs.csv", dtype=str)
    expected = score_pairs(embed_split(model, small_corpus, "test"), pairs)
    by_id = dict(zip(pairs["id"], expected, strict=True))
    np.testing.assert_allclose(submission["score"], [by_id[i] for i in sample["id"]], atol=1e-7)


def test_the_sample_defines_the_order(corpus_copy: Path, make_model, tmp_path: Path) -> None:
    sample = _read(corpus_copy / "sample_submission.csv")
    shuffled = sample.sample(frac=1.0, random_state=0)
    shuffled.to_csv(corpus_copy / "sample_submission.csv", index=False)
    write_submission(make_model(0), corpus_copy, tmp_path / "submission.csv")
    assert _read(tmp_path / "submission.csv")["id"].tolist() == shuffled["id"].tolist()


@pytest.mark.parametrize("tamper", ["rename", "drop", "duplicate"])
def test_a_tampered_sample_is_rejected(
    corpus_copy: Path, make_model, tmp_path: Path, tamper: str
) -> None:
    sample = _read(corpus_copy / "sample_submission.csv")
    if tamper == "rename":
        sample.loc[5, "id"] = "9999B_0001D"
        match = "not test pairs.*9999B_0001D"
    elif tamper == "drop":
        sample = sample.drop(index=7)
        match = "lists 63 ids, test_pairs.csv 64"
    else:
        sample.loc[9, "id"] = sample.loc[8, "id"]
        match = "id listed twice"
    sample.to_csv(corpus_copy / "sample_submission.csv", index=False)
    with pytest.raises(DataError, match=match):
        write_submission(make_model(0), corpus_copy, tmp_path / "submission.csv")
    assert list(tmp_path.iterdir()) == [corpus_copy]


def test_a_failed_scoring_keeps_the_earlier_submission(
    small_corpus: Path, make_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "submission.csv"
    write_submission(make_model(0), small_corpus, out)
    before = out.read_bytes()

    def scores_with_a_nan(self, embeddings, pairs):
        scores = np.linspace(0, 1, len(pairs))
        scores[40] = np.nan
        return scores

    monkeypatch.setattr(CryPrint, "score_pairs", scores_with_a_nan)
    with pytest.raises(DataError, match="1 submission score"):
        write_submission(make_model(1), small_corpus, out)
    assert out.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["submission.csv"]


def test_check_submission_names_the_first_difference() -> None:
    sample = pd.DataFrame({"id": ["aB_aD", "aB_bD", "bB_aD"], "score": [0.0] * 3})
    good = pd.DataFrame({"id": ["aB_aD", "aB_bD", "bB_aD"], "score": [0.9, 0.1, 0.2]})
    check_submission(good, sample)
    swapped = good.iloc[[0, 2, 1]].reset_index(drop=True)
    with pytest.raises(DataError, match=r"row 2 has id bB_aD, sample_submission\.csv has aB_bD"):
        check_submission(swapped, sample)
    infinite = good.assign(score=[0.9, np.inf, 0.2])
    with pytest.raises(DataError, match="first for aB_bD"):
        check_submission(infinite, sample)
    with pytest.raises(DataError, match="columns"):
        check_submission(good.rename(columns={"score": "prob"}), sample)
