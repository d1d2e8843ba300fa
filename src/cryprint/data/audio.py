"""Read cry audio into float32 mono 16 kHz arrays, with clear errors for bad files.

Every reader returns ``float32 [samples]`` at :data:`SAMPLE_RATE`. Other sample rates are
resampled (torchaudio's band-limited sinc resampler), several channels are averaged to mono.
Anything that would give a meaningless embedding later — unreadable bytes, no samples, NaN/inf
samples, a recording shorter than :data:`MIN_SECONDS` — raises :class:`AudioError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from cryprint.errors import AudioError

SAMPLE_RATE = 16_000
# ECAPA's first convolutions and its statistics pooling need some frames; below a quarter of a
# second an embedding is noise, so we refuse it rather than return a meaningless vector.
MIN_SECONDS = 0.25


def read_audio(path: Path | str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read one audio file (WAV, FLAC, ... anything libsndfile reads) as mono float32.

    Args:
        path: the audio file.
        sample_rate: the rate to return, in Hz; other rates are resampled.

    Returns:
        float32 [samples] in [-1, 1] at ``sample_rate``.

    Raises:
        AudioError: the file is missing, unreadable, empty, or holds NaN/inf samples.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    try:
        waveform, file_rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError, EOFError) as error:
        raise AudioError(f"{path}: not a readable audio file ({error})") from error
    if waveform.size == 0:
        raise AudioError(f"{path}: the file holds no audio samples")
    if not np.isfinite(waveform).all():
        raise AudioError(f"{path}: the file holds NaN or infinite samples")
    mono = waveform.mean(axis=1) if waveform.shape[1] > 1 else waveform[:, 0]
    if file_rate != sample_rate:
        mono = resample(mono, file_rate, sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


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


def to_int16(waveform: np.ndarray) -> np.ndarray:
    """float32 [-1, 1] → int16, to hold a whole corpus in half the memory."""
    return np.clip(np.round(waveform * 32767.0), -32768, 32767).astype(np.int16)


def to_float32(waveform: np.ndarray) -> np.ndarray:
    """int16 → float32 [-1, 1] (inverse of :func:`to_int16` up to rounding)."""
    return waveform.astype(np.float32) / 32767.0
