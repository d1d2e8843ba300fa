"""embed --shard K/N and embed-merge: the shards partition the split, the merge equals the
unsharded embedding, and any missing, repeated or foreign part is refused with nothing written."""

import shutil
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
    for n in (0, 1, 7, 10):
        for count in (1, 3, 4):
            rows = [row for k in range(1, count + 1) for row in Shard(k, count).rows(n)]
            assert sorted(rows) == list(range(n))  # every item once
    assert parse_shard(" 2 / 8 ") == Shard(2, 8)
    assert str(Shard(2, 8)) == "2/8"
    for text in ("0/4", "5/4", "a/b", "2", "-1/3", "1/0"):
        with pytest.raises(ConfigError, match=r"K/N|1 <= K <= N"):
            parse_shard(text)


def _parts(model, root: Path, folder: Path, count: int, store: Path) -> list[Path]:
    folder.mkdir(exist_ok=True)
    paths = []
    for k in range(1, count + 1):
        path = folder / f"part{k}-of-{count}.npz"
        embed_split(model, root, "dev", path, shard=Shard(k, count), store=store)
        paths.append(path)
    return paths


def test_merged_shards_are_the_whole_split_and_fill_the_store(
    small_corpus: Path, make_model, tmp_path: Path
) -> None:
    model = make_model(0)
    parts = _parts(model, small_corpus, tmp_path, 3, tmp_path / "jobs.sqlite")
    sizes = [len(load_embeddings(part).keys) for part in parts]
    whole = embed_split(model, small_corpus, "dev", store=False)
    assert sum(sizes) == len(whole.keys) and max(sizes) - min(sizes) <= 1
    local = tmp_path / "local.sqlite"
    merged = merge_shards(parts[::-1], small_corpus, tmp_path / "dev.npz", store=local)
    assert merged.keys == whole.keys
    np.testing.assert_array_equal(merged.embeddings, whole.embeddings)
    assert load_embeddings(tmp_path / "dev.npz").keys == whole.keys
    # The merged store serves a later embedding of the split without running the model.
    again = embed_split(model, small_corpus, "dev", store=EmbeddingStore(local))
    np.testing.assert_array_equal(again.embeddings, whole.embeddings)
    counter = CryPrint(model, store=local)
    embed_split(counter, small_corpus, "dev")
    assert counter.computed == 0


def test_bad_sets_of_parts_are_refused(small_corpus: Path, make_model, tmp_path: Path) -> None:
    model = make_model(0)
    store = tmp_path / "jobs.sqlite"
    parts = _parts(model, small_corpus, tmp_path / "three", 3, store)
    out = tmp_path / "merged.npz"
    with pytest.raises(DataError, match=r"shard\(s\) 2/3 missing"):
        merge_shards([parts[0], parts[2]], small_corpus, out, store=False)
    twice = tmp_path / "copy.npz"
    shutil.copyfile(parts[1], twice)
    with pytest.raises(DataError, match="shard 2/3 is given twice"):
        merge_shards([*parts, twice], small_corpus, out, store=False)
    halves = _parts(model, small_corpus, tmp_path / "two", 2, store)
    with pytest.raises(DataError, match="split the data differently"):
        merge_shards([*parts, halves[0]], small_corpus, out, store=False)
    other = _parts(make_model(1), small_corpus, tmp_path / "other", 3, store)
    with pytest.raises(DataError, match="differ in model id"):
        merge_shards([*parts[:2], other[2]], small_corpus, out, store=False)
    embed_split(model, small_corpus, "dev", tmp_path / "whole.npz", store=store)
    with pytest.raises(DataError, match="not a shard"):
        merge_shards([tmp_path / "whole.npz"], small_corpus, out, store=False)
    assert not out.exists()


def test_changed_audio_is_refused(corpus_copy: Path, make_model, tmp_path: Path) -> None:
    parts = _parts(make_model(0), corpus_copy, tmp_path / "p", 2, tmp_path / "jobs.sqlite")
    segment = next((corpus_copy / "audio" / "dev").rglob("*.wav"))
    data = segment.read_bytes()
    segment.unlink()  # a hard link to the shared corpus: replace, never write through it
    segment.write_bytes(data)
    with pytest.raises(DataError, match="changed since the parts were embedded"):
        merge_shards(parts, corpus_copy, tmp_path / "merged.npz", store=False)
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
    assert "none missing or duplicated" in capsys.readouterr().out
    (tmp_path / "all.npz").unlink()
    assert main([*merge, parts[0]]) == 3  # a data error
    assert "2/2 missing" in capsys.readouterr().err
    assert main([*merge, str(tmp_path / "nothing.npz")]) == 3
    assert not (tmp_path / "all.npz").exists()
    with pytest.raises(SystemExit) as error:
        main([*base, "--out", str(tmp_path / "p3.npz"), "--shard", "3/2"])
    assert error.value.code == 2


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
        merge_shards([first, second], small_corpus, tmp_path / "m.npz", store=False)
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
        merge_shards([first, bf16], small_corpus, tmp_path / "m.npz", store=False)


def test_more_shards_than_recordings_still_merge(
    small_corpus: Path, make_model, tmp_path: Path
) -> None:
    model = make_model(0)
    n = len(embed_split(model, small_corpus, "test", store=False).keys)
    parts = []
    for k in range(1, n + 3):  # the last two shards hold no recording
        parts.append(tmp_path / f"p{k}.npz")
        embed_split(model, small_corpus, "test", parts[-1], shard=Shard(k, n + 2), store=False)
    assert load_embeddings(parts[-1]).keys == []
    assert len(merge_shards(parts, small_corpus, store=False).keys) == n


def test_merge_never_replaces_a_part_or_a_foreign_file(
    small_corpus: Path, make_model, tmp_path: Path
) -> None:
    parts = _parts(make_model(0), small_corpus, tmp_path, 2, tmp_path / "jobs.sqlite")
    before = parts[0].read_bytes()
    with pytest.raises(OutputError, match="is one of the parts"):
        merge_shards(parts, small_corpus, parts[0], store=False)
    assert parts[0].read_bytes() == before
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    with pytest.raises(OutputError, match="not a cryprint embeddings file"):
        merge_shards(parts, small_corpus, notes, store=False)
    with pytest.raises(OutputError, match="not a cryprint embeddings file"):
        embed_split(make_model(0), small_corpus, "dev", notes, store=False)
    assert notes.read_text() == "my notes"
