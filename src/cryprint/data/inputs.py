"""A recording a user gives: an audio file, or a folder of cry segments joined in name order.

Each side of ``verify``, each item of ``embed``, ``score``, ``enroll`` and ``identify``: a file in
any format libsndfile reads, at any rate and channel count (downmixed to mono and resampled to
16 kHz), or a folder whose audio files (sorted by name, hidden files ignored) are concatenated —
as evaluation joins a recording's segments. A recording shorter than 0.25 s or without a cry in
it is refused (:mod:`cryprint.data.activity`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soundfile

from cryprint.data.activity import check_cry
from cryprint.data.audio import check_duration, read_audio
from cryprint.errors import AudioError

logger = logging.getLogger(__name__)

# Suffixes of the formats libsndfile reads (wav, flac, ogg, mp3, aiff, ...) and common aliases.
AUDIO_SUFFIXES = frozenset(
    {f".{name.lower()}" for name in soundfile.available_formats()}
    | {".aif", ".oga", ".opus", ".wave"}
)


def recording_files(path: Path | str) -> list[Path]:
    """The audio files of a recording, in the order they are joined.

    Raises:
        AudioError: a missing path, a path that cannot be looked up, or a folder without audio.
    """
    path = Path(path)
    try:
        kind = "folder" if path.is_dir() else "file" if path.is_file() else None
        if kind is None and path.exists():  # a FIFO or device: reading it could block forever
            raise AudioError(f"{path} is not a regular file or a folder of audio files")
    except OSError as error:  # a name too long to look up, a file used as a folder...
        raise AudioError(f"{path}: cannot be read ({error.strerror})") from error
    if kind is None:
        raise AudioError(f"{path}: no such audio file or folder")
    if kind == "file":
        return [path]
    entries = sorted(entry for entry in path.iterdir() if entry.is_file())
    files = [
        entry
        for entry in entries
        if not entry.name.startswith(".") and entry.suffix.lower() in AUDIO_SUFFIXES
    ]
    skipped = [entry.name for entry in entries if entry not in files]
    if skipped and files:
        shown = ", ".join(skipped[:5]) + (
            f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        )
        logger.warning("%s: skipped %d file(s) that are not audio: %s", path, len(skipped), shown)
    if not files:
        raise AudioError(
            f"{path}: no audio files in the folder (.wav, .flac, .ogg, .mp3 or another "
            "format libsndfile reads)"
        )
    return files


def read_recording(path: Path | str) -> np.ndarray:
    """A recording as float32 mono 16 kHz [samples] (see the module docstring).

    Raises:
        AudioError: missing path, no audio files in the folder, an unreadable/empty file, less
            than 0.25 s of audio in all, or no cry in it.
    """
    files = recording_files(path)
    waveform = np.concatenate([read_audio(file) for file in files])
    name = (
        str(path)
        if len(files) == 1 and files[0] == Path(path)
        else f"{path} ({len(files)} audio file(s))"
    )
    check_recording(waveform, name)
    return waveform


def check_recording(waveform: np.ndarray, name: str) -> None:
    """Refuse a waveform too short or without a cry (AudioError naming ``name``)."""
    check_duration(waveform, name)
    check_cry(waveform, name)
