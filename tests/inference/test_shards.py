"""embed --shard K/N and embed-merge: the shards partition the split, the merge equals the
unsharded embedding, and any missing, repeated or foreign part is refused with nothing written."""

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from cryprint.cli import main
from cryprint.errors import ConfigError, DataError, OutputError
from cryprint.inference.api import CryPrint
from cryprint.inference.options import EmbeddingOptions
from cryprint.inference.shards import Shard, merge_shards, parse_shard
from cryprint.inference.splits import embed_split, load_embeddings
from cryprint.inference.store import EmbeddingStore


def test_shards_partition_any_list() -> None:
    for n in (4, 7, 10):
        for count in (1, 3, 4):
            rows = [row for k in range(1, count + 1) for row in Shard(k, count).rows(n)]
            assert sorted(rows) == list(range(n))  # every item once
    assert parse_shard(" 2 / 8 ") == Shard(2, 8)
    assert str(Shard(2, 8)) == "2/8"
    for text in ("0/4", "5/4", "a/b", "2", "-1/3", "1/0"):
        with pytest.raises(ConfigError, match=r"K/N|1 <= K <= N"):
            parse_shard(text)


@pytest.mark.parametrize(
    "text", ["1/99999999999999999999", "1/100001", "1/" + "9" * 100_000, "9" * 5000 + "/3"]
)
def test_absurd_shard_counts_are_refused_at_once_and_briefly(text: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ConfigError) as error:
        parse_shard(text)
    assert time.perf_counter() - started < 0.5
    assert len(str(error.value)) < 300


def test_more_shards_than_recordings_are_refused(small_corpus: Path, make_model) -> None:
    model = make_model(0)
    n = len(embed_split(model, small_corpus, "test", store=False).keys)
    with pytest.raises(ConfigError, match=rf"shard 1/{n + 1}: .* {n} ") as error:
        embed_split(model, small_corpus, "test", shard=Shard(1, n + 1), store=False)
    assert len(str(error.value)) < 300
    with pytest.raises(ConfigError, match="1/3"):
        Shard(1, 3).rows(2)


def _parts(model, root: Path, folder: Path, count: int, store: Path) -> list[Path]:
    folder.mkdir(exist_ok=True)
    paths = []
    for k in range(1, count + 1):
        path = folder / f"part{k}-of-{count}.npz"
        embed_split(model, root, "dev", path, shard=Shard(k, count), store=store)
        paths.append(path)
    return paths


def test_merged_shards_are_the_whole_split(small_corpus: Path, make_model, tmp_path: Path) -> None:
    model = make_model(0)
    parts = _parts(model, small_corpus, tmp_path, 3, tmp_path / "jobs.sqlite")
    sizes = [len(load_embeddings(part).keys) for part in parts]
    whole = embed_split(model, small_corpus, "dev", store=False)
    assert sum(sizes) == len(whole.keys) and max(sizes) - min(sizes) <= 1
    merged = merge_shards(parts[::-1], small_corpus, tmp_path / "dev.npz")
    assert merged.keys == whole.keys
    np.testing.assert_array_equal(merged.embeddings, whole.embeddings)
    assert load_embeddings(tmp_path / "dev.npz").keys == whole.keys


def _edit_part(path: Path, **changes: object) -> None:
    """Rewrite a part by hand, as anyone can with np.savez."""
    with np.load(path, allow_pickle=False) as stored:
        data = {name: stored[name] for name in stored.files}
    data.update({name: np.array(value) for name, value in changes.items()})
    np.savez(path, **data)


def test_a_merge_puts_nothing_into_the_embedding_store(
    small_corpus: Path, make_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hand-edited part (one row negated) is the user's file, never the store's: the store
    only holds what a process computed, so a later verification cannot be fooled by it."""
    model = make_model(0)
    parts = _parts(model, small_corpus, tmp_path, 2, tmp_path / "jobs.sqlite")
    edited = load_embeddings(parts[0]).embeddings
    edited[0] = -edited[0]
    _edit_part(parts[0], embeddings=edited)
    local = tmp_path / "local.sqlite"
    monkeypatch.setenv("CRYPRINT_STORE", str(local))  # the default store
    merged = merge_shards(parts, small_corpus, tmp_path / "dev.npz")
    assert not local.exists() or EmbeddingStore(local).count() == 0
    counter = CryPrint(model, store=local)
    honest = embed_split(counter, small_corpus, "dev")
    assert counter.computed == len(merged.keys)  # nothing came from the merge
    row = merged.keys.index(load_embeddings(parts[0]).keys[0])
    np.testing.assert_array_equal(honest.embeddings[row], -merged.embeddings[row])


def test_the_same_part_given_twice_is_refused(
    small_corpus: Path, make_model, tmp_path: Path
) -> None:
    parts = _parts(make_model(0), small_corpus, tmp_path, 2, tmp_path / "jobs.sqlite")
    out = tmp_path / "merged.npz"
    for again in (parts[0], tmp_path / "." / parts[0].name, str(parts[0])):
        with pytest.raises(DataError, match="given twice"):
            merge_shards([*parts, again], small_corpus, out)
    link = tmp_path / "link.npz"
    link.symlink_to(parts[1])
    with pytest.raises(DataError, match="given twice"):
        merge_shards([*parts, link], small_corpus, out)
    assert not out.exists()


@pytest.mark.parametrize("count", ["1000000", "99999999999999999999", "9" * 5000])
def test_parts_of_absurd_shard_counts_are_refused_at_once_and_briefly(
    small_corpus: Path, make_model, tmp_path: Path, count: str
) -> None:
    """Hand-edited parts claiming to be 2 of a million (or of 1e20) shards: refused within a
    second, in a short message, without building the list of the missing ones."""
    parts = _parts(make_model(0), small_corpus, tmp_path, 2, tmp_path / "jobs.sqlite")
    for k, part in enumerate(parts, 1):
        _edit_part(part, shard=f"{k}/{count}")
    started = time.perf_counter()
    with pytest.raises(DataError) as error:
        merge_shards(parts, small_corpus, tmp_path / "merged.npz")
    assert time.perf_counter() - started < 1.0
    assert len(str(error.value)) < 500


def test_refusals_list_a_few_items_and_a_count(
    small_corpus: Path, make_model, tmp_path: Path
) -> None:
    model = make_model(0)
    first = tmp_path / "p1.npz"
    embed_split(model, small_corpus, "dev", first, shard=Shard(1, 8), store=False)
    with pytest.raises(DataError, match=r"shard\(s\) 2/8, 3/8, 4/8 and 4 more missing") as error:
        merge_shards([first], small_corpus, tmp_path / "merged.npz")
    assert len(str(error.value)) < 300
    parts = _parts(model, small_corpus, tmp_path, 2, tmp_path / "jobs.sqlite")
    strangers = [f"X{i:05d}" * 20 for i in range(50)]  # long keys not of the split
    part = load_embeddings(parts[0])
    how = part.store_keys[0].partition("|")[2]  # the same TTA views and trimming
    _edit_part(
        parts[0],
        keys=np.array([*part.keys, *strangers]),
        embeddings=np.ones((len(part.keys) + len(strangers), part.dim), np.float32),
        store_keys=np.array([*part.store_keys, *(f"{k}|{how}" for k in strangers)]),
    )
    with pytest.raises(DataError, match="50 not in it") as error:
        merge_shards(parts, small_corpus, tmp_path / "merged.npz")
    assert len(str(error.value)) < 500


def test_bad_sets_of_parts_are_refused(small_corpus: Path, make_model, tmp_path: Path) -> None:
    model = make_model(0)
    store = tmp_path / "jobs.sqlite"
    parts = _parts(model, small_corpus, tmp_path / "three", 3, store)
    out = tmp_path / "merged.npz"
    with pytest.raises(DataError, match=r"shard\(s\) 2/3 missing"):
        merge_shards([parts[0], parts[2]], small_corpus, out)
    twice = tmp_path / "copy.npz"
    shutil.copyfile(parts[1], twice)
    with pytest.raises(DataError, match="shard 2/3 is given twice"):
        merge_shards([*parts, twice], small_corpus, out)
    halves = _parts(model, small_corpus, tmp_path / "two", 2, store)
    with pytest.raises(DataError, match="split the data differently"):
        merge_shards([*parts, halves[0]], small_corpus, out)
    other = _parts(make_model(1), small_corpus, tmp_path / "other", 3, store)
    with pytest.raises(DataError, match="differ in model id"):
        merge_shards([*parts[:2], other[2]], small_corpus, out)
    embed_split(model, small_corpus, "dev", tmp_path / "whole.npz", store=store)
    with pytest.raises(DataError, match="not a shard"):
        merge_shards([tmp_path / "whole.npz"], small_corpus, out)
    assert not out.exists()


def test_changed_audio_is_refused(corpus_copy: Path, make_model, tmp_path: Path) -> None:
    parts = _parts(make_model(0), corpus_copy, tmp_path / "p", 2, tmp_path / "jobs.sqlite")
    segment = next((corpus_copy / "audio" / "dev").rglob("*.wav"))
    data = segment.read_bytes()
    segment.unlink()  # a hard link to the shared corpus: replace, never write through it
    segment.write_bytes(data)
    with pytest.raises(DataError, match="changed since the parts were embedded"):
        merge_shards(parts, corpus_copy, tmp_path / "merged.npz")
    assert not (tmp_path / "merged.npz").exists()


def test_cli_shard_and_merge(
    small_corpus: Path, model_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base = ["embed", "--model", str(model_folder), "--data", str(small_corpus), "--split", "test"]
    for k in (1, 2):
        assert main([*base, "--out", str(tmp_path / f"p{k}.npz"), "--shard", f"{k}/2"]) == 0
    assert "(shard 2/2)" in capsys.readouterr().out
    parts = [str(tmp_path / "p1.npz"), str(tmp_path / "p2.npz")]
    merge = ["embed-merge", "--data", str(small_corpus), "--out", str(tmp_path / "all.npz")]
    assert main([*merge, *parts]) == 0
    assert "merged 2 shards" in capsys.readouterr().out
    (tmp_path / "all.npz").unlink()
    assert main([*merge, parts[0]]) == 3  # a data error
    assert "2/2 missing" in capsys.readouterr().err
    assert main([*merge, str(tmp_path / "nothing.npz")]) == 3
    assert not (tmp_path / "all.npz").exists()
    with pytest.raises(SystemExit) as error:
        main([*base, "--out", str(tmp_path / "p3.npz"), "--shard", "3/2"])
    assert error.value.code == 2
    assert main([*merge, *parts, parts[0]]) == 3  # the same part twice
    assert "given twice" in capsys.readouterr().err


def test_cli_refuses_absurd_shards_at_once_and_briefly(
    small_corpus: Path, model_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base = ["embed", "--model", str(model_folder), "--data", str(small_corpus), "--split", "test"]
    out = tmp_path / "p.npz"
    started = time.perf_counter()
    with pytest.raises(SystemExit) as error:
        main([*base, "--out", str(out), "--shard", "1/99999999999999999999"])
    assert error.value.code == 2 and time.perf_counter() - started < 0.5
    assert len(capsys.readouterr().err) < 1000  # the usage line and one short message
    n = len(embed_split(model_folder, small_corpus, "test", store=False).keys)
    assert main([*base, "--out", str(out), "--shard", f"2/{n + 1}"]) == 2
    message = capsys.readouterr().err
    assert f"--shard 2/{n + 1}" in message and len(message) < 300
    assert not out.exists()


def test_parts_embedded_differently_are_refused(
    small_corpus: Path, make_model, tmp_path: Path
) -> None:
    model, store = make_model(0), tmp_path / "jobs.sqlite"
    first = tmp_path / "p1.npz"
    embed_split(model, small_corpus, "dev", first, shard=Shard(1, 2), store=store)
    second = tmp_path / "p2.npz"
    embed_split(
        model,
        small_corpus,
        "dev",
        second,
        shard=Shard(2, 2),
        store=store,
        embedding=EmbeddingOptions(tta=3),
    )
    with pytest.raises(DataError, match="different tta or trim"):
        merge_shards([first, second], small_corpus, tmp_path / "m.npz")
    bf16 = tmp_path / "p2-bf16.npz"
    embed_split(
        model,
        small_corpus,
        "dev",
        bf16,
        shard=Shard(2, 2),
        store=store,
        embedding=EmbeddingOptions(precision="bf16"),
    )
    with pytest.raises(DataError, match="differ in embedding id"):
        merge_shards([first, bf16], small_corpus, tmp_path / "m.npz")


def test_as_many_shards_as_recordings_merge(small_corpus: Path, make_model, tmp_path: Path) -> None:
    model = make_model(0)
    n = len(embed_split(model, small_corpus, "test", store=False).keys)
    parts = []
    for k in range(1, n + 1):  # one recording each
        parts.append(tmp_path / f"p{k}.npz")
        embed_split(model, small_corpus, "test", parts[-1], shard=Shard(k, n), store=False)
    assert len(load_embeddings(parts[-1]).keys) == 1
    assert len(merge_shards(parts, small_corpus).keys) == n


def test_merge_never_replaces_a_part_or_a_foreign_file(
    small_corpus: Path, make_model, tmp_path: Path
) -> None:
    parts = _parts(make_model(0), small_corpus, tmp_path, 2, tmp_path / "jobs.sqlite")
    before = parts[0].read_bytes()
    with pytest.raises(OutputError, match="is one of the parts"):
        merge_shards(parts, small_corpus, parts[0])
    assert parts[0].read_bytes() == before
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    with pytest.raises(OutputError, match="not a cryprint embeddings file"):
        merge_shards(parts, small_corpus, notes)
    with pytest.raises(OutputError, match="not a cryprint embeddings file"):
        embed_split(make_model(0), small_corpus, "dev", notes, store=False)
    assert notes.read_text() == "my notes"
