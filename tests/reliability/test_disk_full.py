"""A full disk while writing any output: a clear OutputError, the earlier outputs intact, no
temporary file left behind.

The full disk is the kernel's own: files the code opens for writing under a chosen name get their
descriptor pointed at ``/dev/full``, so every write through Python's buffered files, torch's
serialiser or anything else fails with ENOSPC exactly as on a full file system.
"""

from __future__ import annotations

import builtins
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from reliability_helpers import TINY, tiny_config

from cryprint.data.corpus import Corpus
from cryprint.errors import OutputError
from cryprint.io import atomic_save_torch, atomic_write_text
from cryprint.models.ecapa import CryEmbedder, ModelConfig
from cryprint.models.folder import CHECKPOINT_NAME, load_model, save_model_folder
from cryprint.training import checkpoints
from cryprint.training.runfolder import write_json, write_metrics
from cryprint.training.trainer import train

pytestmark = pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], list[str]]:
    """``full_disk(name)``: from now on, files whose name contains ``name`` (their temporary
    files included) are on a full disk. Returns the list of paths that hit it."""
    real_open = io.open
    names: list[str] = []
    hits: list[str] = []

    def open_on_full_disk(file, mode="r", *args, **kwargs):  # io.open's signature
        handle = real_open(file, mode, *args, **kwargs)
        if any(flag in mode for flag in "wax+"):
            path = os.readlink(f"/proc/self/fd/{file}") if isinstance(file, int) else str(file)
            if any(name in Path(path).name for name in names):
                full = os.open("/dev/full", os.O_WRONLY)
                os.dup2(full, handle.fileno())
                os.close(full)
                hits.append(path)
        return handle

    monkeypatch.setattr(io, "open", open_on_full_disk)
    monkeypatch.setattr(builtins, "open", open_on_full_disk)

    def fill(name: str) -> list[str]:
        names.append(name)
        return hits

    return fill


def _temporaries(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.tmp"))


def _model(seed: int) -> CryEmbedder:
    torch.manual_seed(seed)
    return CryEmbedder(ModelConfig.small(TINY["channels"]))


# Each writer: (file name, write the old then the new version through it).
WRITERS: dict[str, tuple[str, Callable[[Path, int], None]]] = {
    "text": ("notes.txt", lambda folder, n: atomic_write_text(folder / "notes.txt", f"v{n}")),
    "torch": (
        "state.pt",
        lambda folder, n: atomic_save_torch({"w": torch.full((4096,), n)}, folder / "state.pt"),
    ),
    "environment.json": (
        "environment.json",
        lambda folder, n: write_json(folder / "environment.json", {"seed": n}),
    ),
    "metrics.csv": (
        "metrics.csv",
        lambda folder, n: write_metrics(folder / "metrics.csv", [{"epoch": n, "loss": 0.5}]),
    ),
}


@pytest.mark.parametrize("writer", WRITERS)
def test_atomic_output_on_a_full_disk_keeps_the_old_file(
    tmp_path: Path, full_disk: Callable[[str], list[str]], writer: str
) -> None:
    name, write = WRITERS[writer]
    write(tmp_path, 1)
    old = (tmp_path / name).read_bytes()
    hits = full_disk(name)

    with pytest.raises(OutputError) as raised:
        write(tmp_path, 2)

    assert hits  # the write did reach the full disk
    assert str(tmp_path / name) in str(raised.value)
    assert "no space left" in str(raised.value)
    assert (tmp_path / name).read_bytes() == old
    assert _temporaries(tmp_path) == []


@pytest.mark.parametrize("failing", ["epoch-0002.ckpt", checkpoints.INDEX_NAME])
def test_checkpoint_on_a_full_disk_keeps_the_index_complete(
    tmp_path: Path, full_disk: Callable[[str], list[str]], failing: str
) -> None:
    state = {"model": {"w": torch.arange(4096, dtype=torch.float32)}}
    checkpoints.save_checkpoint(tmp_path, 1, state, 0.5, 0.1)
    old = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    full_disk(failing)

    with pytest.raises(OutputError, match="no space left"):
        checkpoints.save_checkpoint(tmp_path, 2, state, 0.4, 0.1)

    assert (tmp_path / checkpoints.INDEX_NAME).read_bytes() == old[checkpoints.INDEX_NAME]
    assert (tmp_path / "epoch-0001.ckpt").read_bytes() == old["epoch-0001.ckpt"]
    found = checkpoints.load_latest(tmp_path)
    assert found is not None and found[1].epoch == 1
    assert _temporaries(tmp_path) == []


def test_model_folder_on_a_full_disk_still_holds_the_old_model(
    tmp_path: Path, full_disk: Callable[[str], list[str]]
) -> None:
    old, new = _model(1), _model(2)
    save_model_folder(old, tmp_path / "best")
    hits = full_disk(CHECKPOINT_NAME)

    with pytest.raises(OutputError, match="no space left"):
        save_model_folder(new, tmp_path / "best")

    assert hits
    loaded = load_model(tmp_path / "best").model.embedding_model.state_dict()
    for key, value in old.embedding_model.state_dict().items():
        assert torch.equal(loaded[key], value), key
    assert _temporaries(tmp_path) == []


@pytest.mark.parametrize("failing", ["config.yaml", "epoch-0001.ckpt"])
def test_training_on_a_full_disk_stops_with_an_output_error(
    small_corpus: Path,
    train_corpus: Corpus,
    tmp_path: Path,
    full_disk: Callable[[str], list[str]],
    failing: str,
) -> None:
    run = tmp_path / "run"
    hits = full_disk(failing)

    with pytest.raises(OutputError) as raised:
        train(tiny_config(small_corpus, run, epochs=1), quiet=True, corpus=train_corpus)

    assert hits and failing in str(raised.value) and "no space left" in str(raised.value)
    if failing == "config.yaml":  # before the first epoch: the run folder it made is removed
        assert not run.exists()
        return
    assert not list(run.rglob(failing)) and _temporaries(run) == []
    # What was written before the disk filled up is whole.
    assert json.loads((run / "environment.json").read_text())["seed"] == TINY["seed"]
    assert checkpoints.load_latest(run / "checkpoints") is None
