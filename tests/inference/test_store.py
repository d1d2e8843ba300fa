"""The embedding store: keyed by model, audio and preprocessing; validated on read; shared by
concurrent processes."""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from cryprint.errors import OutputError
from cryprint.inference import store as store_module
from cryprint.inference.store import PREPROCESSING, EmbeddingStore, audio_key, open_store


def _forge(path: Path, model_id: str, key: str, vector: np.ndarray, dim: int | None = None) -> None:
    """Write a row by hand with a matching checksum: what a bug or a careful hand edit leaves."""
    from cryprint.inference.store import row_checksum

    blob = np.asarray(vector, np.float32).tobytes()
    dim = len(blob) // 4 if dim is None else dim
    checksum = row_checksum(model_id, key, PREPROCESSING, dim, blob)
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(
            "INSERT OR REPLACE INTO embeddings (model_id, audio_key, preprocessing, dim, vector, "
            "checksum) VALUES (?, ?, ?, ?, ?, ?)",
            (model_id, key, PREPROCESSING, dim, blob, checksum),
        )


def test_put_then_get_round_trips_and_keys_by_model(tmp_path: Path) -> None:
    store = EmbeddingStore(tmp_path / "s.sqlite")
    vector = np.arange(4, dtype=np.float32)
    store.put("model-a", {"audio-1": vector})
    np.testing.assert_array_equal(store.get("model-a", ["audio-1", "audio-2"])["audio-1"], vector)
    assert store.get("model-b", ["audio-1"]) == {}
    assert store.count() == 1 and store.count("model-b") == 0


def test_a_corrupt_row_is_dropped_not_used(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = EmbeddingStore(path)
    store.put("m", {"good": np.ones(3, np.float32)})
    # Rows whose checksum matches but whose vector does not hold up: NaN, or too short.
    _forge(path, "m", "bad", np.array([1.0, np.nan, 0.0], np.float32))
    _forge(path, "m", "short", np.ones(2, np.float32), dim=3)
    assert sorted(store.get("m", ["good", "bad", "short"])) == ["good"]
    assert store.count("m") == 1  # the bad rows are gone: the next command recomputes them
    with pytest.raises(ValueError, match="non-finite"):
        store.put("m", {"nan": np.array([np.nan], np.float32)})


def test_audio_key_is_the_content_of_the_files_in_order(tmp_path: Path) -> None:
    first, second = tmp_path / "a.wav", tmp_path / "b.wav"
    first.write_bytes(b"ab")
    second.write_bytes(b"c")
    joined = tmp_path / "joined.wav"
    joined.write_bytes(b"abc")
    assert audio_key([first, second]) != audio_key([second, first])
    assert audio_key([first, second]) != audio_key([joined])  # lengths are part of the key
    copy = tmp_path / "copy.wav"
    copy.write_bytes(b"ab")
    assert audio_key([copy, second]) == audio_key([first, second])
    samples = np.zeros(3, np.float32)
    assert audio_key(samples=samples) != audio_key(samples=samples + 1e-7)


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    EmbeddingStore(path)
    code = (
        "import sys, numpy as np\nfrom cryprint.inference.store import EmbeddingStore\n"
        f"store = EmbeddingStore({str(path)!r})\n"
        "for i in range(50):\n"
        "    store.put('m', {f'{sys.argv[1]}-{i}': np.full(8, i + 1, np.float32)})\n"
    )
    writers = [subprocess.Popen([sys.executable, "-c", code, name]) for name in "abc"]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0, 0]
    store = EmbeddingStore(path)
    assert store.count("m") == 150
    keys = [f"{name}-{i}" for name in "abc" for i in range(50)]
    assert len(store.get("m", keys, dim=8)) == 150  # every row whole and checked
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_open_store_choices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert open_store(False) is None and open_store(None) is None
    monkeypatch.setenv("CRYPRINT_STORE", "off")
    assert open_store(True) is None
    monkeypatch.setenv("CRYPRINT_STORE", str(tmp_path / "x.sqlite"))
    assert open_store(True).path == tmp_path / "x.sqlite"


# --- Integrity: a row is used only when it is whole, of the asked size and not degenerate ---


def test_a_row_that_does_not_match_its_checksum_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = EmbeddingStore(path)
    store.put("m", {"a": np.arange(1, 5, dtype=np.float32), "b": np.ones(4, np.float32)})
    with closing(sqlite3.connect(path)) as connection, connection:  # a finite, right-sized edit
        connection.execute(
            "UPDATE embeddings SET vector = ? WHERE audio_key = 'a'",
            ((-np.arange(1, 5, dtype=np.float32)).tobytes(),),
        )
    assert sorted(store.get("m", ["a", "b"])) == ["b"]
    assert store.count("m") == 1  # dropped: the next command recomputes it


@pytest.mark.parametrize("value", [1e-42, 3e38, 0.0])
def test_a_degenerate_vector_is_a_miss_never_a_score(tmp_path: Path, value: float) -> None:
    """192 × 1e-42 (or 3e38) is finite and of the right size, yet every cosine with it is noise:
    'same baby 0.99999' for a pair that scores -0.0074."""
    path = tmp_path / "s.sqlite"
    store = EmbeddingStore(path)
    store.put("m", {"degenerate": np.full(192, value, np.float32)})
    assert store.get("m", ["degenerate"]) == {}
    _forge(path, "m", "forged", np.full(192, value, np.float32))
    assert store.get("m", ["forged"]) == {}
    assert store.count("m") == 0


def test_a_row_of_another_dimension_is_a_miss_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = EmbeddingStore(path)
    store.put("m", {key: np.arange(1, 5, dtype=np.float32) + i for i, key in enumerate("abc")})
    _forge(path, "m", "x", np.array([1.0, 2.0], np.float32))
    # Without the expected dimension, the dimension of this model's other rows decides.
    assert store.get("m", ["x"]) == {}
    assert sorted(store.get("m", ["a", "x"])) == ["a"]
    assert store.count("m") == 4  # kept: only a caller that knows the dimension may drop it
    # With it (what the API asks), a row of another size is dropped.
    assert sorted(store.get("m", ["a", "x"], dim=4)) == ["a"]
    assert store.count("m") == 3
    assert store.get("m", ["a"], dim=2) == {}


# --- The file: cryprint's store, an older one (upgraded), or refused unchanged ---


def _old_store(path: Path) -> None:
    """A store as cryprint wrote it before the checksum column."""
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        with connection:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS embeddings (model_id TEXT NOT NULL, audio_key TEXT "
                "NOT NULL, preprocessing TEXT NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT "
                "NULL, PRIMARY KEY (model_id, audio_key, preprocessing)) WITHOUT ROWID"
            )
            connection.execute(
                "INSERT INTO embeddings VALUES ('m', 'a', ?, 2, ?)",
                (PREPROCESSING, np.full(2, 1e-42, np.float32).tobytes()),
            )


def test_a_store_is_marked_as_cryprints_and_an_old_one_starts_afresh(tmp_path: Path) -> None:
    new, old = tmp_path / "new.sqlite", tmp_path / "old.sqlite"
    EmbeddingStore(new)
    _old_store(old)
    store = EmbeddingStore(old)
    for path in (new, old):
        with closing(sqlite3.connect(path)) as connection:
            meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
            assert meta["format"] == store_module.STORE_FORMAT == "cryprint-store/2"
    assert store.count() == 0  # the unchecked rows are gone: it is only a cache
    store.put("m", {"a": np.ones(2, np.float32)})
    assert sorted(EmbeddingStore(old).get("m", ["a"])) == ["a"]


def _foreign(path: Path, kind: str) -> None:
    """Another program's SQLite file."""
    with closing(sqlite3.connect(path)) as connection:
        if kind.endswith("(WAL)"):
            connection.execute("PRAGMA journal_mode=WAL")
        with connection:
            if kind.startswith("notes"):
                connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
                connection.execute("INSERT INTO notes (text) VALUES ('feeding at 3')")
            elif kind == "embeddings of its own":  # five columns, not cryprint's
                connection.execute(
                    "CREATE TABLE embeddings (model_id, audio_key, preprocessing, dim, vector)"
                )
            elif kind == "an old store and more":
                connection.execute("CREATE TABLE notes (text TEXT)")
            elif kind == "a newer cryprint store":
                connection.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
                connection.execute("INSERT INTO meta VALUES ('format', 'cryprint-store/9')")
            elif kind == "no tables":
                connection.execute("PRAGMA user_version = 7")
    if kind == "an old store and more":
        _old_store(path)


@pytest.mark.parametrize(
    "kind",
    [
        "notes",
        "notes (WAL)",
        "embeddings of its own",
        "an old store and more",
        "a newer cryprint store",
        "no tables",
        "text",
        "corrupt",
    ],
)
def test_a_file_that_is_not_cryprints_store_is_refused_unchanged(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "other.db"
    if kind == "text":
        path.write_text("babies: 1\n")
    elif kind == "corrupt":  # an SQLite header, then noise
        path.write_bytes(b"SQLite format 3\x00" + np.random.default_rng(0).bytes(8192))
    else:
        _foreign(path, kind)
    before, siblings = path.read_bytes(), sorted(tmp_path.iterdir())
    with pytest.raises(OutputError, match="CRYPRINT_STORE") as error:
        EmbeddingStore(path)
    assert str(path) in str(error.value) and error.value.exit_code == 7
    with pytest.raises(OutputError):
        open_store(path)
    assert path.read_bytes() == before and sorted(tmp_path.iterdir()) == siblings


@pytest.mark.parametrize("linked", [False, True])
def test_an_empty_file_is_not_a_store(tmp_path: Path, linked: bool) -> None:
    """A user's empty file (behind a symbolic link, say) must not become a database."""
    target = tmp_path / "notes.txt"
    target.write_bytes(b"")
    path = tmp_path / "store.sqlite"
    if linked:
        path.symlink_to(target)
    else:
        path = target
    with pytest.raises(OutputError, match="empty file"):
        EmbeddingStore(path)
    assert target.read_bytes() == b"" and len(list(tmp_path.iterdir())) == 1 + linked


def test_a_link_to_nothing_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    path.symlink_to(tmp_path / "elsewhere" / "missing.sqlite")
    with pytest.raises(OutputError, match="symbolic link"):
        EmbeddingStore(path)
    assert sorted(tmp_path.iterdir()) == [path]


# --- Special files: refused before SQLite opens them (no /dev/null-journal) ---


@pytest.fixture
def sqlite_must_not_open(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"SQLite opened {args[0]}")

    monkeypatch.setattr(store_module.sqlite3, "connect", refused)


@pytest.mark.parametrize("kind", ["/dev/null", "/dev/zero", "fifo", "folder", "socket"])
def test_a_special_file_is_refused_before_sqlite_opens_it(
    tmp_path: Path, kind: str, sqlite_must_not_open: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal_before = Path("/dev/null-journal").exists()
    path = tmp_path / "special"
    if kind.startswith("/dev/"):
        path = Path(kind)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    else:
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(path))
        listener.close()
    with pytest.raises(OutputError, match="not a regular file") as error:
        EmbeddingStore(path)
    assert str(path) in str(error.value)
    assert "CRYPRINT_STORE=off" in str(error.value)
    monkeypatch.setenv("CRYPRINT_STORE", str(path))
    with pytest.raises(OutputError, match="not a regular file"):
        open_store(True)
    assert Path("/dev/null-journal").exists() == journal_before
    assert list(tmp_path.iterdir()) == ([] if kind.startswith("/dev/") else [path])


# --- A cache: what it cannot read is a miss, what it cannot write a warning ---


def test_a_locked_store_costs_seconds_not_the_answer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.sqlite"
    store = EmbeddingStore(path)
    store.put("m", {"a": np.ones(4, np.float32)})
    with closing(sqlite3.connect(path, isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")  # another process in a long write
        holder.execute("DELETE FROM embeddings WHERE audio_key = 'nothing'")
        started = time.perf_counter()
        with caplog.at_level(logging.WARNING, logger=store_module.__name__):
            store.put("m", {"b": np.ones(4, np.float32)})  # no exception: only not kept
            assert sorted(store.get("m", ["a", "b"])) == ["a"]  # WAL: readers are not blocked
            EmbeddingStore(path)
        assert time.perf_counter() - started < 10
        assert "not kept" in caplog.text
        holder.execute("ROLLBACK")
        monkeypatch.setattr(store_module, "_BUSY_TIMEOUT_SECONDS", 0.5)  # the rest: how, not when
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")  # now not even a reader gets in
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("DELETE FROM embeddings WHERE audio_key = 'nothing'")
        started = time.perf_counter()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=store_module.__name__):
            found = store.get("m", ["a"])
            store.put("m", {"b": np.ones(4, np.float32)})
            EmbeddingStore(path).get("m", ["a"])
        assert time.perf_counter() - started < 10
        assert set(found) <= {"a"} and "locked" in caplog.text
        holder.execute("ROLLBACK")


_FULL_DISK = """
import logging, resource, signal, sys
import numpy as np
from cryprint.inference.store import EmbeddingStore
logging.basicConfig(level=logging.WARNING, format="%(message)s")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
store = EmbeddingStore(sys.argv[1])
print(sorted(store.get("m", ["a", "b"])))
store.put("m", {"b": np.ones(4, np.float32)})
new = EmbeddingStore(sys.argv[2])  # cannot even be created: skipped, not refused
new.put("m", {"b": np.ones(4, np.float32)})
print(new.get("m", ["b"]))
print("answered")
"""


def test_a_full_disk_still_reads_the_store_and_costs_no_answer(tmp_path: Path) -> None:
    """No file may grow (RLIMIT_FSIZE 0: every write fails as on a full disk): a stored pair is
    still read, and what cannot be written is only not kept."""
    path = tmp_path / "s.sqlite"
    EmbeddingStore(path).put("m", {"a": np.ones(4, np.float32)})
    before = sorted(tmp_path.iterdir())
    run = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(path), str(tmp_path / "new" / "s.sqlite")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[:3] == ["['a']", "{}", "answered"]
    assert "not kept" in run.stderr and "new/s.sqlite: embedding store not usable now" in run.stderr
    assert "Traceback" not in run.stderr
    assert list((tmp_path / "new").iterdir()) == []  # no partial store, no temporary file
    (tmp_path / "new").rmdir()
    assert EmbeddingStore(path).get("m", ["a", "b"]).keys() == {"a"}
    assert sorted(tmp_path.iterdir()) == before


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "BEGIN IMMEDIATE", "BEGIN EX")


class _FullDisk(sqlite3.Connection):
    """A connection on a full disk: reads work, every write fails."""

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:  # type: ignore[override]
        statement = sql.lstrip().upper()
        if statement.startswith(_WRITES) or "JOURNAL_MODE" in statement:
            raise sqlite3.OperationalError("database or disk is full")
        return super().execute(sql, *args)

    def executemany(self, sql: str, *args: object) -> sqlite3.Cursor:  # type: ignore[override]
        raise sqlite3.OperationalError("database or disk is full")


def test_writes_on_a_full_disk_only_warn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.sqlite"
    good = EmbeddingStore(path)
    good.put("m", {"a": np.ones(4, np.float32), "bad": np.ones(4, np.float32)})
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("UPDATE embeddings SET checksum = '0' WHERE audio_key = 'bad'")
    connect = sqlite3.connect
    monkeypatch.setattr(
        store_module.sqlite3, "connect", lambda *a, **k: connect(*a, **k, factory=_FullDisk)
    )
    with caplog.at_level(logging.WARNING, logger=store_module.__name__):
        store = EmbeddingStore(path)  # an existing store opens without writing
        assert sorted(store.get("m", ["a", "bad"])) == ["a"]  # the bad row is not dropped: a miss
        store.put("m", {"b": np.ones(4, np.float32)})
    assert "database or disk is full" in caplog.text
    monkeypatch.undo()
    assert sorted(good.get("m", ["a", "b"])) == ["a"]
