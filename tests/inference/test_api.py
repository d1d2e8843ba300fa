"""The Python API: one loaded model, many recordings; the store spares repeated work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

import cryprint
from cryprint.data.activity import trim_to_cry
from cryprint.data.inputs import read_recording
from cryprint.errors import AudioError
from cryprint.models import embed as embedding_module
from cryprint.models.embed import embed_waveforms


def _dev_folder(corpus: Path, index: int, period: str = "B") -> Path:
    return sorted((corpus / "audio" / "dev").iterdir())[index] / period


def test_verify_scores_and_decides_as_a_naive_computation(
    small_corpus: Path, make_model, tmp_path: Path
) -> None:
    """The verdict's score is the cosine of the two recordings' embeddings, computed here
    without the API (read, trim, run the model, dot product), and it decides at the threshold."""
    model = make_model(0)
    embedder = cryprint.CryPrint(model, store=tmp_path / "store.sqlite")
    a, b = _dev_folder(small_corpus, 0, "B"), _dev_folder(small_corpus, 0, "D")
    left, right = (embed_waveforms(model, [trim_to_cry(read_recording(x))])[0] for x in (a, b))
    naive = float(np.dot(left, right) / (np.linalg.norm(left) * np.linalg.norm(right)))
    for threshold in (naive - 1e-4, naive + 1e-4):
        verdict = embedder.verify(a, b, threshold=threshold)
        assert verdict.score == pytest.approx(naive, abs=1e-6)
        assert verdict.same_baby == (threshold < naive)


def test_embeddings_equal_the_model_run_alone(
    small_corpus: Path, make_model, tmp_path: Path
) -> None:
    model = make_model(0)
    embedder = cryprint.CryPrint(model, store=False, trim=False)  # the recording as joined
    folder = _dev_folder(small_corpus, 1)
    audio = np.concatenate(
        [soundfile.read(path, dtype="float32")[0] for path in sorted(folder.glob("*.wav"))]
    )
    alone = embed_waveforms(model, [audio])[0]
    np.testing.assert_array_equal(embedder.embed(folder), alone)
    np.testing.assert_array_equal(embedder.embed(audio), alone)  # samples or files: the same


def test_the_store_spares_the_model(
    small_corpus: Path, make_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store.sqlite"
    folders = [_dev_folder(small_corpus, i) for i in range(3)]
    first = cryprint.CryPrint(make_model(0), store=store)
    vectors = first.embed_many(folders)
    assert first.computed == 3

    def fail(*args, **kwargs):
        raise AssertionError("the model ran")

    monkeypatch.setattr(embedding_module, "embed_waveforms", fail)
    second = cryprint.CryPrint(make_model(0), store=store)
    np.testing.assert_array_equal(second.embed_many(folders[::-1]), vectors[::-1])
    assert second.computed == 0
    with pytest.raises(AssertionError, match="the model ran"):
        cryprint.CryPrint(make_model(1), store=store).embed(folders[0])  # other weights


def test_bad_inputs_are_audio_errors(make_model, tmp_path: Path) -> None:
    embedder = cryprint.CryPrint(make_model(0), store=False)
    with pytest.raises(AudioError, match="no such audio file"):
        embedder.embed(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="no cry found"):
        embedder.embed(np.zeros(16000, dtype=np.float32))
    with pytest.raises(AudioError, match=r"float32 \[samples\]"):
        embedder.embed(np.zeros((2, 16000), dtype=np.float32))


def test_trimming_makes_a_silence_padded_cry_embed_as_the_cry(
    small_corpus: Path, make_model
) -> None:
    from cryprint.scoring import cosine_matrix

    folder = _dev_folder(small_corpus, 2)
    cry = np.concatenate(
        [soundfile.read(path, dtype="float32")[0] for path in sorted(folder.glob("*.wav"))]
    )
    silence = np.zeros(5 * 16000, dtype=np.float32)
    padded = np.concatenate([silence, cry, silence])
    trimmed = cryprint.CryPrint(make_model(0), store=False, trim=True).embed_many([cry, padded])
    assert cosine_matrix(trimmed[:1], trimmed[1:])[0, 0] >= 0.99
    untrimmed = cryprint.CryPrint(make_model(0), store=False, trim=False).embed_many([cry, padded])
    assert (
        cosine_matrix(untrimmed[:1], untrimmed[1:])[0, 0]
        < cosine_matrix(trimmed[:1], trimmed[1:])[0, 0]
    )
