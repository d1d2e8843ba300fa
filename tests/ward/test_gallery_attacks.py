"""A gallery file edited by hand (or by an attacker) is refused or shown safely, never obeyed:
ids with control characters, two Unicode spellings of one id, enrolments of a baby missing
from the babies table, triggers and views, oversized vectors, a dangling symlink. And the
audit table: every change recorded in its own transaction, old galleries still open."""

from __future__ import annotations

import json
import re
import sqlite3
import tracemalloc
import unicodedata
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from cryprint.cli import main
from cryprint.errors import ConfigError, DataError
from cryprint.ward import gallery as gallery_module
from cryprint.ward.enrol import enrol
from cryprint.ward.gallery import Gallery, check_baby_id

MODEL_A = "a" * 64
# What a terminal obeys: C0 controls (ESC, BEL), DEL, C1 controls (CSI), bidi overrides.
_TERMINAL_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# The schema of the galleries cryprint wrote before the audit table, as it wrote it.
_PREVIOUS_SCHEMA = (
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


def _gallery_of(path: Path, enrolments: dict[str, list[list[float]]], dim: int = 2) -> None:
    with Gallery.create_or_open(path, MODEL_A, dim) as gallery:
        for baby_id, vectors in enrolments.items():
            gallery.enrol(baby_id, vectors, [f"{baby_id}-{i}" for i in range(len(vectors))])


def _edit(path: Path, *statements: str) -> None:
    """Change the file as a person with the sqlite3 shell would (foreign keys off)."""
    connection = sqlite3.connect(path)
    with connection:
        for statement in statements:
            connection.execute(statement)
    connection.close()


def _rows(path: Path) -> tuple[list, list, list]:
    connection = sqlite3.connect(path)
    try:
        return tuple(  # type: ignore[return-value]
            connection.execute(query).fetchall()
            for query in (
                "SELECT * FROM babies ORDER BY baby_id",
                "SELECT id, baby_id, source FROM enrolments ORDER BY id",
                "SELECT type, name, sql FROM sqlite_master ORDER BY name",
            )
        )
    finally:
        connection.close()


def _previous_version_gallery(path: Path, babies: dict[str, list[float]]) -> None:
    """A gallery as cryprint wrote it before it kept an audit table."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("BEGIN")
    for statement in _PREVIOUS_SCHEMA:
        connection.execute(statement)
    meta = {"format": "cryprint-gallery/1", "model_id": MODEL_A, "dim": "2", "created": "x"}
    connection.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
    for number, (baby_id, vector) in enumerate(babies.items()):
        connection.execute("INSERT INTO babies VALUES (?, '2024-01-01T00:00:00+0000')", (baby_id,))
        connection.execute(
            "INSERT INTO enrolments (baby_id, source, audio_key, vector, created) "
            "VALUES (?, ?, ?, ?, '2024-01-01T00:00:00+0000')",
            (baby_id, f"{baby_id}.wav", f"key{number}", np.float32(vector).tobytes()),
        )
    connection.execute("COMMIT")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.close()


# 1. Baby ids read from the file are never handed out with control characters.


@pytest.mark.parametrize("hostile", ["\x1b[31mX\x07", "\u202eevil", "\x9b2J", "cot\n1", " cot"])
def test_an_id_cryprint_never_writes_is_refused_naming_its_row(
    hostile: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ward.db"
    _gallery_of(path, {"a": [[1, 0]], "b": [[0, 1]]})
    connection = sqlite3.connect(path)  # as a person with the sqlite3 shell would
    with connection:
        for table in ("babies", "enrolments"):
            connection.execute(f"UPDATE {table} SET baby_id = ? WHERE baby_id = 'b'", (hostile,))
    connection.close()
    with Gallery.open(path) as gallery:
        for read in (gallery.babies, gallery.enrolment_records, gallery.centroids):
            with pytest.raises(DataError, match="edited outside cryprint") as error:
                read()
            assert not _TERMINAL_CONTROL.search(str(error.value))
        with pytest.raises(DataError):
            gallery.identify([1, 0], threshold=0.0)
    assert main(["gallery", "list", "--gallery", str(path)]) == DataError.exit_code
    assert main(["gallery", "list", "--gallery", str(path), "--json"]) == DataError.exit_code
    shown = capsys.readouterr()
    assert not _TERMINAL_CONTROL.search(shown.out + shown.err)
    # The repair: remove that baby, its id typed as the error wrote it.
    written = re.search(r"baby id '(.*)', which", shown.err)
    assert written is not None
    assert main(["gallery", "remove", "--gallery", str(path), "--baby", written[1]]) == 0
    assert not _TERMINAL_CONTROL.search(capsys.readouterr().out)
    with Gallery.open(path) as gallery:
        assert [baby.baby_id for baby in gallery.babies()] == ["a"]
        assert gallery.identify([0, 1], threshold=0.0).best.baby_id == "a"


def test_other_text_from_the_file_is_printed_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ward.db"
    _gallery_of(path, {"a": [[1, 0]]})
    _edit(
        path,
        "UPDATE enrolments SET source = 'cry' || char(27) || ']0;owned' || char(7)",
        "UPDATE babies SET created = 'today' || char(27) || '[2J'",
        "UPDATE meta SET value = 'model' || char(155) || '31m' WHERE key = 'model_source'",
    )
    assert main(["gallery", "list", "--gallery", str(path)]) == 0
    text = capsys.readouterr().out
    assert not _TERMINAL_CONTROL.search(text)
    assert "cry\\x1b]0;owned\\x07" in text and "today\\x1b[2J" in text and "model\\x9b31m" in text
    assert main(["gallery", "list", "--gallery", str(path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["babies"][0]["enrolments"][0]["source"] == "cry\x1b]0;owned\x07"


# 2. NFC and NFD spellings of an id are one baby.

NFC, NFD = unicodedata.normalize("NFC", "bébé"), unicodedata.normalize("NFD", "bébé")


def test_two_unicode_spellings_of_an_id_are_one_baby(tmp_path: Path) -> None:
    assert NFC != NFD and check_baby_id(NFD) == NFC == check_baby_id(NFC)
    path = tmp_path / "ward.db"
    _gallery_of(path, {NFC: [[1, 0]]})
    with Gallery.open(path) as gallery:
        again = gallery.enrol(NFD, [[1, 0.5]], ["second"])
        assert (again.baby_id, again.n_enrolments) == (NFC, 2)
        assert [(b.baby_id, b.n_enrolments) for b in gallery.babies()] == [(NFC, 2)]
        assert gallery.remove(NFD) == 2
        assert gallery.babies() == []


def test_a_previous_versions_decomposed_id_joins_its_composed_spelling(tmp_path: Path) -> None:
    """Before ids were normalised, both spellings could be stored as two babies."""
    path = tmp_path / "ward.db"
    _previous_version_gallery(path, {NFD: [1, 0], NFC: [1, 0.2], "z": [0, 1]})
    with Gallery.open(path) as gallery:
        assert [(b.baby_id, b.n_enrolments) for b in gallery.babies()] == [(NFC, 2), ("z", 1)]
        assert [r.baby_id for r in gallery.enrolment_records()] == [NFC, NFC, "z"]
        assert gallery.centroids()[0] == [NFC, "z"]
        assert gallery.enrol(NFC, [[1, 0.1]], ["third"]).n_enrolments == 3
        assert gallery.remove(NFC) == 3
        assert [b.baby_id for b in gallery.babies()] == ["z"]
    assert _rows(path)[1] == [(3, "z", "z.wav")]


# 3. An enrolment whose baby is not in the babies table makes no ghost baby.


def test_enrolments_of_a_baby_missing_from_the_babies_table_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ward.db"
    _gallery_of(path, {"a": [[1, 0]], "b": [[0, 1]]})
    _edit(path, "DELETE FROM babies WHERE baby_id = 'b'")
    with Gallery.open(path) as gallery:
        assert [baby.baby_id for baby in gallery.babies()] == ["a"]
        for read in (gallery.enrolment_records, gallery.centroids):
            with pytest.raises(DataError, match="enrolment 2 is of baby 'b', who is not in"):
                read()
        with pytest.raises(DataError, match="not in the babies table"):
            gallery.identify([0, 1], threshold=0.0)
    assert main(["gallery", "list", "--gallery", str(path)]) == DataError.exit_code
    assert "not in the babies table" in capsys.readouterr().err
    with Gallery.open(path) as gallery:
        assert gallery.remove("b") == 1  # the repair the message names
        assert gallery.identify([0, 1], threshold=-1.0, top=5).n_babies == 1


# 4. Objects cryprint did not create are refused before anything runs.

_FOREIGN_OBJECTS = {
    "trigger": "CREATE TRIGGER move AFTER INSERT ON enrolments BEGIN "
    "UPDATE enrolments SET baby_id = 'a' WHERE id = new.id; END",
    "view": "CREATE VIEW everyone AS SELECT baby_id FROM babies",
    "index": "CREATE INDEX by_source ON enrolments(source)",
    "table": "CREATE TABLE notes (text TEXT)",
    "changed table": "ALTER TABLE babies ADD COLUMN nurse TEXT DEFAULT 'x'",
}


@pytest.mark.parametrize("kind", sorted(_FOREIGN_OBJECTS))
def test_objects_cryprint_did_not_create_are_refused_and_left_unchanged(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ward.db"
    _gallery_of(path, {"a": [[1, 0]], "b": [[0, 1]]})
    _edit(path, _FOREIGN_OBJECTS[kind])
    before, rows = path.read_bytes(), _rows(path)
    for opening in (lambda: Gallery.open(path), lambda: Gallery.create_or_open(path, MODEL_A, 2)):
        with pytest.raises(DataError, match=r"not a cryprint gallery.*left unchanged"):
            opening().enrol("b", [[1, 1]], ["b-1"])
    for line in (["list"], ["remove", "--baby", "a"]):
        assert main(["gallery", line[0], "--gallery", str(path), *line[1:]]) == 3
    assert "not exactly what cryprint creates" in capsys.readouterr().err
    assert path.read_bytes() == before and _rows(path) == rows


def test_a_trigger_added_after_opening_is_refused_before_the_write(tmp_path: Path) -> None:
    path = tmp_path / "ward.db"
    _gallery_of(path, {"a": [[1, 0]]})
    with Gallery.open(path) as gallery:
        _edit(path, _FOREIGN_OBJECTS["trigger"])
        rows = _rows(path)
        with pytest.raises(DataError, match="not exactly what cryprint creates"):
            gallery.enrol("b", [[0, 1]], ["b-0"])
        with pytest.raises(DataError, match="not exactly what cryprint creates"):
            gallery.remove("a")
    assert _rows(path) == rows


# 5. A vector's size is checked before it is read.


def test_an_oversized_vector_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "ward.db"
    _gallery_of(path, {"a": [[1, 0]], "b": [[0, 1]]})
    size = 32 * 2**20
    _edit(path, f"UPDATE enrolments SET vector = zeroblob({size}) WHERE baby_id = 'b'")
    with Gallery.open(path) as gallery:
        tracemalloc.start()
        try:
            with pytest.raises(DataError, match=f"enrolment 2 of baby 'b'.*{size} bytes"):
                gallery.centroids()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 2**20


def test_a_damaged_vector_of_a_baby_id_with_braces_is_named(tmp_path: Path) -> None:
    # Found on the way: the message was built with str.format, so braces in an id broke it.
    path = tmp_path / "ward{s}.db"
    _gallery_of(path, {"cot{x}": [[1, 0]]})
    _edit(path, "UPDATE enrolments SET vector = x'00'")
    with Gallery.open(path) as gallery, pytest.raises(DataError) as error:
        gallery.centroids()
    assert "enrolment 1 of baby 'cot{x}' is damaged (1 bytes" in str(error.value)


# 6. A dangling symlink is named as one.


def test_a_dangling_symlink_as_the_gallery_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link, cry = tmp_path / "ward.db", tmp_path / "cry.wav"
    link.symlink_to(tmp_path / "moved" / "ward.db")
    cry.write_bytes(b"RIFF")
    for opening in (lambda: Gallery.open(link), lambda: Gallery.create_or_open(link, MODEL_A, 2)):
        with pytest.raises(DataError, match="is a link to a missing file") as error:
            opening()
        assert "give the gallery's real path" in str(error.value)
    with pytest.raises(DataError, match="is a link to a missing file"):
        enrol("no model is loaded before the gallery is checked", link, "x", [cry])
    assert main(["gallery", "list", "--gallery", str(link)]) == DataError.exit_code
    err = capsys.readouterr().err
    assert "link to a missing file" in err and "enroll" not in err
    assert link.is_symlink() and not (tmp_path / "moved").exists()


# 7. The audit table.


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() == timedelta(0)
    return moment


def _statements(gallery: Gallery) -> list[str]:
    seen: list[str] = []
    gallery._connection.set_trace_callback(seen.append)
    return seen


def _in_transactions(statements: list[str], wanted: str) -> int:
    """How many ``wanted`` statements ran between a BEGIN IMMEDIATE and its COMMIT."""
    inside, found = False, 0
    for statement in statements:
        inside = statement == "BEGIN IMMEDIATE" or (inside and statement != "COMMIT")
        found += inside and statement.startswith(wanted)
    return found


def test_every_change_is_audited_in_its_own_transaction(tmp_path: Path) -> None:
    with Gallery.create_or_open(tmp_path / "ward.db", MODEL_A, 2) as gallery:
        statements = _statements(gallery)
        gallery.enrol("a", [[1, 0], [1, 1]], ["a-0", "a-1"])
        gallery.enrol("b", [[0, 1]], ["b-0"], client="10.0.0.7")
        with pytest.raises(DataError, match="already enrolled"):
            gallery.enrol("c", [[0.5, 1], [0, 1]], ["c-0", "b's cry"], client="x")
        with pytest.raises(ConfigError, match="client"):
            gallery.enrol("c", [[0.5, 1]], ["c-0"], client="\x1b[2J")
        assert gallery.remove("a", client="ward page") == 2
        log = gallery.audit_log()
        assert [(r.action, r.baby_id, r.recordings, r.client) for r in log] == [
            ("remove", "a", 2, "ward page"),
            ("enrol", "b", 1, "10.0.0.7"),
            ("enrol", "a", 2, "cli"),
        ]
        assert isinstance(log[0], gallery_module.AuditRecord) and _utc(log[0].time) >= _utc(
            log[-1].time
        )
        assert gallery.audit_log(limit=1) == log[:1]
        with pytest.raises(ConfigError, match="limit"):
            gallery.audit_log(limit=0)
        assert _in_transactions(statements, "INSERT INTO audit") == 3  # none for the refused one
        assert [b.baby_id for b in gallery.babies()] == ["b"]


def test_a_previous_versions_gallery_gains_the_audit_table_on_its_first_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ward.db"
    _previous_version_gallery(path, {"a": [1, 0]})
    before = _rows(path)
    with Gallery.open(path, MODEL_A, 2) as gallery:  # read: nothing is added
        assert gallery.audit_log() == [] and gallery.identify([1, 0], 0.5).best.baby_id == "a"
        assert main(["gallery", "list", "--gallery", str(path)]) == 0
        assert _rows(path) == before
        statements = _statements(gallery)
        gallery.enrol("b", [[0, 1]], ["b.wav"], client="cli")
        assert _in_transactions(statements, "CREATE TABLE audit") == 1
        assert [(r.action, r.baby_id) for r in gallery.audit_log()] == [("enrol", "b")]
    with Gallery.open(path) as gallery:
        assert gallery.remove("a") == 1 and len(gallery.audit_log()) == 2
    _previous_version_gallery(tmp_path / "old.db", {"a": [1, 0]})
    _edit(tmp_path / "old.db", _FOREIGN_OBJECTS["view"])
    with pytest.raises(DataError, match="not exactly what cryprint creates"):
        Gallery.open(tmp_path / "old.db")


def test_gallery_list_shows_the_last_ten_changes_and_json_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ward.db"
    with Gallery.create_or_open(path, MODEL_A, 2) as gallery:
        for number in range(12):
            gallery.enrol(
                f"cot-{number}", [[1, number]], [f"{number}.wav"], client=f"nurse {number}"
            )
    assert main(["gallery", "list", "--gallery", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("audit"))
    assert all("audit" not in line for line in lines[:start])
    audit = lines[start + 1 :]
    assert len(audit) == 10 and "cot-2" in audit[0] and "nurse 11" in audit[-1]
    assert all("enrol" in line and "1 recording" in line for line in audit)
    assert main(["gallery", "list", "--gallery", str(path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["audit"]
    assert len(listed) == 12 and listed[0]["baby_id"] == "cot-11"
    assert set(listed[0]) == {"time", "action", "baby_id", "recordings", "client"}
