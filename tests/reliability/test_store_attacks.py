"""The embedding store under attack from its surroundings: forged rows, special files and other
programs' databases given as the store, a store locked by another process. A verdict never
rests on a row the store cannot vouch for, and a cache that cannot be written never costs it."""

from __future__ import annotations

import logging
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from cryprint.cli import main
from cryprint.data.inputs import recording_files
from cryprint.inference import store as store_module
from cryprint.inference.api import CryPrint
from cryprint.inference.store import PREPROCESSING, EmbeddingStore, audio_key


def _dev_folders(corpus: Path, count: int) -> list[Path]:
    return [folder / "B" for folder in sorted((corpus / "audio" / "dev").iterdir())[:count]]


def _forge(path: Path, model_id: str, key: str, vector: np.ndarray) -> None:
    """Replace a row by hand, its checksum recomputed: only the vector's own sense can tell."""
    from cryprint.inference.store import row_checksum

    blob = np.asarray(vector, np.float32).tobytes()
    dim = len(blob) // 4
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(
            "INSERT OR REPLACE INTO embeddings (model_id, audio_key, preprocessing, dim, vector, "
            "checksum) VALUES (?, ?, ?, ?, ?, ?)",
            (
                model_id,
                key,
                PREPROCESSING,
                dim,
                blob,
                row_checksum(model_id, key, PREPROCESSING, dim, blob),
            ),
        )


@pytest.mark.parametrize(
    "forged",
    [np.full(192, 1e-42), np.full(192, 3e38), np.zeros(192), np.array([0.6, -0.8])],
    ids=["tiny", "huge", "zeros", "two numbers"],
)
def test_a_forged_row_never_changes_a_score(
    small_corpus: Path, make_model, tmp_path: Path, forged: np.ndarray
) -> None:
    """Rows of 192 × 1e-42 gave 'same baby 0.99999' for a pair scoring -0.0074; a row of 2
    numbers crashed verify ('could not broadcast', exit 70)."""
    store = tmp_path / "store.sqlite"
    folders = _dev_folders(small_corpus, 3)
    honest = CryPrint(make_model(0), store=False).score(folders[0], folders[1])
    embedder = CryPrint(make_model(0), store=store)
    embedder.embed_many(folders)
    model_id = embedder.engine.embedding_id
    for folder in folders[:1] if len(forged) == 2 else folders[:2]:
        key = embedder.store_keys([audio_key(files=recording_files(folder))])[0]
        _forge(store, model_id, key, forged)
    again = CryPrint(make_model(0), store=store)
    assert again.score(folders[0], folders[1]) == pytest.approx(honest, abs=1e-6)
    assert again.computed == (1 if len(forged) == 2 else 2)  # the forged rows were misses


def _verify(small_corpus: Path, model_folder: Path) -> int:
    a, b = _dev_folders(small_corpus, 2)
    return main(["verify", str(a), str(b), "--model", str(model_folder), "--threshold", "0.5"])


@pytest.mark.parametrize("special", ["/dev/null", "/dev/zero"])
def test_a_special_file_as_the_store_is_refused_and_nothing_written_beside_it(
    small_corpus: Path,
    model_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    special: str,
) -> None:
    """Run as root, CRYPRINT_STORE=/dev/null left /dev/null-journal (mode 0666) in /dev."""

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"SQLite opened {args[0]}")

    journal_before = Path(f"{special}-journal").exists()
    monkeypatch.setattr(store_module.sqlite3, "connect", refused)
    monkeypatch.setenv("CRYPRINT_STORE", special)
    assert _verify(small_corpus, model_folder) == 7
    err = capsys.readouterr().err
    assert special in err and "CRYPRINT_STORE=off" in err and "Traceback" not in err
    assert Path(f"{special}-journal").exists() == journal_before


def test_another_programs_database_as_the_store_is_refused_unchanged(
    small_corpus: Path,
    model_folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """It used to gain a table, be switched to WAL and, with a 5-column embeddings table of
    its own, receive cryprint's rows."""
    path = tmp_path / "app.db"
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(
            "CREATE TABLE embeddings (model_id, audio_key, preprocessing, dim, vector)"
        )
        connection.execute("CREATE TABLE users (name TEXT)")
    before, siblings = path.read_bytes(), sorted(tmp_path.iterdir())
    monkeypatch.setenv("CRYPRINT_STORE", str(path))
    assert _verify(small_corpus, model_folder) == 7
    err = capsys.readouterr().err
    assert "not cryprint's embedding store" in err and "Traceback" not in err
    assert path.read_bytes() == before and sorted(tmp_path.iterdir()) == siblings


def test_a_locked_store_costs_verify_no_verdict(
    small_corpus: Path,
    model_folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """verify waited 60.7 s for a store another process held, then exited 7 without the
    verdict it had computed."""
    path = tmp_path / "store.sqlite"
    EmbeddingStore(path)
    monkeypatch.setenv("CRYPRINT_STORE", str(path))
    with closing(sqlite3.connect(path, isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")  # another process, in a long write
        holder.execute("DELETE FROM embeddings")
        started = time.perf_counter()
        with caplog.at_level(logging.WARNING):
            assert _verify(small_corpus, model_folder) == 0  # the verdict, though nothing is kept
            elapsed = time.perf_counter() - started
        holder.execute("ROLLBACK")
    assert elapsed < 30
    assert "database is locked" in caplog.text and "not kept" in caplog.text
    assert "score" in capsys.readouterr().out
