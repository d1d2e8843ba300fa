"""The embedding store: keyed by model, audio and preprocessing; validated on read; shared by
concurrent processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cryprint.inference.store import PREPROCESSING, EmbeddingStore, audio_key, open_store


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
    store.put("m", {"good": np.ones(3, np.float32), "bad": np.ones(3, np.float32)})
    with sqlite3.connect(path) as connection:
        connection.execute(
            "UPDATE embeddings SET vector = ? WHERE audio_key = 'bad'",
            (np.array([1.0, np.nan, 0.0], np.float32).tobytes(),),
        )
        connection.execute(
            "INSERT INTO embeddings VALUES ('m', 'short', ?, 3, ?)",
            (PREPROCESSING, np.ones(2, np.float32).tobytes()),
        )
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
        "    store.put('m', {f'{sys.argv[1]}-{i}': np.full(8, i, np.float32)})\n"
    )
    writers = [subprocess.Popen([sys.executable, "-c", code, name]) for name in "ab"]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    assert EmbeddingStore(path).count("m") == 100
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_open_store_choices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert open_store(False) is None and open_store(None) is None
    monkeypatch.setenv("CRYPRINT_STORE", "off")
    assert open_store(True) is None
    monkeypatch.setenv("CRYPRINT_STORE", str(tmp_path / "x.sqlite"))
    assert open_store(True).path == tmp_path / "x.sqlite"
