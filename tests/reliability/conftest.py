"""Fixtures of the reliability tests: the training corpus and one uninterrupted reference run."""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability_helpers import EPOCHS, tiny_config

from cryprint.data.corpus import Corpus
from cryprint.training.trainer import TrainResult, train


@pytest.fixture(scope="session")
def train_corpus(small_corpus: Path) -> Corpus:
    return Corpus(small_corpus, splits=("train",))


@pytest.fixture(scope="session")
def reference_run(
    small_corpus: Path, train_corpus: Corpus, tmp_path_factory: pytest.TempPathFactory
) -> TrainResult:
    """The uninterrupted seeded run every interrupted one must end equal to. Tests copy it,
    never modify it."""
    run = tmp_path_factory.mktemp("reference") / "run"
    return train(tiny_config(small_corpus, run, epochs=EPOCHS), quiet=True, corpus=train_corpus)
