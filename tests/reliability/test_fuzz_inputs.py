"""Fuzzing the readers of untrusted input with hypothesis.

Every CSV reader (``read_metadata``, ``read_pairs``, ``read_sample_submission``) and the audio
reader (``read_audio``) must end, for any bytes, in a value that keeps its promises or in a
``CryprintError`` subclass naming the file: never an exception from deep inside pandas,
libsndfile or torch, never NaN samples, never a file name leading out of the data directory.
"""

from __future__ import annotations

import csv
import io
import ntpath
import posixpath
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from reliability_helpers import time_limit

from cryprint.data.audio import read_audio
from cryprint.data.layout import (
    METADATA_COLUMNS,
    PERIODS,
    SPLITS,
    read_metadata,
    read_pairs,
    read_sample_submission,
)
from cryprint.errors import AudioError, DataError

# Fuzz cases per test (the report counts them).
CSV_BYTES_EXAMPLES = 150
CSV_MUTATION_EXAMPLES = 250
PATH_EXAMPLES = 300
AUDIO_BYTES_EXAMPLES = 150
AUDIO_FILE_EXAMPLES = 300

VALID_CSV = {
    "metadata.csv": (
        "baby_id,period,duration,split,chronological_index,file_name,file_id\n"
        "0001,B,1.5,train,000,audio/train/0001/B/0001_B_000.wav,0001_B_000\n"
        "0001,D,2.25,train,000,audio/train/0001/D/0001_D_000.wav,0001_D_000\n"
        "0002,B,0.75,dev,001,audio/dev/0002/B/0002_B_001.wav,0002_B_001\n"
        "0003,D,3.0,test,000,audio/test/0003/D/0003_D_000.wav,0003_D_000\n"
    ),
    "dev_pairs.csv": (
        "baby_id_B,baby_id_D,id,label\n0002,0002,0002B_0002D,1\n0002,0003,0002B_0003D,0\n"
    ),
    "sample_submission.csv": "id,score\n0002B_0002D,0.0\n0002B_0003D,0.5\n",
}
READERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    "metadata.csv": lambda root: read_metadata(root, check_files=False),
    "dev_pairs.csv": lambda root: read_pairs(root, "dev"),
    "sample_submission.csv": read_sample_submission,
}
# Characters that CSV parsing, numbers and paths care about, and a few that break encodings.
TRICKY = [*',"\n\r\t ;.\\/:0123456789-+eEinfaNBD_x~é\x00\ufeff', "..", "nan", "inf", "\x85"]


PEAK_LIMIT = 2.0**32  # twice the largest integer PCM value: room for resampling overshoot
# No example database: nothing is written to the checkout (the examples: tests/conftest.py).
FUZZ = {"deadline": None, "database": None}


@contextmanager
def _data_directory() -> Iterator[Path]:
    # hypothesis runs many examples per test: a fresh directory each, not pytest's tmp_path.
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory)


def _check_frame(name: str, root: Path, frame: pd.DataFrame) -> None:
    """What a returned table promises."""
    assert isinstance(frame, pd.DataFrame)
    if name == "metadata.csv":
        assert set(METADATA_COLUMNS) <= set(frame.columns) and len(frame) > 0
        assert frame["duration"].dtype == float
        assert np.isfinite(frame["duration"]).all() and (frame["duration"] > 0).all()
        assert frame["period"].isin(PERIODS).all() and frame["split"].isin(SPLITS).all()
        assert frame["file_name"].is_unique
        for file_name in frame["file_name"]:
            _assert_inside(root, file_name)
    elif name == "dev_pairs.csv":
        assert len(frame) > 0 and frame["id"].is_unique
        if "label" in frame.columns:
            assert set(frame["label"]) <= {0, 1}
    else:
        assert frame["id"].is_unique


def _assert_inside(root: Path, file_name: str) -> None:
    """``root / file_name`` stays inside ``root``: lexically and after resolving here, and
    lexically under Windows' rules too (backslashes, drive letters), where the data may be used."""
    joined = posixpath.normpath(posixpath.join(root, file_name))
    assert joined == str(root) or joined.startswith(f"{root}/"), file_name
    if "\x00" not in file_name:
        assert (root / file_name).resolve().is_relative_to(root.resolve()), file_name
    windows_root = "C:\\data"
    joined = ntpath.normpath(ntpath.join(windows_root, file_name))
    assert joined == windows_root or joined.startswith(windows_root + "\\"), file_name


def _read_csv_file(name: str, content: bytes) -> None:
    with _data_directory() as root:
        path = root / name
        path.write_bytes(content)
        try:
            frame = READERS[name](root)
        except DataError as error:
            assert str(path) in str(error)
            event("DataError")
            return
        _check_frame(name, root, frame)
        event("read")


@st.composite
def _mutated(draw: st.DrawFn, text: str) -> str:
    """``text`` with a few edits: characters inserted, deleted or replaced, whole cells replaced,
    lines duplicated, dropped or cut short."""
    for _ in range(draw(st.integers(1, 4))):
        lines = text.split("\n")
        line = draw(st.integers(0, len(lines) - 1))
        kind = draw(
            st.sampled_from(["insert", "delete", "replace cell", "duplicate", "drop", "truncate"])
        )
        if kind == "insert":
            at = draw(st.integers(0, len(text)))
            piece = draw(st.lists(st.sampled_from(TRICKY), max_size=4).map("".join))
            text = text[:at] + piece + text[at:]
        elif kind == "delete":
            at = draw(st.integers(0, len(text)))
            text = text[:at] + text[at + draw(st.integers(1, 8)) :]
        elif kind == "replace cell":
            cells = lines[line].split(",")
            cell = draw(st.integers(0, len(cells) - 1))
            cells[cell] = draw(
                st.one_of(
                    st.lists(st.sampled_from(TRICKY), max_size=6).map("".join),
                    st.text(max_size=8),
                )
            )
            lines[line] = ",".join(cells)
            text = "\n".join(lines)
        elif kind == "duplicate":
            lines.insert(line, lines[line])
            text = "\n".join(lines)
        elif kind == "drop":
            del lines[line]
            text = "\n".join(lines)
        else:
            text = text[: draw(st.integers(0, len(text)))]
    return text


@settings(max_examples=CSV_BYTES_EXAMPLES, **FUZZ)
@given(name=st.sampled_from(sorted(READERS)), content=st.binary(max_size=300))
def test_csv_readers_on_random_bytes(name: str, content: bytes) -> None:
    _read_csv_file(name, content)


@settings(max_examples=CSV_MUTATION_EXAMPLES, **FUZZ)
@given(data=st.data(), name=st.sampled_from(sorted(READERS)))
def test_csv_readers_on_mutated_valid_files(data: st.DataObject, name: str) -> None:
    text = data.draw(_mutated(VALID_CSV[name]))
    encoding = data.draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]))
    _read_csv_file(name, text.encode(encoding, errors="replace"))


def _metadata_with_file_name(file_name: str) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(METADATA_COLUMNS)
    writer.writerow(["0001", "B", "1.0", "train", "000", file_name, "0001_B_000"])
    return buffer.getvalue().encode("utf-8", errors="replace")


# Path pieces, including a name too long for the file system (256 bytes).
PATH_PIECES = [*"./\\:~ \x00é", "..", "//", "a", "audio", "C:", "D:", "x" * 256]


@settings(max_examples=PATH_EXAMPLES, **FUZZ)
@given(
    file_name=st.one_of(
        st.lists(st.sampled_from(PATH_PIECES), min_size=1, max_size=8).map("".join),
        st.text(min_size=1, max_size=20),
    )
)
def test_accepted_file_names_stay_inside_the_data_directory(file_name: str) -> None:
    with _data_directory() as root:
        (root / "metadata.csv").write_bytes(_metadata_with_file_name(file_name))
        for check_files in (False, True):  # True also looks the name up on disk
            try:
                frame = read_metadata(root, check_files=check_files)
            except DataError as error:
                assert str(root / "metadata.csv") in str(error)
                event(f"check_files={check_files}: DataError")
                continue
            event(f"check_files={check_files}: read")
            for name in frame["file_name"]:
                _assert_inside(root, name)


# --- audio ------------------------------------------------------------------------------------


def _read_audio_file(content: bytes, suffix: str = ".wav") -> None:
    with _data_directory() as root:
        path = root / f"cry{suffix}"
        path.write_bytes(content)
        try:
            with time_limit(20):  # an odd sample rate once took minutes
                waveform = read_audio(path)
        except AudioError as error:
            assert str(path) in str(error)
            event("AudioError")
            return
        event("read")
        assert isinstance(waveform, np.ndarray) and waveform.dtype == np.float32
        assert waveform.ndim == 1 and len(waveform) > 0
        assert np.isfinite(waveform).all()
        # Not audio in any scale beyond this (and the embedder's filterbank overflows at ~1e17).
        assert float(np.abs(waveform).max()) <= PEAK_LIMIT


@settings(max_examples=AUDIO_BYTES_EXAMPLES, **FUZZ)
@given(
    content=st.one_of(
        st.binary(max_size=2000),
        # Random bytes behind a plausible RIFF/WAVE header start.
        st.binary(max_size=2000).map(lambda tail: b"RIFF\x24\x08\x00\x00WAVEfmt " + tail),
    ),
    suffix=st.sampled_from([".wav", ".flac", ".ogg", ".mp3", ""]),
)
def test_read_audio_on_random_bytes(content: bytes, suffix: str) -> None:
    _read_audio_file(content, suffix)


SUBTYPES = ["PCM_16", "PCM_24", "PCM_32", "PCM_U8", "FLOAT", "DOUBLE", "ULAW", "ALAW"]
COMMON_RATES = [8_000, 11_025, 16_000, 22_050, 44_100, 48_000, 96_000]


@st.composite
def _wav_files(draw: st.DrawFn) -> bytes:
    """A WAV file with drawn format and content, then possibly damaged."""
    subtype = draw(st.sampled_from(SUBTYPES))
    rate = draw(st.one_of(st.sampled_from(COMMON_RATES), st.integers(1, 400_000)))
    channels = draw(st.integers(1, 3))
    frames = draw(st.integers(0, 3000))
    content = draw(st.sampled_from(["noise", "silence", "nan", "inf", "huge", "tiny"]))
    if subtype in ("ULAW", "ALAW", "PCM_U8") and content in ("nan", "inf", "huge"):
        # libsndfile's companding and 8-bit encoders index tables with the scaled sample and
        # crash (segfault) on values far out of range: the writer's bug, not the reader's input.
        content = "noise"
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    samples = rng.uniform(-1, 1, size=(frames, channels))
    if content == "silence":
        samples[:] = 0
    elif content in ("nan", "inf", "huge") and frames:
        value = {"nan": np.nan, "inf": -np.inf, "huge": 3e38}[content]
        samples[rng.integers(frames), rng.integers(channels)] = value
        if content == "huge":
            samples[: frames // 2] = value
    elif content == "tiny":
        samples *= 1e-40
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, subtype=subtype, format="WAV")
    data = bytearray(buffer.getvalue())
    damage = draw(
        st.sampled_from(["none", "none", "truncate", "overwrite header", "overwrite anywhere"])
    )
    if damage == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif damage != "none":
        limit = min(len(data), 64) if damage == "overwrite header" else len(data)
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, limit - 1))
            data[at] = draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=AUDIO_FILE_EXAMPLES, suppress_health_check=[HealthCheck.too_slow], **FUZZ)
@given(content=_wav_files())
def test_read_audio_on_generated_and_damaged_wav_files(content: bytes) -> None:
    _read_audio_file(content)
