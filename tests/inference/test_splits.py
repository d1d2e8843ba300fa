"""One embedding per recording, cached under the model's identity; short recordings refused."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
import torch

import cryprint.models.embed as embedding_module
from cryprint.errors import AudioError, OutputError
from cryprint.inference.options import EmbeddingOptions
from cryprint.inference.splits import embed_split, load_embeddings
from cryprint.models.embed import embed_waveforms
from cryprint.models.folder import load_model, model_identity, save_model_folder


def _fail(*args, **kwargs):
    raise AssertionError("the model ran although the cache was up to date")


def test_one_embedding_per_recording_in_metadata_order(small_corpus: Path, make_model) -> None:
    model = make_model(0)
    dev = embed_split(
        model, small_corpus, "dev", embedding=EmbeddingOptions(trim=False)
    )  # the recording exactly as joined
    metadata = pd.read_csv(small_corpus / "metadata.csv", dtype=str)
    rows = metadata[metadata["split"] == "dev"]
    expected = sorted({f"{b}{p}" for b, p in zip(rows["baby_id"], rows["period"], strict=True)})
    assert dev.keys == expected
    assert dev.embeddings.shape == (len(expected), 192)
    assert dev.embeddings.dtype == np.float32
    assert np.isfinite(dev.embeddings).all()

    # Row i is the recording's segments joined in chronological order (read independently).
    key = dev.keys[1]
    segments = rows[(rows["baby_id"] + rows["period"]) == key].sort_values("chronological_index")
    audio = np.concatenate(
        [soundfile.read(small_corpus / name, dtype="float32")[0] for name in segments["file_name"]]
    )
    alone = embed_waveforms(model, [audio])[0]
    reversed_audio = np.concatenate(
        [
            soundfile.read(small_corpus / name, dtype="float32")[0]
            for name in segments["file_name"][::-1]
        ]
    )
    reversed_alone = embed_waveforms(model, [reversed_audio])[0]

    # One recording per forward pass: the same embedding as embedding it alone, and the
    # segment order matters.
    np.testing.assert_allclose(dev.embeddings[1], alone, rtol=1e-5, atol=1e-6)
    assert np.abs(reversed_alone - dev.embeddings[1]).max() > 1e-3


def test_cache_is_reused_for_the_same_weights_only(
    small_corpus: Path, make_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "dev.npz"
    first = embed_split(make_model(0), small_corpus, "dev", cache, store=False)
    assert not first.from_cache
    stored = load_embeddings(cache)
    assert stored.keys == first.keys
    assert stored.model_id == model_identity(make_model(0))
    np.testing.assert_array_equal(stored.embeddings, first.embeddings)

    monkeypatch.setattr(embedding_module, "embed_waveforms", _fail)
    again = embed_split(make_model(0), small_corpus, "dev", cache, store=False)
    assert again.from_cache
    np.testing.assert_array_equal(again.embeddings, first.embeddings)
    # Other weights: the cache does not apply, so the model has to run.
    with pytest.raises(AssertionError, match="the model ran"):
        embed_split(make_model(1), small_corpus, "dev", cache, store=False)


def test_the_store_serves_every_later_command(
    small_corpus: Path, make_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store.sqlite"
    first = embed_split(make_model(0), small_corpus, "dev", store=store)
    monkeypatch.setattr(embedding_module, "embed_waveforms", _fail)
    # Another output file, no npz to reuse: the store alone answers, bit for bit.
    again = embed_split(make_model(0), small_corpus, "dev", tmp_path / "other.npz", store=store)
    np.testing.assert_array_equal(again.embeddings, first.embeddings)
    with pytest.raises(AssertionError, match="the model ran"):
        embed_split(make_model(1), small_corpus, "dev", store=store)


def test_a_cache_of_another_version_is_recomputed_a_foreign_file_kept(
    small_corpus: Path, make_model, tmp_path: Path
) -> None:
    cache = tmp_path / "dev.npz"
    embed_split(make_model(0), small_corpus, "dev", cache)
    with np.load(cache) as stored:
        older = {name: stored[name] for name in stored.files}
    np.savez(cache, **{**older, "version": np.array(0)})  # a cryprint file of another version
    result = embed_split(make_model(0), small_corpus, "dev", cache)
    assert not result.from_cache
    assert load_embeddings(cache).keys == result.keys
    cache.write_bytes(b"not an npz file")  # not cryprint's: never replaced
    with pytest.raises(OutputError, match="not a cryprint embeddings file"):
        embed_split(make_model(0), small_corpus, "dev", cache)
    assert cache.read_bytes() == b"not an npz file"


def test_model_identity_follows_the_weights(make_model, tmp_path: Path) -> None:
    model = make_model(0)
    loaded = load_model(save_model_folder(model, tmp_path / "m"))
    assert model_identity(loaded) == model_identity(model)
    assert len(model_identity(model)) == 64
    assert model_identity(make_model(1)) != model_identity(model)
    with torch.no_grad():
        model.embedding_model.fc.conv.bias[0] += 1e-6
    assert model_identity(model) != model_identity(loaded)


def test_a_too_short_recording_is_named(corpus_copy: Path, make_model) -> None:
    # Replace every segment of one dev recording by a single 0.1 s segment.
    short = corpus_copy / "short" / "seg.wav"
    short.parent.mkdir()
    soundfile.write(short, np.full(1600, 0.1, dtype=np.float32), 16000, subtype="PCM_16")
    metadata = pd.read_csv(corpus_copy / "metadata.csv", dtype=str)
    dev = metadata[metadata["split"] == "dev"]
    baby = dev["baby_id"].iloc[0]
    recording = (metadata["baby_id"] == baby) & (metadata["period"] == "D")
    first = metadata[recording].index[0]
    metadata.loc[first, ["file_name", "duration"]] = ["short/seg.wav", "0.1"]
    metadata = metadata.drop(index=metadata[recording].index[1:])
    metadata.to_csv(corpus_copy / "metadata.csv", index=False)
    with pytest.raises(AudioError, match=rf"recording {baby}D of the dev split.*too short"):
        embed_split(make_model(0), corpus_copy, "dev")


def test_a_cache_of_other_embedding_options_is_not_reused(
    small_corpus: Path, make_model, tmp_path: Path
) -> None:
    model, cache = make_model(0), tmp_path / "dev.npz"
    plain = embed_split(model, small_corpus, "dev", cache, store=False)
    for options in ({"tta": 3}, {"precision": "bf16"}, {"trim": False}):
        embedding = EmbeddingOptions(**options)
        other = embed_split(model, small_corpus, "dev", cache, store=False, embedding=embedding)
        assert not other.from_cache, options
        assert not np.array_equal(other.embeddings, plain.embeddings), options
    embed_split(model, small_corpus, "dev", cache, store=False)
    assert embed_split(model, small_corpus, "dev", cache, store=False).from_cache
