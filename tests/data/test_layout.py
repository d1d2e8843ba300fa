"""The CryCeleb-layout readers: strings stay strings, bad rows are named."""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from cryprint.data.layout import read_metadata, read_pairs, read_sample_submission
from cryprint.errors import DataError


@pytest.fixture
def corpus_copy(small_corpus: Path, tmp_path: Path) -> Path:
    """A copy of the CSVs of the small corpus, with its audio folder linked (not copied)."""
    root = tmp_path / "copy"
    root.mkdir()
    for name in ("metadata.csv", "dev_pairs.csv", "test_pairs.csv", "sample_submission.csv"):
        shutil.copy(small_corpus / name, root / name)
    (root / "audio").symlink_to(small_corpus / "audio")
    return root


def _edit_metadata(root: Path, row: int, column: str, value: str) -> None:
    frame = pd.read_csv(root / "metadata.csv", dtype=str, keep_default_na=False)
    frame.loc[row, column] = value
    frame.to_csv(root / "metadata.csv", index=False)


def test_ids_stay_strings_with_leading_zeros(small_corpus: Path) -> None:
    metadata = read_metadata(small_corpus)
    train_ids = metadata.loc[metadata["split"] == "train", "baby_id"]
    assert train_ids.str.fullmatch(r"\d{4}").all()
    assert (train_ids.str[0] == "0").any()
    assert metadata["chronological_index"].str.fullmatch(r"\d{3}").all()
    assert metadata["duration"].dtype == float


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("period", "X", "period must be B or D"),
        ("split", "valid", "split must be train, dev or test"),
        ("duration", "-1", "positive number"),
        ("duration", "abc", "positive number"),
        ("file_name", "../outside.wav", "relative path inside"),
        ("file_name", "/etc/passwd", "relative path inside"),
        ("file_name", "audio/train/none.wav", "audio file missing"),
        ("baby_id", "", "empty 'baby_id'"),
    ],
)
def test_bad_rows_are_named(corpus_copy: Path, column: str, value: str, message: str) -> None:
    _edit_metadata(corpus_copy, 5, column, value)
    with pytest.raises(DataError, match=message) as error:
        read_metadata(corpus_copy)
    assert "line 7" in str(error.value)  # row 5 + header + 1-based


def test_missing_column_and_missing_file(corpus_copy: Path) -> None:
    frame = pd.read_csv(corpus_copy / "metadata.csv", dtype=str).drop(columns=["period"])
    frame.to_csv(corpus_copy / "metadata.csv", index=False)
    with pytest.raises(DataError, match=r"missing column.*period"):
        read_metadata(corpus_copy)
    (corpus_copy / "metadata.csv").unlink()
    with pytest.raises(DataError, match="file not found"):
        read_metadata(corpus_copy)


def test_garbage_csv_is_a_clear_error(corpus_copy: Path) -> None:
    (corpus_copy / "metadata.csv").write_bytes(b"\xff\xfe\x00garbage\x00\x81")
    with pytest.raises(DataError, match=r"metadata\.csv"):
        read_metadata(corpus_copy)


def test_pairs_and_submission(small_corpus: Path) -> None:
    dev = read_pairs(small_corpus, "dev")
    assert set(dev["label"].unique()) == {0, 1}
    assert (dev["id"] == dev["baby_id_B"] + "B_" + dev["baby_id_D"] + "D").all()
    test = read_pairs(small_corpus, "test")
    submission = read_sample_submission(small_corpus)
    assert list(submission["id"]) == list(test["id"])
    with pytest.raises(DataError, match="no pairs file"):
        read_pairs(small_corpus, "train")


def test_bad_label_is_named(corpus_copy: Path) -> None:
    frame = pd.read_csv(corpus_copy / "dev_pairs.csv", dtype=str)
    frame.loc[3, "label"] = "yes"
    frame.to_csv(corpus_copy / "dev_pairs.csv", index=False)
    with pytest.raises(DataError, match="line 5: label must be 0 or 1"):
        read_pairs(corpus_copy, "dev")
