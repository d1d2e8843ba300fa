"""Audio reading: a file's header is checked against its size and the length limit before any
sample is read, so a tiny hostile file cannot make the reader allocate gigabytes."""

import struct
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile

from cryprint.data import audio
from cryprint.data.audio import MAX_SECONDS, read_audio
from cryprint.errors import AudioError

RATE = 16_000
MAX_PEAK_BYTES = 64 * 2**20


@contextmanager
def _peak_memory() -> Iterator[Callable[[], int]]:
    """Peak bytes allocated inside the block (numpy arrays included), read after it."""
    peak = []
    tracemalloc.start()
    try:
        yield lambda: peak[0]
    finally:
        peak.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


def _flac_claiming(path: Path, samples: np.ndarray, claimed_frames: int) -> Path:
    """A valid FLAC of ``samples`` whose STREAMINFO claims ``claimed_frames`` instead."""
    soundfile.write(path, samples, RATE, format="FLAC", subtype="PCM_16")
    content = bytearray(path.read_bytes())
    # STREAMINFO starts after "fLaC" and its 4-byte block header; the 36-bit sample count ends
    # the 8 bytes that follow the block sizes (2+2) and frame sizes (3+3).
    offset = 4 + 4 + 10
    field = int.from_bytes(content[offset : offset + 8], "big")
    field = (field & ~((1 << 36) - 1)) | claimed_frames
    content[offset : offset + 8] = field.to_bytes(8, "big")
    path.write_bytes(bytes(content))
    assert soundfile.info(path).frames == claimed_frames
    return path


def test_flac_header_claiming_a_billion_samples_is_refused_before_allocating(
    tmp_path: Path,
) -> None:
    noise = np.random.default_rng(0).integers(-3000, 3000, 4000).astype(np.int16)
    path = _flac_claiming(tmp_path / "hostile.flac", noise, 10**9)
    assert path.stat().st_size < 16_000
    with _peak_memory() as peak, pytest.raises(AudioError) as error:
        read_audio(path)
    assert peak() < MAX_PEAK_BYTES
    assert str(path) in str(error.value) and f"{MAX_SECONDS:.0f} s" in str(error.value)


def test_compressed_file_claiming_more_than_its_size_can_hold_is_refused(tmp_path: Path) -> None:
    # 5 minutes is under the length limit: only the size check can catch this one.
    claimed = 5 * 60 * RATE
    path = _flac_claiming(tmp_path / "tiny.flac", np.zeros(1000, np.int16), claimed)
    with _peak_memory() as peak, pytest.raises(AudioError, match=r"tiny\.flac.*claims"):
        read_audio(path)
    assert peak() < MAX_PEAK_BYTES


def test_crafted_wav_header_reads_at_most_the_real_samples(tmp_path: Path) -> None:
    path = tmp_path / "hostile.wav"
    soundfile.write(path, np.full(1000, 1000, np.int16), RATE, subtype="PCM_16")
    content = bytearray(path.read_bytes())
    data = content.find(b"data")
    struct.pack_into("<I", content, 4, 0xFFFFFFF0)  # RIFF size
    struct.pack_into("<I", content, data + 4, 2 * 10**9)  # data size: 10^9 16-bit samples
    path.write_bytes(bytes(content))
    with _peak_memory() as peak:
        try:
            waveform = read_audio(path)
        except AudioError as error:
            assert str(path) in str(error)
        else:
            assert len(waveform) == 1000
    assert peak() < MAX_PEAK_BYTES


def test_recording_longer_than_the_limit_is_refused_naming_the_limit(tmp_path: Path) -> None:
    rate = audio.MIN_SAMPLE_RATE  # the smallest file that is over the limit: 2.4 MB
    path = tmp_path / "long.wav"
    soundfile.write(path, np.zeros(int((MAX_SECONDS + 1) * rate), np.int16), rate, "PCM_U8")
    with _peak_memory() as peak, pytest.raises(AudioError) as error:
        read_audio(path)
    assert peak() < MAX_PEAK_BYTES
    message = str(error.value)
    assert str(path) in message and f"{MAX_SECONDS:.0f} s" in message


def test_recording_at_the_limit_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audio, "MAX_SECONDS", 0.5)
    soundfile.write(tmp_path / "half.wav", np.zeros(RATE // 2, np.int16), RATE)
    assert len(read_audio(tmp_path / "half.wav")) == RATE // 2
    soundfile.write(tmp_path / "over.wav", np.zeros(RATE // 2 + 1, np.int16), RATE)
    with pytest.raises(AudioError, match=r"over\.wav.*0\.5 s"):
        read_audio(tmp_path / "over.wav")


@pytest.mark.parametrize(
    ("container", "subtype", "frames", "channels", "refused"),
    [
        ("WAV", "PCM_16", 1000, 1, False),  # 2,000 bytes of samples
        ("WAV", "PCM_16", 1100, 1, True),
        ("WAV", "PCM_16", 600, 2, True),
        ("WAV", "FLOAT", 520, 1, False),
        ("WAV", "FLOAT", 600, 1, True),
        ("FLAC", "PCM_16", 2100 * audio.MAX_COMPRESSED_FRAMES_PER_BYTE + 1, 1, True),
        ("FLAC", "PCM_16", 2100 * audio.MAX_COMPRESSED_FRAMES_PER_BYTE, 1, False),
        ("OGG", "VORBIS", 2100 * audio.MAX_COMPRESSED_FRAMES_PER_BYTE + 1, 1, True),
    ],
)
def test_frame_count_is_checked_against_the_file_size(
    tmp_path: Path, container: str, subtype: str, frames: int, channels: int, refused: bool
) -> None:
    """libsndfile already clamps PCM WAV counts to the data it holds, so the exact PCM bound is
    tested on the check itself: a header of ``frames`` in a 2,100-byte file."""
    path = tmp_path / "file"

    def check() -> None:
        audio.check_frame_count(path, frames, channels, container, subtype, 2100)

    if refused:
        with pytest.raises(AudioError, match="claims"):
            check()
    else:
        check()
