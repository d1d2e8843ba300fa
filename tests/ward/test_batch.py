"""A whole ward in one call: enrol from a list of baby,path rows and identify many cries, the
model loaded once; every row checked before anything is embedded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cryprint.cli import main
from cryprint.inference import api
from cryprint.ward.gallery import Gallery


def _recording(corpus: Path, baby: str, period: str) -> Path:
    (folder,) = corpus.glob(f"audio/*/{baby}/{period}")
    return folder


def test_a_ward_list_enrols_every_baby_with_one_model_load(
    small_corpus: Path, model_folder: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    loads = []
    original = api.CryPrint.__init__

    def counting(self, *args, **kwargs):
        loads.append(args)
        original(self, *args, **kwargs)

    monkeypatch.setattr(api.CryPrint, "__init__", counting)
    ward = tmp_path / "ward.csv"
    rows = [
        ("cot 1", _recording(small_corpus, "anonymous000", "B")),
        ("cot 2", _recording(small_corpus, "anonymous001", "B")),
        ("cot 1", _recording(small_corpus, "anonymous000", "D")),
    ]
    ward.write_text("baby,path\n" + "".join(f"{baby},{path}\n" for baby, path in rows))
    gallery = tmp_path / "ward.db"
    base = ["--gallery", str(gallery), "--model", str(model_folder)]
    assert main(["enroll", *base, "--list", str(ward)]) == 0
    assert len(loads) == 1
    with Gallery.open(gallery) as opened:
        assert [(b.baby_id, b.n_enrolments) for b in opened.babies()] == [
            ("cot 1", 2),
            ("cot 2", 1),
        ]
    out = capsys.readouterr().out
    assert "enrolled 3 recording(s) of 2 babies in" in out
    cries = [_recording(small_corpus, baby, "D") for baby in ("anonymous001", "anonymous002")]
    listed = tmp_path / "cries.txt"
    listed.write_text(f"# two cries\n{cries[0]}\n\n{cries[1]}\n")
    loads.clear()
    assert main(["identify", *base, "--list", str(listed), "--threshold", "0.99", "--json"]) == 0
    answers = json.loads(capsys.readouterr().out)
    assert [a["cry"] for a in answers] == [str(c) for c in cries] and len(loads) == 1
    assert main(["identify", *base, str(cries[0]), str(cries[1]), "--threshold", "0.99"]) == 0
    text = capsys.readouterr().out
    assert text.count("== ") == 2 and f"== {cries[1]}" in text
    # What the answers share (the rule, where the threshold came from) is said once, at the end.
    answers, shared = text.split("\nfor every cry:\n")
    assert shared.strip() and all(line not in answers for line in shared.splitlines())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("baby\ncot 1\n", "columns baby,path"),
        ("baby,path\n,audio\n", "line 2"),
        ("baby,path\ncot 1,no/such/recording\n", "no such audio file or folder"),
    ],
)
def test_a_bad_ward_list_is_refused_before_any_embedding(
    model_folder: Path, tmp_path: Path, capsys, content: str, message: str
) -> None:
    ward = tmp_path / "ward.csv"
    ward.write_text(content)
    gallery = tmp_path / "ward.db"
    code = main(["enroll", "--gallery", str(gallery), "--model", str(model_folder),
                 "--list", str(ward)])  # fmt: skip
    assert code in (3, 4) and message in capsys.readouterr().err
    assert not gallery.exists()


def test_one_baby_or_a_list_not_both(model_folder: Path, tmp_path: Path, capsys) -> None:
    base = ["enroll", "--gallery", str(tmp_path / "w.db"), "--model", str(model_folder)]
    assert main([*base, "--baby", "a", "--list", str(tmp_path / "w.csv")]) == 2
    assert "--baby and its recordings, or --list" in capsys.readouterr().err
    assert main([*base, "--baby", "a"]) == 2
