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

and holds the embedding as float32 bytes, its dimension and a checksum (:func:`row_checksum`).

Integrity: a row is used only when its checksum (SHA-256 over key, dimension and vector) matches,
its dimension is the one asked for (else the one most of the model's rows have) and its vector is
finite with a norm in [1e-6, 1e6] (zero, denormal or huge vectors make every cosine noise); any
other row is a miss, dropped and recomputed. The checksum catches accidental and hand corruption;
it is no signature. The file is an SQLite database whose ``meta`` table says ``format =
cryprint-store/2``: a missing one is created whole (built beside it, then linked into place), the
format before (one ``embeddings`` table, no checksums) is emptied and upgraded, anything else (a
device, FIFO, socket or folder, seen before SQLite opens it; an empty file; another program's
database) is refused (:class:`~cryprint.errors.OutputError`) and left unchanged. A cache costs no
answer: an existing store is opened without writing to it; a read that fails (locked, a full
disk) falls back on the file as last written, else is a miss; a write that fails (locked, disk
full, read-only) is a warning; another process's lock is waited on for seconds, not a minute.

The default store is ``$CRYPRINT_STORE`` if set, else ``$XDG_CACHE_HOME/cryprint/embeddings.sqlite``
(``~/.cache/...``). ``CRYPRINT_STORE=off`` turns it off.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import sqlite3
import stat
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

import numpy as np

from cryprint.errors import OutputError
from cryprint.io import new_file_mode

logger = logging.getLogger(__name__)

# What turns audio files into the model's input: read → mono → 16 kHz float32 → concatenated in
# order (cryprint.data.audio / cryprint.data.corpus). Change it when that pipeline changes.
PREPROCESSING = "mono-16k-float32-concat/1"
STORE_ENVIRONMENT = "CRYPRINT_STORE"
# What the meta table of a store of this schema says (a checksum per row since /2).
STORE_FORMAT = "cryprint-store/2"
# How long another process's lock is waited on: a cache is not worth waiting a minute for.
_BUSY_TIMEOUT_SECONDS = 3.0
_SQLITE_HEADER = b"SQLite format 3\x00"
_KEYS_PER_QUERY = 500  # below SQLite's oldest limit of host parameters (999)
_DIMENSION_SAMPLE = 1000  # rows of a model whose usual dimension decides, without one asked
# A vector whose norm is outside this range gives cosines that are noise (all zeros, 1e-42s
# whose products underflow, 3e38s whose products overflow); no model embeds so.
_NORM_RANGE = (1e-6, 1e6)
# Errors that pass (a lock, a full or read-only disk; not a corrupt file): the store is skipped.
_PASSING_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})
_PASSING_SQLITE = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY")
_PASSING_SQLITE += ("SQLITE_CANTOPEN", "SQLITE_PROTOCOL")
_KINDS = dict(d="a folder", c="a character device", b="a block device", p="a FIFO", s="a socket")
_HOW_TO_FIX = "give the store a file path (CRYPRINT_STORE=PATH) or turn it off (CRYPRINT_STORE=off)"
_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE embeddings (model_id TEXT NOT NULL, audio_key TEXT NOT NULL, preprocessing TEXT "
    "NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL, checksum TEXT NOT NULL, "
    "PRIMARY KEY (model_id, audio_key, preprocessing)) WITHOUT ROWID",
)
# A table's columns as :func:`_columns` reads them: name, type, not null, place in the key.
_META_COLUMNS = "key TEXT 1 1, value TEXT 1 0"
# The store before meta and checksums (cryprint 0.x), upgraded by emptying it.
_OLD_COLUMNS = "model_id TEXT 1 1, audio_key TEXT 1 2, preprocessing TEXT 1 3, dim INTEGER 1 0, "
_OLD_COLUMNS += "vector BLOB 1 0"
_COLUMNS = _OLD_COLUMNS + ", checksum TEXT 1 0"
_OLD = "an embedding store of the format before meta"


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


def row_checksum(model_id: str, key: str, preprocessing: str, dim: int, vector: bytes) -> str:
    """A store row's checksum: the first 16 hex digits of SHA-256 over its key (each field's
    length first, so no two keys give the same stream), its dimension and its vector's bytes."""
    digest = hashlib.sha256()
    for field in (model_id, key, preprocessing, str(dim)):
        encoded = field.encode()
        digest.update(f"{len(encoded)}:".encode() + encoded)
    digest.update(vector)
    return digest.hexdigest()[:16]


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

    Raises:
        OutputError: ``path`` cannot be a store (a special or empty file, another program's
            file). One locked or on a full disk logs a warning, and is tried at each use.

    Example:
        >>> store = EmbeddingStore(tmp_path / "store.sqlite")  # doctest: +SKIP
        >>> store.put("model-sha", {"audio-sha": vector})  # doctest: +SKIP
        >>> store.get("model-sha", ["audio-sha"], dim=192)  # doctest: +SKIP
        {'audio-sha': array([...], dtype=float32)}
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._uri = Path(os.path.abspath(self.path)).as_uri()
        self._prepared = self._prepare()

    def get(
        self, model_id: str, keys: Iterable[str], dim: int | None = None
    ) -> dict[str, np.ndarray]:
        """The stored embeddings of ``keys`` that pass the integrity check (module docstring).

        Args:
            model_id: the model's identity (the API's ``engine.embedding_id``).
            keys: audio keys (:func:`audio_key`, with the API's suffix).
            dim: the dimension expected; a row of another is dropped. None: rows of another
                dimension than most of this model's rows have are misses (kept).

        Returns:
            audio key → float32 [dim]; a key the store does not hold (or holds badly) is absent.
        """
        wanted = list(dict.fromkeys(keys))
        if not wanted or not self._ready():
            return {}
        rows, dims = self._read(model_id, wanted, sample=dim is None)
        found: dict[str, np.ndarray] = {}
        bad: list[tuple[str, object]] = []
        for key, row_dim, blob, checksum in rows:
            vector = _valid_vector(model_id, key, row_dim, blob, checksum)
            if vector is None or (dim is not None and len(vector) != dim):
                bad.append((key, blob))
            else:
                found[key] = vector
        if bad:
            logger.warning("%s: %d stored embedding(s) failed the check", self.path, len(bad))
            self._drop(model_id, bad)
        return found if dim is not None else _of_usual_dimension(found, dims)

    def put(self, model_id: str, vectors: dict[str, np.ndarray]) -> None:
        """Store ``vectors`` (audio key → float [dim]) in one transaction; a store that cannot be
        written logs a warning, and a degenerate vector is not kept. Raises ValueError for a
        non-finite vector (the caller's bug)."""
        rows = [_row(model_id, key, vector) for key, vector in vectors.items()]
        kept = [row for row in rows if row is not None]
        if len(kept) < len(rows):
            logger.warning("%s: degenerate embedding(s) not kept", self.path)
        if not kept or not self._ready():
            return
        try:
            with self._connection() as connection:
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany(
                    "INSERT OR REPLACE INTO embeddings (model_id, audio_key, preprocessing, dim, "
                    "vector, checksum) VALUES (?, ?, ?, ?, ?, ?)",
                    kept,
                )
                connection.execute("COMMIT")
        except sqlite3.Error as error:
            lost = f"embedding store not written ({error}); {len(kept)} embedding(s) not kept"
            logger.warning("%s: %s", self.path, lost)

    def count(self, model_id: str | None = None) -> int:
        """How many rows are stored (of one model, or in all), checked or not."""
        where, args = ("", ()) if model_id is None else (" WHERE model_id = ?", (model_id,))
        if not self._ready():
            return 0
        try:
            with self._connection() as connection:
                row = connection.execute("SELECT COUNT(*) FROM embeddings" + where, args).fetchone()
        except sqlite3.Error as error:
            raise OutputError(f"{self.path}: cannot read the embedding store ({error})") from error
        return int(row[0])

    @contextmanager
    def _connection(self, mode: str = "rw") -> Iterator[sqlite3.Connection]:
        """A connection that never creates the file, in autocommit mode: ``rw``, ``ro``, or
        ``snapshot``: the file as last written, without its WAL and any lock (what a full disk
        or another process's lock still lets us read; the checksums vouch for its rows)."""
        query = "immutable=1" if mode == "snapshot" else f"mode={mode}"
        connection = sqlite3.connect(
            f"{self._uri}?{query}", uri=True, timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None
        )
        try:
            if mode == "rw":  # with WAL, still crash-safe; a lost last commit is only recomputed
                connection.execute("PRAGMA synchronous = NORMAL")
            yield connection
        finally:
            connection.close()

    def _ready(self) -> bool:
        """Whether the store can be used now; a store that could not be opened is tried again."""
        if not self._prepared:
            try:
                self._prepared = self._prepare()
            except OutputError as error:
                logger.warning("%s", error)
        return self._prepared

    def _prepare(self) -> bool:
        """Create, recognise or upgrade the file. False (with a warning) when it cannot be used
        now (locked, full or read-only disk); OutputError when it cannot be a store."""
        try:
            if not _check_path(self.path):
                _create(self.path)
            found = self._read_format()
            if found == _OLD:
                found = self._upgrade()
        except sqlite3.Error as error:
            if _passing(error):
                logger.warning("%s: embedding store not usable now (%s)", self.path, error)
                return False
            raise OutputError(
                f"{self.path}: not readable as an embedding store ({error}); if it is cryprint's, "
                f"delete it (it is only a cache), else {_HOW_TO_FIX}"
            ) from error
        except OSError as error:
            if error.errno in _PASSING_ERRNOS:
                logger.warning("%s: embedding store not created (%s)", self.path, error.strerror)
                return False
            raise _refusal(
                f"{self.path}: cannot create the embedding store ({error.strerror})"
            ) from error
        if found != STORE_FORMAT:
            raise _not_a_store(self.path, found)
        return True

    def _read_format(self) -> str:
        """What the file is (:func:`_format_of`), read without writing to it: as last written
        when no WAL is beside it (SQLite would create one beside another program's database)."""
        wal = Path(os.path.realpath(self.path) + "-wal").exists()
        try:
            with self._connection("ro" if wal else "snapshot") as connection:
                return _format_of(connection)
        except sqlite3.OperationalError:  # locked, or its -shm cannot grow on a full disk
            if not wal:
                raise
        with self._connection("snapshot") as connection:
            return _format_of(connection)

    def _upgrade(self) -> str:
        """Empty a store of the format before and give it this one, unless another process
        did meanwhile. Returns the format the file then has."""
        with self._connection() as connection:
            connection.execute("BEGIN IMMEDIATE")
            found = _format_of(connection)
            if found == _OLD:
                connection.execute("DROP TABLE embeddings")
                for statement in _SCHEMA:
                    connection.execute(statement)
                connection.execute("INSERT INTO meta VALUES ('format', ?)", (STORE_FORMAT,))
                found = STORE_FORMAT
                logger.warning("%s: embedding store upgraded to %s, emptied", self.path, found)
            connection.execute("COMMIT")
        return found

    def _read(self, model_id: str, keys: list[str], sample: bool) -> tuple[list, Counter[int]]:
        """The rows of ``keys`` (key, dim, vector, checksum) and, if asked, the model's rows per
        dimension. A failed read is tried on the file as last written (a full disk, a lock)."""
        rows: list[tuple] = []
        dims: Counter[int] = Counter()
        pending = keys
        for mode in ("rw", "snapshot"):
            try:
                with self._connection(mode) as connection:
                    while pending:
                        rows += _select(connection, model_id, pending[:_KEYS_PER_QUERY])
                        pending = pending[_KEYS_PER_QUERY:]
                    if sample:
                        dims = _dimensions(connection, model_id)
                return rows, dims
            except sqlite3.Error as error:
                then = "reading it as last written" if mode == "rw" else "recomputing"
                logger.warning("%s: embedding store not readable (%s); %s", self.path, error, then)
        return rows, dims

    def _drop(self, model_id: str, rows: list[tuple[str, object]]) -> None:
        """Delete rows (key, vector as read): one rewritten since by another process is kept."""
        try:
            with self._connection() as connection:
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany(
                    "DELETE FROM embeddings WHERE model_id = ? AND audio_key = ? AND "
                    "preprocessing = ? AND vector IS ?",
                    [(model_id, key, PREPROCESSING, blob) for key, blob in rows],
                )
                connection.execute("COMMIT")
        except sqlite3.Error as error:
            logger.warning("%s: invalid rows not dropped (%s); they stay misses", self.path, error)


def _check_path(path: Path) -> bool:
    """Whether a file is at ``path`` (False: nothing yet). Refuses, before SQLite opens it (to
    write a journal beside /dev/null, or turn a user's empty file into a database), a non-store."""
    try:
        status = path.stat()  # follows a symbolic link: the file it names is what is opened
    except FileNotFoundError:
        if path.is_symlink():
            raise _refusal(f"{path} is a symbolic link to a missing file") from None
        return False
    except OSError as error:
        raise _refusal(f"{path}: cannot be the embedding store ({error.strerror})") from error
    if not stat.S_ISREG(status.st_mode):
        kind = _KINDS.get(stat.filemode(status.st_mode)[0], "a special file")
        raise _refusal(f"{path} is {kind}, not a regular file, so not an embedding store")
    if status.st_size == 0:
        raise _not_a_store(path, "an empty file")
    try:
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except OSError as error:
        raise _refusal(f"{path}: cannot read the embedding store ({error.strerror})") from error
    if header != _SQLITE_HEADER:
        raise _not_a_store(path, "a file that is not an SQLite database")
    return True


def _refusal(message: str) -> OutputError:
    return OutputError(f"{message}; {_HOW_TO_FIX}")


def _not_a_store(path: Path, found: str) -> OutputError:
    """The refusal of a file that is not a store of this format (``found``: what it is)."""
    if found.startswith("cryprint-store/"):
        what = f"an embedding store of format {found!r}, not {STORE_FORMAT!r} (another cryprint)"
    else:
        what = f"{found or 'an SQLite database'}, not cryprint's embedding store"
    return _refusal(f"{path} is {what}; it was left unchanged")


def _create(path: Path) -> None:
    """Build an empty store in a temporary sibling and link it to ``path`` unless a file appeared
    there meanwhile (a concurrent first run). A kill leaves a hidden ``.NAME.*.tmp`` at most."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        os.chmod(temporary, new_file_mode())  # mkstemp's 0600, as cp would give it
        with closing(sqlite3.connect(temporary, isolation_level=None)) as connection:
            connection.execute("BEGIN")
            for statement in _SCHEMA:
                connection.execute(statement)
            connection.execute("INSERT INTO meta VALUES ('format', ?)", (STORE_FORMAT,))
            connection.execute("COMMIT")
            # Last, so the file is whole before it switches journal; WAL persists in the file.
            connection.execute("PRAGMA journal_mode = WAL")
        try:
            os.link(temporary, path)  # never replaces: a concurrent creator's file is kept
        except FileExistsError:
            pass
        except OSError as error:  # no hard links here (FAT, some shares): a rename after a check
            if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            if not path.exists():
                os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _format_of(connection: sqlite3.Connection) -> str:
    """What an SQLite file is: :data:`STORE_FORMAT`, ``_OLD`` (the format before: one
    ``embeddings`` table of its five columns and nothing else), another ``cryprint-store/N``,
    or "" (not cryprint's)."""
    objects = sorted(connection.execute("SELECT type, name FROM sqlite_master").fetchall())
    if objects == [("table", "embeddings")]:
        return _OLD if _columns(connection, "embeddings") == _OLD_COLUMNS else ""
    if ("table", "meta") not in objects or _columns(connection, "meta") != _META_COLUMNS:
        return ""
    row = connection.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    found = row[0] if row and isinstance(row[0], str) else ""
    if found != STORE_FORMAT:
        return found if found.startswith("cryprint-store/") else ""
    ours = objects == [("table", "embeddings"), ("table", "meta")]
    return found if ours and _columns(connection, "embeddings") == _COLUMNS else ""


def _columns(connection: sqlite3.Connection, table: str) -> str:
    info = connection.execute(f"PRAGMA table_info({table})").fetchall()
    return ", ".join(f"{row[1]} {row[2].upper()} {row[3]} {row[5]}" for row in info)


def _passing(error: sqlite3.Error) -> bool:
    """Whether an SQLite error passes (a lock, a full disk), unlike a corrupt file's."""
    name = getattr(error, "sqlite_errorname", None)
    return name.startswith(_PASSING_SQLITE) if name else isinstance(error, sqlite3.OperationalError)


def _select(connection: sqlite3.Connection, model_id: str, keys: list[str]) -> list[tuple]:
    return connection.execute(
        "SELECT audio_key, dim, vector, checksum FROM embeddings WHERE model_id = ? AND "
        f"preprocessing = ? AND audio_key IN ({','.join('?' * len(keys))})",
        (model_id, PREPROCESSING, *keys),
    ).fetchall()


def _dimensions(connection: sqlite3.Connection, model_id: str) -> Counter[int]:
    """How many of (a sample of) the model's rows have each dimension."""
    counts = connection.execute(
        "SELECT dim, COUNT(*) FROM (SELECT dim FROM embeddings WHERE model_id = ? AND "
        "preprocessing = ? LIMIT ?) GROUP BY dim",
        (model_id, PREPROCESSING, _DIMENSION_SAMPLE),
    )
    return Counter(dict(counts.fetchall()))


def _of_usual_dimension(found: dict[str, np.ndarray], dims: Counter[int]) -> dict[str, np.ndarray]:
    """The vectors of the dimension most of the model's rows have (``dims``; without them, most
    of ``found``): the others cannot all be right. None of them when two dimensions tie."""
    ranked = (dims or Counter(len(vector) for vector in found.values())).most_common(2)
    if not ranked:
        return found
    usual = ranked[0][0] if len(ranked) == 1 or ranked[0][1] > ranked[1][1] else None
    return {key: vector for key, vector in found.items() if len(vector) == usual}


def _sound(vector: np.ndarray) -> bool:
    """Finite, with a norm a model's embedding can have (:data:`_NORM_RANGE`)."""
    if not np.isfinite(vector).all():
        return False
    norm = float(np.linalg.norm(vector.astype(np.float64)))
    return _NORM_RANGE[0] <= norm <= _NORM_RANGE[1]


def _valid_vector(
    model_id: str, key: object, dim: object, blob: object, checksum: object
) -> np.ndarray | None:
    """A row's vector if the row passes the integrity check, else None."""
    if not (isinstance(key, str) and isinstance(dim, int) and isinstance(blob, bytes)):
        return None
    if dim <= 0 or len(blob) != 4 * dim:
        return None
    if checksum != row_checksum(model_id, key, PREPROCESSING, dim, blob):
        return None
    vector = np.frombuffer(blob, dtype=np.float32).copy()
    return vector if _sound(vector) else None


def _row(model_id: str, key: str, vector: np.ndarray) -> tuple | None:
    """The row that stores ``vector``; None for a degenerate one (never stored)."""
    array = np.asarray(vector, dtype=np.float32).reshape(-1)
    if not np.isfinite(array).all():
        raise ValueError(f"refusing to store a non-finite embedding for {key}")
    if not _sound(array):
        return None
    blob = array.tobytes()
    checksum = row_checksum(model_id, key, PREPROCESSING, len(array), blob)
    return (model_id, key, PREPROCESSING, len(array), blob, checksum)


def open_store(store: EmbeddingStore | Path | str | bool | None = True) -> EmbeddingStore | None:
    """An :class:`EmbeddingStore` from an argument: True = the default store
    (:func:`default_store_path`), False/None = no store, a path = that file."""
    if isinstance(store, EmbeddingStore) or store is None:
        return store
    if store is False:
        return None
    path = default_store_path() if store is True else Path(store)
    return None if path is None else EmbeddingStore(path)
