"""A gallery of enrolled babies: which of them, if any, is crying? (open-set identification)

The CryCeleb use case: a ward with many newborns. Each baby is enrolled with one or more
recordings (birth cries, ``B``); a later cry (``D``) is ranked against every baby and the best is
accepted only when its score reaches the threshold — otherwise "none of these babies".

A gallery is one SQLite file (WAL journal), with three tables:

- ``meta(key, value)``: the format, the model identity (:func:`cryprint.models.folder.
  model_identity`), the embedding dimension, the model's source, how recordings were embedded
  (``scoring_key``: :attr:`cryprint.CryPrint.scoring_key`, and in words ``embedding``), the
  cryprint version and the creation time. A gallery holds one model's embeddings, made one way:
  opening it for another model, or to embed cries otherwise (int8, other TTA views or trimming),
  fails; fp32 and bf16 arithmetic are interchangeable. Galleries made before ``scoring_key``
  existed are checked by model only.
- ``babies(baby_id, created)``.
- ``enrolments(id, baby_id, source, audio_key, vector, created)``: one row per enrolled
  recording, its embedding as float32 bytes. An audio content (``audio_key``) is enrolled at most
  once: again for the same baby it is skipped, for another baby it is refused.

Every change (an enrolment of N recordings, a removal) is one transaction: a process killed in
the middle (SIGKILL, power loss) leaves the gallery as it was. A new gallery is built as a
temporary sibling file and linked into place, so a file at the gallery's path is always a whole
gallery, and anything else (not SQLite, or SQLite without cryprint's tables) is refused unchanged.

Example:
    >>> with Gallery.create_or_open("ward.db", model_id, 192) as gallery:  # doctest: +SKIP
    ...     gallery.enrol("0133", birth_embeddings, ["0133/B"])
    ...     gallery.identify(cry_embedding, threshold=0.45).best
    Candidate(baby_id='0133', score=0.81, n_enrolments=1)
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import math
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from cryprint import __version__
from cryprint.data.inputs import recording_files
from cryprint.errors import ConfigError, DataError, ModelError, OutputError
from cryprint.options import EmbeddingOptions, embedder_for
from cryprint.scoring import cosine_matrix, unit_rows
from cryprint.store import audio_key

if TYPE_CHECKING:
    from cryprint.api import CryPrint
    from cryprint.models.folder import ModelSpec

GALLERY_FORMAT = "cryprint-gallery/1"
MAX_BABY_ID_LENGTH = 64
# A gallery change is one short transaction (the embedding is done before it): a second writer
# waits this long for the first to commit rather than failing at once.
_BUSY_TIMEOUT_SECONDS = 10.0
_SQLITE_HEADER = b"SQLite format 3\x00"
_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE babies (baby_id TEXT PRIMARY KEY, created TEXT NOT NULL)",
    """CREATE TABLE enrolments (
        id INTEGER PRIMARY KEY,
        baby_id TEXT NOT NULL REFERENCES babies(baby_id),
        source TEXT NOT NULL,
        audio_key TEXT NOT NULL UNIQUE,
        vector BLOB NOT NULL,
        created TEXT NOT NULL
    )""",
    "CREATE INDEX enrolments_by_baby ON enrolments(baby_id)",
)


class BabyRecord(NamedTuple):
    """One enrolled baby: its id, how many recordings are enrolled, when it was first enrolled
    (ISO 8601, UTC)."""

    baby_id: str
    n_enrolments: int
    created: str


@dataclass(frozen=True)
class Candidate:
    """A baby ranked for a cry: ``score`` is the cosine of the cry with the baby's enrolments'
    mean direction, in [-1, 1]."""

    baby_id: str
    score: float
    n_enrolments: int


@dataclass(frozen=True)
class Identification:
    """The outcome of identifying one cry.

    candidates: the best babies, highest score first (ties by baby id). threshold: the best
    candidate is accepted when ``score >= threshold``. threshold_source: where it came from.
    none_of_these: the best score is below the threshold (open set: the crying baby is taken
    to be none of the enrolled ones). n_babies: babies in the gallery.
    """

    candidates: tuple[Candidate, ...]
    threshold: float
    threshold_source: str
    none_of_these: bool
    n_babies: int

    @property
    def best(self) -> Candidate:
        return self.candidates[0]

    def to_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["best"] = None if self.none_of_these else self.best.baby_id
        return result


@dataclass(frozen=True)
class Enrolment:
    """What one enrolment changed: ``added`` recordings of ``baby_id`` (``skipped``: sources
    whose audio was already enrolled for this baby); ``n_enrolments``: the baby's total now."""

    baby_id: str
    added: int
    skipped: tuple[str, ...]
    n_enrolments: int


def check_baby_id(baby_id: str) -> str:
    """``baby_id`` if it is a valid baby id: 1 to 64 printable characters, no surrounding
    spaces (a ward label such as ``cot-12`` or ``0133``).

    Raises:
        ConfigError: naming what is wrong.
    """
    if not isinstance(baby_id, str) or not baby_id:
        raise ConfigError("a baby id must be a non-empty string")
    if len(baby_id) > MAX_BABY_ID_LENGTH:
        raise ConfigError(
            f"baby id {baby_id[:20]!r}... is {len(baby_id)} characters; at most "
            f"{MAX_BABY_ID_LENGTH} allowed"
        )
    if not baby_id.isprintable() or baby_id != baby_id.strip():
        raise ConfigError(
            f"baby id {baby_id!r} holds control characters or surrounding spaces; use "
            "printable characters only"
        )
    return baby_id


def baby_centroids(
    baby_ids: Sequence[str], embeddings: ArrayLike
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Each baby's enrolments reduced to one direction.

    Why the mean of the unit enrolment vectors, not the best single enrolment: the mean averages
    out what varies from cry to cry (crying state, noise) and gives every baby exactly one
    score however many recordings it has. The maximum over enrolments would give babies with
    more enrolments more chances to score high by luck: more false alarms in the open set.

    Args:
        baby_ids: [n] the baby of each enrolment.
        embeddings: float [n, dim], any norm (each is scaled to unit length first).

    Returns:
        (babies sorted by id, float64 [n_babies, dim] unit centroids, int [n_babies] counts).

    Raises:
        DataError: non-finite or zero embeddings, or a baby whose enrolments cancel out.
    """
    vectors = unit_rows(embeddings, "enrolment")
    if len(baby_ids) != len(vectors):
        raise DataError(f"{len(baby_ids)} baby ids for {len(vectors)} enrolment embeddings")
    babies, index = np.unique(np.asarray(baby_ids, dtype=object).astype(str), return_inverse=True)
    sums = np.zeros((len(babies), vectors.shape[1]))
    np.add.at(sums, index, vectors)
    counts = np.bincount(index, minlength=len(babies))
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    cancelled = [str(babies[i]) for i in np.flatnonzero(norms[:, 0] < 1e-12)]
    if cancelled:
        raise DataError(f"the enrolments of {', '.join(cancelled)} cancel out (zero mean)")
    return [str(baby) for baby in babies], sums / norms, counts


def rank_candidates(
    scores: ArrayLike,
    baby_ids: Sequence[str],
    counts: ArrayLike,
    threshold: float,
    threshold_source: str = "given",
    top: int = 5,
) -> Identification:
    """Rank babies by score and decide: the best one, or none of them.

    Args:
        scores: float [n_babies], the cry's score against each baby.
        baby_ids: [n_babies]. counts: int [n_babies], each baby's enrolments.
        threshold: the best baby is accepted when its score is >= this.
        threshold_source: where the threshold came from, printed with it.
        top: how many candidates to keep (at least 1).

    Raises:
        ConfigError: ``top`` < 1 or a non-finite threshold. DataError: no babies.
    """
    scores = np.asarray(scores, dtype=np.float64)
    counts = np.asarray(counts)
    if top < 1:
        raise ConfigError(f"top must be at least 1, got {top}")
    if not math.isfinite(threshold):
        raise ConfigError(f"threshold must be a finite number, got {threshold}")
    if len(scores) == 0:
        raise DataError("no babies to identify among: enrol some first")
    if not (len(scores) == len(baby_ids) == len(counts)):
        raise DataError(f"{len(scores)} scores, {len(baby_ids)} babies, {len(counts)} counts")
    # Highest score first; equal scores in baby-id order, so the ranking is reproducible.
    order = np.lexsort((np.asarray(baby_ids, dtype=str), -scores))[:top]
    candidates = tuple(Candidate(str(baby_ids[i]), float(scores[i]), int(counts[i])) for i in order)
    return Identification(
        candidates,
        float(threshold),
        threshold_source,
        none_of_these=candidates[0].score < threshold,
        n_babies=len(scores),
    )


def vector_key(vector: ArrayLike) -> str:
    """An ``audio_key`` for an enrolment given only as an embedding (no audio): SHA-256 of its
    float32 bytes, so enrolling the same embedding twice is recognised."""
    data = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
    return "vector:" + hashlib.sha256(data).hexdigest()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.gmtime())


def _file_mode() -> int:
    # The only portable way to read the umask is to set it; put it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _check_gallery_file(path: Path) -> None:
    """Refuse, without opening it with SQLite, what cannot be a gallery: a folder, a missing
    path, a file that is not an SQLite database."""
    try:
        if path.is_dir():
            raise DataError(f"{path} is a folder; give the gallery's file (e.g. ward.db)")
        if not path.exists():
            raise DataError(f"{path}: no such gallery; `cryprint enroll` creates one")
        if not path.is_file():  # a FIFO would block the read below forever; a device is no db
            raise DataError(f"{path} is not a regular file, so not a gallery; it was left as it is")
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except OSError as error:
        raise DataError(f"{path}: cannot read the gallery ({error.strerror})") from error
    if header != _SQLITE_HEADER:
        raise DataError(
            f"{path} is not a cryprint gallery (not an SQLite database); it was left unchanged"
        )


def _connect(path: Path) -> sqlite3.Connection:
    """A connection to an existing file (``mode=rw``: never creates one), in autocommit mode:
    transactions are begun explicitly (:meth:`Gallery._transaction`)."""
    connection = sqlite3.connect(
        path.absolute().as_uri() + "?mode=rw",
        uri=True,
        timeout=_BUSY_TIMEOUT_SECONDS,
        isolation_level=None,
    )
    connection.execute("PRAGMA foreign_keys = ON")
    # FULL: a committed enrolment survives a power cut, not only a killed process.
    connection.execute("PRAGMA synchronous = FULL")
    return connection


def _read_meta(connection: sqlite3.Connection, path: Path) -> dict[str, str]:
    """The meta table, validated: a known format, a model id and a positive dimension."""
    try:
        meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.Error as error:
        raise DataError(
            f"{path} is not a cryprint gallery ({error}); it was left unchanged"
        ) from error
    if meta.get("format") != GALLERY_FORMAT:
        raise DataError(
            f"{path}: gallery format {meta.get('format')!r} is not {GALLERY_FORMAT!r} (made by "
            "another cryprint version?)"
        )
    if not meta.get("model_id") or not str(meta.get("dim", "")).isdigit() or int(meta["dim"]) < 1:
        raise DataError(f"{path}: the gallery's model id or embedding dimension is missing")
    return meta


def _link_unless_exists(temporary: Path, path: Path) -> None:
    """Give ``temporary`` the name ``path`` unless something is there already: a hard link
    never replaces, so a concurrent creator's gallery wins. Where a file system has no hard
    links (FAT, some network shares), a rename after a check, racy only in that window."""
    try:
        os.link(temporary, path)
    except FileExistsError:
        return
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        if not path.exists():
            os.replace(temporary, path)


def _create(path: Path, meta: dict[str, str]) -> None:
    """Build an empty gallery in a temporary sibling and link it to ``path`` unless a gallery
    appeared there meanwhile (a concurrent first enrolment): then that one is kept. A process
    killed here leaves at most that hidden ``.NAME.*.tmp`` file, never a partial gallery."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(handle)
    except OSError as error:
        raise OutputError(f"{path}: cannot create the gallery ({error.strerror})") from error
    temporary = Path(name)
    try:
        os.chmod(temporary, _file_mode())  # mkstemp's 0600 would hide the gallery from others
        connection = sqlite3.connect(temporary, isolation_level=None)
        try:
            connection.execute("BEGIN")
            for statement in _SCHEMA:
                connection.execute(statement)
            connection.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            connection.execute("COMMIT")
            # Last, so the file is whole before it switches journal; WAL persists in the file.
            connection.execute("PRAGMA journal_mode = WAL")
        finally:
            connection.close()
        _link_unless_exists(temporary, path)
    except (OSError, sqlite3.Error) as error:
        raise OutputError(f"{path}: cannot create the gallery ({error})") from error
    finally:
        temporary.unlink(missing_ok=True)


class Gallery:
    """An open gallery file. Use :meth:`open` or :meth:`create_or_open`, as a context manager.

    Attributes:
        path: the SQLite file. model_id: the identity of the model whose embeddings it holds.
        dim: their dimension. meta: everything in the meta table.
    """

    def __init__(self, path: Path, connection: sqlite3.Connection, meta: dict[str, str]) -> None:
        self.path = path
        self._connection = connection
        self.meta = meta
        self.model_id = meta["model_id"]
        self.dim = int(meta["dim"])

    @classmethod
    def open(
        cls,
        path: Path | str,
        model_id: str | None = None,
        dim: int | None = None,
        scoring_key: str | None = None,
        embedding: str = "",
    ) -> Gallery:
        """Open an existing gallery; with ``model_id`` (and ``dim``, ``scoring_key``), check
        it holds that model's embeddings, made that way (``embedding``: the same in words).

        Raises:
            DataError: no such file, or not a cryprint gallery (the file is left unchanged).
            ModelError: the gallery was made with another model.
        """
        path = Path(path)
        _check_gallery_file(path)
        try:
            connection = _connect(path)
        except sqlite3.Error as error:
            raise DataError(f"{path}: cannot open the gallery ({error})") from error
        try:
            gallery = cls(path, connection, _read_meta(connection, path))
            if model_id is not None:
                gallery.check_model(model_id, dim, scoring_key, embedding)
        except BaseException:
            connection.close()
            raise
        return gallery

    @classmethod
    def create_or_open(
        cls,
        path: Path | str,
        model_id: str,
        dim: int,
        model_source: str = "",
        scoring_key: str | None = None,
        embedding: str = "",
    ) -> Gallery:
        """Open the gallery at ``path`` for model ``model_id`` (embeddings float32 [dim], made
        as ``scoring_key`` says), creating an empty one when there is no file there.

        Raises:
            DataError: a file there that is not a gallery. ModelError: another model's gallery.
            OutputError: the gallery cannot be created.
        """
        path = Path(path)
        if not path.exists() and not path.is_symlink():
            meta = {
                "format": GALLERY_FORMAT,
                "model_id": model_id,
                "dim": str(int(dim)),
                "model_source": model_source,
                **({"scoring_key": scoring_key, "embedding": embedding} if scoring_key else {}),
                "cryprint_version": __version__,
                "created": _now(),
            }
            _create(path, meta)
        return cls.open(path, model_id, dim, scoring_key, embedding)

    def check_model(
        self,
        model_id: str,
        dim: int | None = None,
        scoring_key: str | None = None,
        embedding: str = "",
    ) -> None:
        """Raise ModelError unless this gallery holds embeddings of ``model_id`` ([dim]), and
        ConfigError unless they were made as ``scoring_key`` says (when both it and the gallery
        record one)."""
        if model_id != self.model_id or (dim is not None and int(dim) != self.dim):
            made_with = self.meta.get("model_source") or "another model"
            raise ModelError(
                f"{self.path} holds embeddings of {made_with} (model {self.model_id[:12]}, "
                f"{self.dim}-d), not of this model ({model_id[:12]}): embeddings of two models "
                "cannot be compared — use that model, or enrol the babies again into a new "
                "gallery"
            )
        stored = self.meta.get("scoring_key")
        if scoring_key is not None and stored is not None and stored != scoring_key:
            raise ConfigError(
                f"{self.path} was enrolled with embeddings made as "
                f"{self.meta.get('embedding') or stored}; these cries would be embedded as "
                f"{embedding or scoring_key}, and the two do not compare exactly — use the "
                "enrolment's --backend, --precision, --tta and trimming, or enrol the babies "
                "again into a new gallery"
            )

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed whole when the block ends, rolled back on any
        error. IMMEDIATE takes the write lock up front, so two writers queue instead of
        deadlocking when both try to upgrade a read lock."""
        connection = self._connection
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise OutputError(
                f"{self.path}: another process is writing the gallery ({error}); try again"
            ) from error
        try:
            yield connection
            connection.execute("COMMIT")
        except BaseException as error:
            connection.rollback()
            if isinstance(error, sqlite3.Error):
                raise OutputError(f"{self.path}: cannot write the gallery ({error})") from error
            raise

    def enrol(
        self,
        baby_id: str,
        vectors: ArrayLike,
        sources: Sequence[str],
        audio_keys: Sequence[str] | None = None,
    ) -> Enrolment:
        """Enrol recordings of one baby, all or none (one transaction).

        Args:
            baby_id: see :func:`check_baby_id`; the baby is added when new.
            vectors: float [n, dim] embeddings of the recordings.
            sources: [n] what each recording is (its path), kept for ``gallery list``.
            audio_keys: [n] each recording's audio identity (:func:`cryprint.store.audio_key`);
                default: the embedding's own bytes (:func:`vector_key`).

        Raises:
            ConfigError: invalid baby id. DataError: wrong shapes, non-finite or zero vectors,
                or a recording already enrolled for another baby (nothing is written then).
        """
        baby_id = check_baby_id(baby_id)
        matrix = self._check_vectors(vectors, "enrolment")
        keys = [vector_key(v) for v in matrix] if audio_keys is None else list(audio_keys)
        if not (len(matrix) == len(sources) == len(keys)):
            raise DataError(f"{len(matrix)} embeddings, {len(sources)} sources, {len(keys)} keys")
        now, skipped, added = _now(), [], 0
        with self._transaction() as connection:
            connection.execute("INSERT OR IGNORE INTO babies VALUES (?, ?)", (baby_id, now))
            for vector, source, key in zip(matrix, sources, keys, strict=True):
                owner = connection.execute(
                    "SELECT baby_id FROM enrolments WHERE audio_key = ?", (key,)
                ).fetchone()
                if owner is not None and owner[0] != baby_id:
                    raise DataError(
                        f"{source} is already enrolled for baby {owner[0]!r}: one recording "
                        f"cannot be two babies; nothing was enrolled for {baby_id!r}"
                    )
                if owner is not None:
                    skipped.append(str(source))
                    continue
                connection.execute(
                    "INSERT INTO enrolments (baby_id, source, audio_key, vector, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (baby_id, str(source), key, vector.tobytes(), now),
                )
                added += 1
            (total,) = connection.execute(
                "SELECT COUNT(*) FROM enrolments WHERE baby_id = ?", (baby_id,)
            ).fetchone()
        return Enrolment(baby_id, added, tuple(skipped), int(total))

    def remove(self, baby_id: str) -> int:
        """Remove a baby and all its enrolments (one transaction); return how many enrolments
        were removed.

        Raises:
            DataError: no such baby in the gallery.
        """
        with self._transaction() as connection:
            removed = connection.execute(
                "DELETE FROM enrolments WHERE baby_id = ?", (baby_id,)
            ).rowcount
            if connection.execute("DELETE FROM babies WHERE baby_id = ?", (baby_id,)).rowcount:
                return removed
        raise DataError(f"no baby {baby_id!r} in {self.path} (see `cryprint gallery list`)")

    def babies(self) -> list[BabyRecord]:
        """Every enrolled baby with its number of enrolments, sorted by baby id."""
        rows = self._connection.execute(
            "SELECT b.baby_id, COUNT(e.id), b.created FROM babies b "
            "LEFT JOIN enrolments e ON e.baby_id = b.baby_id "
            "GROUP BY b.baby_id ORDER BY b.baby_id"
        ).fetchall()
        return [BabyRecord(str(baby), int(count), str(created)) for baby, count, created in rows]

    def enrolments(self) -> tuple[list[str], np.ndarray]:
        """Every enrolment's baby id and embedding: float32 [n, dim], validated on read.

        Raises:
            DataError: a stored vector of the wrong size, non-finite or zero (the row named).
        """
        rows = self._connection.execute(
            "SELECT id, baby_id, vector FROM enrolments ORDER BY baby_id, id"
        ).fetchall()
        matrix = np.zeros((len(rows), self.dim), dtype=np.float32)
        for index, (row_id, baby_id, blob) in enumerate(rows):
            matrix[index] = self._read_vector(row_id, baby_id, blob)
        return [str(row[1]) for row in rows], matrix

    def _read_vector(self, row_id: int, baby_id: str, blob: object) -> np.ndarray:
        damaged = (
            f"{self.path}: enrolment {row_id} of baby {baby_id!r} is damaged"
            " ({}); remove the baby and enrol it again"
        )
        if not isinstance(blob, bytes) or len(blob) != 4 * self.dim:
            size = len(blob) if isinstance(blob, bytes) else type(blob).__name__
            raise DataError(damaged.format(f"{size} bytes, expected {4 * self.dim}"))
        vector = np.frombuffer(blob, dtype=np.float32)
        if not np.isfinite(vector).all() or not vector.any():
            raise DataError(damaged.format("non-finite or all-zero values"))
        return vector

    def _check_vectors(self, vectors: ArrayLike, what: str) -> np.ndarray:
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != self.dim or len(matrix) == 0:
            raise DataError(
                f"{what} embeddings must be float [n >= 1, {self.dim}], got shape {matrix.shape}"
            )
        if not np.isfinite(matrix).all() or not np.abs(matrix).sum(axis=1).all():
            raise DataError(f"{what} embeddings hold NaN, infinite or all-zero rows")
        return matrix

    def identify(
        self,
        vector: ArrayLike,
        threshold: float,
        top: int = 5,
        threshold_source: str = "given",
    ) -> Identification:
        """Rank the enrolled babies for one cry's embedding (float [dim]).

        Each baby scores the cosine of the cry with its centroid (:func:`baby_centroids`); the
        best is accepted when its score is >= ``threshold``, else ``none_of_these``. The
        threshold is a one-to-one verification operating point: among N babies the chance that
        some wrong baby passes it grows with N (``benchmarks/bench_identification.py``
        measures this false-alarm rate).

        Raises:
            DataError: an empty gallery, a vector of the wrong shape, a damaged enrolment.
            ConfigError: ``top`` < 1 or a non-finite threshold.
        """
        query = self._check_vectors(np.asarray(vector, dtype=np.float32)[None], "the cry's")
        babies, centroids, counts = self.centroids()
        scores = cosine_matrix(query, centroids)[0]
        return rank_candidates(scores, babies, counts, threshold, threshold_source, top)

    def centroids(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(baby ids, float64 [n_babies, dim] unit centroids, int [n_babies] enrolment counts).

        Raises:
            DataError: no baby enrolled, or a damaged enrolment.
        """
        baby_ids, vectors = self.enrolments()
        if not baby_ids:
            raise DataError(f"{self.path}: no baby is enrolled; `cryprint enroll` first")
        return baby_centroids(baby_ids, vectors)


def _open_for(path: Path | str, embedder: CryPrint) -> Gallery:
    """The gallery at ``path``, checked to hold embeddings made as ``embedder`` makes them."""
    return Gallery.open(
        path,
        embedder.model_id,
        embedder.embedding_dim,
        embedder.scoring_key,
        embedder.embedding_description,
    )


def _check_new_gallery(path: Path) -> None:
    """Refuse, before any embedding, a gallery path where no file can be created."""
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: cannot create a gallery there ({folder} is not writable)")


def enroll(
    model: ModelSpec | CryPrint,
    gallery_path: Path | str,
    baby_id: str,
    recordings: Sequence[Path | str],
    *,
    embedding: EmbeddingOptions | None = None,
    progress: bool = False,
) -> Enrolment:
    """Embed ``recordings`` and enrol them for ``baby_id`` in the gallery (created when missing).

    Everything is checked before any embedding: the baby id, every recording's path, the
    gallery (a cryprint gallery of this model, or a path where one can be created).

    Args:
        model: a model spec or a loaded :class:`cryprint.CryPrint`.
        gallery_path: the gallery's SQLite file.
        baby_id: see :func:`check_baby_id`.
        recordings: audio files or folders of segments, one enrolment each.
        embedding: how recordings are embedded (:class:`cryprint.options.EmbeddingOptions`;
            None: the defaults); identify must embed cries the same way.
        progress: show embedding progress.

    Raises:
        ConfigError: bad baby id or no recordings, or a gallery embedded otherwise (other
            TTA views, trimming, an int8 export). AudioError: a missing or bad recording.
        DataError: not a gallery. ModelError: another model's gallery. OutputError: cannot
            write.
    """
    baby_id = check_baby_id(baby_id)
    gallery_path = Path(gallery_path)
    if not recordings:
        raise ConfigError("give at least one recording (audio file or folder) to enrol")
    keys = [audio_key(files=recording_files(path)) for path in recordings]
    existing = gallery_path.exists() or gallery_path.is_symlink()
    if existing:
        Gallery.open(gallery_path).close()  # not a gallery: refused before loading the model
    else:
        _check_new_gallery(gallery_path)
    embedder = embedder_for(model, embedding)
    if existing:
        _open_for(gallery_path, embedder).close()
    vectors = embedder.embed_many(recordings, progress=progress)
    sources = [os.path.abspath(path) for path in recordings]
    with Gallery.create_or_open(
        gallery_path,
        embedder.model_id,
        embedder.embedding_dim,
        embedder.source,
        embedder.scoring_key,
        embedder.embedding_description,
    ) as gallery:
        return gallery.enrol(baby_id, vectors, sources, keys)


def identify(
    model: ModelSpec | CryPrint,
    gallery_path: Path | str,
    cry: Path | str,
    threshold: float | None = None,
    top: int = 5,
    *,
    embedding: EmbeddingOptions | None = None,
) -> Identification:
    """Which enrolled baby is crying in ``cry`` (an audio file or folder of segments), if any.

    Args:
        threshold: accept the best baby when its score is >= this; None for the model folder's
            stored dev EER threshold (:func:`cryprint.evaluation.verify.stored_threshold`).
        top: how many candidates to return.
        embedding: how the cry is embedded (:class:`cryprint.options.EmbeddingOptions`;
            None: the defaults): as the gallery's enrolments were.

    Raises:
        ConfigError: bad ``top`` or threshold, none given and none stored, or a gallery (or
            a stored threshold) embedded otherwise. DataError: not a gallery, an empty one, or
            a damaged enrolment. ModelError: another model's gallery. AudioError: a missing or
            bad recording.
    """
    from cryprint.evaluation.verify import stored_threshold

    if top < 1:
        raise ConfigError(f"--top must be at least 1, got {top}")
    if threshold is not None and not math.isfinite(threshold):
        raise ConfigError(f"threshold must be a finite number, got {threshold}")
    with Gallery.open(gallery_path) as gallery:
        if not gallery.babies():
            raise DataError(f"{gallery_path}: no baby is enrolled; `cryprint enroll` first")
    recording_files(cry)
    embedder = embedder_for(model, embedding)
    source = "given"
    if threshold is None:
        basis = embedder.options.score_basis
        threshold, source = stored_threshold(embedder.loaded, embedder.model_id, basis=basis)
    with _open_for(gallery_path, embedder) as gallery:
        gallery.centroids()  # a damaged enrolment is reported before the cry is embedded
        return gallery.identify(embedder.embed(cry), threshold, top, source)
