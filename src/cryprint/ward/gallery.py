"""A gallery of enrolled babies: which of them, if any, is crying? (open-set identification)

The CryCeleb use case: a ward with many newborns. Each baby is enrolled with one or more
recordings (birth cries, ``B``); a later cry (``D``) is ranked against every baby and the best is
accepted only when its score reaches the threshold — otherwise "none of these babies".

A gallery is one SQLite file (WAL journal), with four tables:

- ``meta(key, value)``: the format, the model identity (:func:`cryprint.models.folder.
  model_identity`), the embedding dimension, the model's source, how recordings were embedded
  (``scoring_key``: :attr:`cryprint.CryPrint.scoring_key`, and in words ``embedding``), the
  cryprint version and the creation time. A gallery holds one model's embeddings, made one way:
  opening it for another model, or to embed cries otherwise (int8, other TTA views or trimming),
  fails; fp32 and bf16 arithmetic are interchangeable. Galleries made before ``scoring_key``
  existed are checked by model only.
- ``babies(baby_id, created)``: baby ids as :func:`check_baby_id` gives them (Unicode NFC).
- ``enrolments(id, baby_id, source, audio_key, vector, created)``: one row per enrolled
  recording, its embedding as float32 bytes. An audio content (``audio_key``) is enrolled at most
  once: again for the same baby it is skipped, for another baby it is refused.
- ``audit(id, time, action, baby_id, recordings, client)``: every enrolment and removal, who
  asked and when (:meth:`Gallery.audit_log`; :mod:`cryprint.ward.gallery_file`).

What the file holds is checked as it is read, since anyone can edit it: a file holding objects
cryprint did not create (a trigger, a view) is refused before anything in it runs; a baby id
cryprint would not write (control characters), an enrolment of a baby missing from the babies
table, or a vector of the wrong size (checked before it is read) is refused naming its row —
so no id handed out can carry escape sequences to a terminal. An id stored in another Unicode
spelling (NFD, by a version before ids were normalised) is the same baby as its NFC spelling.

Every change (an enrolment of N recordings, a removal) is one transaction: a process killed in
the middle (SIGKILL, power loss) leaves the gallery as it was. A new gallery is built as a
temporary sibling file and linked into place, so a file at the gallery's path is always a whole
gallery, and anything else (not SQLite, or SQLite without cryprint's tables) is refused unchanged.

Example:
    >>> with Gallery.create_or_open("ward.db", model_id, 192) as gallery:  # doctest: +SKIP
    ...     gallery.enrol("0133", birth_embeddings, ["0133/B"])
    ...     gallery.identify(cry_embedding, threshold=0.45).best
    Candidate(baby_id='0133', score=0.81, n_enrolments=1, probability=None)
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from cryprint import __version__
from cryprint.errors import FIELD, ConfigError, DataError, ModelError, OutputError
from cryprint.scoring import cosine_matrix
from cryprint.scoring.open_set import decide_at_threshold
from cryprint.scoring.ranking import Identification, baby_centroids, rank_candidates
from cryprint.ward.gallery_file import (
    GALLERY_FORMAT,
    MAX_BABY_ID_LENGTH,
    AuditRecord,
    baby_rows,
    check_baby_id,
    check_client,
    check_gallery_file,
    check_objects,
    connect,
    create,
    enrolment_rows,
    escaped,
    insert_recordings,
    read_audit,
    read_meta,
    record_change,
    stored_spellings,
    utc_now,
)

__all__ = [
    "MAX_BABY_ID_LENGTH",
    "AuditRecord",
    "BabyRecord",
    "Enrolment",
    "EnrolmentRecord",
    "Gallery",
    "check_baby_id",
    "open_for",
    "vector_key",
]

if TYPE_CHECKING:
    from cryprint.inference.api import CryPrint

# How a gallery's meta table says whether its scores are AS-norm scores.
_AS_NORM_WORDS = {True: "with AS-norm", False: "as raw cosines"}


class EnrolmentRecord(NamedTuple):
    """One enrolled recording: whose, what it was (its path) and when it was enrolled."""

    baby_id: str
    source: str
    created: str


class BabyRecord(NamedTuple):
    """One enrolled baby: its id, how many recordings are enrolled, when it was first enrolled
    (ISO 8601, UTC)."""

    baby_id: str
    n_enrolments: int
    created: str


@dataclass(frozen=True)
class Enrolment:
    """What one enrolment changed: ``added`` recordings of ``baby_id`` (``skipped``: sources
    whose audio was already enrolled for this baby); ``n_enrolments``: the baby's total now."""

    baby_id: str
    added: int
    skipped: tuple[str, ...]
    n_enrolments: int


def vector_key(vector: ArrayLike) -> str:
    """An ``audio_key`` for an enrolment given only as an embedding (no audio): SHA-256 of its
    float32 bytes, so enrolling the same embedding twice is recognised."""
    data = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
    return "vector:" + hashlib.sha256(data).hexdigest()


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
        as_norm: bool | None = None,
    ) -> Gallery:
        """Open an existing gallery; with ``model_id`` (and ``dim``, ``scoring_key``,
        ``as_norm``), check it holds that model's embeddings, made that way (``embedding``: the
        same in words), scored that way (:meth:`check_model`).

        Raises:
            DataError: no such file, a link to a missing file, or not a cryprint gallery: not
                SQLite, or holding anything cryprint did not create (a trigger, a view; refused
                before anything in it runs). The file is left unchanged.
            ModelError: the gallery was made with another model.
        """
        path = Path(path)
        check_gallery_file(path)
        try:
            connection = connect(path)
        except sqlite3.Error as error:
            raise DataError(f"{path}: cannot open the gallery ({error})") from error
        try:
            check_objects(connection, path)  # before any statement that could run a trigger
            gallery = cls(path, connection, read_meta(connection, path))
            if model_id is not None:
                gallery.check_model(model_id, dim, scoring_key, embedding, as_norm)
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
        as_norm: bool | None = None,
    ) -> Gallery:
        """Open the gallery at ``path`` for model ``model_id`` (embeddings float32 [dim], made
        as ``scoring_key`` says, scored with AS-norm or not as ``as_norm`` says), creating an
        empty one when there is no file there.

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
                **({} if as_norm is None else {"as_norm": _AS_NORM_WORDS[as_norm]}),
                "cryprint_version": __version__,
                "created": utc_now(),
            }
            create(path, meta)
        return cls.open(path, model_id, dim, scoring_key, embedding, as_norm)

    @property
    def as_norm(self) -> bool | None:
        """Whether its scores are AS-norm scores (None: a gallery made before this was kept)."""
        stored = self.meta.get("as_norm")
        return None if stored is None else stored == _AS_NORM_WORDS[True]

    def check_model(
        self,
        model_id: str,
        dim: int | None = None,
        scoring_key: str | None = None,
        embedding: str = "",
        as_norm: bool | None = None,
    ) -> None:
        """Raise ModelError unless this gallery holds embeddings of ``model_id`` ([dim]), and
        ConfigError unless they were made as ``scoring_key`` says and scored as ``as_norm``
        says (when both it and the gallery record them). The gallery's words are shown
        :func:`~cryprint.ward.gallery_file.escaped`: its meta table could be edited by hand."""
        if model_id != self.model_id or (dim is not None and int(dim) != self.dim):
            made_with = escaped(self.meta.get("model_source") or "another model")
            raise ModelError(
                f"{self.path} holds embeddings of {made_with} (model "
                f"{escaped(self.model_id[:12])}, "
                f"{self.dim}-d), not of this model ({model_id[:12]}): embeddings of two models "
                "cannot be compared — use that model, or enrol the babies again into a new "
                "gallery"
            )
        stored = self.meta.get("scoring_key")
        if scoring_key is not None and stored is not None and stored != scoring_key:
            raise ConfigError(
                f"{self.path} was enrolled with embeddings made as "
                f"{escaped(self.meta.get('embedding') or stored)}; these cries would be "
                "embedded as "
                f"{embedding or scoring_key}, and the two do not compare exactly — use the "
                "enrolment's {backend}, {precision}, {tta} and {trim}, or enrol the babies "
                "again into a new gallery",
                fields=dict.fromkeys(("backend", "precision", "tta", "trim"), FIELD),
            )
        if as_norm is not None and self.as_norm is not None and as_norm != self.as_norm:
            raise ConfigError(
                f"{self.path} scores cries {_AS_NORM_WORDS[self.as_norm]}, but these would be "
                f"scored {_AS_NORM_WORDS[as_norm]}: the ward's answers would change meaning — "
                "score as the gallery does ({as_norm}), or enrol the babies again into a new "
                "gallery",
                fields={"as_norm": self.as_norm},
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
            check_objects(connection, self.path)  # none added since open: the lock is held
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
        *,
        client: str = "cli",
    ) -> Enrolment:
        """Enrol recordings of one baby, all or none (one transaction, with its audit row).

        Args:
            baby_id: see :func:`check_baby_id`; the baby is added when new.
            vectors: float [n, dim] embeddings of the recordings.
            sources: [n] what each recording is (its path), kept for ``gallery list``.
            audio_keys: [n] each recording's audio identity
                (:func:`~cryprint.inference.store.audio_key`); default: the embedding's own
                bytes (:func:`vector_key`).
            client: who asks, for the audit table: ``cli``, the ward page's caller's address.

        Raises:
            ConfigError: invalid baby id or client. DataError: wrong shapes, non-finite or zero
                vectors, a recording already enrolled for another baby (nothing is written
                then), or objects in the file that cryprint did not create.
        """
        baby_id, client = check_baby_id(baby_id), check_client(client)
        matrix = self._check_vectors(vectors, "enrolment")
        keys = [vector_key(v) for v in matrix] if audio_keys is None else list(audio_keys)
        if not (len(matrix) == len(sources) == len(keys)):
            raise DataError(f"{len(matrix)} embeddings, {len(sources)} sources, {len(keys)} keys")
        with self._transaction() as connection:
            added, skipped, total = insert_recordings(connection, baby_id, (matrix, sources, keys))
            record_change(connection, "enrol", baby_id, added, client)
        return Enrolment(baby_id, added, tuple(skipped), total)

    def remove(self, baby_id: str, *, client: str = "cli") -> int:
        """Remove a baby and all its enrolments (one transaction, with its audit row); return
        how many enrolments were removed. ``baby_id`` as :func:`check_baby_id` takes it, or —
        to repair a gallery edited by hand — an id cryprint would not write, exactly or as a
        refusal wrote it (:func:`~cryprint.ward.gallery_file.escaped`). ``client``: who asks,
        for the audit table.

        Raises:
            DataError: no such baby in the gallery. ConfigError: an invalid client.
        """
        client = check_client(client)
        try:
            named = check_baby_id(baby_id)
        except ConfigError:
            named = None
        with self._transaction() as connection:
            spellings = stored_spellings(connection, named, baby_id)
            removed = 0
            for spelling in spellings:
                removed += connection.execute(
                    "DELETE FROM enrolments WHERE baby_id = ?", (spelling,)
                ).rowcount
                connection.execute("DELETE FROM babies WHERE baby_id = ?", (spelling,))
            if spellings:
                record_change(connection, "remove", named or escaped(baby_id), removed, client)
                return removed
        raise DataError(
            f"no baby '{escaped(baby_id)}' in {self.path} (see `cryprint gallery list`)"
        )

    def audit_log(self, limit: int | None = None) -> list[AuditRecord]:
        """The last ``limit`` changes (all for None), newest first: every enrolment and
        removal, when, how many recordings and for whom (:class:`AuditRecord`). A gallery made
        before the audit table existed has none until its first change.

        Raises:
            ConfigError: ``limit`` < 1.
        """
        return read_audit(self._connection, self.path, limit)

    def babies(self) -> list[BabyRecord]:
        """Every enrolled baby with its number of enrolments, sorted by baby id.

        Raises:
            DataError: a baby id cryprint would not write (the row named).
        """
        return [BabyRecord(*row) for row in baby_rows(self._connection, self.path)]

    def enrolment_records(self) -> list[EnrolmentRecord]:
        """Every enrolment's baby, source and time (ISO 8601, UTC), by baby then time.

        Raises:
            DataError: a baby id cryprint would not write, or of a baby not in the babies table.
        """
        rows = enrolment_rows(self._connection, self.path, "e.source, e.created")
        return [EnrolmentRecord(baby, str(source), str(at)) for _, baby, source, at in rows]

    def enrolments(self) -> tuple[list[str], np.ndarray]:
        """Every enrolment's baby id and embedding: float32 [n, dim], validated on read; a
        vector's size is checked in SQL, so an oversized one is never read.

        Raises:
            DataError: a stored vector of the wrong size, non-finite or zero, a baby id cryprint
                would not write, or of a baby not in the babies table (the row named).
        """
        rows = enrolment_rows(
            self._connection,
            self.path,
            "typeof(e.vector), length(e.vector), "
            "CASE WHEN typeof(e.vector) = 'blob' AND length(e.vector) = ? THEN e.vector END",
            4 * self.dim,
        )
        matrix = np.zeros((len(rows), self.dim), dtype=np.float32)
        for index, (row_id, baby_id, kind, size, blob) in enumerate(rows):
            matrix[index] = self._read_vector(row_id, baby_id, kind, size, blob)
        return [row[1] for row in rows], matrix

    def _read_vector(
        self, row_id: int, baby_id: str, kind: str, size: int, blob: bytes | None
    ) -> np.ndarray:
        # Not str.format: a path or a baby id may hold braces.
        def damaged(problem: str) -> DataError:
            return DataError(
                f"{self.path}: enrolment {row_id} of baby {baby_id!r} is damaged ({problem}); "
                "remove the baby and enrol it again"
            )

        if blob is None:
            found = f"{size} bytes" if kind == "blob" else f"a {kind} value"
            raise damaged(f"{found}, expected {4 * self.dim} bytes")
        vector = np.frombuffer(blob, dtype=np.float32)
        if not np.isfinite(vector).all() or not vector.any():
            raise damaged("non-finite or all-zero values")
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
        """Rank the enrolled babies for one cry's embedding (float [dim]) by raw cosine, and
        answer at a score threshold (:func:`~cryprint.scoring.open_set.decide_at_threshold`).
        The full answer — AS-norm, probabilities, the ward's rule — is
        :func:`cryprint.ward.identify.identify`'s.

        Raises:
            DataError: an empty gallery, a vector of the wrong shape, a damaged enrolment.
            ConfigError: ``top`` < 1 or a non-finite threshold.
        """
        query = self._check_vectors(np.asarray(vector, dtype=np.float32)[None], "the cry's")
        babies, centroids, counts = self.centroids()
        scores = cosine_matrix(query, centroids)[0]
        candidates = rank_candidates(scores, babies, counts, top)
        answer = decide_at_threshold(babies, scores, threshold)
        rule = f"named when its score reaches {threshold:.4f} ({threshold_source})"
        return Identification(candidates, answer, len(babies), rule, threshold, threshold_source)

    def centroids(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(baby ids, float64 [n_babies, dim] unit centroids, int [n_babies] enrolment counts).

        Raises:
            DataError: no baby enrolled, or a damaged enrolment.
        """
        baby_ids, vectors = self.enrolments()
        if not baby_ids:
            raise DataError(f"{self.path}: no baby is enrolled; `cryprint enroll` first")
        return baby_centroids(baby_ids, vectors)


def open_for(path: Path | str, embedder: CryPrint) -> Gallery:
    """The gallery at ``path``, checked to hold embeddings made as ``embedder`` makes them."""
    return Gallery.open(
        path,
        embedder.model_id,
        embedder.embedding_dim,
        embedder.scoring_key,
        embedder.embedding_description,
        embedder.as_norm,
    )
