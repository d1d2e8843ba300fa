"""Tests of the synthetic corpus: layout, determinism, safety, and a task of the right hardness."""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from cryprint.data import synth
from cryprint.data.synth import MAX_DIFFICULTY, SAMPLE_RATE, generate_corpus, split_counts
from cryprint.errors import DataError
from cryprint.scoring.metrics import compute_eer

METADATA_COLUMNS = [
    "baby_id",
    "period",
    "duration",
    "split",
    "chronological_index",
    "file_name",
    "file_id",
]
PAIRS_COLUMNS = ["baby_id_B", "baby_id_D", "id", "label"]


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def corpus_files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative POSIX path → bytes)."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def corpus_30(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, synth.SynthSummary]:
    root = tmp_path_factory.mktemp("synth") / "corpus"
    return root, generate_corpus(root, babies=30, seed=7)


# --- split proportions -----------------------------------------------------------------------


@pytest.mark.parametrize("babies", [20, 30, 40, 97, 240, 786, 5000])
def test_split_counts_follow_the_real_proportions(babies: int) -> None:
    counts = split_counts(babies)
    assert counts["dev"] == max(4, math.floor(babies * 40 / 786 + 0.5))
    assert counts["test"] == max(4, math.floor(babies * 160 / 786 + 0.5))
    assert counts["dev"] + counts["test"] + counts["train"] == babies
    assert counts["train_both"] + counts["train_only_b"] + counts["train_only_d"] == counts["train"]
    assert counts["train_only_b"] >= 1 and counts["train_only_d"] >= 1
    train = counts["train"]
    # Within one baby of the real 348 : 183 : 55 division of the train split.
    assert abs(counts["train_only_b"] - train * 183 / 586) <= 1
    assert abs(counts["train_only_d"] - train * 55 / 586) <= 1


def test_split_counts_at_full_size_are_the_real_table() -> None:
    assert split_counts(786) == {
        "dev": 40,
        "test": 160,
        "train": 586,
        "train_both": 348,
        "train_only_b": 183,
        "train_only_d": 55,
    }


# --- layout and schemas ----------------------------------------------------------------------


def test_root_holds_the_published_files(corpus_30) -> None:
    root, _ = corpus_30
    names = {path.name for path in root.iterdir()}
    assert names == {
        "metadata.csv",
        "dev_pairs.csv",
        "test_pairs.csv",
        "sample_submission.csv",
        "audio",
        synth.MARKER_NAME,
    }
    assert {path.name for path in (root / "audio").iterdir()} == {"train", "dev", "test"}
    assert not list(root.glob(".*.tmp"))


def test_metadata_schema_and_paths(corpus_30) -> None:
    root, summary = corpus_30
    metadata = read_csv(root / "metadata.csv")
    assert list(metadata.columns) == METADATA_COLUMNS
    assert (metadata["duration"].astype(float) > 0).all()
    assert set(metadata["period"]) == {"B", "D"}
    assert set(metadata["split"]) == {"train", "dev", "test"}
    numbered = metadata["split"] != "test"
    assert metadata.loc[numbered, "baby_id"].str.fullmatch(r"\d{4}").all()
    assert metadata.loc[~numbered, "baby_id"].str.fullmatch(r"anonymous\d{3}").all()
    assert metadata["chronological_index"].str.fullmatch(r"\d{3}").all()
    expected_name = (
        "audio/"
        + metadata["split"]
        + "/"
        + metadata["baby_id"]
        + "/"
        + metadata["period"]
        + "/"
        + metadata["baby_id"]
        + "_"
        + metadata["period"]
        + "_"
        + metadata["chronological_index"]
        + ".wav"
    )
    assert (metadata["file_name"] == expected_name).all()
    assert (metadata["file_id"] == metadata["file_name"].map(lambda name: Path(name).stem)).all()
    assert not metadata["file_name"].duplicated().any()
    # Each recording's indices run 000, 001, ... without gaps.
    for _, rows in metadata.groupby(["baby_id", "period"]):
        indices = sorted(rows["chronological_index"])
        assert indices == [f"{i:03d}" for i in range(len(rows))]
    # Every baby belongs to one split; ids are unique across the corpus.
    assert (metadata.groupby("baby_id")["split"].nunique() == 1).all()
    periods = metadata.groupby("baby_id")["period"].agg(lambda p: "".join(sorted(set(p))))
    split_of = metadata.groupby("baby_id")["split"].first()
    counts = split_counts(30)
    for split in ("dev", "test"):
        assert (split_of == split).sum() == counts[split]
        assert (periods[split_of == split] == "BD").all()
    train = periods[split_of == "train"]
    assert (train == "BD").sum() == counts["train_both"]
    assert (train == "B").sum() == counts["train_only_b"] >= 1
    assert (train == "D").sum() == counts["train_only_d"] >= 1
    assert summary.babies == {split: counts[split] for split in ("train", "dev", "test")}
    assert summary.segments == len(metadata)
    assert summary.recordings == metadata.groupby(["baby_id", "period"]).ngroups


def test_audio_matches_metadata(corpus_30) -> None:
    root, summary = corpus_30
    metadata = read_csv(root / "metadata.csv")
    on_disk = {path.relative_to(root).as_posix() for path in (root / "audio").rglob("*.wav")}
    assert on_disk == set(metadata["file_name"])
    total_samples = 0
    for file_name, duration in zip(metadata["file_name"], metadata["duration"], strict=True):
        info = soundfile.info(root / file_name)
        assert (info.samplerate, info.channels) == (SAMPLE_RATE, 1)
        assert (info.format, info.subtype) == ("WAV", "PCM_16")
        assert abs(info.frames - float(duration) * SAMPLE_RATE) < 1.0
        total_samples += info.frames
    assert summary.total_seconds == pytest.approx(total_samples / SAMPLE_RATE)
    durations = metadata["duration"].astype(float)
    assert durations.min() >= 0.08 and durations.max() <= 10.34
    written = sum(path.stat().st_size for path in root.rglob("*") if path.is_file())
    assert summary.bytes_written == written


def test_audio_is_a_cry_not_silence_or_clipping(corpus_30) -> None:
    root, _ = corpus_30
    metadata = read_csv(root / "metadata.csv")
    for file_name in metadata["file_name"][::7]:
        samples, _ = soundfile.read(root / file_name, dtype="int16")
        assert samples.dtype == np.int16 and samples.ndim == 1
        peak = np.abs(samples.astype(np.int32)).max()
        assert 1000 < peak < 32767
        # Spectral energy mostly in the cry band (f0 and formants), not at DC or near Nyquist.
        power = np.abs(np.fft.rfft(samples.astype(float))) ** 2
        frequencies = np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)
        band = (frequencies > 250) & (frequencies < 6000)
        assert power[band].sum() > 0.8 * power.sum()


def test_pairs_and_submission(corpus_30) -> None:
    root, _ = corpus_30
    metadata = read_csv(root / "metadata.csv")
    for split in ("dev", "test"):
        pairs = read_csv(root / f"{split}_pairs.csv")
        assert list(pairs.columns) == PAIRS_COLUMNS
        babies = sorted(set(metadata.loc[metadata["split"] == split, "baby_id"]))
        expected = set(itertools.product(babies, babies))
        got = list(zip(pairs["baby_id_B"], pairs["baby_id_D"], strict=True))
        assert len(got) == len(expected) and set(got) == expected
        assert (pairs["id"] == pairs["baby_id_B"] + "B_" + pairs["baby_id_D"] + "D").all()
        same = pairs["baby_id_B"] == pairs["baby_id_D"]
        assert (pairs["label"] == same.map({True: "1", False: "0"})).all()
        assert (pairs["label"] == "1").sum() == len(babies)
    test_pairs = read_csv(root / "test_pairs.csv")
    submission = read_csv(root / "sample_submission.csv")
    assert list(submission.columns) == ["id", "score"]
    assert submission["id"].tolist() == test_pairs["id"].tolist()
    assert submission["score"].astype(float).nunique() == 1


def test_the_layout_reader_accepts_the_corpus(corpus_30) -> None:
    layout = pytest.importorskip("cryprint.data.layout")
    root, summary = corpus_30
    assert len(layout.read_metadata(root, check_files=True)) == summary.segments
    assert len(layout.read_pairs(root, "dev")) == split_counts(30)["dev"] ** 2
    assert len(layout.read_pairs(root, "test")) == split_counts(30)["test"] ** 2
    assert len(layout.read_sample_submission(root)) == split_counts(30)["test"] ** 2


# --- determinism and safety ------------------------------------------------------------------


def test_same_arguments_give_byte_identical_files(tmp_path: Path) -> None:
    arguments = {"babies": 20, "seed": 3, "difficulty": 1.3, "segments_per_recording": (1, 3)}
    generate_corpus(tmp_path / "first", **arguments)
    generate_corpus(tmp_path / "second", **arguments)
    first, second = corpus_files(tmp_path / "first"), corpus_files(tmp_path / "second")
    assert first.keys() == second.keys()
    assert all(first[name] == second[name] for name in first)

    generate_corpus(tmp_path / "other", **{**arguments, "seed": 4})
    other = corpus_files(tmp_path / "other")
    assert other["metadata.csv"] != first["metadata.csv"]
    first_audio = sorted(value for name, value in first.items() if name.endswith(".wav"))
    other_audio = sorted(value for name, value in other.items() if name.endswith(".wav"))
    assert not set(first_audio) & set(other_audio)


def test_an_existing_corpus_is_replaced_only_with_overwrite(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    generate_corpus(root, babies=20, seed=1, segments_per_recording=(1, 2))
    before = corpus_files(root)
    with pytest.raises(DataError, match="--overwrite") as raised:
        generate_corpus(root, babies=20, seed=2, segments_per_recording=(1, 2))
    assert "overwrite=True" in str(raised.value) and "another directory" in str(raised.value)
    assert corpus_files(root) == before

    generate_corpus(root, babies=20, seed=2, segments_per_recording=(1, 2), overwrite=True)
    generate_corpus(tmp_path / "fresh", babies=20, seed=2, segments_per_recording=(1, 2))
    assert corpus_files(root) == corpus_files(tmp_path / "fresh")  # no stale file left


def test_overwrite_removes_only_what_the_generator_writes(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    generate_corpus(root, babies=20, seed=1, segments_per_recording=(1, 2))
    (root / "notes.txt").write_text("keep me\n")
    (root / "audio" / "train" / "extra.wav").write_bytes(b"stale")
    generate_corpus(root, babies=20, seed=2, segments_per_recording=(1, 2), overwrite=True)
    generate_corpus(tmp_path / "fresh", babies=20, seed=2, segments_per_recording=(1, 2))
    after = corpus_files(root)
    assert after.pop("notes.txt") == b"keep me\n"
    assert after == corpus_files(tmp_path / "fresh")  # the stale audio/ file went with audio/

    # An audio/ that is a link: the link goes, never what it points to.
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "train").mkdir(parents=True)
    (elsewhere / "train" / "cry.wav").write_bytes(b"precious")
    (tmp_path / "fresh" / "audio").rename(tmp_path / "moved")
    (tmp_path / "fresh" / "audio").symlink_to(elsewhere, target_is_directory=True)
    generate_corpus(
        tmp_path / "fresh", babies=20, seed=2, segments_per_recording=(1, 2), overwrite=True
    )
    assert (elsewhere / "train" / "cry.wav").read_bytes() == b"precious"
    assert not (tmp_path / "fresh" / "audio").is_symlink()


def test_refuses_a_directory_that_is_not_a_synthetic_corpus(tmp_path: Path) -> None:
    root = tmp_path / "real"
    root.mkdir()
    (root / "metadata.csv").write_text("precious\n")
    (root / "audio").mkdir()
    (root / "audio" / "cry.wav").write_bytes(b"precious")
    for overwrite in (False, True):
        with pytest.raises(DataError, match="no cryprint synthetic corpus") as raised:
            generate_corpus(root, babies=20, segments_per_recording=(1, 1), overwrite=overwrite)
        assert str(root) in str(raised.value) and "another directory" in str(raised.value)
        assert (root / "metadata.csv").read_text() == "precious\n"
        assert (root / "audio" / "cry.wav").read_bytes() == b"precious"
        assert sorted(path.name for path in root.iterdir()) == ["audio", "metadata.csv"]

    (tmp_path / "empty").mkdir()
    generate_corpus(tmp_path / "empty", babies=20, segments_per_recording=(1, 1))
    assert read_csv(tmp_path / "empty" / "metadata.csv").columns.tolist() == METADATA_COLUMNS

    a_file = tmp_path / "a_file"
    a_file.write_text("")
    with pytest.raises(DataError, match="not a directory"):
        generate_corpus(a_file, babies=20, overwrite=True)


def test_a_crash_leaves_no_metadata_and_a_rerun_recovers(tmp_path, monkeypatch) -> None:
    root = tmp_path / "corpus"
    write_wav = synth._write_wav
    calls = []

    def failing_write(path, samples):
        calls.append(path)
        if len(calls) > 5:
            raise OSError("disk full")
        return write_wav(path, samples)

    monkeypatch.setattr(synth, "_write_wav", failing_write)
    with pytest.raises(OSError, match="disk full"):
        generate_corpus(root, babies=20, segments_per_recording=(1, 2))
    assert not (root / "metadata.csv").exists()
    monkeypatch.setattr(synth, "_write_wav", write_wav)
    with pytest.raises(DataError, match="incomplete"):
        generate_corpus(root, babies=20, segments_per_recording=(1, 2))
    summary = generate_corpus(root, babies=20, segments_per_recording=(1, 2), overwrite=True)
    assert len(read_csv(root / "metadata.csv")) == summary.segments


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"babies": 19}, "between 20 and 5000"),
        ({"babies": 5001}, "between 20 and 5000"),
        ({"babies": 30.0}, "integer"),
        ({"babies": True}, "integer"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"difficulty": -0.1}, "difficulty"),
        ({"difficulty": float("nan")}, "difficulty"),
        ({"difficulty": float("inf")}, "difficulty"),
        ({"difficulty": 1e308}, "difficulty"),  # wrote a corpus of silence, exit 0
        ({"difficulty": 5.01}, "difficulty"),
        ({"difficulty": "hard"}, "difficulty"),
        ({"segments_per_recording": (0, 3)}, "segments_per_recording"),
        ({"segments_per_recording": (5, 4)}, "segments_per_recording"),
        ({"segments_per_recording": (3,)}, "segments_per_recording"),
        ({"segments_per_recording": (1.0, 2)}, "segments_per_recording"),
    ],
)
def test_invalid_arguments_are_refused(tmp_path: Path, arguments: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        generate_corpus(tmp_path / "corpus", **{"babies": 20, **arguments})
    assert not (tmp_path / "corpus").exists()


# --- the task is learnable but not trivial ---------------------------------------------------


def mel_filterbank(mels: int = 40, fft_size: int = 512) -> np.ndarray:
    """Triangular filters on the HTK mel scale, 20 Hz – 8 kHz: float [mels, fft_size//2 + 1]."""

    def to_mel(hz):
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    def to_hz(mel):
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)

    edges = to_hz(np.linspace(to_mel(20.0), to_mel(SAMPLE_RATE / 2), mels + 2))
    frequencies = np.fft.rfftfreq(fft_size, 1.0 / SAMPLE_RATE)
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (frequencies - low) / (centre - low)
    falling = (high - frequencies) / (high - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def mean_log_mel(waveform: np.ndarray, filterbank: np.ndarray) -> np.ndarray:
    """Mean over 25 ms frames (10 ms hop) of the log-mel spectrum, its level removed."""
    frames = np.lib.stride_tricks.sliding_window_view(waveform, 400)[::160] * np.hanning(400)
    power = np.abs(np.fft.rfft(frames, 512)) ** 2
    spectrum = np.log(power @ filterbank.T + 1e-8).mean(axis=0)
    return spectrum - spectrum.mean()


def hand_made_eer(root: Path) -> float:
    """EER on the dev + test pairs of a hand-made embedding: the mean log-mel spectrum of each
    recording (its segments concatenated in chronological order), centred on the mean over
    recordings, scored by cosine similarity."""
    metadata = read_csv(root / "metadata.csv")
    metadata = metadata[metadata["split"].isin(["dev", "test"])]
    metadata = metadata.sort_values(["baby_id", "period", "chronological_index"])
    filterbank = mel_filterbank()
    keys, features = [], []
    for key, rows in metadata.groupby(["baby_id", "period"]):
        parts = [soundfile.read(root / name, dtype="float32")[0] for name in rows["file_name"]]
        keys.append(key)
        features.append(mean_log_mel(np.concatenate(parts), filterbank))
    embeddings = np.stack(features)
    embeddings -= embeddings.mean(axis=0)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    row_of = {key: row for row, key in enumerate(keys)}
    scores, labels = [], []
    for split in ("dev", "test"):
        pairs = read_csv(root / f"{split}_pairs.csv")
        for baby_b, baby_d, label in pairs[["baby_id_B", "baby_id_D", "label"]].itertuples(
            index=False
        ):
            b, d = embeddings[row_of[(baby_b, "B")]], embeddings[row_of[(baby_d, "D")]]
            scores.append(float(b @ d))
            labels.append(int(label))
    return compute_eer(np.array(scores), np.array(labels)).eer


def test_default_difficulty_is_neither_trivial_nor_impossible(tmp_path: Path) -> None:
    # 160 babies: 8 dev + 33 test babies, 41 target trials out of 1,153. Over seeds 0–5 this
    # EER ranged 0.20–0.29 (0.22 for seed 0), far from both bounds.
    generate_corpus(tmp_path / "corpus", babies=160, seed=0, segments_per_recording=(2, 4))
    eer = hand_made_eer(tmp_path / "corpus")
    assert 0.05 < eer < 0.45


def test_higher_difficulty_is_harder(tmp_path: Path) -> None:
    eers = {}
    for difficulty in (0.0, 2.0):
        root = tmp_path / f"difficulty-{difficulty}"
        generate_corpus(
            root, babies=60, seed=0, difficulty=difficulty, segments_per_recording=(2, 3)
        )
        eers[difficulty] = hand_made_eer(root)
    assert eers[0.0] < eers[2.0]


@pytest.mark.slow
def test_default_corpus_size_and_durations(tmp_path: Path) -> None:
    started = time.perf_counter()
    summary = generate_corpus(tmp_path / "corpus")
    seconds = time.perf_counter() - started
    assert 40 * 60 <= summary.total_seconds <= 70 * 60
    assert seconds < 120  # well under a minute on an idle core; room for a busy machine
    durations = read_csv(tmp_path / "corpus" / "metadata.csv")["duration"].astype(float)
    assert durations.mean() == pytest.approx(0.885, abs=0.06)
    quartiles = durations.quantile([0.25, 0.5, 0.75]).to_numpy()
    assert quartiles == pytest.approx([0.58, 0.77, 1.05], abs=0.05)
    assert summary.bytes_written > 2 * SAMPLE_RATE * summary.total_seconds  # int16 samples


@pytest.mark.filterwarnings("error")  # an overflow on the way is a failure, not a warning
def test_the_largest_difficulty_still_gives_sound(tmp_path: Path) -> None:
    generate_corpus(
        tmp_path / "corpus", babies=20, seed=0, difficulty=MAX_DIFFICULTY,
        segments_per_recording=(1, 2),
    )  # fmt: skip
    for path in sorted((tmp_path / "corpus" / "audio").rglob("*.wav"))[:40]:
        audio, _ = soundfile.read(path, dtype="int16")
        assert np.abs(audio).max() > 100, path
