"""Shared test fixtures: small synthetic corpora, built once per session."""

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings

import cryprint.models.device as device_module
from cryprint.data.audio import SAMPLE_RATE
from cryprint.data.cry_model import draw_session, draw_voice, render_expiration
from cryprint.data.synth import generate_corpus
from cryprint.models.ecapa import CryEmbedder, ModelConfig
from cryprint.models.folder import save_model_folder


def _hide_unloaded_speechbrain_proxies() -> None:
    """Drop SpeechBrain's not-yet-loaded lazy-import proxies from ``sys.modules``.

    Hypothesis reads ``__file__`` of every module in ``sys.modules``. SpeechBrain 1.1 registers
    proxies (e.g. ``speechbrain.integrations.k2_fsa``) that try to import their target on any
    attribute access and raise ImportError, not AttributeError, when an optional dependency
    (k2) is missing; that crashes hypothesis (speechbrain issue #2995). Nothing we use needs
    these proxies, and dropping them imports nothing.
    """
    if "speechbrain" not in sys.modules:
        return
    from speechbrain.utils.importutils import LazyModule

    for name, module in list(sys.modules.items()):
        if isinstance(module, LazyModule) and module.lazy_module is None:
            del sys.modules[name]


def pytest_collection_modifyitems() -> None:
    _hide_unloaded_speechbrain_proxies()


def pytest_runtest_setup() -> None:
    _hide_unloaded_speechbrain_proxies()


# Tests never write into the user's embedding store (~/.cache/cryprint): one store per session.
_STORE = Path(tempfile.mkdtemp(prefix="cryprint-store-")) / "store.sqlite"
os.environ["CRYPRINT_STORE"] = str(_STORE)
# Tests run on the CPU, as CI does, also on a machine with a GPU (whose numbers differ, and where
# --precision auto means bf16 at any width); subprocesses inherit it.
os.environ["CUDA_VISIBLE_DEVICES"] = ""

# Property tests draw the same examples on every run, so that CI never turns red by chance;
# CRYPRINT_FUZZ=random draws new ones each run (how to explore: README "Reliability").
settings.register_profile("fixed", derandomize=True, database=None)
settings.register_profile("random", database=None)
settings.load_profile("random" if os.environ.get("CRYPRINT_FUZZ") == "random" else "fixed")

# Collection itself imports test modules that use hypothesis: register speechbrain's proxies now
# and drop them before any test module is collected.
import speechbrain.inference.speaker  # noqa: E402
import speechbrain.lobes.models.ECAPA_TDNN  # noqa: E402, F401

_hide_unloaded_speechbrain_proxies()


@pytest.fixture(autouse=True, scope="session")
def _cpu_without_native_bf16() -> Iterator[None]:
    """The whole session runs as on a CPU without native bf16 (``--precision auto`` = fp32),
    whatever CPU this machine has, so that no test's numbers depend on the CPU it runs on; a test of
    the bf16 choice patches the flags it wants (tests/models/test_device.py)."""
    real = device_module.cpu_flags()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            device_module, "cpu_flags", lambda: real - set(device_module.NATIVE_BF16_CPU_FLAGS)
        )
        yield


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-baby synthetic corpus (about 10 minutes of audio), shared by the whole session.
    Tests must not modify it."""
    root = tmp_path_factory.mktemp("corpus") / "small"
    generate_corpus(root, babies=40, seed=7)
    return root


# Tiny seeded models and corpora derived from ``small_corpus`` without copying its audio (the
# shared corpus must not be modified).
TINY = ModelConfig.small(16)
CSV_NAMES = ("metadata.csv", "dev_pairs.csv", "test_pairs.csv", "sample_submission.csv")


def _tiny_model(seed: int = 0) -> CryEmbedder:
    torch.manual_seed(seed)
    return CryEmbedder(TINY).eval()


@pytest.fixture
def make_model() -> Callable[[int], CryEmbedder]:
    """``make_model(seed)``: a tiny ECAPA (``ModelConfig.small(16)``) with seeded weights."""
    return _tiny_model


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    """A fresh tiny model folder per test (evaluate and calibrate write into it)."""
    return save_model_folder(_tiny_model(0), tmp_path / "model", {"note": "test model"})


@pytest.fixture
def corpus_copy(small_corpus: Path, tmp_path: Path) -> Path:
    """``small_corpus``'s CSVs, copied so a test may edit them, and its audio hard-linked (no
    copy; a symbolic link out of the data folder would be refused). A test that changes an
    audio file must unlink it first: writing through a hard link changes the shared corpus."""
    dest = tmp_path / "corpus"
    dest.mkdir()
    for name in CSV_NAMES:
        shutil.copyfile(small_corpus / name, dest / name)
    shutil.copytree(small_corpus / "audio", dest / "audio", copy_function=os.link)
    return dest


# Cries and a tiny ONNX export for the ONNX tests (inference/test_onnx_*, packaging/test_onnx_*).
# The lengths the ONNX tests embed: the shortest accepted recording (0.3 s, a partial last frame),
# one second, an odd length, and a long one.
LENGTHS_SECONDS = (0.3, 1.0, 3.7, 10.0)


def make_cry(seconds: float, seed: int) -> np.ndarray:
    """A synthetic cry (harmonics, formants, channel noise: tonal, with quiet mel bands, like
    real cries), float32 [samples] at 16 kHz."""
    rng = np.random.default_rng(seed)
    voice, session = draw_voice(rng), draw_session(rng, difficulty=1.0)
    samples = round(seconds * SAMPLE_RATE)
    return render_expiration(samples, voice, session, rng, 1.0).astype(np.float32) / 2.0**15


@pytest.fixture(scope="session")
def cry() -> Callable[[float, int], np.ndarray]:
    """``cry(seconds, seed)``: see :func:`make_cry`."""
    return make_cry


@pytest.fixture(scope="session")
def cries() -> list[np.ndarray]:
    """One cry of each length of ``LENGTHS_SECONDS``."""
    return [make_cry(seconds, seed) for seed, seconds in enumerate(LENGTHS_SECONDS)]


@pytest.fixture(scope="session")
def tiny_model() -> CryEmbedder:
    torch.manual_seed(0)
    return CryEmbedder(ModelConfig.small(16)).eval()


@pytest.fixture(scope="session")
def tiny_export(tiny_model: CryEmbedder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the tiny model's fp32 ``embedder.onnx`` and ``onnx.json``."""
    pytest.importorskip("onnx")
    from cryprint.packaging.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("onnx-fp32")
    export_onnx(tiny_model, folder)
    return folder
