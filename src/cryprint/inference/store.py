"""One embedding store for every command: computed once per model and audio, reused by all.

Why SQLite and not a folder of ``.npz`` files: many processes (an ``evaluate`` and a ``verify`` at
once, a job array) read and write the same store, and SQLite gives transactions, concurrent
readers beside a writer (WAL) and crash safety without a lock file of our own; an ``.npz`` folder
would need an index, its own locking and atomic renames for every write.

A row is keyed by

- the model's identity (:func:`cryprint.models.folder.model_identity`: SHA-256 of weights and
  architecture),
- the audio's identity (:func:`audio_key`: SHA-256 of the bytes of the files a recording joins,
  in order, or of the samples of an in-memory waveform),
- the preprocessing version (:data:`PREPROCESSING`: what turns files into the waveform the model
  sees; bumping it invalidates every row),

and holds the embedding as float32 bytes with its dimension. Every row read is validated: right
size, finite values; a bad row is deleted and recomputed, never used.

The default store is ``$CRYPRINT_STORE`` if set, else ``$XDG_CACHE_HOME/cryprint/embeddings.sqlite``
(``~/.cache/...``). ``CRYPRINT_STORE=off`` turns it off.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from cryprint.errors import OutputError

logger = logging.getLogger(__name__)

# What turns audio files into the model's input: read → mono → 16 kHz float32 → concatenated in
# order (cryprint.data.audio / cryprint.data.corpus). Change it when that pipeline changes.
PREPROCESSING = "mono-16k-float32-concat/1"
STORE_ENVIRONMENT = "CRYPRINT_STORE"
_TIMEOUT_SECONDS = 60.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    model_id TEXT NOT NULL,
    audio_key TEXT NOT NULL,
    preprocessing TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (model_id, audio_key, preprocessing)
) WITHOUT ROWID
"""


def audio_key(files: Sequence[Path | str] = (), samples: np.ndarray | None = None) -> str:
    """The identity of a recording's audio: SHA-256 over its files' bytes in order (a file's
    length first, so no two lists give the same stream), or over float32 samples."""
    digest = hashlib.sha256()
    if samples is not None:
        digest.update(b"samples:")
        digest.update(np.ascontiguousarray(samples, dtype=np.float32).tobytes())
        return digest.hexdigest()
    for file in files:
        data = Path(file).read_bytes()
        digest.update(f"file:{len(data)}:".encode())
        digest.update(data)
    return digest.hexdigest()


def default_store_path() -> Path | None:
    """Where the default store lives (None when ``CRYPRINT_STORE=off``)."""
    configured = os.environ.get(STORE_ENVIRONMENT)
    if configured:
        return None if configured.lower() in ("off", "none", "0") else Path(configured)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "cryprint" / "embeddings.sqlite"


class EmbeddingStore:
    """Embeddings keyed by (model, audio, preprocessing) in one SQLite file.

    Args:
        path: the SQLite file (created with its folder when missing).

    Example:
        >>> store = EmbeddingStore(tmp_path / "store.sqlite")  # doctest: +SKIP
        >>> store.put("model-sha", {"audio-sha": vector})  # doctest: +SKIP
        >>> store.get("model-sha", ["audio-sha"])  # doctest: +SKIP
        {'audio-sha': array([...], dtype=float32)}
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as connection:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as error:
            raise OutputError(f"{self.path}: cannot open the embedding store ({error})") from error

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=_TIMEOUT_SECONDS)

    def get(self, model_id: str, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """The stored, valid embeddings of ``keys`` (missing ones are absent from the result)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, np.ndarray] = {}
        bad: list[str] = []
        try:
            with self._connect() as connection:
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start : start + 500]
                    rows = connection.execute(
                        "SELECT audio_key, dim, vector FROM embeddings WHERE model_id = ? AND "
                        f"preprocessing = ? AND audio_key IN ({','.join('?' * len(chunk))})",
                        (model_id, PREPROCESSING, *chunk),
                    ).fetchall()
                    for key, dim, blob in rows:
                        vector = _valid_vector(dim, blob)
                        if vector is None:
                            bad.append(key)
                        else:
                            found[key] = vector
        except sqlite3.Error as error:
            logger.warning("%s: embedding store unreadable (%s); recomputing", self.path, error)
            return {}
        if bad:
            logger.warning("%s: %d invalid stored embedding(s) dropped", self.path, len(bad))
            self.delete(model_id, bad)
        return found

    def put(self, model_id: str, vectors: dict[str, np.ndarray]) -> None:
        """Store ``vectors`` (audio key → float [dim]) in one transaction."""
        rows = []
        for key, vector in vectors.items():
            array = np.asarray(vector, dtype=np.float32).reshape(-1)
            if not np.isfinite(array).all():
                raise ValueError(f"refusing to store a non-finite embedding for {key}")
            rows.append((model_id, key, PREPROCESSING, len(array), array.tobytes()))
        try:
            with self._connect() as connection:
                connection.executemany(
                    "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?, ?)", rows
                )
        except sqlite3.Error as error:
            raise OutputError(f"{self.path}: cannot write the embedding store ({error})") from error

    def delete(self, model_id: str, keys: Iterable[str]) -> None:
        try:
            with self._connect() as connection:
                connection.executemany(
                    "DELETE FROM embeddings WHERE model_id = ? AND audio_key = ?",
                    [(model_id, key) for key in keys],
                )
        except sqlite3.Error as error:
            logger.warning("%s: could not drop invalid rows (%s)", self.path, error)

    def count(self, model_id: str | None = None) -> int:
        """How many embeddings are stored (of one model, or in all)."""
        query, args = "SELECT COUNT(*) FROM embeddings", ()
        if model_id is not None:
            query, args = query + " WHERE model_id = ?", (model_id,)
        with self._connect() as connection:
            return int(connection.execute(query, args).fetchone()[0])


def _valid_vector(dim: object, blob: object) -> np.ndarray | None:
    if not isinstance(dim, int) or not isinstance(blob, bytes) or dim <= 0:
        return None
    if len(blob) != 4 * dim:
        return None
    vector = np.frombuffer(blob, dtype=np.float32).copy()
    return vector if np.isfinite(vector).all() else None


def open_store(store: EmbeddingStore | Path | str | bool | None = True) -> EmbeddingStore | None:
    """An :class:`EmbeddingStore` from an argument: True = the default store
    (:func:`default_store_path`), False/None = no store, a path = that file."""
    if isinstance(store, EmbeddingStore) or store is None:
        return store
    if store is False:
        return None
    path = default_store_path() if store is True else Path(store)
    return None if path is None else EmbeddingStore(path)
