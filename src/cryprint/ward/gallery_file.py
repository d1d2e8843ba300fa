"""A gallery's SQLite file: its schema, and how it is checked, opened and created whole.

A new gallery is built as a temporary sibling file and linked into place, so a file at the
gallery's path is always a whole gallery; a file that is not a gallery is refused unchanged,
before SQLite opens it.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from cryprint.errors import DataError, OutputError
from cryprint.io import new_file_mode

GALLERY_FORMAT = "cryprint-gallery/1"
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


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.gmtime())


def check_gallery_file(path: Path) -> None:
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


def connect(path: Path) -> sqlite3.Connection:
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


def read_meta(connection: sqlite3.Connection, path: Path) -> dict[str, str]:
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
