"""Write a synthetic corpus in exactly the CryCeleb2023 layout, for tests and demos.

:func:`generate_corpus` writes ``metadata.csv``, ``dev_pairs.csv``, ``test_pairs.csv`` (with a
``label`` column, like a copy taken after the labels were released), ``sample_submission.csv``
and ``audio/{split}/{baby_id}/{period}/{baby_id}_{period}_{NNN}.wav`` (16 kHz mono PCM_16, one
file = one cry expiration), with the real split proportions and segment-duration statistics
(see ``shared/cryceleb-format.md``). A hidden ``.cryprint_synth.json`` beside the CSVs records
the generator, its ``arguments`` and whether the corpus is ``complete``; with
``overwrite=True`` (``cryprint synth --overwrite``) a directory holding it may be replaced.

This module plans the corpus (ids, splits, periods, pairs, durations, random streams) and
writes its files; how a cry sounds — the voice traits, the B→D drift, the recording channel and
what ``difficulty`` scales — is :mod:`cryprint.data.cry_model`.

Determinism: every baby draws from its own ``numpy.random.Generator`` seeded by
``SeedSequence(seed, spawn_key=(baby index, stream))`` (streams: traits, drift, period B,
period D), so its random draws do not depend on the other babies, on which periods it has, or
on ``difficulty``, which scales the draws and never changes how many are taken: corpora that
differ only in difficulty hold the same babies and cry durations, more or less varied. The
same arguments give byte-identical files on the same platform (libm differences in ``sin`` or
``exp`` between machines could flip a rounding to int16, rarely).
"""

from __future__ import annotations

import io
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from cryprint.data.audio import SAMPLE_RATE
from cryprint.data.cry_model import draw_session, draw_voice, drift_voice, render_expiration
from cryprint.data.layout import METADATA_COLUMNS
from cryprint.errors import DataError
from cryprint.io import atomic_write_text

__all__ = [
    "MARKER_NAME",
    "MAX_BABIES",
    "MIN_BABIES",
    "SAMPLE_RATE",
    "SynthSummary",
    "generate_corpus",
    "split_counts",
]

MARKER_NAME = ".cryprint_synth.json"
MIN_BABIES = 20
MAX_BABIES = 5000
# Beyond this recordings fall silent (levels drawn ±20 dB and more), and far beyond (~1000) the
# draws overflow and the audio is NaN: a corpus of silence written with exit 0.
MAX_DIFFICULTY = 5.0

_GENERATOR_NAME = "cryprint.data.synth"
_FORMAT_VERSION = 1
_CSV_NAMES = ("metadata.csv", "dev_pairs.csv", "test_pairs.csv", "sample_submission.csv")

# The real split table (shared/cryceleb-format.md): 786 babies, 40 dev, 160 test; the 586 train
# babies have both periods (348), only B (183) or only D (55).
_REAL_BABIES, _REAL_DEV, _REAL_TEST = 786, 40, 160
_REAL_TRAIN_BOTH, _REAL_TRAIN_ONLY_B, _REAL_TRAIN_ONLY_D = 348, 183, 55
_MIN_EVALUATION_BABIES = 4

# Segment durations: log-duration is a Student-t (5 degrees of freedom) around log 0.77 s with
# scale 0.40, clipped to the real range; this gives mean ≈ 0.89 s, std ≈ 0.6 s, quartiles
# ≈ 0.58 / 0.77 / 1.03 s, like the real train split.
_MEDIAN_SEGMENT_S = 0.77
_LOG_DURATION_SCALE = 0.40
_DURATION_DEGREES_OF_FREEDOM = 5
_MIN_SEGMENT_S = 0.08
_MAX_SEGMENT_S = 10.34

# Streams of a baby's SeedSequence spawn key (baby index, stream).
_TRAITS_STREAM, _DRIFT_STREAM = 0, 1
_PERIOD_STREAMS = {"B": 2, "D": 3}


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`generate_corpus` wrote.

    Attributes:
        dest: the corpus directory.
        babies: babies per split, ``{"train": ..., "dev": ..., "test": ...}``.
        recordings: (baby, period) recordings.
        segments: audio files (one expiration each).
        total_seconds: audio duration summed over all files, in seconds.
        bytes_written: size of every file written (audio, CSVs, marker), in bytes.
    """

    dest: Path
    babies: dict[str, int]
    recordings: int
    segments: int
    total_seconds: float
    bytes_written: int


@dataclass(frozen=True)
class _Baby:
    index: int
    baby_id: str
    split: str
    periods: tuple[str, ...]


def split_counts(babies: int) -> dict[str, int]:
    """Babies per role in a corpus of ``babies``, in the real CryCeleb2023 proportions.

    dev = round(N·40/786) and test = round(N·160/786), each at least 4; the remaining train
    babies are divided 348 : 183 : 55 into both periods / only B / only D, with at least one
    only-B and one only-D baby. Rounding is half-up.

    Returns:
        ``{"dev", "test", "train", "train_both", "train_only_b", "train_only_d"}`` counts.

    Raises:
        DataError: ``babies`` is not an integer in [20, 5000].
    """
    _check_babies(babies)
    dev = max(_MIN_EVALUATION_BABIES, _round_half_up(babies * _REAL_DEV / _REAL_BABIES))
    test = max(_MIN_EVALUATION_BABIES, _round_half_up(babies * _REAL_TEST / _REAL_BABIES))
    train = babies - dev - test
    real_train = _REAL_TRAIN_BOTH + _REAL_TRAIN_ONLY_B + _REAL_TRAIN_ONLY_D
    only_b = max(1, _round_half_up(train * _REAL_TRAIN_ONLY_B / real_train))
    only_d = max(1, _round_half_up(train * _REAL_TRAIN_ONLY_D / real_train))
    return {
        "dev": dev,
        "test": test,
        "train": train,
        "train_both": train - only_b - only_d,
        "train_only_b": only_b,
        "train_only_d": only_d,
    }


def generate_corpus(
    dest: Path | str,
    babies: int = 240,
    seed: int = 0,
    difficulty: float = 1.0,
    *,
    segments_per_recording: tuple[int, int] = (4, 14),
    overwrite: bool = False,
) -> SynthSummary:
    """Write a synthetic cry corpus in the CryCeleb2023 layout under ``dest``.

    Args:
        dest: the corpus directory; created if missing. It must be empty, or hold an earlier
            synthetic corpus (recognised by its ``.cryprint_synth.json``) and ``overwrite``.
        babies: babies in the corpus, 20–5000 (split as :func:`split_counts` says).
        seed: any non-negative integer; the same arguments give byte-identical files.
        difficulty: 0 to 5; scales within-baby variation, B→D drift and channel/noise (0 easy,
            1 default, 2 much harder, 5 at most). See :mod:`cryprint.data.cry_model`.
        segments_per_recording: (fewest, most) expirations per (baby, period), drawn
            uniformly. The default (4, 14) gives about 55 minutes of audio for 240 babies.
        overwrite: replace the synthetic corpus in ``dest``: its ``audio/``, CSVs and marker
            are removed first; other files there are left alone. A non-empty ``dest`` without
            the marker is refused even so.

    Returns:
        A :class:`SynthSummary` of what was written.

    Raises:
        DataError: invalid arguments; a non-empty ``dest`` without ``overwrite``; a non-empty
            ``dest`` that is not a synthetic corpus.

    Example:
        >>> summary = generate_corpus("/tmp/cries", babies=40, seed=1)  # doctest: +SKIP
        >>> summary.babies
        {'train': 28, 'dev': 4, 'test': 8}
    """
    counts = split_counts(babies)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    try:
        difficulty = float(difficulty)
    except (TypeError, ValueError) as error:
        raise DataError(
            f"difficulty must be a number from 0 to {MAX_DIFFICULTY:g}, got {difficulty!r}"
        ) from error
    if not math.isfinite(difficulty) or not 0 <= difficulty <= MAX_DIFFICULTY:
        raise DataError(
            f"difficulty must be a number from 0 to {MAX_DIFFICULTY:g}, got {difficulty!r}"
        )
    fewest, most = _check_segment_range(segments_per_recording)

    dest = Path(dest)
    _prepare_destination(dest, overwrite)
    arguments = {
        "babies": int(babies),
        "seed": int(seed),
        "difficulty": difficulty,
        "segments_per_recording": [fewest, most],
    }
    _write_marker(dest, arguments, complete=False)

    plan = _plan_babies(babies, int(seed), counts)
    metadata_rows: list[list[str]] = []
    bytes_written = 0
    total_samples = 0
    recordings = 0
    for baby in plan:
        recordings_audio = _render_baby(baby, int(seed), difficulty, (fewest, most))
        for period, segments in recordings_audio.items():
            recordings += 1
            folder = dest / "audio" / baby.split / baby.baby_id / period
            folder.mkdir(parents=True, exist_ok=True)
            for chronological_index, samples in enumerate(segments):
                file_id = f"{baby.baby_id}_{period}_{chronological_index:03d}"
                file_name = f"audio/{baby.split}/{baby.baby_id}/{period}/{file_id}.wav"
                path = dest / file_name
                bytes_written += _write_wav(path, samples)
                total_samples += len(samples)
                metadata_rows.append(
                    [
                        baby.baby_id,
                        period,
                        repr(len(samples) / SAMPLE_RATE),
                        baby.split,
                        f"{chronological_index:03d}",
                        file_name,
                        file_id,
                    ]
                )

    split_order = {"train": 0, "dev": 1, "test": 2}
    metadata_rows.sort(key=lambda row: (split_order[row[3]], row[0], row[1], row[4]))
    pairs = {split: _pairs([b for b in plan if b.split == split]) for split in ("dev", "test")}
    bytes_written += _write_csv(
        dest / "dev_pairs.csv", ["baby_id_B", "baby_id_D", "id", "label"], pairs["dev"]
    )
    bytes_written += _write_csv(
        dest / "test_pairs.csv", ["baby_id_B", "baby_id_D", "id", "label"], pairs["test"]
    )
    bytes_written += _write_csv(
        dest / "sample_submission.csv", ["id", "score"], [[row[2], "0.0"] for row in pairs["test"]]
    )
    # metadata.csv last: its presence means every audio file it lists is complete.
    bytes_written += _write_csv(
        dest / "metadata.csv",
        list(METADATA_COLUMNS),
        metadata_rows,
    )
    bytes_written += _write_marker(dest, arguments, complete=True)
    return SynthSummary(
        dest=dest,
        babies={split: counts[split] for split in ("train", "dev", "test")},
        recordings=recordings,
        segments=len(metadata_rows),
        total_seconds=total_samples / SAMPLE_RATE,
        bytes_written=bytes_written,
    )


# --- arguments and destination ---------------------------------------------------------------


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def _check_babies(babies: object) -> None:
    if isinstance(babies, bool) or not isinstance(babies, int | np.integer):
        raise DataError(f"babies must be an integer, got {babies!r}")
    if not MIN_BABIES <= babies <= MAX_BABIES:
        raise DataError(
            f"babies must be between {MIN_BABIES} and {MAX_BABIES} (the dev and test splits "
            f"need at least {_MIN_EVALUATION_BABIES} babies each), got {babies}"
        )


def _check_segment_range(segments_per_recording: object) -> tuple[int, int]:
    try:
        fewest, most = segments_per_recording  # type: ignore[misc]
    except (TypeError, ValueError) as error:
        raise DataError(
            f"segments_per_recording must be a (fewest, most) pair, got {segments_per_recording!r}"
        ) from error
    valid = all(
        isinstance(count, int | np.integer) and not isinstance(count, bool)
        for count in (fewest, most)
    )
    if not valid or not 1 <= fewest <= most <= 1000:
        raise DataError(
            "segments_per_recording must be integers with 1 <= fewest <= most <= 1000, "
            f"got {segments_per_recording!r}"
        )
    return int(fewest), int(most)


def _read_marker(dest: Path) -> dict | None:
    """The marker of the synthetic corpus in ``dest``, or None when there is none."""
    try:
        marker = json.loads((dest / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("generator") != _GENERATOR_NAME:
        return None
    return marker


def _prepare_destination(dest: Path, overwrite: bool) -> None:
    """Create ``dest``; a non-empty one must hold a synthetic corpus, replaced only with
    ``overwrite`` (see generate_corpus)."""
    if dest.exists() and not dest.is_dir():
        raise DataError(f"{dest}: exists and is not a directory")
    if dest.is_dir() and any(dest.iterdir()):
        marker = _read_marker(dest)
        if marker is None:
            # Even with overwrite: its files are not ours to delete.
            raise DataError(
                f"{dest}: the directory is not empty and holds no cryprint synthetic corpus "
                f"(no {MARKER_NAME}); choose another directory, empty or new (--overwrite only "
                "replaces a synthetic corpus)"
            )
        if not overwrite:
            what = "a synthetic corpus"
            if not marker.get("complete"):
                what = "an incomplete synthetic corpus (an interrupted run)"
            raise DataError(
                f"{dest}: the directory already holds {what}; pass --overwrite "
                "(overwrite=True from Python) to replace it, or choose another directory"
            )
        _remove_corpus(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"{dest}: cannot create the directory ({error})") from error


def _remove_corpus(dest: Path) -> None:
    """Remove what the generator writes in ``dest`` (the CSVs, ``audio/``, the marker), and
    nothing else; a link is removed, never followed."""
    # metadata.csv first, so a crash below never leaves it pointing at a half-deleted tree;
    # the marker last, so a crash leaves a directory that --overwrite may still replace.
    for name in _CSV_NAMES:
        (dest / name).unlink(missing_ok=True)
    audio = dest / "audio"
    if audio.is_dir() and not audio.is_symlink():
        shutil.rmtree(audio)
    else:
        audio.unlink(missing_ok=True)
    (dest / MARKER_NAME).unlink(missing_ok=True)


def _write_text(path: Path, text: str) -> int:
    """Write ``text`` atomically; returns the bytes written."""
    atomic_write_text(path, text)
    return len(text.encode("utf-8"))


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> int:
    lines = [",".join(header), *(",".join(row) for row in rows)]
    # No field holds a comma, quote or newline (ids, numbers, relative paths), so no quoting.
    assert not any(any(c in field for c in ',"\n') for row in rows for field in row)
    return _write_text(path, "\n".join(lines) + "\n")


def _write_wav(path: Path, samples: np.ndarray) -> int:
    """Write int16 [samples] as a 16 kHz mono PCM_16 WAV; returns the bytes written."""
    # Through memory: libsndfile's close() fsyncs every file, which costs milliseconds each.
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return path.write_bytes(buffer.getvalue())


def _write_marker(dest: Path, arguments: dict, complete: bool) -> int:
    marker = {
        "generator": _GENERATOR_NAME,
        "format_version": _FORMAT_VERSION,
        "complete": complete,
        "arguments": arguments,
    }
    return _write_text(dest / MARKER_NAME, json.dumps(marker, indent=2, sort_keys=True) + "\n")


# --- the plan: ids, splits, periods, pairs ---------------------------------------------------


def _plan_babies(babies: int, seed: int, counts: dict[str, int]) -> list[_Baby]:
    """Give every baby index a split, its periods and a unique id (corpus-level draws)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    roles = (
        [("dev", ("B", "D"))] * counts["dev"]
        + [("test", ("B", "D"))] * counts["test"]
        + [("train", ("B", "D"))] * counts["train_both"]
        + [("train", ("B",))] * counts["train_only_b"]
        + [("train", ("D",))] * counts["train_only_d"]
    )
    roles = [roles[i] for i in rng.permutation(babies)]
    numbered = babies - counts["test"]
    # Real train/dev ids are 4-digit numbers with gaps (0133, 0369, 0611, ...).
    numbers = rng.choice(max(1000, 2 * numbered), size=numbered, replace=False)
    width = max(3, len(str(counts["test"] - 1)))
    anonymous = rng.permutation(counts["test"])
    plan = []
    next_number = next_anonymous = 0
    for index, (split, periods) in enumerate(roles):
        if split == "test":
            baby_id = f"anonymous{anonymous[next_anonymous]:0{width}d}"
            next_anonymous += 1
        else:
            baby_id = f"{numbers[next_number]:04d}"
            next_number += 1
        plan.append(_Baby(index=index, baby_id=baby_id, split=split, periods=periods))
    return plan


def _pairs(babies: list[_Baby]) -> list[list[str]]:
    """Every B recording against every D recording, ids sorted: (B, D, id, label) rows."""
    ids = sorted(baby.baby_id for baby in babies)
    return [[b, d, f"{b}B_{d}D", "1" if b == d else "0"] for b in ids for d in ids]


# --- one baby --------------------------------------------------------------------------------


def _baby_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, stream)))


def _render_baby(
    baby: _Baby, seed: int, difficulty: float, segment_range: tuple[int, int]
) -> dict[str, list[np.ndarray]]:
    """int16 [samples] cries of each of the baby's periods, in chronological order."""
    voice_b = draw_voice(_baby_rng(seed, baby.index, _TRAITS_STREAM))
    voice_d = drift_voice(voice_b, _baby_rng(seed, baby.index, _DRIFT_STREAM), difficulty)
    voices = {"B": voice_b, "D": voice_d}
    audio = {}
    for period in baby.periods:
        rng = _baby_rng(seed, baby.index, _PERIOD_STREAMS[period])
        session = draw_session(rng, difficulty)
        count = int(rng.integers(segment_range[0], segment_range[1] + 1))
        log_durations = np.log(_MEDIAN_SEGMENT_S) + _LOG_DURATION_SCALE * rng.standard_t(
            _DURATION_DEGREES_OF_FREEDOM, size=count
        )
        durations = np.clip(np.exp(log_durations), _MIN_SEGMENT_S, _MAX_SEGMENT_S)
        audio[period] = [
            render_expiration(
                round(float(seconds) * SAMPLE_RATE), voices[period], session, rng, difficulty
            )
            for seconds in durations
        ]
    return audio
