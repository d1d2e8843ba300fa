"""The Python API: one loaded model, many recordings; the store spares repeated work."""

from __future__ import annotations

import time
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


def test_a_waveform_longer_than_a_file_may_be_is_refused(make_model) -> None:
    from cryprint.data.audio import MAX_SECONDS, SAMPLE_RATE

    embedder = cryprint.CryPrint(make_model(0), store=False)
    longest = int(MAX_SECONDS * SAMPLE_RATE)
    with pytest.raises(AudioError, match=f"longer than the limit of {MAX_SECONDS:g} s"):
        embedder.embed(np.zeros(longest + 1, dtype=np.float32))
    with pytest.raises(AudioError, match="no cry found"):  # the longest allowed is read
        embedder.embed(np.zeros(longest, dtype=np.float32))


def test_a_huge_waveform_is_refused_before_any_work(
    make_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10^9 samples (4 GB as float32) are refused from their shape: never hashed or copied.
    A broadcast view holds them in no memory at all."""
    from cryprint.inference import api

    def hashed(*args, **kwargs):
        raise AssertionError("the samples were hashed")

    monkeypatch.setattr(api, "audio_key", hashed)
    embedder = cryprint.CryPrint(make_model(0), store=False)
    huge = np.broadcast_to(np.float32(0.0), (10**9,))
    started = time.perf_counter()
    with pytest.raises(AudioError, match="longer than the limit") as error:
        embedder.embed(huge)
    assert time.perf_counter() - started < 0.5 and len(str(error.value)) < 200


@pytest.mark.parametrize(
    ("item", "named"),
    [
        (b"RIFF-secret-content" * 1000, "bytes"),
        (bytearray(b"secret-content"), "bytearray"),
        (np.ones(16000, dtype=bool), "bool"),
        (np.ones(16000, dtype=np.complex64), "complex"),
        (np.array(["secret-content"] * 3), "str"),
        (np.array([object()] * 16000), "object"),
        (None, "NoneType"),
        ({"samples": "secret-content"}, "dict"),
        ([[0.0, 1.0], [0.5]], "list"),  # ragged
    ],
)
def test_what_is_not_audio_is_named_by_its_type_never_its_content(
    make_model, item: object, named: str
) -> None:
    embedder = cryprint.CryPrint(make_model(0), store=False)
    with pytest.raises(AudioError, match=named) as error:
        embedder.embed(item)
    assert "secret" not in str(error.value) and len(str(error.value)) < 200


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused_as_such(make_model, bad: float) -> None:
    embedder = cryprint.CryPrint(make_model(0), store=False)
    waveform = np.zeros(16000, dtype=np.float32)
    waveform[100] = bad
    with pytest.raises(AudioError, match="holds NaN or infinite samples"):
        embedder.embed(waveform)
    with pytest.raises(AudioError, match="holds NaN or infinite samples"):
        embedder.embed(np.full(16000, 1e300))  # infinite as float32


def test_integer_and_list_samples_are_embedded_as_floats(small_corpus: Path, make_model) -> None:
    folder = _dev_folder(small_corpus, 1)
    audio = np.concatenate(
        [soundfile.read(path, dtype="float32")[0] for path in sorted(folder.glob("*.wav"))]
    )
    embedder = cryprint.CryPrint(make_model(0), store=False)
    reference = embedder.embed(audio)
    np.testing.assert_array_equal(embedder.embed(audio.astype(np.float64)), reference)
    np.testing.assert_array_equal(embedder.embed(audio.tolist()), reference)
    assert embedder.embed((audio * 1000).astype(np.int32)).shape == reference.shape


def test_a_store_that_cannot_be_written_costs_no_answer(
    small_corpus: Path, make_model, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from cryprint.errors import OutputError
    from cryprint.inference.store import EmbeddingStore

    store = EmbeddingStore(tmp_path / "store.sqlite")

    def full(*args, **kwargs):
        raise OutputError(f"{store.path}: cannot write the embedding store (disk full)")

    store.put = full
    folder = _dev_folder(small_corpus, 0)
    with caplog.at_level("WARNING"):
        vector = cryprint.CryPrint(make_model(0), store=store).embed(folder)
    alone = cryprint.CryPrint(make_model(0), store=False).embed(folder)
    np.testing.assert_array_equal(vector, alone)
    assert "disk full" in caplog.text
