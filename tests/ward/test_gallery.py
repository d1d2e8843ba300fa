"""The gallery: enrolment, open-set identification, model identity, and crash safety."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from cryprint.cli import main
from cryprint.data.inputs import recording_files
from cryprint.errors import ConfigError, DataError, ModelError
from cryprint.inference.api import CryPrint
from cryprint.inference.options import EmbeddingOptions
from cryprint.inference.store import EmbeddingStore, audio_key
from cryprint.models.ecapa import CryEmbedder, ModelConfig
from cryprint.models.folder import save_model_folder
from cryprint.scoring.ranking import baby_centroids
from cryprint.ward.enrol import enrol
from cryprint.ward.gallery import Gallery, check_baby_id
from cryprint.ward.identify import WardQuestion, identify

MODEL_A = "a" * 64
MODEL_B = "b" * 64


def _tiny_model_folder(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    return save_model_folder(CryEmbedder(ModelConfig.small(16)).eval(), folder, {"seed": seed})


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_model_folder(tmp_path_factory.mktemp("gallery-model") / "model", seed=0)


@pytest.fixture(scope="module")
def embedder(model_folder: Path) -> CryPrint:
    return CryPrint(model_folder)


def _recording(corpus: Path, baby_id: str, period: str) -> Path:
    """The folder of segments of one (baby, period) of the synthetic corpus."""
    (folder,) = corpus.glob(f"audio/*/{baby_id}/{period}")
    return folder


def _babies_with_both_periods(corpus: Path) -> list[str]:
    babies = {path.parent.name for path in corpus.glob("audio/*/*/B")}
    return sorted(baby for baby in babies if any(corpus.glob(f"audio/*/{baby}/D")))


def _gallery_of(path: Path, enrolments: dict[str, list[list[float]]], dim: int) -> Gallery:
    gallery = Gallery.create_or_open(path, MODEL_A, dim)
    for baby_id, vectors in enrolments.items():
        gallery.enrol(baby_id, vectors, [f"{baby_id}-{i}" for i in range(len(vectors))])
    return gallery


def _naive_ranking(enrolments: dict[str, np.ndarray], cry: np.ndarray) -> list[tuple[str, float]]:
    """Baby by baby: mean of the unit enrolments, scaled to unit length, dotted with the unit
    cry; sorted by score then id."""
    scored = []
    for baby_id, vectors in enrolments.items():
        mean = sum(vector / np.linalg.norm(vector) for vector in vectors)
        centroid = mean / np.linalg.norm(mean)
        scored.append((baby_id, float(centroid @ (cry / np.linalg.norm(cry)))))
    return sorted(scored, key=lambda item: (-item[1], item[0]))


def test_centroid_is_the_normalised_mean_of_unit_enrolments(tmp_path: Path) -> None:
    # Baby "a" enrolled at 0° and 90° with different lengths: its direction is 45°, whatever
    # the lengths. A cry at 45° scores 1 against "a" and -cos(45°) against "b" (at 180°).
    gallery = _gallery_of(tmp_path / "g.db", {"a": [[3, 0], [0, 0.5]], "b": [[-1, 0]]}, dim=2)
    babies, centroids, counts = gallery.centroids()
    assert babies == ["a", "b"] and counts.tolist() == [2, 1]
    np.testing.assert_allclose(centroids[0], [2**-0.5, 2**-0.5])
    result = gallery.identify([1, 1], threshold=0.5)
    assert [c.baby_id for c in result.candidates] == ["a", "b"]
    assert result.candidates[0].score == pytest.approx(1.0)
    assert result.candidates[1].score == pytest.approx(-(2**-0.5))
    assert result.candidates[0].n_enrolments == 2 and not result.none_of_these
    with pytest.raises(DataError, match="cancel out"):
        baby_centroids(["c", "c"], [[1.0, 0.0], [-2.0, 0.0]])


def test_ranking_matches_a_naive_loop(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    enrolments = {f"baby{i:02d}": rng.normal(size=(1 + i % 3, 8)) for i in range(7)}
    enrolments["twin"] = enrolments["baby03"].copy() * 2  # same direction: a tie, ranked by id
    gallery = Gallery.create_or_open(tmp_path / "g.db", MODEL_A, 8)
    for baby_id, vectors in enrolments.items():
        # audio keys given: the twin's vectors differ from baby03's only by their length
        keys = [f"{baby_id}/{i}" for i in range(len(vectors))]
        gallery.enrol(baby_id, vectors, keys, audio_keys=keys)
    for cry in [*rng.normal(size=(10, 8)), enrolments["baby03"][0]]:
        result = gallery.identify(cry, threshold=0.0, top=len(enrolments))
        expected = _naive_ranking(enrolments, cry)
        assert [c.baby_id for c in result.candidates] == [baby for baby, _ in expected]
        scores = [c.score for c in result.candidates]  # stored as float32: ~1e-7 apart
        np.testing.assert_allclose(scores, [score for _, score in expected], atol=1e-6)
    top3 = gallery.identify(enrolments["baby03"][0], threshold=0.0, top=3)
    assert [c.baby_id for c in top3.candidates][:2] == ["baby03", "twin"]
    assert len(top3.candidates) == 3 and top3.n_babies == len(enrolments)


def test_open_set_none_of_these_below_the_threshold(tmp_path: Path) -> None:
    gallery = _gallery_of(tmp_path / "g.db", {"a": [[1, 0]], "b": [[0, 1]]}, dim=2)
    cry = [3, 1]  # closer to "a"
    best = gallery.identify(cry, threshold=-1.0).best.score
    at_best = gallery.identify(cry, threshold=best, threshold_source="test point")
    assert not at_best.none_of_these and at_best.best.baby_id == "a"  # score >= threshold
    above = gallery.identify(cry, threshold=best + 1e-6)
    assert above.none_of_these and above.best.baby_id == "a"  # still reported, not accepted
    assert above.to_dict()["best"] is None and at_best.to_dict()["best"] == "a"
    assert at_best.threshold_source == "test point"
    with pytest.raises(ConfigError):
        gallery.identify(cry, threshold=float("nan"))
    with pytest.raises(ConfigError):
        gallery.identify(cry, threshold=0.0, top=0)


def test_enrolled_recordings_identify_their_own_baby(
    small_corpus: Path, embedder: CryPrint, tmp_path: Path
) -> None:
    """Every baby's B enrolled; each B finds itself first with score ~1, and each D finds its
    baby far more often than chance. The model is an untrained tiny ECAPA, so D-to-B accuracy
    is modest; its seed and the corpus are fixed, and a ranking that mixed babies up would be
    at chance (1/N top-1)."""
    babies = _babies_with_both_periods(small_corpus)
    gallery_path = tmp_path / "ward.db"
    for baby_id in babies:
        result = enrol(embedder, gallery_path, baby_id, [_recording(small_corpus, baby_id, "B")])
        assert (result.added, result.n_enrolments) == (1, 1)
    top1 = top5 = 0
    for baby_id in babies:
        at_half = WardQuestion(threshold=0.5)
        itself = identify(embedder, gallery_path, _recording(small_corpus, baby_id, "B"), at_half)
        assert itself.best.baby_id == baby_id and itself.best.score > 0.9999
        later = identify(embedder, gallery_path, _recording(small_corpus, baby_id, "D"), at_half)
        ranked = [candidate.baby_id for candidate in later.candidates]
        top1 += ranked[0] == baby_id
        top5 += baby_id in ranked
    chance = 1 / len(babies)
    assert len(babies) >= 20
    assert top1 / len(babies) > 4 * chance and top5 / len(babies) > 2 * 5 * chance


def test_another_models_gallery_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ward.db"
    _gallery_of(path, {"a": [[1, 0]]}, dim=2).close()
    before = path.read_bytes()
    with pytest.raises(ModelError, match="not of this model"):
        Gallery.open(path, MODEL_B, 2)
    with pytest.raises(ModelError):
        Gallery.create_or_open(path, MODEL_B, 2)
    with pytest.raises(ModelError):
        Gallery.open(path, MODEL_A, 3)  # same id, other dimension
    assert path.read_bytes() == before
    with Gallery.open(path, MODEL_A, 2) as gallery:
        assert [baby.baby_id for baby in gallery.babies()] == ["a"]


def test_cli_refuses_another_models_gallery(
    small_corpus: Path, model_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gallery, cry = tmp_path / "ward.db", _recording(small_corpus, "anonymous000", "B")
    other = _tiny_model_folder(tmp_path / "other", seed=1)
    enrol = ["enroll", "--gallery", str(gallery), "--baby", "x", str(cry)]
    assert main([*enrol, "--model", str(model_folder)]) == 0
    before = gallery.read_bytes()
    assert main([*enrol, "--model", str(other)]) == ModelError.exit_code
    query = ["identify", "--gallery", str(gallery), "--threshold", "0.5", str(cry)]
    assert main([*query, "--model", str(other)]) == ModelError.exit_code
    assert "not of this model" in capsys.readouterr().err
    assert gallery.read_bytes() == before


def test_a_gallery_embedded_otherwise_is_refused(
    small_corpus: Path, model_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Enrolled with 3 TTA views, a cry embedded with 1 view (or untrimmed) is refused, naming
    both ways; the same options identify. Before the gallery recorded how it was embedded,
    both were accepted and compared embeddings of different kinds."""
    gallery, cry = tmp_path / "ward.db", _recording(small_corpus, "anonymous000", "B")
    model = ["--model", str(model_folder)]
    assert main(["enroll", "--gallery", str(gallery), *model, "--tta", "3", "--baby", "x",
                 str(cry)]) == 0  # fmt: skip
    before = gallery.read_bytes()
    query = ["identify", "--gallery", str(gallery), *model, "--threshold", "0.5", str(cry)]
    assert main(query) == ConfigError.exit_code
    err = capsys.readouterr().err
    assert "3 TTA views, trimmed" in err and "1 TTA view, trimmed" in err and "--tta" in err
    assert main([*query, "--tta", "3", "--no-trim"]) == ConfigError.exit_code
    again = ["enroll", "--gallery", str(gallery), *model, "--baby", "y", str(cry)]
    assert main(again) == ConfigError.exit_code  # an enrolment made otherwise, too
    assert gallery.read_bytes() == before
    assert main([*query, "--tta", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["best"] == "x"
    assert main(["gallery", "list", "--gallery", str(gallery)]) == 0
    assert "(torch fp32, 3 TTA views, trimmed)" in capsys.readouterr().out


def test_bf16_and_fp32_share_a_gallery_and_older_galleries_still_open(
    small_corpus: Path, model_folder: Path, tmp_path: Path
) -> None:
    """precision="auto" picks bf16 on some machines and fp32 on others: a gallery enrolled on
    one serves the other (cosine >= 0.9999). A gallery made before the embedding was recorded
    is checked by model only."""
    cry = _recording(small_corpus, "anonymous001", "B")
    gallery = tmp_path / "ward.db"
    bf16 = EmbeddingOptions(precision="bf16")
    enrol(model_folder, gallery, "x", [cry], embedding=bf16)
    at_half = WardQuestion(threshold=0.5)
    found = identify(
        model_folder, gallery, cry, at_half, embedding=EmbeddingOptions(precision="fp32")
    )
    assert found.best.baby_id == "x" and found.best.score > 0.999
    older = tmp_path / "older.db"
    loaded = CryPrint(model_folder, store=False)
    with Gallery.create_or_open(older, loaded.model_id, loaded.embedding_dim) as g:
        g.enrol("x", [np.ones(loaded.embedding_dim)], ["x-0"])
        assert "scoring_key" not in g.meta
    tta2 = EmbeddingOptions(tta=2)
    assert identify(model_folder, older, cry, at_half, embedding=tta2).n_babies == 1


def _sqlite_without_meta(path: Path) -> None:
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode = WAL")
    with connection:
        connection.execute("CREATE TABLE embeddings (key TEXT, vector BLOB)")
        connection.execute("INSERT INTO embeddings VALUES ('x', x'00')")
    connection.close()


@pytest.mark.parametrize("kind", ["text", "empty", "random bytes", "sqlite without meta"])
def test_not_a_gallery_is_refused_and_left_unchanged(
    kind: str, small_corpus: Path, model_folder: Path, tmp_path: Path
) -> None:
    path = tmp_path / "ward.db"
    if kind == "sqlite without meta":
        _sqlite_without_meta(path)
    else:
        contents = {"text": b"babies: 1\n", "empty": b"", "random bytes": os.urandom(4096)}
        path.write_bytes(contents[kind])
    before, siblings = path.read_bytes(), sorted(tmp_path.iterdir())
    with pytest.raises(DataError, match="not a cryprint gallery"):
        Gallery.open(path)
    with pytest.raises(DataError, match="not a cryprint gallery"):
        Gallery.create_or_open(path, MODEL_A, 2)
    cry = str(_recording(small_corpus, "anonymous000", "B"))
    model = ["--model", str(model_folder)]
    assert main(["enroll", "--gallery", str(path), *model, "--baby", "x", cry]) == 3
    assert main(["identify", "--gallery", str(path), *model, "--threshold", "0", cry]) == 3
    assert main(["gallery", "list", "--gallery", str(path)]) == 3
    assert main(["gallery", "remove", "--gallery", str(path), "--baby", "x"]) == 3
    assert path.read_bytes() == before and sorted(tmp_path.iterdir()) == siblings


def test_remove_takes_a_baby_out_of_every_ranking(tmp_path: Path) -> None:
    enrolments = {"a": [[1, 0, 0], [1, 0.1, 0]], "b": [[0, 1, 0]], "c": [[0, 0, 1]]}
    gallery = _gallery_of(tmp_path / "g.db", enrolments, dim=3)
    assert gallery.identify([1, 0, 0], threshold=0.5).best.baby_id == "a"
    assert gallery.remove("a") == 2
    assert [baby.baby_id for baby in gallery.babies()] == ["b", "c"]
    result = gallery.identify([1, 0, 0], threshold=0.5, top=5)
    assert {c.baby_id for c in result.candidates} == {"b", "c"} and result.none_of_these
    with pytest.raises(DataError, match="no baby 'a'"):
        gallery.remove("a")
    assert gallery.enrolments()[0] == ["b", "c"]  # no orphan enrolment left behind


def test_repeats_skipped_and_one_recording_never_two_babies(tmp_path: Path) -> None:
    gallery = _gallery_of(tmp_path / "g.db", {"a": [[1, 0]]}, dim=2)
    again = gallery.enrol("a", [[1, 0], [0, 1]], ["a-0 again", "a-1"])
    assert (again.added, again.skipped, again.n_enrolments) == (1, ("a-0 again",), 2)
    with pytest.raises(DataError, match="already enrolled for baby 'a'"):
        gallery.enrol("b", [[1, 1], [0, 1]], ["b-0", "a's recording"])
    # the whole enrolment of "b" was rolled back: neither the baby nor its first recording
    assert [baby.baby_id for baby in gallery.babies()] == ["a"]
    assert len(gallery.enrolments()[0]) == 2


@pytest.mark.parametrize("baby_id", ["", " cot-1", "cot\n1", "x" * 65, "bad\x00id"])
def test_invalid_baby_ids_are_refused(baby_id: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        check_baby_id(baby_id)
    gallery = _gallery_of(tmp_path / "g.db", {}, dim=2)
    with pytest.raises(ConfigError):
        gallery.enrol(baby_id, [[1, 0]], ["x"])
    assert gallery.babies() == []


@pytest.mark.parametrize("baby_id", ["0133", "cot-12 (twin A)", "x" * 64, "Zoë"])
def test_valid_baby_ids_are_kept_as_given(baby_id: str) -> None:
    assert check_baby_id(baby_id) == baby_id


@pytest.mark.parametrize(
    ("blob", "problem"),
    [
        (np.ones(3, np.float32).tobytes(), "12 bytes"),
        (np.full(2, np.nan, np.float32), "non-finite"),
    ],
)
def test_a_damaged_enrolment_is_named(blob: object, problem: str, tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    _gallery_of(path, {"a": [[1, 0]], "b": [[0, 1]]}, dim=2).close()
    connection = sqlite3.connect(path)
    with connection:
        data = blob.tobytes() if isinstance(blob, np.ndarray) else blob
        connection.execute("UPDATE enrolments SET vector = ? WHERE baby_id = 'b'", (data,))
    connection.close()
    with Gallery.open(path) as gallery, pytest.raises(DataError) as error:
        gallery.identify([1, 0], threshold=0.0)
    assert "enrolment 2 of baby 'b'" in str(error.value) and problem in str(error.value)


_KILLED_ENROLMENT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import numpy as np
    from cryprint.ward.gallery import Gallery

    gallery_path, report = Path(sys.argv[1]), Path(sys.argv[2])
    gallery = Gallery.open(gallery_path)
    connection = gallery._connection  # the test watches the real enrolment's statements
    # A tiny page cache makes SQLite spill the uncommitted rows into the WAL file before the
    # commit, so the kill leaves uncommitted data on disk, not only in memory.
    connection.execute("PRAGMA cache_size = 1")
    inserted = 0

    def kill_on_the_20th_insert(statement):
        global inserted
        if statement.startswith("INSERT INTO enrolments"):
            inserted += 1
            if inserted == 20:
                wal = Path(str(gallery_path) + "-wal")
                report.write_text(f"{inserted - 1} {wal.stat().st_size}")
                os.kill(os.getpid(), signal.SIGKILL)

    connection.set_trace_callback(kill_on_the_20th_insert)
    vectors = np.random.default_rng(0).normal(size=(40, gallery.dim))
    gallery.enrol("newborn", vectors, [f"cry {i}" for i in range(40)])
    """
)


def test_sigkill_mid_enrolment_leaves_the_gallery_as_before(tmp_path: Path) -> None:
    path, report = tmp_path / "ward.db", tmp_path / "report.txt"
    dim = 2048  # 8 KiB per vector: the uncommitted rows overflow the one-page cache
    rng = np.random.default_rng(1)
    with Gallery.create_or_open(path, MODEL_A, dim) as gallery:
        gallery.enrol("first", rng.normal(size=(2, dim)), ["f0", "f1"])
        before = (gallery.babies(), gallery.enrolments())
    wal = tmp_path / "ward.db-wal"
    wal_size_at_start = wal.stat().st_size if wal.exists() else 0
    script = tmp_path / "killed.py"
    script.write_text(_KILLED_ENROLMENT)
    process = subprocess.run(
        [sys.executable, str(script), str(path), str(report)], capture_output=True, timeout=120
    )
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()[-2000:]
    uncommitted_rows, wal_size = map(int, report.read_text().split())
    assert uncommitted_rows == 19 and wal_size > wal_size_at_start + 19 * 4 * dim // 2
    with Gallery.open(path, MODEL_A, dim) as gallery:
        assert gallery._connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert gallery._connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        after = (gallery.babies(), gallery.enrolments())
        assert after[0] == before[0] and after[1][0] == before[1][0]
        np.testing.assert_array_equal(after[1][1], before[1][1])
        # and the gallery still takes the enrolment that was killed
        assert gallery.enrol("newborn", rng.normal(size=(3, dim)), ["a", "b", "c"]).added == 3


def test_cli_enroll_identify_list_remove(
    small_corpus: Path, model_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gallery, model = str(tmp_path / "ward.db"), ["--model", str(model_folder)]
    first, second = "anonymous000", "anonymous001"
    b_first, d_first = (str(_recording(small_corpus, first, p)) for p in "BD")
    assert main(["enroll", "--gallery", gallery, *model, "--baby", "cot 1", b_first, d_first]) == 0
    second_b = str(_recording(small_corpus, second, "B"))
    assert main(["enroll", "--gallery", gallery, *model, "--baby", "cot 2", second_b]) == 0
    assert main(["enroll", "--gallery", gallery, *model, "--baby", "cot 2", second_b]) == 0
    assert "skipped" in capsys.readouterr().out
    assert main(["gallery", "list", "--gallery", gallery, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(b["baby_id"], b["n_enrolments"]) for b in listed["babies"]] == [
        ("cot 1", 2),
        ("cot 2", 1),
    ]
    assert listed["model_id"] == CryPrint(model_folder, store=False).model_id
    query = ["identify", "--gallery", gallery, *model, second_b]
    assert main([*query, "--threshold", "0.5"]) == 0  # the tiny model: both babies reach it
    assert capsys.readouterr().out.startswith("review: more than one baby is likely: cot 2, cot 1")
    assert main([*query, "--threshold", "0.9999"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "most likely cot 2"  # no calibration: no probability
    assert any(line.startswith("rule: a baby is named when its score reaches 0.9999 (given)")
               for line in out)  # fmt: skip
    assert any(line.startswith("probabilities: none: ") for line in out)
    assert main([*query, "--threshold", "1.5"]) == 0
    assert capsys.readouterr().out.startswith("none of these babies\n")
    assert main([*query, "--threshold", "0.9999", "--json", "--top", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["best"] == "cot 2" and len(result["candidates"]) == 1
    assert main(query) == ConfigError.exit_code  # no rule given, nothing stored: refused
    assert "pass --threshold" in capsys.readouterr().err
    assert main(["gallery", "remove", "--gallery", gallery, "--baby", "cot 2"]) == 0
    assert "removed baby cot 2 and its 1 enrolment(s)" in capsys.readouterr().out
    assert main([*query, "--threshold", "0.5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["candidates"][0]["baby_id"] == "cot 1"


def test_every_input_is_checked_before_any_embedding(
    small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A model of its own, so the session's embedding store holds nothing of it yet.
    folder = _tiny_model_folder(tmp_path / "fresh", seed=5)
    model_id = CryPrint(folder, store=False).model_id
    good = _recording(small_corpus, "anonymous002", "B")
    gallery = tmp_path / "ward.db"
    model = ["--model", str(folder)]
    enrol = ["enroll", "--gallery", str(gallery), *model, "--baby", "x", str(good)]
    assert main([*enrol, str(tmp_path / "missing.wav")]) == 4
    assert main([*enrol[:-3], "--baby", "x" * 65, str(good)]) == ConfigError.exit_code
    assert main(["identify", "--gallery", str(gallery), *model, "--threshold", "0", str(good)]) == 3
    assert "no such gallery" in capsys.readouterr().err
    assert not gallery.exists()
    store = EmbeddingStore(os.environ["CRYPRINT_STORE"])
    assert store.get(model_id, [audio_key(files=recording_files(good))]) == {}
