"""The ONNX graph's feature front-end against SpeechBrain's Fbank + sentence mean normalisation.

SpeechBrain computes its features in float32 with an FFT; that is itself about 1e-3 dB from
the exact features on cry-like audio (quiet mel bands carry the FFT's rounding noise). So the
front-end is compared with SpeechBrain's own modules run in float64 (the same code, exact
arithmetic) at 1e-4, and with the float32 features the torch path uses at the size of that
float32 noise.
"""

import copy

import numpy as np
import onnxruntime
import pytest
import torch
from speechbrain.lobes.features import Fbank
from speechbrain.processing.features import InputNormalization

from cryprint.errors import ModelError
from cryprint.models.ecapa import CryEmbedder
from cryprint.packaging.onnx_export import FeatureFrontEnd, export_graph


def _speechbrain_features(model: CryEmbedder, waveform: np.ndarray, dtype: torch.dtype):
    """SpeechBrain's Fbank then sentence mean normalisation, its arithmetic in ``dtype``."""
    fbank = copy.deepcopy(model.compute_features).to(dtype)
    # Plain tensor attributes that .to() does not convert.
    fbank.compute_STFT.window = fbank.compute_STFT.window.to(dtype)
    filters = fbank.compute_fbanks
    for name in ("all_freqs_mat", "f_central", "band"):
        setattr(filters, name, getattr(filters, name).to(dtype))
    with torch.no_grad():
        features = fbank(torch.from_numpy(waveform).to(dtype)[None])
        assert features.dtype == dtype
        return model.mean_var_norm(features, torch.ones(1, dtype=dtype))[0].numpy()


@pytest.fixture(scope="module")
def front_end_session(tiny_model: CryEmbedder, tmp_path_factory: pytest.TempPathFactory):
    """The front-end alone, exported the way export_onnx exports it, in onnxruntime."""
    module = FeatureFrontEnd(tiny_model.compute_features, tiny_model.mean_var_norm)
    path = export_graph(module, tmp_path_factory.mktemp("front-end") / "f.onnx", "features")
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _onnx_features(session, waveform: np.ndarray) -> np.ndarray:
    return session.run(None, {"waveform": waveform[None]})[0][0]


def test_front_end_equals_speechbrain_in_exact_arithmetic(
    tiny_model, front_end_session, cries
) -> None:
    for waveform in cries:
        expected = _speechbrain_features(tiny_model, waveform, torch.float64)
        got = _onnx_features(front_end_session, waveform)
        assert got.shape == expected.shape == (1 + len(waveform) // 160, 80)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_front_end_is_as_close_to_speechbrain_float32_as_speechbrain_is_to_itself(
    tiny_model, front_end_session, cries
) -> None:
    for waveform in cries:
        float32 = _speechbrain_features(tiny_model, waveform, torch.float32)
        exact = _speechbrain_features(tiny_model, waveform, torch.float64)
        got = _onnx_features(front_end_session, waveform)
        own_noise = np.abs(float32 - exact).max()
        assert np.abs(got - float32).max() <= own_noise + 1e-4
        # The noise itself is small against features spanning tens of dB.
        assert own_noise < 0.02 and np.abs(got - float32).mean() < 1e-4


@pytest.mark.parametrize("samples", [4000, 4001, 4159, 4160, 4161, 16000])
def test_frame_count_follows_the_centred_stft(tiny_model, front_end_session, samples) -> None:
    waveform = np.random.default_rng(samples).standard_normal(samples).astype(np.float32)
    expected = _speechbrain_features(tiny_model, waveform * 0.1, torch.float64)
    got = _onnx_features(front_end_session, waveform * 0.1)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_silence_and_the_top_db_floor(tiny_model, front_end_session) -> None:
    silence = np.zeros(8000, dtype=np.float32)
    # Every bin at the amin floor (-100 dB), then the mean removed: zeros.
    np.testing.assert_allclose(_onnx_features(front_end_session, silence), 0.0, atol=1e-9)
    # A loud tone in silence: the silent frames sit at the recording's maximum - 80 dB.
    tone = np.zeros(16000, dtype=np.float32)
    tone[:8000] = np.sin(2 * np.pi * 1000 * np.arange(8000) / 16000)
    expected = _speechbrain_features(tiny_model, tone, torch.float64)
    got = _onnx_features(front_end_session, tone)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    # The silent frames (the last 40) are clamped to one level in every mel band, 80 dB below
    # the loudest band's peak.
    silent = got[-40:]
    np.testing.assert_allclose(np.ptp(silent, axis=0), 0.0, atol=1e-4)
    assert (got.max(axis=0) - silent[0]).max() == pytest.approx(80.0, abs=1e-3)


@pytest.mark.parametrize(
    ("fbank", "normalization", "named"),
    [
        (Fbank(n_mels=80, deltas=True), InputNormalization("sentence", False), "deltas"),
        (Fbank(n_mels=80), InputNormalization(norm_type="sentence"), "std_norm"),
        (Fbank(n_mels=80, win_length=20), InputNormalization("sentence", False), "win_length"),
        (Fbank(n_mels=80), InputNormalization("global", False), "norm_type"),
    ],
)
def test_settings_it_does_not_reproduce_are_refused(fbank, normalization, named) -> None:
    with pytest.raises(ModelError, match=named):
        FeatureFrontEnd(fbank, normalization)
