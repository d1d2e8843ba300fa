"""Shared test fixtures: small synthetic corpora, built once per session."""

import os
import sys
import tempfile
from pathlib import Path

import pytest

from cryprint.data.synth import generate_corpus


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

# Collection itself imports test modules that use hypothesis: register speechbrain's proxies now
# and drop them before any test module is collected.
import speechbrain.inference.speaker  # noqa: E402
import speechbrain.lobes.models.ECAPA_TDNN  # noqa: E402, F401

_hide_unloaded_speechbrain_proxies()


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-baby synthetic corpus (about 10 minutes of audio), shared by the whole session.
    Tests must not modify it."""
    root = tmp_path_factory.mktemp("corpus") / "small"
    generate_corpus(root, babies=40, seed=7)
    return root
