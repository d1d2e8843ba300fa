"""Write a synthetic corpus in exactly the CryCeleb2023 layout, for tests and demos.

:func:`generate_corpus` writes ``metadata.csv``, ``dev_pairs.csv``, ``test_pairs.csv`` (with a
``label`` column, like a copy taken after the labels were released), ``sample_submission.csv``
and ``audio/{split}/{baby_id}/{period}/{baby_id}_{period}_{NNN}.wav`` (16 kHz mono PCM_16, one
file = one cry expiration), with the real split proportions and segment-duration statistics
(see ``shared/cryceleb-format.md``). A hidden ``.cryprint_synth.json`` beside the CSVs records
the generator, its ``arguments`` and whether the corpus is ``complete``, so that a later call
may replace the corpus without ``overwrite=True``.

The model of a cry
==================
Each expiration is rendered with a source–filter model, vectorised over samples:

*Source.* A band-limited pulse train (every harmonic of f0 up to 7.5 kHz at equal amplitude,
as a closed-form Dirichlet sum) following an f0 track, plus pulse-synchronous aspiration noise.

*Filter.* A cascade of four formant resonators times a spectral tilt, applied as a zero-phase
magnitude response in the FFT domain; then the recording channel (below).

Identity traits of a baby (drawn once per baby; population ranges):

=============================  =================================================================
f0 level                       300–620 Hz (log-normal around 430 Hz; newborn cries)
melody (rise–fall contour)     log-f0 rises by 0.10–0.45 (≈2–8 semitones) from the onset to a
                               peak at 20–60 % of the expiration, then falls by 0.15–0.60
vibrato                        4–10 Hz, depth 0.005–0.04 in log-f0
jitter                         0.4–2 % cycle-scale log-f0 noise
shimmer                        3–15 % cycle-scale amplitude noise
breathiness                    harmonics-to-aspiration ratio 6–24 dB
first harmonic                 H1 boost −4…+8 dB (glottal open quotient)
spectral tilt                  0–8 dB/octave above 400 Hz (on top of the formant cascade)
formants F1–F4                 850–1400, 2300–3500, 4100–5400, 5800–7000 Hz (a short vocal tract)
formant bandwidths             120–320, 180–420, 250–600, 350–800 Hz
voicing breaks                 0–0.8 per second, 30–150 ms each (voicing → turbulent noise)
hyperphonation                 0–40 % of expirations hold a 10–40 % stretch at 1.8–3.5 × f0
onset / offset                 raised-cosine attack 20–100 ms, release 40–200 ms
=============================  =================================================================

Per-expiration variation around the traits (standard deviations at ``difficulty`` 1): f0 level
×exp(N(0, 0.08)) (≈1.4 semitones), rise/fall ×exp(N(0, 0.25)), peak position ±0.08, each
formant ×exp(N(0, 0.04)), bandwidths ×exp(N(0, 0.12)), tilt ±1.5 dB/octave, breathiness
±3 dB, level ±3 dB, vibrato rate ×exp(N(0, 0.15)). A recording (one baby, one period) also
shares a context offset: f0 ×exp(N(0, 0.04)), formants ×exp(N(0, 0.02)) — the baby's state in
that session. Whether an expiration has a break or hyperphonation is drawn from the traits.

Period D versus B: the baby is older, so D's traits drift from B's: f0 ×exp(N(0, 0.05)),
formants ×exp(N(0, 0.03)) together and ×exp(N(0, 0.015)) each, tilt ±1 dB/octave,
breathiness ±2 dB, melody rise/fall ×exp(N(0, 0.15)).

Channel: every recording (B and D alike, drawn independently) passes its own microphone and
room: a smooth random EQ (four cosine terms over log-frequency, N(0, 2 dB) each), a
2nd-order high-pass at 30 + U(0, 150) Hz, a 4th-order low-pass at 7800 − U(0, 2500) Hz (at
least 3 kHz), a level of −20 ± 4 dB FS (rms, before the channel), and stationary background
noise with a random slope of −9…−1 dB/octave at an SNR of 50 − U(15, 35) dB (at least 0 dB),
its level constant across the recording's files. Loud files are scaled to a 0.97 peak (no
clipping).

``difficulty`` (≥ 0, default 1) multiplies every standard deviation of the per-expiration
variation, the recording context, the B→D drift, and the channel's EQ, band limits, level
spread and noise (the ``U(...)`` terms above). At 0 the cries of a baby differ only in
duration, breaks, hyperphonation, jitter/shimmer/aspiration noise, and the channel is clean
(flat, SNR 50 dB): verification is easy. Calibration: a hand-made embedding (mean log-mel
spectrum of a recording, level removed, cosine scoring; see ``tests/data/test_synth.py``)
gives an EER of about 0 %, 7 %, 25 %, 41 % and 46 % at difficulty 0, 0.5, 1, 1.5 and 2 on
the dev + test pairs of the default corpus (240 babies, seed 0). The published CryCeleb
systems reach 22–30 % on the real data.

Determinism: every baby draws from its own ``numpy.random.Generator`` seeded by
``SeedSequence(seed, spawn_key=(baby index, stream))`` (streams: traits, drift, period B,
period D), so its random draws do not depend on the other babies, on which periods it has, or
on ``difficulty``, which scales the draws and never changes how many are taken: corpora that
differ only in difficulty hold the same babies and cry durations, more or less varied. The
same arguments give byte-identical files on the same platform (libm differences in ``sin`` or
``exp`` between machines could flip a rounding to int16, rarely).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.fft
import soundfile

from cryprint.data.layout import METADATA_COLUMNS
from cryprint.errors import DataError

SAMPLE_RATE = 16_000
MARKER_NAME = ".cryprint_synth.json"
MIN_BABIES = 20
MAX_BABIES = 5000

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

_HARMONIC_LIMIT_HZ = 7500.0
_TILT_CORNER_HZ = 400.0
_F0_RANGE_HZ = (150.0, 2500.0)
_CONTROL_STEP = 40  # samples between jitter/shimmer control points: about one glottal cycle
_FFT_PADDING = 1024  # samples of zero padding so the filters' ringing does not wrap around
_PEAK_LIMIT = 0.97
# The channel's response is computed once per recording on this grid, then interpolated.
_CHANNEL_GRID_HZ = np.linspace(0.0, SAMPLE_RATE / 2, 2049)

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
class _Voice:
    """The identity traits of one baby in one period (see the module docstring)."""

    f0_hz: float
    f0_rise: float
    f0_fall: float
    peak_position: float
    vibrato_rate_hz: float
    vibrato_depth: float
    jitter: float
    shimmer: float
    harmonics_to_noise_db: float
    h1_boost_db: float
    tilt_db_per_octave: float
    formants_hz: np.ndarray
    bandwidths_hz: np.ndarray
    break_rate_per_s: float
    hyperphonation_probability: float
    hyperphonation_ratio: float
    attack_s: float
    release_s: float


@dataclass(frozen=True)
class _Recording:
    """The session of one recording: context offsets and the channel."""

    f0_offset: float
    formant_offset: float
    level_db: float
    eq_db: np.ndarray
    highpass_hz: float
    lowpass_hz: float
    snr_db: float
    noise_slope_db_per_octave: float
    response: np.ndarray  # the channel's magnitude response on _CHANNEL_GRID_HZ


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
        dest: the corpus directory; created if missing. It must be empty or hold an earlier
            synthetic corpus (recognised by its ``.cryprint_synth.json``), unless ``overwrite``.
        babies: babies in the corpus, 20–5000 (split as :func:`split_counts` says).
        seed: any non-negative integer; the same arguments give byte-identical files.
        difficulty: ≥ 0; scales within-baby variation, B→D drift and channel/noise (0 easy,
            1 default, 2 much harder). See the module docstring.
        segments_per_recording: (fewest, most) expirations per (baby, period), drawn
            uniformly. The default (4, 14) gives about 55 minutes of audio for 240 babies.
        overwrite: replace ``audio/``, the CSVs and the marker in a non-empty ``dest`` that
            is not a synthetic corpus. Other files there are left alone.

    Returns:
        A :class:`SynthSummary` of what was written.

    Raises:
        DataError: invalid arguments, or a non-empty ``dest`` that is not a synthetic corpus.

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
        raise DataError(f"difficulty must be a number >= 0, got {difficulty!r}") from error
    if not math.isfinite(difficulty) or difficulty < 0:
        raise DataError(f"difficulty must be a finite number >= 0, got {difficulty!r}")
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


def _is_synthetic(dest: Path) -> bool:
    try:
        marker = json.loads((dest / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("generator") == _GENERATOR_NAME


def _prepare_destination(dest: Path, overwrite: bool) -> None:
    """Create ``dest``, or clear what an earlier corpus left there (see generate_corpus)."""
    if dest.exists() and not dest.is_dir():
        raise DataError(f"{dest}: exists and is not a directory")
    if dest.is_dir() and any(dest.iterdir()):
        if not (_is_synthetic(dest) or overwrite):
            raise DataError(
                f"{dest}: the directory is not empty and holds no synthetic corpus "
                f"(no {MARKER_NAME}); choose an empty directory or pass overwrite=True"
            )
        # metadata.csv first, so a crash below never leaves it pointing at a half-deleted tree.
        for name in (*_CSV_NAMES, MARKER_NAME):
            (dest / name).unlink(missing_ok=True)
        if (dest / "audio").is_dir():
            shutil.rmtree(dest / "audio")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"{dest}: cannot create the directory ({error})") from error


def _write_atomic(path: Path, text: str) -> int:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return path.stat().st_size


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> int:
    lines = [",".join(header), *(",".join(row) for row in rows)]
    # No field holds a comma, quote or newline (ids, numbers, relative paths), so no quoting.
    assert not any(any(c in field for c in ',"\n') for row in rows for field in row)
    return _write_atomic(path, "\n".join(lines) + "\n")


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
    return _write_atomic(dest / MARKER_NAME, json.dumps(marker, indent=2, sort_keys=True) + "\n")


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
    voice_b = _draw_voice(_baby_rng(seed, baby.index, _TRAITS_STREAM))
    voice_d = _drift(voice_b, _baby_rng(seed, baby.index, _DRIFT_STREAM), difficulty)
    voices = {"B": voice_b, "D": voice_d}
    audio = {}
    for period in baby.periods:
        rng = _baby_rng(seed, baby.index, _PERIOD_STREAMS[period])
        recording = _draw_recording(rng, difficulty)
        count = int(rng.integers(segment_range[0], segment_range[1] + 1))
        log_durations = np.log(_MEDIAN_SEGMENT_S) + _LOG_DURATION_SCALE * rng.standard_t(
            _DURATION_DEGREES_OF_FREEDOM, size=count
        )
        durations = np.clip(np.exp(log_durations), _MIN_SEGMENT_S, _MAX_SEGMENT_S)
        audio[period] = [
            _render_expiration(
                round(float(seconds) * SAMPLE_RATE), voices[period], recording, rng, difficulty
            )
            for seconds in durations
        ]
    return audio


def _draw_voice(rng: np.random.Generator) -> _Voice:
    formants = np.array(
        [rng.uniform(850, 1400), rng.uniform(2300, 3500), rng.uniform(4100, 5400),
         rng.uniform(5800, 7000)]
    )  # fmt: skip
    bandwidths = np.array(
        [rng.uniform(120, 320), rng.uniform(180, 420), rng.uniform(250, 600),
         rng.uniform(350, 800)]
    )  # fmt: skip
    return _Voice(
        f0_hz=float(np.clip(430.0 * np.exp(0.13 * rng.standard_normal()), 300.0, 620.0)),
        f0_rise=rng.uniform(0.10, 0.45),
        f0_fall=rng.uniform(0.15, 0.60),
        peak_position=rng.uniform(0.2, 0.6),
        vibrato_rate_hz=rng.uniform(4.0, 10.0),
        vibrato_depth=rng.uniform(0.005, 0.04),
        jitter=rng.uniform(0.004, 0.02),
        shimmer=rng.uniform(0.03, 0.15),
        harmonics_to_noise_db=rng.uniform(6.0, 24.0),
        h1_boost_db=rng.uniform(-4.0, 8.0),
        tilt_db_per_octave=rng.uniform(0.0, 8.0),
        formants_hz=formants,
        bandwidths_hz=bandwidths,
        break_rate_per_s=rng.uniform(0.0, 0.8),
        hyperphonation_probability=0.4 * rng.uniform() ** 2,
        hyperphonation_ratio=rng.uniform(1.8, 3.5),
        attack_s=rng.uniform(0.02, 0.10),
        release_s=rng.uniform(0.04, 0.20),
    )


def _drift(voice: _Voice, rng: np.random.Generator, difficulty: float) -> _Voice:
    """Period D's traits: the same baby, a day or so older (scaled by difficulty)."""
    normal = rng.standard_normal(9) * difficulty
    formant_scale = np.exp(0.03 * normal[0] + 0.015 * normal[1:5])
    return dataclasses.replace(
        voice,
        f0_hz=voice.f0_hz * float(np.exp(0.05 * normal[5])),
        formants_hz=voice.formants_hz * formant_scale,
        tilt_db_per_octave=voice.tilt_db_per_octave + 1.0 * normal[6],
        harmonics_to_noise_db=voice.harmonics_to_noise_db + 2.0 * normal[7],
        f0_rise=voice.f0_rise * float(np.exp(0.15 * normal[8])),
        f0_fall=voice.f0_fall * float(np.exp(0.15 * normal[8])),
    )


def _draw_recording(rng: np.random.Generator, difficulty: float) -> _Recording:
    normal = rng.standard_normal(7) * difficulty
    uniform = rng.uniform(size=3)
    recording = _Recording(
        f0_offset=0.04 * normal[0],
        formant_offset=0.02 * normal[1],
        level_db=-20.0 + 4.0 * normal[2],
        eq_db=2.0 * normal[3:7],
        highpass_hz=30.0 + difficulty * 150.0 * uniform[0],
        lowpass_hz=max(3000.0, 7800.0 - difficulty * 2500.0 * uniform[1]),
        snr_db=max(0.0, 50.0 - difficulty * (15.0 + 20.0 * uniform[2])),
        noise_slope_db_per_octave=rng.uniform(-9.0, -1.0),
        response=np.empty(0),
    )
    return dataclasses.replace(recording, response=_channel_response(_CHANNEL_GRID_HZ, recording))


# --- one expiration --------------------------------------------------------------------------


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _soft_box(t: np.ndarray, start: float, stop: float, edge_s: float) -> np.ndarray:
    """1 inside [start, stop] seconds, 0 outside, with smooth edges of ``edge_s``."""
    return _smoothstep((t - start) / edge_s + 0.5) * _smoothstep((stop - t) / edge_s + 0.5)


def _control_noise(rng: np.random.Generator, samples: int) -> np.ndarray:
    """Unit Gaussian noise, one value per glottal-cycle-sized step, interpolated to samples."""
    points = rng.standard_normal(samples // _CONTROL_STEP + 2)
    return np.interp(np.arange(samples) / _CONTROL_STEP, np.arange(len(points)), points)


def _render_expiration(
    samples: int, voice: _Voice, recording: _Recording, rng: np.random.Generator, difficulty: float
) -> np.ndarray:
    """One cry expiration through the recording's channel: int16 [samples] at 16 kHz."""
    varied = rng.standard_normal(16) * difficulty
    uniform = rng.uniform(size=4)
    t = np.arange(samples) / SAMPLE_RATE
    seconds = samples / SAMPLE_RATE
    position = t / seconds

    # Melody: a rise to the peak then a fall (quadratic in log f0), vibrato, jitter.
    peak = float(np.clip(voice.peak_position + 0.08 * varied[0], 0.08, 0.92))
    rise = voice.f0_rise * np.exp(0.25 * varied[1])
    fall = voice.f0_fall * np.exp(0.25 * varied[2])
    contour = np.where(
        position < peak,
        -rise * ((peak - position) / peak) ** 2,
        -fall * ((position - peak) / (1.0 - peak)) ** 2,
    )
    f0_level = voice.f0_hz * np.exp(recording.f0_offset + 0.08 * varied[3])
    vibrato_rate = voice.vibrato_rate_hz * np.exp(0.15 * varied[4])
    log_f0 = (
        np.log(f0_level)
        + contour
        + voice.vibrato_depth * np.sin(2 * np.pi * (vibrato_rate * t + uniform[0]))
        + voice.jitter * _control_noise(rng, samples)
    )
    if rng.uniform() < voice.hyperphonation_probability:
        length = seconds * (0.1 + 0.3 * uniform[1])
        start = (seconds - length) * uniform[2]
        stretch = _soft_box(t, start, start + length, 0.02)
        log_f0 = log_f0 + stretch * np.log(voice.hyperphonation_ratio)
    f0 = np.exp(np.clip(log_f0, *np.log(_F0_RANGE_HZ)))

    # Source: all harmonics below the limit at equal amplitude (Dirichlet kernel), the top one
    # faded in by its fractional part so the count can change smoothly with f0.
    phase = np.mod(2 * np.pi * (np.cumsum(f0) / SAMPLE_RATE + uniform[3]), 2 * np.pi)
    harmonics = _HARMONIC_LIMIT_HZ / f0
    whole = np.floor(harmonics)
    half_sine = np.sin(phase / 2)
    near_zero = np.abs(half_sine) < 1e-9
    dirichlet = np.where(
        near_zero,
        whole,
        np.sin((whole + 0.5) * phase) / (2 * np.where(near_zero, 1.0, half_sine)) - 0.5,
    )
    h1_extra = 10 ** (voice.h1_boost_db / 20) - 1.0
    pulses = dirichlet + (harmonics - whole) * np.cos((whole + 1) * phase)
    pulses = (pulses + h1_extra * np.cos(phase)) / np.sqrt(harmonics / 2)
    aspiration = rng.standard_normal(samples) * (0.7 + 0.3 * np.cos(phase))
    noise_ratio = 10 ** (-(voice.harmonics_to_noise_db + 3.0 * varied[5]) / 20)

    # Voicing breaks: voicing collapses into turbulent noise for 30–150 ms.
    voicing = np.ones(samples)
    for _ in range(rng.poisson(voice.break_rate_per_s * seconds)):
        length, start = rng.uniform(0.03, 0.15), rng.uniform(0.0, seconds)
        voicing -= 0.92 * _soft_box(t, start, start + length, 0.015)
    voicing = np.clip(voicing, 0.0, 1.0)
    source = voicing * (pulses + noise_ratio * aspiration) + (1.0 - voicing) * 0.7 * aspiration

    # Envelope: onset and offset ramps, louder near the melody peak, shimmer.
    ramp_scale = min(1.0, 0.8 * seconds / (voice.attack_s + voice.release_s))
    envelope = (
        _smoothstep(t / (voice.attack_s * ramp_scale))
        * _smoothstep((seconds - t) / (voice.release_s * ramp_scale))
        * np.exp(0.8 * contour + voice.shimmer * _control_noise(rng, samples))
    )

    # Filter: formant cascade and tilt for the cry; the channel's noise, EQ and band limits.
    size = scipy.fft.next_fast_len(samples + _FFT_PADDING, real=True)
    frequencies = np.fft.rfftfreq(size, 1.0 / SAMPLE_RATE)
    formants = voice.formants_hz * np.exp(recording.formant_offset + 0.04 * varied[6:10])
    bandwidths = voice.bandwidths_hz * np.exp(0.12 * varied[10:14])
    tilt = voice.tilt_db_per_octave + 1.5 * varied[14]
    cry = scipy.fft.rfft(source * envelope, size) * _voice_response(
        frequencies, formants, bandwidths, tilt
    )
    background = scipy.fft.rfft(rng.standard_normal(size)) * _noise_shape(
        frequencies, recording.noise_slope_db_per_octave
    )
    cry_level = 10 ** ((recording.level_db + 3.0 * varied[15]) / 20)
    noise_level = 10 ** ((recording.level_db - recording.snr_db) / 20)
    mixture = (
        cry * (cry_level / np.sqrt(_mean_square(cry, size, samples)))
        + background * (noise_level / np.sqrt(_mean_square(background, size, size)))
    ) * np.interp(frequencies, _CHANNEL_GRID_HZ, recording.response)
    waveform = scipy.fft.irfft(mixture, size)[:samples]
    peak_amplitude = float(np.max(np.abs(waveform)))
    if peak_amplitude > _PEAK_LIMIT:  # an automatic gain control, rather than clipping
        waveform *= _PEAK_LIMIT / peak_amplitude
    return np.round(waveform * 32767.0).astype(np.int16)


def _mean_square(spectrum: np.ndarray, size: int, samples: int) -> float:
    """Mean square over ``samples`` of the real signal whose rfft (length ``size``) is given."""
    power = np.abs(spectrum) ** 2
    energy = 2.0 * power.sum() - power[0] - (power[-1] if size % 2 == 0 else 0.0)
    return max(float(energy) / size / samples, 1e-30)


def _voice_response(
    frequencies: np.ndarray, formants: np.ndarray, bandwidths: np.ndarray, tilt: float
) -> np.ndarray:
    """Magnitude of the vocal tract: four resonators in cascade times a spectral tilt."""
    f = frequencies[:, None]
    resonators = formants**2 / np.sqrt((formants**2 - f**2) ** 2 + (bandwidths * f) ** 2)
    slope = max(tilt, 0.0) / (20 * np.log10(2))
    return resonators.prod(axis=1) * (1.0 + (frequencies / _TILT_CORNER_HZ) ** 2) ** (-slope / 2)


def _noise_shape(frequencies: np.ndarray, slope_db_per_octave: float) -> np.ndarray:
    return (1.0 + frequencies / 100.0) ** (slope_db_per_octave / (20 * np.log10(2)))


def _channel_response(frequencies: np.ndarray, recording: _Recording) -> np.ndarray:
    """Magnitude of the microphone/room: smooth EQ, high-pass, low-pass."""
    f = np.maximum(frequencies, 1.0)
    position = np.log(np.clip(f, 50.0, 8000.0) / 50.0) / np.log(8000.0 / 50.0)
    terms = np.arange(1, len(recording.eq_db) + 1)
    eq_db = np.cos(np.pi * terms * position[:, None]) @ recording.eq_db
    highpass = 1.0 / np.sqrt(1.0 + (recording.highpass_hz / f) ** 4)
    lowpass = 1.0 / np.sqrt(1.0 + (f / recording.lowpass_hz) ** 8)
    response = 10 ** (eq_db / 20) * highpass * lowpass
    response[0] = 0.0  # no DC offset
    return response
