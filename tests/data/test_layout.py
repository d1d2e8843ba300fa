"""The CryCeleb-layout readers: strings stay strings, bad rows are named."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from cryprint.data.corpus import Corpus, recordings
from cryprint.data.layout import (
    METADATA_COLUMNS,
    read_metadata,
    read_pairs,
    read_sample_submission,
)
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


# --- issue #10: hostile-user review ------------------------------------------------------------


def _swap_pair_ids(path: Path, first: int, second: int) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[[first, second], "id"] = frame.loc[[second, first], "id"].to_numpy()
    frame.to_csv(path, index=False)


@pytest.mark.parametrize("split", ["dev", "test"])
def test_swapped_pair_ids_are_refused_naming_line_and_expected_id(
    corpus_copy: Path, split: str
) -> None:
    path = corpus_copy / f"{split}_pairs.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    # Two rows of different babies, so their ids really differ.
    second = int((frame["baby_id_B"] != frame.loc[0, "baby_id_B"]).to_numpy().nonzero()[0][0])
    _swap_pair_ids(path, 0, second)
    expected = f"{frame.loc[0, 'baby_id_B']}B_{frame.loc[0, 'baby_id_D']}D"
    with pytest.raises(DataError) as error:
        read_pairs(corpus_copy, split)
    message = str(error.value)
    assert f"{split}_pairs.csv" in message and "line 2" in message
    assert expected in message


def test_pair_id_in_another_form_is_refused(corpus_copy: Path) -> None:
    frame = pd.read_csv(corpus_copy / "dev_pairs.csv", dtype=str, keep_default_na=False)
    frame.loc[4, "id"] = frame.loc[4, "baby_id_B"] + "_" + frame.loc[4, "baby_id_D"]
    frame.to_csv(corpus_copy / "dev_pairs.csv", index=False)
    with pytest.raises(DataError, match=r"line 6: .*expected '\w+B_\w+D'"):
        read_pairs(corpus_copy, "dev")


def test_duplicate_pair_is_refused(corpus_copy: Path) -> None:
    frame = pd.read_csv(corpus_copy / "test_pairs.csv", dtype=str, keep_default_na=False)
    frame = pd.concat([frame, frame.iloc[[2]]], ignore_index=True)
    frame.to_csv(corpus_copy / "test_pairs.csv", index=False)
    with pytest.raises(DataError, match=f"line {len(frame) + 1}: pair id listed twice"):
        read_pairs(corpus_copy, "test")


def _hand_made_corpus(root: Path, indices: list[str], baby_id: str = "0007") -> list[str]:
    """One train baby whose B recording has one 0.05 s segment per chronological index; segment
    ``i`` holds the constant sample ``100 * (i + 1)``. Returns the file names in ``indices``'
    order."""
    rows, names = [], []
    for position, index in enumerate(indices):
        name = f"audio/train/{baby_id}/B/{baby_id}_B_{index}.wav"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(root / name, np.full(800, 100 * (position + 1), np.int16), 16_000)
        rows.append([baby_id, "B", "0.05", "train", index, name, f"{baby_id}_B_{index}"])
        names.append(name)
    pd.DataFrame(rows, columns=list(METADATA_COLUMNS)).to_csv(root / "metadata.csv", index=False)
    return names


def test_chronological_index_without_zero_padding_sorts_as_numbers(tmp_path: Path) -> None:
    indices = [str(i) for i in range(1, 12)]
    names = _hand_made_corpus(tmp_path, indices[::-1])[::-1]
    assert list(read_metadata(tmp_path)["chronological_index"]) == indices
    assert list(read_metadata(tmp_path)["file_name"]) == names
    (recording,) = recordings(Corpus(tmp_path), "train")
    firsts = [int(segment[0]) for segment in recording.segments]
    assert firsts == [100 * (11 - i) for i in range(11)]  # written in reverse order


def test_chronological_index_that_is_not_a_number_sorts_as_text(tmp_path: Path) -> None:
    _hand_made_corpus(tmp_path, ["b2", "a10", "a2"])
    assert list(read_metadata(tmp_path)["chronological_index"]) == ["a10", "a2", "b2"]


def test_symlink_out_of_the_data_directory_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "data", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    names = _hand_made_corpus(root, ["001", "002"])
    soundfile.write(outside / "secret.wav", np.zeros(800, np.int16), 16_000)
    (root / names[1]).unlink()
    (root / names[1]).symlink_to(outside / "secret.wav")
    with pytest.raises(
        DataError, match=rf"line 3: {names[1]} leads through a link to .*outside the data directory"
    ):
        read_metadata(root)
    # a whole baby folder linked out of the data directory
    (root / names[1]).unlink()
    soundfile.write(outside / Path(names[1]).name, np.zeros(800, np.int16), 16_000)
    shutil.move(root / names[0], outside / Path(names[0]).name)
    (root / names[0]).parent.rmdir()
    (root / names[0]).parent.symlink_to(outside, target_is_directory=True)
    with pytest.raises(DataError, match="outside the data directory"):
        read_metadata(root)


def test_links_that_stay_inside_the_data_directory_are_followed(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    names = _hand_made_corpus(root, ["001", "002"])
    shutil.move(root / names[1], root / "kept.wav")
    (root / names[1]).symlink_to(root / "kept.wav")
    assert list(read_metadata(root)["file_name"]) == names
    # The data directory itself may be a link (e.g. to another disk).
    (tmp_path / "link").symlink_to(root, target_is_directory=True)
    assert list(read_metadata(tmp_path / "link")["file_name"]) == names


def test_a_data_directory_name_too_long_to_look_up_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"metadata\.csv"):
        read_metadata(tmp_path / ("a" * 300))
    with pytest.raises(DataError, match=r"dev_pairs\.csv"):
        read_pairs(tmp_path / ("a" * 300), "dev")
