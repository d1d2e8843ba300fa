"""Embed whole recordings with a :class:`~cryprint.models.ecapa.CryEmbedder`.

Recordings are sorted by length and batched so that padding stays small (each batch holds
recordings of similar length, up to ``max_batch_seconds`` of padded audio), run under
``torch.inference_mode``, and returned in the caller's order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from cryprint.data.audio import SAMPLE_RATE
from cryprint.data.batches import pad_batch


def embed_waveforms(
    model: torch.nn.Module,
    waveforms: Sequence[np.ndarray],
    device: torch.device | str = "cpu",
    max_batch_size: int = 32,
    max_batch_seconds: float = 600.0,
    progress: bool = False,
) -> np.ndarray:
    """Embed each waveform.

    Args:
        model: maps (float32 [batch, samples], relative lengths [batch]) → [batch, dim].
        waveforms: float32 [samples] arrays at 16 kHz, any lengths.
        device: where to run the model.
        max_batch_size: at most this many recordings per forward pass.
        max_batch_seconds: at most this much padded audio per forward pass (bounds memory).
        progress: show a progress bar.

    Returns:
        float32 [len(waveforms), dim], row i for waveforms[i].
    """
    order = np.argsort([-len(w) for w in waveforms], kind="stable")
    batches: list[list[int]] = []
    for index in order:
        if batches:
            current = batches[-1]
            # Sorted longest first: the first item of a batch sets its padded length.
            padded_seconds = len(waveforms[current[0]]) * (len(current) + 1) / SAMPLE_RATE
            if len(current) < max_batch_size and padded_seconds <= max_batch_seconds:
                current.append(int(index))
                continue
        batches.append([int(index)])
    was_training = model.training
    model.eval()
    result: np.ndarray | None = None
    try:
        with torch.inference_mode():
            for batch in tqdm(batches, desc="embedding", disable=not progress, unit="batch"):
                audio, lengths = pad_batch([waveforms[i] for i in batch])
                embeddings = model(audio.to(device), lengths.to(device)).float().cpu().numpy()
                if result is None:
                    result = np.zeros((len(waveforms), embeddings.shape[1]), dtype=np.float32)
                result[batch] = embeddings
    finally:
        model.train(was_training)
    if result is None:
        return np.zeros((0, 0), dtype=np.float32)
    return result


def cosine_matrix(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row of ``left`` [n, dim] with every row of ``right`` [m, dim]
    → [n, m]."""
    left = left / np.linalg.norm(left, axis=1, keepdims=True).clip(min=1e-12)
    right = right / np.linalg.norm(right, axis=1, keepdims=True).clip(min=1e-12)
    return left @ right.T
