"""The cry-activity check: silence and near-silence refused, real cries kept, frames as a naive
loop computes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from cryprint.data.activity import (
    FLOOR_DBFS,
    HOP_SECONDS,
    check_cry,
    cry_mask,
    cry_seconds,
    frame_levels,
)
from cryprint.errors import AudioError


def test_frame_levels_equal_a_naive_loop() -> None:
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.1, 4000).astype(np.float32)
    frame, hop = 400, 160
    naive = [
        10 * np.log10(np.mean(audio[start : start + frame].astype(np.float64) ** 2))
        for start in range(0, len(audio) - frame + 1, hop)
    ]
    np.testing.assert_allclose(frame_levels(audio), naive, rtol=1e-12)


def test_hysteresis_keeps_a_decaying_tail_but_not_an_isolated_blip() -> None:
    # Peak 0 dB; -35 dB frames continue a started stretch, but alone they start nothing.
    levels = np.array([-35.0, -35.0, 0.0, -20.0, -35.0, -35.0, -100.0, -35.0, -35.0])
    mask = cry_mask(levels)
    assert mask.tolist() == [True, True, True, True, True, True, False, False, False]


def test_silence_and_dither_have_no_cry() -> None:
    assert cry_seconds(np.zeros(16000, dtype=np.float32)) == 0
    dither = np.full(16000, 10 ** (FLOOR_DBFS / 20) / 2, dtype=np.float32)
    assert cry_seconds(dither) == 0
    with pytest.raises(AudioError, match=r"side\.wav: no cry found"):
        check_cry(np.zeros(16000, dtype=np.float32), "side.wav")


def test_a_short_cry_in_silence_is_measured(tmp_path: Path) -> None:
    t = np.arange(16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 450 * t)).astype(np.float32)
    audio = np.concatenate([np.zeros(32000, np.float32), tone[:4000], np.zeros(32000, np.float32)])
    # 0.25 s of tone: frames overlapping it count (window 25 ms), give or take one hop.
    assert cry_seconds(audio) == pytest.approx(0.25, abs=3 * HOP_SECONDS)
    check_cry(np.concatenate([audio, tone[:8000]]), "ok")
    with pytest.raises(AudioError, match=r"only 0\.(08|09|10) s"):
        check_cry(np.concatenate([np.zeros(8000, np.float32), tone[:1400]]), "short")


def test_every_cry_of_the_synthetic_corpus_passes(small_corpus: Path) -> None:
    for path in sorted((small_corpus / "audio" / "dev").glob("*/*/*.wav"))[:40]:
        audio, _ = soundfile.read(path, dtype="float32")
        assert cry_seconds(audio) >= 0.6 * len(audio) / 16000 - 0.05, path
