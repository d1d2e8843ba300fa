"""Recordings, groupings and the seeded baby split."""

from pathlib import Path

import numpy as np
import pytest
import soundfile

from cryprint.data.audio import to_int16
from cryprint.data.corpus import (
    Corpus,
    baseline_groups,
    recordings,
    split_babies,
    unified_groups,
)
from cryprint.data.layout import read_metadata
from cryprint.errors import DataError


@pytest.fixture(scope="module")
def corpus(small_corpus: Path) -> Corpus:
    return Corpus(small_corpus)


def test_recording_concatenates_segments_in_chronological_order(
    corpus: Corpus, small_corpus: Path
) -> None:
    metadata = read_metadata(small_corpus)
    recording = next(r for r in recordings(corpus, "dev") if r.period == "D")
    rows = metadata[(metadata["baby_id"] == recording.baby_id) & (metadata["period"] == "D")]
    rows = rows.sort_values("chronological_index")
    floats = [soundfile.read(small_corpus / name, dtype="float32")[0] for name in rows["file_name"]]
    expected = np.concatenate([to_int16(segment) for segment in floats])
    np.testing.assert_array_equal(np.concatenate(recording.segments), expected)
    # Held as int16, a 16-bit file gives back exactly the floats SpeechBrain/soundfile read.
    np.testing.assert_array_equal(recording.waveform(), np.concatenate(floats))
    assert recording.key == f"{recording.baby_id}D"
    assert recording.seconds == pytest.approx(rows["duration"].sum(), abs=0.01)


def test_unified_grouping_holds_both_periods(corpus: Corpus) -> None:
    items = recordings(corpus, "train")
    groups = unified_groups(items)
    periods = {baby: {r.period for r in group} for baby, group in groups.items()}
    assert {"B", "D"} in periods.values()
    assert {"B"} in periods.values()  # train babies with only B exist, as in the real set
    assert sum(len(g) for g in groups.values()) == len(items)


def test_baseline_grouping_trains_on_b_validates_on_d(corpus: Corpus) -> None:
    train, validation = baseline_groups(recordings(corpus, "train"))
    assert {r.period for r in train} == {"B"}
    assert {r.period for r in validation} == {"D"}
    assert {r.baby_id for r in train} == {r.baby_id for r in validation}


def test_split_babies_is_seeded_disjoint_and_complete() -> None:
    babies = [f"{i:04d}" for i in range(100)]
    train, validation = split_babies(babies, 0.15, seed=3)
    assert len(validation) == 15 and len(train) == 85
    assert set(train) | set(validation) == set(babies)
    assert not set(train) & set(validation)
    assert split_babies(babies, 0.15, seed=3) == (train, validation)
    assert split_babies(babies, 0.15, seed=4) != (train, validation)
    with pytest.raises(DataError, match="too few"):
        split_babies(babies[:3], 0.15)


def test_unloaded_split_is_a_clear_error(small_corpus: Path) -> None:
    corpus = Corpus(small_corpus, splits=("dev",))
    with pytest.raises(DataError, match="split 'train' not loaded"):
        recordings(corpus, "train")
