"""A gallery's SQLite file: its schema, how it is checked, opened and created whole, how its
rows are read back checked, and its audit table.

A new gallery is built as a temporary sibling file and linked into place, so a file at the
gallery's path is always a whole gallery; a file that is not a gallery is refused unchanged,
before SQLite opens it. A file holding anything cryprint did not create (a trigger, a view, an
index, a table, or one of cryprint's tables defined otherwise) is refused before any statement
that could run it (:func:`check_objects`). Rows are checked as they are read: a baby id that
cryprint would not write (:func:`check_baby_id`), an enrolment of a baby missing from the babies
table is refused naming its row (:func:`enrolment_rows`), and text meant for a terminal is shown
:func:`escaped`.

The audit table records every change (``enrol``, ``remove``) in the transaction that makes it:
``audit(id, time, action, baby_id, recordings, client)``. Galleries made before it existed hold
the other tables only; they open and read as they are, and gain the table on their first write.
"""

from __future__ import annotations

import errno
import functools
import os
import sqlite3
import tempfile
import time
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from cryprint.errors import FIELD, ConfigError, DataError, OutputError
from cryprint.io import new_file_mode

GALLERY_FORMAT = "cryprint-gallery/1"
# A gallery change is one short transaction (the embedding is done before it): a second writer
# waits this long for the first to commit rather than failing at once.
_BUSY_TIMEOUT_SECONDS = 10.0
_SQLITE_HEADER = b"SQLite format 3\x00"
# The tables cryprint has created since the first gallery, as it wrote them: SQLite keeps each
# statement's text, and a file is compared with exactly these (check_objects).
_TABLES = (
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
_AUDIT_TABLE = """CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('enrol', 'remove')),
        baby_id TEXT NOT NULL,
        recordings INTEGER NOT NULL CHECK (typeof(recordings) = 'integer' AND recordings >= 0),
        client TEXT NOT NULL
    )"""
_SCHEMA = (*_TABLES, _AUDIT_TABLE)
MAX_BABY_ID_LENGTH = 64
MAX_CLIENT_LENGTH = 256
# How many objects a refusal names.
_NAMED_OBJECTS = 4


class AuditRecord(NamedTuple):
    """One change to a gallery: when (ISO 8601, UTC), ``action`` (``enrol`` or ``remove``),
    which baby, how many recordings it enrolled or removed, and who asked (``client``: free
    text such as ``cli`` or the ward page's caller's address). Text is as :func:`escaped`
    shows it."""

    time: str
    action: str
    baby_id: str
    recordings: int
    client: str


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.gmtime())


def escaped(value: object) -> str:
    r"""``value`` as text safe to print on a terminal: itself when every character is
    printable, else with each control or other non-printable character escaped as Python
    escapes it (``\x1b``, ``\n``, ``\u202e``); a value that is not text as its ``repr``.

    >>> escaped("cot 12"), escaped("cot\x1b[2J")
    ('cot 12', 'cot\\x1b[2J')
    """
    text = value if isinstance(value, str) else repr(value)
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def check_baby_id(baby_id: str) -> str:
    """``baby_id`` in Unicode NFC if it is a valid baby id: 1 to 64 printable characters, no
    surrounding spaces (a ward label such as ``cot-12`` or ``0133``). NFC: ``bébé`` typed as
    one accented letter or as a letter and a combining accent is one baby.

    Raises:
        ConfigError: naming what is wrong.
    """
    if not isinstance(baby_id, str) or not baby_id:
        raise ConfigError("a baby id must be a non-empty string")
    baby_id = unicodedata.normalize("NFC", baby_id)
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


def stored_baby_id(raw: object, path: Path, where: str) -> str:
    """A baby id read from the file, as :func:`check_baby_id` gives it (NFC).

    Raises:
        DataError: an id cryprint never writes, shown escaped, ``where`` naming its row.
    """
    try:
        if isinstance(raw, str):
            return check_baby_id(raw)
    except ConfigError:
        pass
    raise DataError(
        f"{path}: {where} holds baby id '{escaped(raw)}', which cryprint never writes "
        f"(1 to {MAX_BABY_ID_LENGTH} printable characters, no surrounding spaces): the "
        "gallery was edited outside cryprint; remove that baby (`cryprint gallery remove`, "
        "its id as written here) and enrol it again"
    )


def stored_spellings(
    connection: sqlite3.Connection, baby_id: str | None, given: object = None
) -> list[object]:
    """Every baby id stored (in babies or enrolments) that is ``baby_id`` (checked, NFC) in
    some Unicode spelling. None there and ``given``: those stored exactly as ``given``, or that
    :func:`escaped` shows as it (a repair of a hand-edited id)."""
    stored = [
        raw
        for (raw,) in connection.execute(
            "SELECT baby_id FROM babies UNION SELECT baby_id FROM enrolments"
        )
    ]
    found = [
        raw
        for raw in stored
        if baby_id is not None
        and isinstance(raw, str)
        and unicodedata.normalize("NFC", raw) == baby_id
    ]
    if found or given is None:
        return found
    return [raw for raw in stored if raw == given or escaped(raw) == given]


def insert_recordings(
    connection: sqlite3.Connection,
    baby_id: str,
    recordings: tuple[np.ndarray, Sequence[str], Sequence[str]],
) -> tuple[int, list[str], int]:
    """Add ``baby_id`` (checked) when new and insert each of its recordings (float32 vector,
    source, audio key) not yet enrolled for it, in the caller's transaction; return how many
    were added, the sources skipped, and the baby's enrolments now.

    Raises:
        DataError: a recording already enrolled for another baby.
    """
    now, skipped, added = utc_now(), [], 0
    spellings = [baby_id, *stored_spellings(connection, baby_id)]
    connection.execute("INSERT OR IGNORE INTO babies VALUES (?, ?)", (baby_id, now))
    for vector, source, key in zip(*recordings, strict=True):
        owner = connection.execute(
            "SELECT baby_id FROM enrolments WHERE audio_key = ?", (key,)
        ).fetchone()
        if owner is not None and owner[0] not in spellings:
            raise DataError(
                f"{escaped(source)} is already enrolled for baby '{escaped(owner[0])}': one "
                f"recording cannot be two babies; nothing was enrolled for {baby_id!r}"
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
        f"SELECT COUNT(*) FROM enrolments WHERE baby_id IN ({', '.join('?' * len(spellings))})",
        spellings,
    ).fetchone()
    return added, skipped, int(total)


def baby_rows(connection: sqlite3.Connection, path: Path) -> list[tuple[str, int, str]]:
    """(baby id, enrolments, created) of every baby, by id; two Unicode spellings of one id
    (stored before ids were NFC) are one baby.

    Raises:
        DataError: a baby id cryprint would not write (the row named).
    """
    rows = connection.execute(
        "SELECT b.rowid, b.baby_id, COUNT(e.id), b.created FROM babies b "
        "LEFT JOIN enrolments e ON e.baby_id = b.baby_id GROUP BY b.baby_id"
    ).fetchall()
    merged: dict[str, tuple[str, int, str]] = {}
    for row, raw, count, created in rows:
        baby_id = stored_baby_id(raw, path, f"row {row} of the babies table")
        earlier = merged.get(baby_id)
        if earlier is not None:
            count += earlier[1]
            created = min(str(created), earlier[2])
        merged[baby_id] = (baby_id, int(count), str(created))
    return sorted(merged.values())


def enrolment_rows(
    connection: sqlite3.Connection, path: Path, columns: str, *parameters: object
) -> list[tuple]:
    """(id, baby id, *``columns``) of every enrolment, by baby id then id; each baby id
    checked (:func:`stored_baby_id`) and in the babies table, so no enrolment makes a baby that
    ``babies()`` does not list."""
    rows = connection.execute(
        f"SELECT e.id, e.baby_id, b.baby_id IS NULL, {columns} FROM enrolments e "
        "LEFT JOIN babies b ON b.baby_id = e.baby_id ORDER BY e.id",
        parameters,
    ).fetchall()
    checked = []
    for row_id, raw, orphan, *values in rows:
        baby_id = stored_baby_id(raw, path, f"enrolment {row_id}")
        if orphan:
            raise DataError(
                f"{path}: enrolment {row_id} is of baby {baby_id!r}, who is not in the "
                "babies table: the gallery was edited outside cryprint; remove that baby "
                "(`cryprint gallery remove`) and enrol it again"
            )
        checked.append((row_id, baby_id, *values))
    return sorted(checked, key=lambda row: (row[1], row[0]))


def check_gallery_file(path: Path) -> None:
    """Refuse, without opening it with SQLite, what cannot be a gallery: a folder, a missing
    path, a link to a missing file, a file that is not an SQLite database."""
    try:
        if path.is_dir():
            raise DataError(f"{path} is a folder; give the gallery's file (e.g. ward.db)")
        if path.is_symlink() and not path.exists():
            raise DataError(
                f"{path} is a link to a missing file ({escaped(os.readlink(path))}); give the "
                "gallery's real path"
            )
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


def connect(path: Path) -> sqlite3.Connection:
    """A connection to an existing file (``mode=rw``: never creates one), in autocommit mode:
    transactions are begun explicitly (:meth:`Gallery._transaction`)."""
    connection = sqlite3.connect(
        path.absolute().as_uri() + "?mode=rw",
        uri=True,
        timeout=_BUSY_TIMEOUT_SECONDS,
        isolation_level=None,
    )
    # A view or trigger could call functions with side effects; none may (check_objects
    # refuses them anyway).
    connection.execute("PRAGMA trusted_schema = OFF")
    connection.execute("PRAGMA foreign_keys = ON")
    # FULL: a committed enrolment survives a power cut, not only a killed process.
    connection.execute("PRAGMA synchronous = FULL")
    return connection


@functools.cache
def _objects_of(statements: tuple[str, ...]) -> frozenset[tuple[str, str, str, str | None]]:
    """What ``statements`` put in sqlite_master: (type, name, table, sql), automatic indexes
    included."""
    connection = sqlite3.connect(":memory:")
    try:
        for statement in statements:
            connection.execute(statement)
        return frozenset(connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))
    finally:
        connection.close()


def check_objects(connection: sqlite3.Connection, path: Path) -> bool:
    """Refuse a file holding anything but the tables and indexes cryprint creates, exactly as
    it creates them; return whether it holds the audit table (galleries made before it do
    not). Only sqlite_master is read, so nothing in the file has run.

    Raises:
        DataError: naming what cryprint did not create (the file is left unchanged).
    """
    try:
        found = frozenset(
            connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
        )
    except sqlite3.Error as error:
        raise DataError(
            f"{path} is not a cryprint gallery ({error}); it was left unchanged"
        ) from error
    has_audit = any(name == "audit" for _, name, _, _ in found)
    expected = _objects_of(_SCHEMA if has_audit else _TABLES)
    if found == expected:
        return has_audit
    # An automatic index comes and goes with its table: only named objects are worth naming.
    foreign = sorted(f"{kind} '{escaped(name)}'" for kind, name, _, _ in found - expected)
    missing = sorted(f"{kind} '{name}'" for kind, name, _, sql in expected - found if sql)
    problems = [
        f"{name} defined otherwise" if name in missing else f"{name}, which cryprint did not create"
        for name in foreign
    ]
    problems += [f"no {name}" for name in missing if name not in foreign]
    shown = "; ".join(problems[:_NAMED_OBJECTS]) + ("; ..." * (len(problems) > _NAMED_OBJECTS))
    raise DataError(
        f"{path} is not a cryprint gallery: it is not exactly what cryprint creates ({shown}); "
        "edited outside cryprint, or made by a newer version, it was left unchanged and nothing "
        "in it was run"
    )


def check_client(client: str) -> str:
    """``client`` if it can be recorded in the audit table: 1 to 256 printable characters.

    Raises:
        ConfigError: naming what is wrong.
    """
    if not isinstance(client, str) or not 1 <= len(client) <= MAX_CLIENT_LENGTH:
        raise ConfigError(
            f"{{client}} must be 1 to {MAX_CLIENT_LENGTH} characters of text, got "
            f"'{escaped(client)[:40]}'",
            fields={"client": FIELD},
        )
    if not client.isprintable():
        raise ConfigError(
            f"{{client}} '{escaped(client)}' holds control characters; use printable text",
            fields={"client": FIELD},
        )
    return client


def record_change(
    connection: sqlite3.Connection, action: str, baby_id: str, recordings: int, client: str
) -> None:
    """Add one row to the audit table, creating it in a gallery made before it existed. Call
    inside the change's write transaction, after :func:`check_objects`, so the record and the
    change commit together or not at all."""
    exists = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit'"
    ).fetchone()
    if exists is None:
        connection.execute(_AUDIT_TABLE)
    connection.execute(
        "INSERT INTO audit (time, action, baby_id, recordings, client) VALUES (?, ?, ?, ?, ?)",
        (utc_now(), action, baby_id, int(recordings), client),
    )


def read_audit(connection: sqlite3.Connection, path: Path, limit: int | None) -> list[AuditRecord]:
    """The audit table's last ``limit`` rows (all for None), newest first; none in a gallery
    made before it existed. Text that is not printable (edited by hand) comes escaped.

    Raises:
        ConfigError: ``limit`` is not None or a whole number >= 1. DataError: a row whose
            recording count is not a number.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(
            f"{{limit}} must be None or a whole number >= 1, got {limit!r}",
            fields={"limit": FIELD},
        )
    exists = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit'"
    ).fetchone()
    if exists is None:
        return []
    rows = connection.execute(
        "SELECT id, time, action, baby_id, recordings, client FROM audit ORDER BY id DESC LIMIT ?",
        (-1 if limit is None else limit,),
    ).fetchall()
    records = []
    for row_id, at, action, baby_id, recordings, client in rows:
        if isinstance(recordings, bool) or not isinstance(recordings, int):
            raise DataError(
                f"{path}: audit row {row_id} holds '{escaped(recordings)[:40]}' recordings, not "
                "a number: the gallery was edited outside cryprint"
            )
        at, action, baby_id, client = (escaped(text) for text in (at, action, baby_id, client))
        records.append(AuditRecord(at, action, baby_id, recordings, client))
    return records


def read_meta(connection: sqlite3.Connection, path: Path) -> dict[str, str]:
    """The meta table, validated: a known format, a model id and a positive dimension."""
    try:
        meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.Error as error:
        raise DataError(
            f"{path} is not a cryprint gallery ({error}); it was left unchanged"
        ) from error
    if not all(isinstance(item, str) for pair in meta.items() for item in pair):
        raise DataError(f"{path}: the gallery's meta table holds values that are not text")
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


def create(path: Path, meta: dict[str, str]) -> None:
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
        os.chmod(temporary, new_file_mode())  # mkstemp's 0600 would hide the gallery from others
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
