"""A set of recording embeddings and its ``.npz`` file: what ``cryprint embed --out`` writes,
an evaluation's embedding cache, a shard of ``embed --shard`` and a model's AS-norm cohort.

A file holds the keys (``{baby_id}{period}``), the embeddings, the model's identity, the
data's fingerprint, the split and shard, and each recording's embedding-store key (which
records how it was embedded: TTA views, trimming). Only a file cryprint wrote is replaced.
"""

from __future__ import annotations

import io
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cryprint.errors import FIELD, DataError, OutputError
from cryprint.io import atomic_write, writable_target

logger = logging.getLogger(__name__)

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
        split: the split they are of; ``shard``: ``K/N`` when they are the K-th of N shards of
            it (:mod:`cryprint.inference.shards`), else empty.
        embedding_id, store_keys: the embedding store's model id and each recording's store
            key, so that a merge can put them into a store (empty in files of older versions).
    """

    keys: list[str]
    embeddings: np.ndarray
    model_id: str
    data_id: str = ""
    from_cache: bool = False
    split: str = ""
    shard: str = ""
    embedding_id: str = ""
    store_keys: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.embeddings.ndim != 2 or self.embeddings.shape[0] != len(self.keys):
            raise DataError(
                f"{len(self.keys)} recording keys but embeddings of shape "
                f"{self.embeddings.shape}: expected [{len(self.keys)}, dim]"
            )
        if self.store_keys and len(self.store_keys) != len(self.keys):
            raise DataError(
                f"{len(self.keys)} recording keys but {len(self.store_keys)} store keys"
            )
        if len(set(self.keys)) != len(self.keys):
            raise DataError("recording keys are not unique")
        if not np.isfinite(self.embeddings).all():
            raise DataError("embeddings hold NaN or infinite values")

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])


def how_embedded(store_key: str) -> str:
    """The TTA views and trimming a store key records (``tta3|trim``; "" for neither)."""
    return store_key.partition("|")[2]


def check_replaceable_embeddings(path: Path | str) -> None:
    """An embeddings file may be written at ``path``: nothing is there, or an embeddings
    ``.npz`` that cryprint wrote, of any version (any other file is never replaced).

    Raises:
        OutputError: something else is there.
    """
    path = writable_target(path)
    if path.is_file() and not _written_by_cryprint(path):
        raise OutputError(
            f"{path} exists and is not a cryprint embeddings file: not replacing it "
            "(remove it, or choose another {out})",
            fields={"out": FIELD},
        )


def _written_by_cryprint(path: Path) -> bool:
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {"keys", "embeddings", "model_id", "version"} <= set(stored.files)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return False


def save_embeddings(path: Path | str, embeddings: RecordingEmbeddings) -> Path:
    """Write ``embeddings`` as an ``.npz`` (keys, embeddings, model_id, data_id, split, shard,
    embedding_id, store_keys), atomically."""

    def write(file: io.BufferedIOBase) -> None:
        np.savez(
            file,
            keys=np.array(embeddings.keys, dtype=str),
            embeddings=embeddings.embeddings.astype(np.float32),
            model_id=np.array(embeddings.model_id),
            data_id=np.array(embeddings.data_id),
            version=np.array(_CACHE_VERSION),
            split=np.array(embeddings.split),
            shard=np.array(embeddings.shard),
            embedding_id=np.array(embeddings.embedding_id),
            store_keys=np.array(embeddings.store_keys, dtype=str),
        )

    return atomic_write(path, write)


def load_embeddings(
    path: Path | str, missing_ok: bool = False, quiet: bool = False
) -> RecordingEmbeddings | None:
    """Read an ``.npz`` written by :func:`save_embeddings`.

    Returns None when the file is missing and ``missing_ok``, or (with a warning unless
    ``quiet``) when it is unreadable or of another format and ``missing_ok``.

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
                # Absent from the files of older versions.
                split=_text(stored, "split"),
                shard=_text(stored, "shard"),
                embedding_id=_text(stored, "embedding_id"),
                store_keys=[str(k) for k in stored["store_keys"]] if "store_keys" in stored else [],
            )
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, DataError) as error:
        if missing_ok:
            if not quiet:
                logger.warning("%s: not a readable embeddings cache (%s)", path, error)
            return None
        raise DataError(f"{path}: not a readable embeddings file ({error})") from error


def _text(stored: np.lib.npyio.NpzFile, name: str) -> str:
    return str(stored[name]) if name in stored else ""
