"""A corrupted or truncated checkpoint is caught by its checksum, reported by name, and the
previous good one is used; with no good one left, a CheckpointError."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch
from reliability_helpers import (
    EPOCHS,
    assert_checkpoints_consistent,
    best_folder_digest,
    last_checkpoint_digest,
    tiny_config,
)

from cryprint.data.corpus import Corpus
from cryprint.errors import CheckpointError
from cryprint.training import checkpoints
from cryprint.training.trainer import TrainResult, train

WEIGHTS = 4096  # values per checkpoint: large enough that a flipped byte lands in tensor data


def _state(epoch: int) -> dict:
    return {"model": {"weight": torch.arange(WEIGHTS, dtype=torch.float32) + epoch}}


def _three_checkpoints(folder: Path) -> None:
    for epoch in (1, 2, 3):
        checkpoints.save_checkpoint(folder, epoch, _state(epoch), 1.0 / epoch, 0.1)


def _flip_a_weight_byte(path: Path, tensor: torch.Tensor) -> None:
    """Flip one byte inside ``tensor``'s stored values: the zip and the pickle stay valid."""
    data = bytearray(path.read_bytes())
    start = bytes(data).find(tensor.numpy().tobytes())
    assert start >= 0
    data[start + tensor.numel() * tensor.element_size() // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _delete(path: Path) -> None:
    path.unlink()


def test_flipped_weight_loads_silently_without_the_checksum(tmp_path: Path) -> None:
    """Why the checksum matters: torch.load accepts a flipped byte in tensor data."""
    _three_checkpoints(tmp_path)
    path = tmp_path / "epoch-0003.ckpt"
    _flip_a_weight_byte(path, _state(3)["model"]["weight"])
    silently = torch.load(path, map_location="cpu", weights_only=True)
    assert not torch.equal(silently["model"]["weight"], _state(3)["model"]["weight"])


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "empty", "deleted"])
def test_damaged_newest_checkpoint_is_reported_and_the_previous_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    _three_checkpoints(tmp_path)
    path = tmp_path / "epoch-0003.ckpt"
    {
        "flipped byte": lambda: _flip_a_weight_byte(path, _state(3)["model"]["weight"]),
        "truncated": lambda: _truncate(path),
        "empty": lambda: _empty(path),
        "deleted": lambda: _delete(path),
    }[damage]()
    caplog.set_level(logging.WARNING, logger=checkpoints.__name__)

    found = checkpoints.load_latest(tmp_path)

    assert found is not None
    state, entry = found
    assert entry.epoch == 2
    assert torch.equal(state["model"]["weight"], _state(2)["model"]["weight"])
    assert str(path) in caplog.text and "checksum" in caplog.text


def test_no_good_checkpoint_left_is_a_checkpoint_error(tmp_path: Path) -> None:
    _three_checkpoints(tmp_path)
    _truncate(tmp_path / "epoch-0001.ckpt")
    _flip_a_weight_byte(tmp_path / "epoch-0002.ckpt", _state(2)["model"]["weight"])
    _delete(tmp_path / "epoch-0003.ckpt")
    with pytest.raises(CheckpointError) as raised:
        checkpoints.load_latest(tmp_path)
    message = str(raised.value)
    assert str(tmp_path) in message
    assert all(f"epoch-000{epoch}.ckpt" in message for epoch in (1, 2, 3))


def test_unreadable_index_is_a_checkpoint_error(tmp_path: Path) -> None:
    _three_checkpoints(tmp_path)
    index = tmp_path / checkpoints.INDEX_NAME
    index.write_text(index.read_text()[:40])
    with pytest.raises(CheckpointError, match="index"):
        checkpoints.load_latest(tmp_path)


def test_resume_skips_a_corrupted_checkpoint_and_still_ends_equal(
    small_corpus: Path, train_corpus: Corpus, reference_run: TrainResult, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(reference_run.run, run)
    newest = run / "checkpoints" / f"epoch-{EPOCHS:04d}.ckpt"
    model_state = torch.load(newest, map_location="cpu", weights_only=True)["model"]
    largest = max(model_state.values(), key=lambda tensor: tensor.numel())
    _flip_a_weight_byte(newest, largest)

    result = train(
        tiny_config(small_corpus, run, epochs=EPOCHS), resume=True, quiet=True, corpus=train_corpus
    )

    log = (run / "train.log").read_text()
    assert f"checkpoint {newest} is missing or corrupt" in log
    previous = run / "checkpoints" / f"epoch-{EPOCHS - 1:04d}.ckpt"
    assert f"resumed from {previous} (epoch {EPOCHS - 1})" in log
    # The epoch was trained again, bit for bit: the newest checkpoint is whole again.
    assert assert_checkpoints_consistent(run / "checkpoints") == list(range(1, EPOCHS + 1))
    assert last_checkpoint_digest(run) == last_checkpoint_digest(reference_run.run)
    assert best_folder_digest(run) == best_folder_digest(reference_run.run)
    assert len(result.history) == EPOCHS + 1


def test_resume_with_every_checkpoint_corrupted_is_a_checkpoint_error(
    small_corpus: Path, train_corpus: Corpus, reference_run: TrainResult, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(reference_run.run, run)
    for path in (run / "checkpoints").glob("epoch-*.ckpt"):
        _truncate(path)
    with pytest.raises(CheckpointError, match=r"none of the .* checkpoint"):
        train(
            tiny_config(small_corpus, run, epochs=EPOCHS),
            resume=True,
            quiet=True,
            corpus=train_corpus,
        )
