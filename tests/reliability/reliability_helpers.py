"""Helpers of the reliability tests: a tiny training recipe and the checks every interrupted
run folder must pass."""

from __future__ import annotations

import hashlib
import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from cryprint.training import checkpoints
from cryprint.training.config import TrainConfig, make_config
from tiny_recipe import TINY_TRAINING as TINY

EPOCHS = 2


def tiny_config(data: Path, run: Path, **overrides: Any) -> TrainConfig:
    return make_config({**TINY, "data": str(data), "run": str(run), **overrides})


def tensors_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over a state dict's names and values (not its pickled bytes)."""
    digest = hashlib.sha256()
    for key, value in sorted(state.items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def last_checkpoint_digest(run: Path) -> str:
    """Digest of the model state in the run's newest checkpoint."""
    folder = run / "checkpoints"
    newest = max(checkpoints._read_index(folder), key=lambda entry: entry.epoch)
    state = torch.load(folder / newest.file, map_location="cpu", weights_only=True)
    return tensors_digest(state["model"])


def best_folder_digest(run: Path) -> tuple[str, int]:
    """Digest of ``best/embedding_model.ckpt`` and the epoch ``best/cryprint.json`` names."""
    state = torch.load(run / "best" / "embedding_model.ckpt", map_location="cpu", weights_only=True)
    info = json.loads((run / "best" / "cryprint.json").read_text())
    return tensors_digest(state), info["epoch"]


def temporary_files(run: Path) -> list[Path]:
    """Leftovers of atomic writes (``.NAME.XXXX.tmp``) anywhere in the run folder."""
    return sorted(run.rglob("*.tmp"))


def assert_checkpoints_consistent(folder: Path) -> list[int]:
    """Every checkpoint the index names is a complete file that passes its checksum, and no
    temporary file is named. Returns the indexed epochs."""
    entries = checkpoints._read_index(folder)
    for entry in entries:
        assert not entry.file.endswith(".tmp") and not entry.file.startswith("."), entry
        assert checkpoints.verify(folder, entry), f"{entry.file} fails its checksum"
    if entries:
        found = checkpoints.load_latest(folder)
        assert found is not None
        assert found[1].epoch == max(entry.epoch for entry in entries)
    return sorted(entry.epoch for entry in entries)


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TimeoutError in the block after ``seconds``: a hang fails the test instead of
    stalling the suite (the alarm fires between two of torch's operations)."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
