"""Read cry audio into float32 mono 16 kHz arrays, with clear errors for bad files.

Every reader returns ``float32 [samples]`` at :data:`SAMPLE_RATE`. Other sample rates are
resampled (torchaudio's band-limited sinc resampler), several channels are averaged to mono.
Anything that would give a meaningless embedding later — unreadable bytes, no samples, NaN/inf
or absurdly large samples, a sample rate that cannot be resampled, a recording shorter than
:data:`MIN_SECONDS` — raises :class:`AudioError` naming the file. So does a file longer than
:data:`MAX_SECONDS`, or one whose header claims more frames than its size can hold: both are
refused from the header, before any sample is allocated.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile

from cryprint.errors import AudioError

SAMPLE_RATE = 16_000
# ECAPA's first convolutions and its statistics pooling need some frames; below a quarter of a
# second an embedding is noise, so we refuse it rather than return a meaningless vector.
MIN_SECONDS = 0.25
# Below this rate, resampling to 16 kHz would multiply a file's size by more than 4 (a tiny
# hostile file could ask for gigabytes); real recordings are 8 kHz or more.
MIN_SAMPLE_RATE = 4_000
# torchaudio's resampler builds a filter bank of about (from/g)·(to/g) taps, g = gcd(from, to).
# Common rates need at most ~3e5 (11025 Hz: 441·640); an odd rate such as 44101 Hz would need
# 7e8 — minutes and gigabytes — so it is refused with a clear message instead.
MAX_RESAMPLING_TAPS = 1_000_000
# No integer PCM scale goes beyond ±2^31. Float files far outside [-1, 1] are not audio, and past
# ~1e17 the filterbank's power spectrum overflows and the embedding turns NaN.
MAX_ABS_SAMPLE = 2.0**31
# The longest recording read, in seconds at the file's own rate. CryCeleb segments last seconds;
# ten minutes of audio is already far more than an embedding needs, and the bound keeps a header
# that claims hours of audio from making the reader allocate gigabytes.
MAX_SECONDS = 600.0
# Bytes per sample of the uncompressed encodings: a header claiming more frames than the file
# has bytes for is refused before anything is allocated.
PCM_BYTES_PER_SAMPLE = {
    "PCM_S8": 1,
    "PCM_U8": 1,
    "ULAW": 1,
    "ALAW": 1,
    "PCM_16": 2,
    "PCM_24": 3,
    "PCM_32": 4,
    "FLOAT": 4,
    "DOUBLE": 8,
}
COMPRESSED_FORMATS = {"FLAC", "OGG", "MPEG"}
# Compressed files (FLAC, Ogg, MP3, ADPCM ...) can hold far more frames than bytes, but not
# without limit: FLAC's densest frame (65535 samples of silence) still takes about 10 bytes,
# so no real file reaches this many frames per byte; libFLAC's silence is ~400.
MAX_COMPRESSED_FRAMES_PER_BYTE = 8192


def read_audio(path: Path | str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read one audio file (WAV, FLAC, ... anything libsndfile reads) as mono float32.

    Args:
        path: the audio file.
        sample_rate: the rate to return, in Hz; other rates are resampled.

    Returns:
        float32 [samples] at ``sample_rate``: in [-1, 1] from integer PCM, as stored from float
        files.

    Raises:
        AudioError: the file is missing, unreadable, empty, longer than ``MAX_SECONDS``, claims
            more frames than its size can hold (:func:`check_frame_count`), holds NaN/inf or
            absurdly large samples, or has a sample rate that cannot be resampled (see
            ``MIN_SAMPLE_RATE``, ``MAX_RESAMPLING_TAPS``).
    """
    path = Path(path)
    try:
        found = path.is_file()
    except OSError as error:  # a name the system cannot look up (e.g. too long)
        raise AudioError(f"{path}: audio file not found ({error.strerror})") from error
    if not found:
        raise AudioError(f"{path}: audio file not found")
    try:
        with soundfile.SoundFile(path) as file:
            # The header's frame count sizes the array soundfile allocates: check it first.
            file_rate = file.samplerate
            if file_rate != sample_rate:
                _check_resampling(path, file_rate, sample_rate)
            check_length(path, file.frames, file_rate)
            check_frame_count(
                path, file.frames, file.channels, file.format, file.subtype, path.stat().st_size
            )
            waveform = file.read(dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError, EOFError) as error:
        raise AudioError(f"{path}: not a readable audio file ({error})") from error
    except OSError as error:
        raise AudioError(f"{path}: cannot be read ({error.strerror or error})") from error
    if waveform.size == 0:
        raise AudioError(f"{path}: the file holds no audio samples")
    if not np.isfinite(waveform).all():
        raise AudioError(f"{path}: the file holds NaN or infinite samples")
    peak = float(np.abs(waveform).max())
    if peak > MAX_ABS_SAMPLE:
        raise AudioError(
            f"{path}: samples reach {peak:.3g}, far outside [-1, 1]; the file is not audio"
        )
    mono = waveform.mean(axis=1) if waveform.shape[1] > 1 else waveform[:, 0]
    if file_rate != sample_rate:
        mono = resample(mono, file_rate, sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def check_frame_count(
    path: Path, frames: int, channels: int, container: str, subtype: str, size: int
) -> None:
    """AudioError naming ``path`` when a header's ``frames`` cannot fit in ``size`` bytes.

    Args:
        path: the file, for the message.
        frames: the frame count the header claims (samples per channel).
        channels: channels per frame.
        container: libsndfile's major format (``WAV``, ``FLAC``, ...).
        subtype: libsndfile's encoding (``PCM_16``, ``FLOAT``, ``VORBIS``, ...).
        size: the file's size in bytes.
    """
    if frames < 0 or channels <= 0:
        raise AudioError(f"{path}: the header claims {frames} frames of {channels} channel(s)")
    bytes_per_sample = PCM_BYTES_PER_SAMPLE.get(subtype)
    if container not in COMPRESSED_FORMATS and bytes_per_sample is not None:
        needed = frames * channels * bytes_per_sample
        if needed > size:
            raise AudioError(
                f"{path}: the header claims {frames} frames ({needed} bytes of {subtype} "
                f"samples) but the file holds {size} bytes; it is truncated or not audio"
            )
    elif frames > size * MAX_COMPRESSED_FRAMES_PER_BYTE:
        raise AudioError(
            f"{path}: the header claims {frames} frames but the file holds only {size} bytes "
            f"(more than {MAX_COMPRESSED_FRAMES_PER_BYTE} frames per byte); it is damaged or "
            "not audio"
        )


def check_length(path: Path, frames: int, sample_rate: int) -> None:
    """AudioError naming ``path`` when ``frames`` at ``sample_rate`` Hz last longer than
    :data:`MAX_SECONDS`."""
    if sample_rate <= 0:
        raise AudioError(f"{path}: the header gives a sample rate of {sample_rate} Hz")
    if frames > MAX_SECONDS * sample_rate:
        raise AudioError(
            f"{path}: {frames / sample_rate:.1f} s of audio is longer than the limit of "
            f"{MAX_SECONDS:g} s per file; split the recording into shorter files"
        )


def _check_resampling(path: Path, from_rate: int, to_rate: int) -> None:
    """AudioError naming ``path`` when ``from_rate`` cannot be resampled to ``to_rate`` in
    reasonable time and memory."""
    advice = f"convert it to {to_rate} Hz first (e.g. sox FILE -r {to_rate} OUT.wav)"
    if from_rate < MIN_SAMPLE_RATE:
        raise AudioError(
            f"{path}: sample rate {from_rate} Hz is below {MIN_SAMPLE_RATE} Hz; not a cry "
            f"recording, or {advice}"
        )
    common = math.gcd(from_rate, to_rate)
    taps = (from_rate // common) * (to_rate // common)
    if taps > MAX_RESAMPLING_TAPS:
        raise AudioError(
            f"{path}: sample rate {from_rate} Hz has no small ratio to {to_rate} Hz "
            f"({from_rate // common}:{to_rate // common}); resampling it would take minutes "
            f"and gigabytes; {advice}"
        )


def resample(waveform: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample float32 [samples] from ``from_rate`` to ``to_rate`` Hz (torchaudio's sinc)."""
    import torch
    import torchaudio.functional

    tensor = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
    return torchaudio.functional.resample(tensor, from_rate, to_rate).numpy()


def check_duration(waveform: np.ndarray, name: str, sample_rate: int = SAMPLE_RATE) -> None:
    """Raise AudioError when ``waveform`` is shorter than :data:`MIN_SECONDS`."""
    seconds = len(waveform) / sample_rate
    if seconds < MIN_SECONDS:
        raise AudioError(
            f"{name}: {seconds:.3f} s of audio is too short to verify "
            f"(at least {MIN_SECONDS} s needed)"
        )


# 16-bit PCM as libsndfile (soundfile, torchaudio, SpeechBrain) reads it: sample / 2^15.
# With the same scale, a 16-bit WAV kept as int16 gives back exactly the floats they read.
_INT16_SCALE = 32768.0


def to_int16(waveform: np.ndarray) -> np.ndarray:
    """float32 [-1, 1] → int16, to hold a whole corpus in half the memory (exact for audio read
    from 16-bit files; finer float audio is rounded to 16 bits, louder clipped to full scale)."""
    return np.clip(np.round(waveform * _INT16_SCALE), -32768, 32767).astype(np.int16)


def to_float32(waveform: np.ndarray) -> np.ndarray:
    """int16 → float32 [-1, 1] (inverse of :func:`to_int16` up to rounding)."""
    return waveform.astype(np.float32) / np.float32(_INT16_SCALE)
