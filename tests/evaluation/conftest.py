"""Fixtures for the evaluation tests: tiny seeded models and corpora derived from
``small_corpus`` without copying its audio (the shared corpus must not be modified)."""

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from cryprint.models.ecapa import CryEmbedder, ModelConfig
from cryprint.models.folder import save_model_folder

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
