"""embed_waveforms: caller's order, exact unpadded embeddings by default, padded batches apart."""

import numpy as np
import torch

from cryprint.models.ecapa import CryEmbedder, ModelConfig
from cryprint.models.embed import embed_waveforms
from cryprint.scoring import cosine_matrix


def _model() -> CryEmbedder:
    torch.manual_seed(0)
    return CryEmbedder(ModelConfig.small(8)).eval()


def _waveforms() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [
        (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)
        for seconds in (0.5, 2.0, 1.1, 0.3, 1.7)
    ]


def test_each_row_is_that_recording_alone() -> None:
    model, waveforms = _model(), _waveforms()
    embeddings = embed_waveforms(model, waveforms)
    assert embeddings.shape == (5, 192) and embeddings.dtype == np.float32
    with torch.inference_mode():
        for row, waveform in zip(embeddings, waveforms, strict=True):
            alone = model(torch.from_numpy(waveform)[None], torch.ones(1))[0].numpy()
            np.testing.assert_allclose(row, alone, rtol=1e-5, atol=1e-6)
    assert model.training is False


def test_padded_batches_keep_the_order_but_change_the_padded_embeddings() -> None:
    model, waveforms = _model(), _waveforms()
    exact = embed_waveforms(model, waveforms)
    batched = embed_waveforms(model, waveforms, max_batch_size=5)
    # The same batch in another order: the same rows, in the caller's order.
    reordered = embed_waveforms(model, waveforms[::-1], max_batch_size=5)
    np.testing.assert_allclose(reordered[::-1], batched, rtol=1e-5, atol=1e-6)
    similarity = cosine_matrix(batched, exact)
    # The longest recording of the batch is not padded; the others are, and move.
    longest = int(np.argmax([len(w) for w in waveforms]))
    np.testing.assert_allclose(batched[longest], exact[longest], rtol=1e-4, atol=1e-5)
    assert np.diag(similarity).min() < 1 - 1e-4


def test_the_training_mode_is_restored_and_no_input_gives_an_empty_array() -> None:
    model = _model().train()
    embed_waveforms(model, _waveforms()[:1])
    assert model.training
    assert embed_waveforms(model, []).shape == (0, 0)
