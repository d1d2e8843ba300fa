"""One embedding per recording of a split, cached on disk under the model's identity.

A recording is all segments of one (baby_id, period), concatenated in chronological order
(:func:`cryprint.data.corpus.recordings`); its key is ``{baby_id}{period}`` (``0133B``), the
half of a pair id that names it. Embeddings are cached in an ``.npz`` file (keys, embeddings,
model_id, data_id): a rerun with the same weights on the same files reuses the cache instead of
running the model again.

Example:
    >>> loaded = load_model("runs/triplet/best")  # doctest: +SKIP
    >>> dev = embed_split(loaded, "data/cryceleb", "dev", Path("dev.npz"))  # doctest: +SKIP
    >>> dev.keys[:2], dev.embeddings.shape  # doctest: +SKIP
    (['0133B', '0133D'], (80, 192))
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from cryprint.data.activity import check_cry
from cryprint.data.audio import check_duration
from cryprint.data.corpus import Corpus, recordings
from cryprint.data.layout import SPLITS, read_metadata
from cryprint.embedding import embed_waveforms
from cryprint.errors import DataError
from cryprint.io import atomic_write
from cryprint.models.device import resolve_device
from cryprint.models.ecapa import CryEmbedder
from cryprint.models.folder import LoadedModel

logger = logging.getLogger(__name__)

# Recordings converted to float32 and embedded at a time: bounds memory on the real train split
# (about 1 GB of float32 audio at once otherwise).
_RECORDINGS_PER_CHUNK = 256
_CACHE_VERSION = 1


@dataclass(frozen=True)
class RecordingEmbeddings:
    """Embeddings of the recordings of one split.

    Attributes:
        keys: ``{baby_id}{period}`` of each recording, e.g. ``0133B``; unique.
        embeddings: float32 [len(keys), dim], row i for ``keys[i]``; not normalised.
        model_id: :func:`model_identity` of the weights that computed them.
        data_id: fingerprint of the split's audio files (names, sizes, modification times).
        from_cache: whether they were read from a cache file rather than computed.
    """

    keys: list[str]
    embeddings: np.ndarray
    model_id: str
    data_id: str = ""
    from_cache: bool = False

    def __post_init__(self) -> None:
        if self.embeddings.ndim != 2 or self.embeddings.shape[0] != len(self.keys):
            raise DataError(
                f"{len(self.keys)} recording keys but embeddings of shape "
                f"{self.embeddings.shape}: expected [{len(self.keys)}, dim]"
            )
        if len(set(self.keys)) != len(self.keys):
            raise DataError("recording keys are not unique")
        if not np.isfinite(self.embeddings).all():
            raise DataError("embeddings hold NaN or infinite values")

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])


def embedder_of(model: LoadedModel | CryEmbedder) -> CryEmbedder:
    """The :class:`CryEmbedder` inside ``model`` (a LoadedModel or the embedder itself)."""
    return model.model if isinstance(model, LoadedModel) else model


def model_identity(model: LoadedModel | CryEmbedder) -> str:
    """sha256 (hex) of the embedding weights and the architecture.

    Hashes every tensor of the ECAPA ``embedding_model`` state dict in sorted key order (name,
    dtype, shape and bytes) plus the :class:`ModelConfig` as JSON. The feature extractor (Fbank,
    sentence mean normalisation) has no trained weights and is fixed by the config. Two models
    with the same identity give the same embeddings.
    """
    embedder = embedder_of(model)
    digest = hashlib.sha256()
    digest.update(json.dumps(embedder.config.to_dict(), sort_keys=True).encode())
    state = embedder.embedding_model.state_dict()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        # uint8 view: numpy has no bfloat16, and the raw bytes are what we want anyway.
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


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
    model: LoadedModel | CryEmbedder,
    root: Path | str,
    split: str,
    cache: Path | None = None,
    *,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> RecordingEmbeddings:
    """Embed every recording of ``split`` (one per (baby_id, period)).

    Args:
        model: the embedder.
        root: a CryCeleb-layout data directory.
        split: ``train``, ``dev`` or ``test``.
        cache: an ``.npz`` file. When it holds embeddings of the same weights
            (:func:`model_identity`), the same recording keys and the same audio files, they
            are returned without running the model; otherwise they are computed and written
            there (atomically).
        device: where to run the model (``auto``, ``cpu``, ``cuda``, ...).
        progress: show progress bars.

    Returns:
        :class:`RecordingEmbeddings`, float32 [n_recordings, dim], sorted by baby then period.

    Raises:
        DataError: bad metadata or split. AudioError: an unreadable file, or a recording
            shorter than 0.25 s (named). OutputError: the cache cannot be written.
    """
    root = Path(root)
    keys, data_id = split_keys(root, split)
    model_id = model_identity(model)
    if cache is not None:
        cached = load_embeddings(cache, missing_ok=True)
        if cached is not None:
            if (cached.model_id, cached.data_id, cached.keys) == (model_id, data_id, keys):
                logger.info("reusing the %s embeddings in %s", split, cache)
                return cached
            logger.info("%s holds embeddings of other weights or data: recomputing", cache)

    corpus = Corpus(root, splits=(split,), progress=progress)
    items = recordings(corpus, split)
    for item in items:
        name = f"recording {item.key} of the {split} split ({len(item.segments)} segment(s))"
        waveform = item.waveform()
        check_duration(waveform, name)
        check_cry(waveform, name)
    embedder = embedder_of(model)
    device = resolve_device(device)
    embedder.to(device)
    # Longest first, so each chunk (and each batch inside it) holds recordings of similar length.
    order = sorted(range(len(items)), key=lambda i: -items[i].num_samples)
    embeddings: np.ndarray | None = None
    with tqdm(total=len(items), desc=f"embedding {split}", disable=not progress) as bar:
        for start in range(0, len(order), _RECORDINGS_PER_CHUNK):
            chunk = order[start : start + _RECORDINGS_PER_CHUNK]
            result = embed_waveforms(
                embedder,
                [items[i].waveform() for i in chunk],
                device,
                names=[items[i].key for i in chunk],
            )
            if embeddings is None:
                embeddings = np.zeros((len(items), result.shape[1]), dtype=np.float32)
            embeddings[chunk] = result
            bar.update(len(chunk))
    assert embeddings is not None  # split_keys guarantees at least one recording
    result_keys = [item.key for item in items]
    if result_keys != keys:  # both are sorted by (baby_id, period): a mismatch is a bug
        raise DataError(f"recordings of the {split} split changed while reading them")
    embedded = RecordingEmbeddings(result_keys, embeddings, model_id, data_id)
    if cache is not None:
        save_embeddings(cache, embedded)
    return embedded


def save_embeddings(path: Path | str, embeddings: RecordingEmbeddings) -> Path:
    """Write ``embeddings`` as an ``.npz`` (keys, embeddings, model_id, data_id), atomically."""

    def write(file: io.BufferedIOBase) -> None:
        np.savez(
            file,
            keys=np.array(embeddings.keys, dtype=str),
            embeddings=embeddings.embeddings.astype(np.float32),
            model_id=np.array(embeddings.model_id),
            data_id=np.array(embeddings.data_id),
            version=np.array(_CACHE_VERSION),
        )

    return atomic_write(path, write)


def load_embeddings(path: Path | str, missing_ok: bool = False) -> RecordingEmbeddings | None:
    """Read an ``.npz`` written by :func:`save_embeddings`.

    Returns None when the file is missing and ``missing_ok``, or (with a warning) when it is
    unreadable or of another format and ``missing_ok`` (a cache is recomputed then).

    Raises:
        DataError: missing or unreadable file, unless ``missing_ok``.
    """
    path = Path(path)
    if not path.is_file():
        if missing_ok:
            return None
        raise DataError(f"{path}: embeddings file not found")
    try:
        with np.load(path, allow_pickle=False) as stored:
            if int(stored["version"]) != _CACHE_VERSION:
                raise ValueError(f"format version {int(stored['version'])}")
            return RecordingEmbeddings(
                keys=[str(key) for key in stored["keys"]],
                embeddings=np.asarray(stored["embeddings"], dtype=np.float32),
                model_id=str(stored["model_id"]),
                data_id=str(stored["data_id"]),
                from_cache=True,
            )
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, DataError) as error:
        if missing_ok:
            logger.warning("%s: not a readable embeddings cache (%s); recomputing", path, error)
            return None
        raise DataError(f"{path}: not a readable embeddings file ({error})") from error
