"""Test-time augmentation (the 1st-place CryCeleb2023 system's): a recording's embedding as the
mean of the embeddings of several views of it. numpy only, so every backend shares it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from cryprint.data.audio import SAMPLE_RATE

# embed(waveforms, names) -> float32 [len(waveforms), dim]
EmbedFunction = Callable[[list[np.ndarray], list[str]], np.ndarray]


def tta_views(
    waveform: np.ndarray, views: int, crop_fraction: float = 0.8, min_seconds: float = 0.5
) -> list[np.ndarray]:
    """Test-time augmentation views of a recording: the whole of it, then ``views - 1``
    overlapping crops of ``crop_fraction`` of its length at evenly spaced starts (first at the
    beginning, last at the end). Deterministic: the same recording always gives the same views.
    A recording too short for crops of ``min_seconds`` gives the whole recording alone.

    Args:
        waveform: float32 [samples] at 16 kHz.
        views: how many views (1 = the recording alone).
    """
    length = int(len(waveform) * crop_fraction)
    if views <= 1 or length < min_seconds * SAMPLE_RATE:
        return [waveform]
    starts = np.linspace(0, len(waveform) - length, views - 1).round().astype(int)
    return [waveform, *(waveform[start : start + length] for start in starts)]


def embed_views(
    embed: EmbedFunction, waveforms: Sequence[np.ndarray], views: int, names: Sequence[str]
) -> np.ndarray:
    """Each recording's embedding as the mean of its :func:`tta_views`' L2-normalised
    embeddings, L2-normalised again.

    Returns:
        float32 [len(waveforms), dim], unit rows.
    """
    result = []
    for waveform, name in zip(waveforms, names, strict=True):
        parts = tta_views(waveform, views)
        embedded = embed(parts, [name] * len(parts))
        unit = embedded / np.linalg.norm(embedded, axis=1, keepdims=True)
        mean = unit.mean(axis=0)
        result.append(mean / np.linalg.norm(mean))
    return np.stack(result).astype(np.float32)
