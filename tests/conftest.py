"""Shared test fixtures: small synthetic corpora, built once per session."""

import sys
from pathlib import Path

import pytest

from cryprint.data.synth import generate_corpus


@pytest.fixture(scope="session")
def without_unloaded_lazy_modules():
    """Hide SpeechBrain's not-yet-loaded lazy-import proxies from ``sys.modules`` meanwhile.

    Hypothesis reads ``__file__`` of every module in ``sys.modules`` while drawing examples.
    Once anything has imported speechbrain 1.1, ``sys.modules`` holds proxies (e.g.
    ``speechbrain.integrations.k2_fsa``) that import their target on attribute access and raise
    ImportError, not AttributeError, when an optional dependency (k2) is missing; that fails
    the test (speechbrain issue #2995). Hiding the unloaded ones imports nothing; they are put
    back afterwards.
    """
    with pytest.MonkeyPatch.context() as patch:
        if "speechbrain" in sys.modules:
            from speechbrain.utils.importutils import LazyModule

            for name, module in list(sys.modules.items()):
                if isinstance(module, LazyModule) and module.lazy_module is None:
                    patch.delitem(sys.modules, name)
        yield


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-baby synthetic corpus (about 10 minutes of audio), shared by the whole session.
    Tests must not modify it."""
    root = tmp_path_factory.mktemp("corpus") / "small"
    generate_corpus(root, babies=40, seed=7)
    return root
