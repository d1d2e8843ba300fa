"""One embedding per recording of a split, from the embedding store when it has it.

A recording is all segments of one (baby_id, period), concatenated in chronological order
(:func:`cryprint.data.corpus.recordings`); its key is ``{baby_id}{period}`` (``0133B``), the
half of a pair id that names it. Every recording's embedding goes through the embedding store
(:mod:`cryprint.inference.store`, keyed by the model and the bytes of the recording's files), so
``evaluate``, ``calibrate``, ``submit`` and ``embed`` never embed a recording twice. ``embed
--out`` also writes the split's embeddings as an ``.npz`` (keys, embeddings, model_id, data_id).

Example:
    >>> loaded = load_model("runs/triplet/best")  # doctest: +SKIP
    >>> dev = embed_split(loaded, "data/cryceleb", "dev", Path("dev.npz"))  # doctest: +SKIP
    >>> dev.keys[:2], dev.embeddings.shape  # doctest: +SKIP
    (['0133B', '0133D'], (80, 192))
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cryprint.data.audio import read_audio, to_float32, to_int16
from cryprint.data.corpus import recording_segments
from cryprint.data.inputs import check_recording
from cryprint.data.layout import SPLITS, read_metadata
from cryprint.errors import DataError
from cryprint.inference.api import embedder_for
from cryprint.inference.embedding_file import (
    RecordingEmbeddings,
    check_replaceable_embeddings,
    how_embedded,
    load_embeddings,
    save_embeddings,
)
from cryprint.inference.options import EmbeddingOptions
from cryprint.inference.store import audio_key
from cryprint.models.folder import ModelSpec

if TYPE_CHECKING:
    from cryprint.inference.api import CryPrint
    from cryprint.inference.shards import Shard

logger = logging.getLogger(__name__)


def split_keys(root: Path | str, split: str) -> tuple[list[str], str]:
    """The recording keys of ``split`` (sorted by baby then period, as :func:`recordings`
    returns them) and the data fingerprint, from ``metadata.csv`` alone (no audio read).

    Raises:
        DataError: unknown split, unreadable metadata, or no recordings in the split.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}")
    root = Path(root)
    metadata = read_metadata(root)
    rows = metadata[metadata["split"] == split]
    if rows.empty:
        raise DataError(f"{root / 'metadata.csv'}: no recordings in the {split} split")
    groups = rows.groupby(["baby_id", "period"], sort=True).size().index
    keys = [f"{baby_id}{period}" for baby_id, period in groups]
    digest = hashlib.sha256()
    for file_name, index in zip(rows["file_name"], rows["chronological_index"], strict=True):
        stat = (root / file_name).stat()
        digest.update(f"{file_name}|{index}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return keys, digest.hexdigest()


def embed_split(
    model: ModelSpec | CryPrint,
    root: Path | str,
    split: str,
    cache: Path | None = None,
    *,
    embedding: EmbeddingOptions | None = None,
    store: bool | Path | str = True,
    progress: bool = False,
    shard: Shard | None = None,
    purpose: str = "",
) -> RecordingEmbeddings:
    """Embed every recording of ``split`` (one per (baby_id, period)), reusing what the
    embedding store holds for these weights and these audio files.

    Args:
        model: a model spec, a loaded model, or a :class:`cryprint.CryPrint`.
        root: a CryCeleb-layout data directory.
        split: ``train``, ``dev`` or ``test``.
        cache: an ``.npz`` file. When it holds embeddings of the same weights
            (:func:`model_identity`), the same recording keys and the same audio files, they
            are returned without running the model; otherwise they are computed and written
            there (atomically).
        embedding, store: how recordings are embedded (:class:`cryprint.inference.options.
            EmbeddingOptions`; None: the defaults) and the embedding store (see
            :class:`cryprint.CryPrint`); ignored when ``model`` is a CryPrint.
        progress: show progress.
        shard: only this shard's recordings (every N-th, see
            :class:`~cryprint.inference.shards.Shard`), for a job array; merge the parts with
            :func:`~cryprint.inference.shards.merge_shards`.
        purpose: why the split is embedded (e.g. "the AS-norm cohort"), for progress lines.

    Returns:
        :class:`RecordingEmbeddings`, float32 [n_recordings, dim], sorted by baby then period.

    Raises:
        DataError: bad metadata or split. AudioError: an unreadable file, or a recording
            shorter than 0.25 s (named). OutputError: the cache cannot be written.
    """
    root = Path(root)
    keys, data_id = split_keys(root, split)
    embedder = embedder_for(model, embedding, store)
    rows = read_metadata(root)
    listed = recording_segments(rows[rows["split"] == split])
    if [f"{baby_id}{period}" for baby_id, period, _ in listed] != keys:
        raise DataError(f"recordings of the {split} split changed while reading them")
    if shard is not None:
        keys, listed = [keys[i] for i in shard.rows(len(keys))], shard.take(listed)
    if cache is not None:
        check_replaceable_embeddings(cache)
        cached = load_embeddings(cache, missing_ok=True, quiet=True)
        if cached is not None and _same_embeddings(cached, embedder, data_id, keys, shard):
            logger.info("reusing the %s embeddings in %s", split, cache)
            return cached
    names = [f"recording {b}{p} of the {split} split ({len(f)} segment(s))" for b, p, f in listed]

    def read(index: int) -> np.ndarray:
        # As Corpus holds audio (int16), so fp32 embeddings equal the training validation's.
        segments = [to_int16(read_audio(root / name)) for name in listed[index][2]]
        waveform = to_float32(np.concatenate(segments))
        check_recording(waveform, names[index])
        return waveform

    audio_keys = [audio_key(files=[root / name for name in files]) for _, _, files in listed]
    label = (
        f"embedding the {split} split{f' ({purpose})' if purpose else ''} with {embedder.source}"
    )
    embeddings = embedder.embed_keyed(audio_keys, read, names, progress=progress, label=label)
    embedded = RecordingEmbeddings(
        keys,
        embeddings,
        embedder.model_id,
        data_id,
        split=split,
        shard=str(shard or ""),
        embedding_id=embedder.engine.embedding_id,
        store_keys=embedder.store_keys(audio_keys),
    )
    if cache is not None:
        save_embeddings(cache, embedded)
    return embedded


def _same_embeddings(
    cached: RecordingEmbeddings, embedder: CryPrint, data_id: str, keys: list[str],
    shard: Shard | None,
) -> bool:  # fmt: skip
    """Whether a cache file holds what would be computed: the same weights, engine and
    precision (``embedding_id``), audio, recordings and shard, TTA views and trimming. Files of
    older versions lack the embedding id and store keys: never the same."""
    wanted = how_embedded(embedder.store_keys(["key"])[0])
    return (
        (cached.embedding_id, cached.data_id, cached.keys, cached.shard)
        == (embedder.engine.embedding_id, data_id, keys, str(shard or ""))
        and len(cached.store_keys) == len(keys)
        and all(how_embedded(key) == wanted for key in cached.store_keys)
    )
