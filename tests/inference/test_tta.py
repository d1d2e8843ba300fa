"""Test-time augmentation: the views of a recording and their averaged embedding."""

import numpy as np
import torch

from cryprint.inference.tta import embed_views, tta_views
from cryprint.models.ecapa import CryEmbedder, ModelConfig
from cryprint.models.embed import embed_waveforms


def test_tta_views_are_the_whole_then_evenly_spaced_crops() -> None:
    audio = np.arange(16000, dtype=np.float32)
    views = tta_views(audio, 3)
    assert len(views) == 3 and views[0] is audio
    np.testing.assert_array_equal(views[1], audio[:12800])
    np.testing.assert_array_equal(views[2], audio[3200:])
    assert [len(v) for v in tta_views(audio[:4000], 5)] == [4000]  # too short for crops
    assert len(tta_views(audio, 1)) == 1


def test_tta_embedding_is_the_normalised_mean_of_the_views() -> None:
    torch.manual_seed(0)
    model = CryEmbedder(ModelConfig.small(8))
    audio = np.random.default_rng(0).normal(0, 0.1, 24000).astype(np.float32)
    views = embed_waveforms(model, tta_views(audio, 4))
    unit = views / np.linalg.norm(views, axis=1, keepdims=True)
    expected = unit.mean(axis=0) / np.linalg.norm(unit.mean(axis=0))
    result = embed_views(lambda parts, _: embed_waveforms(model, parts), [audio], 4, ["a"])[0]
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)
    again = embed_views(lambda parts, _: embed_waveforms(model, parts), [audio], 4, ["a"])[0]
    np.testing.assert_array_equal(again, result)  # deterministic
