"""Does a recording hold a cry at all? Frame energy with hysteresis, before anything is embedded.

A cry recording that is silence (all zeros), digital near-silence or a few clicks would still get
an embedding — and two silences score 1.0, "the same baby". So before embedding, the frames that
hold sound loud enough to be a cry are counted:

- 25 ms frames every 10 ms; each frame's level is its RMS in dB relative to full scale (dBFS);
- a frame is cry-level when it is above the absolute floor :data:`FLOOR_DBFS` (below it a 16-bit
  recording holds nothing but dither) and within :data:`START_BELOW_PEAK_DB` of the recording's
  loudest frame; once a stretch has started it continues while frames stay within
  :data:`CONTINUE_BELOW_PEAK_DB` (hysteresis: the decaying tail of a cry is kept, isolated
  quiet blips do not start a stretch);
- the recording is refused (:class:`AudioError`, exit 4) when less than :data:`MIN_CRY_SECONDS`
  of it is cry-level.

Nothing is trimmed: the check only refuses. Hand-segmented cries (CryCeleb's) are mostly
cry-level from end to end.
"""

from __future__ import annotations

import numpy as np

from cryprint.data.audio import MIN_SECONDS, SAMPLE_RATE
from cryprint.errors import AudioError

FRAME_SECONDS = 0.025
HOP_SECONDS = 0.010
# -60 dBFS is about 33 in 16-bit sample units: quieter than any microphone's own noise.
FLOOR_DBFS = -60.0
START_BELOW_PEAK_DB = 30.0
CONTINUE_BELOW_PEAK_DB = 40.0
MIN_CRY_SECONDS = MIN_SECONDS


def frame_levels(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """RMS level of each 25 ms frame (10 ms hop), dBFS; -inf for an all-zero frame.

    Args:
        waveform: float32 [samples] in [-1, 1].

    Returns:
        float64 [frames]; a recording shorter than one frame is one frame.
    """
    frame = int(FRAME_SECONDS * sample_rate)
    hop = int(HOP_SECONDS * sample_rate)
    audio = np.asarray(waveform, dtype=np.float64)
    if len(audio) < frame:
        audio = np.pad(audio, (0, frame - len(audio)))
    frames = np.lib.stride_tricks.sliding_window_view(audio, frame)[::hop]
    power = np.mean(frames**2, axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(power)


def cry_mask(levels: np.ndarray) -> np.ndarray:
    """Which frames are cry-level (see the module docstring): bool [frames]."""
    peak = float(np.max(levels)) if len(levels) else -np.inf
    if not np.isfinite(peak) or peak < FLOOR_DBFS:
        return np.zeros(len(levels), dtype=bool)
    start = (levels >= peak - START_BELOW_PEAK_DB) & (levels >= FLOOR_DBFS)
    keep = (levels >= peak - CONTINUE_BELOW_PEAK_DB) & (levels >= FLOOR_DBFS)
    # Hysteresis: a run of `keep` frames counts when it holds at least one `start` frame.
    runs = np.cumsum(np.diff(np.concatenate(([0], keep.astype(np.int8)))) == 1) * keep
    started = np.unique(runs[start & keep])
    return np.isin(runs, started[started > 0])


def cry_seconds(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Seconds of cry-level sound in ``waveform`` (float32 [samples])."""
    return float(np.count_nonzero(cry_mask(frame_levels(waveform, sample_rate)))) * HOP_SECONDS


def check_cry(waveform: np.ndarray, name: str, sample_rate: int = SAMPLE_RATE) -> None:
    """Refuse a recording with less than :data:`MIN_CRY_SECONDS` of cry-level sound.

    Raises:
        AudioError: naming the recording (``name``) and what was found.
    """
    seconds = cry_seconds(waveform, sample_rate)
    if seconds < MIN_CRY_SECONDS:
        found = "silence" if seconds == 0 else f"only {seconds:.2f} s of cry-level sound"
        raise AudioError(
            f"{name}: no cry found ({found}; at least {MIN_CRY_SECONDS} s needed above "
            f"{FLOOR_DBFS:.0f} dBFS): refusing to score a recording without a cry"
        )


def trim_to_cry(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``waveform`` without its leading and trailing non-cry sound (silence, background): from
    the first cry-level frame to the end of the last, then to the first and last sample above
    :data:`FLOOR_DBFS`. A cry's fading onset and release stay in
    (the hysteresis of :func:`cry_mask` keeps them); pauses inside the recording are kept. A
    recording without a cry is returned as it is (the check refuses it: :func:`check_cry`)."""
    mask = cry_mask(frame_levels(waveform, sample_rate))
    active = np.flatnonzero(mask)
    if len(active) == 0:
        return waveform
    hop, frame = int(HOP_SECONDS * sample_rate), int(FRAME_SECONDS * sample_rate)
    trimmed = waveform[active[0] * hop : min(len(waveform), active[-1] * hop + frame)]
    # A frame on the edge may still hold digital silence: cut to the first and last sample above
    # the floor, so the same cry gives the same samples however much silence surrounded it.
    audible = np.flatnonzero(np.abs(trimmed) >= 10 ** (FLOOR_DBFS / 20))
    return trimmed[audible[0] : audible[-1] + 1]
