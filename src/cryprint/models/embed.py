"""Embed whole recordings with a :class:`~cryprint.models.ecapa.CryEmbedder`.

By default each recording goes through the model alone, unpadded, under
``torch.inference_mode``: its embedding is then exactly what SpeechBrain's ``encode_batch``
gives for it, whatever else is embedded with it. Padding several recordings into one batch is
possible (``max_batch_size > 1``; recordings are sorted by length so padding stays small) but
changes embeddings: ECAPA's convolutions and the STFT see the padded frames, only the pooling
masks them (measured on the default synthetic corpus with the full ECAPA: cosine to the
unpadded embedding down to 0.996). It is not faster on CPU either: one recording's activations
stay in cache, a padded batch's do not (benchmarks/bench_embedding.py: 2.6x slower batched
32 at a time on 2 cores).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from cryprint.data.audio import SAMPLE_RATE
from cryprint.data.batches import pad_batch
from cryprint.errors import ModelError


def embed_waveforms(
    model: torch.nn.Module,
    waveforms: Sequence[np.ndarray],
    device: torch.device | str = "cpu",
    max_batch_size: int = 1,
    max_batch_seconds: float = 600.0,
    progress: bool = False,
    names: Sequence[str] | None = None,
    autocast: torch.dtype | None = None,
) -> np.ndarray:
    """Embed each waveform.

    Args:
        model: maps (float32 [batch, samples], relative lengths [batch]) → [batch, dim].
        waveforms: float32 [samples] arrays at 16 kHz, any lengths.
        device: where to run the model.
        max_batch_size: at most this many recordings per forward pass (1: no padding, exact;
            more: padded batches of similar lengths, see the module docstring).
        max_batch_seconds: at most this much padded audio per forward pass (bounds memory).
        progress: show a progress bar.
        names: what each waveform is, for the error message.
        autocast: None for float32, or the dtype of a :func:`torch.autocast` region around the
            model (``torch.bfloat16``); the embeddings are returned as float32 either way.

    Returns:
        float32 [len(waveforms), dim], row i for waveforms[i].

    Raises:
        ModelError: the model gave a NaN or infinite embedding (broken weights).
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
        mixed = (
            torch.autocast(torch.device(device).type, dtype=autocast)
            if autocast is not None
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), mixed:
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
    bad = np.flatnonzero(~np.isfinite(result).all(axis=1))
    if len(bad):
        named = [names[i] if names is not None else f"#{i}" for i in bad[:5]]
        raise ModelError(
            f"the model gave NaN/inf embeddings for {len(bad)} recording(s) ({', '.join(named)}); "
            "its weights are broken"
        )
    return result
