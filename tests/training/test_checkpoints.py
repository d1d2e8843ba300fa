"""Checkpoint ranking and pruning against a naive pairwise comparison, and indexes that name
files outside their folder (issue #10 item 2): refused, and nothing outside is ever deleted."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from cryprint.errors import CheckpointError
from cryprint.training import checkpoints
from cryprint.training.checkpoints import CheckpointEntry

NAN = float("nan")


def _state(epoch: int) -> dict:
    return {"model": {"weight": torch.full((4,), float(epoch))}}


def _save(folder: Path, epoch: int, loss: float, eer: float = 0.1) -> None:
    checkpoints.save_checkpoint(folder, epoch, _state(epoch), loss, eer)


def _three_checkpoints(folder: Path) -> None:
    """Epoch 1 ranks worst (pruning with keep=1 deletes it), 2 best, 3 is the newest."""
    for epoch, loss in ((1, 0.9), (2, 0.1), (3, 0.5)):
        _save(folder, epoch, loss)


def _refused(folder: Path) -> pytest.RaisesExc[CheckpointError]:
    """A CheckpointError naming the folder's index."""
    return pytest.raises(CheckpointError, match=re.escape(str(folder / checkpoints.INDEX_NAME)))


def _files(folder: Path) -> set[str]:
    return {path.name for path in folder.glob("epoch-*.ckpt")}


def _value(entry: CheckpointEntry, select_by: str) -> float:
    return entry.validation_eer if select_by == "eer" else entry.validation_loss


def _beats(a: CheckpointEntry, b: CheckpointEntry, select_by: str) -> bool:
    """Naive: a number beats NaN, a lower number a higher one, and on a tie (NaN ties NaN) the
    earlier epoch wins."""
    x, y = _value(a, select_by), _value(b, select_by)
    if math.isnan(x) or math.isnan(y):
        return (not math.isnan(x) and math.isnan(y)) or (
            math.isnan(x) and math.isnan(y) and a.epoch < b.epoch
        )
    return x < y or (x == y and a.epoch < b.epoch)


def _naive_ranking(entries: list[CheckpointEntry], select_by: str) -> list[int]:
    """Epochs best first: an entry's rank is how many others beat it."""
    beaten_by = {e.epoch: sum(_beats(o, e, select_by) for o in entries) for e in entries}
    return sorted(beaten_by, key=beaten_by.__getitem__)


def _random_run(folder: Path, seed: int) -> list[CheckpointEntry]:
    """Eight checkpoints saved in a shuffled epoch order, with tied and NaN losses and EERs."""
    rng = np.random.default_rng(seed)
    choices = [0.1, 0.2, 0.3, NAN]
    entries = []
    for epoch in rng.permutation(np.arange(1, 9)):
        loss, eer = (float(v) for v in rng.choice(choices, size=2))
        _save(folder, int(epoch), loss, eer)
        entries.append(CheckpointEntry(int(epoch), "", "", loss, eer))
    return entries


@pytest.mark.parametrize("select_by", ["loss", "eer"])
@pytest.mark.parametrize("seed", range(4))
def test_best_entries_and_is_new_best_match_a_naive_comparison(
    tmp_path: Path, select_by: str, seed: int
) -> None:
    entries = _random_run(tmp_path, seed)
    ranking = _naive_ranking(entries, select_by)
    for keep in (1, 3, 8, 20):
        best = checkpoints.best_entries(tmp_path, keep, select_by)
        assert [e.epoch for e in best] == ranking[:keep]
    for loss, eer in [(0.1, 0.1), (0.15, 0.15), (0.3, 0.3), (NAN, NAN)]:
        for epoch in (0, 9):  # before every indexed epoch (ties won) and after (ties lost)
            candidate = CheckpointEntry(epoch, "", "", loss, eer)
            expected = all(_beats(candidate, e, select_by) for e in entries)
            assert checkpoints.is_new_best(tmp_path, epoch, loss, eer, select_by) == expected


@pytest.mark.parametrize(
    ("select_by", "loss", "eer"),
    [
        ("loss", [0.3, NAN, 0.2, 0.2], [0.0, 0.0, 0.0, 0.0]),
        ("eer", [0.0, 0.0, 0.0, 0.0], [0.3, NAN, 0.2, 0.2]),
    ],
)
def test_nan_ranks_last_and_ties_go_to_the_earlier_epoch(
    tmp_path: Path, select_by: str, loss: list[float], eer: list[float]
) -> None:
    for epoch, (epoch_loss, epoch_eer) in enumerate(zip(loss, eer, strict=True), start=1):
        _save(tmp_path, epoch, epoch_loss, epoch_eer)
    assert [e.epoch for e in checkpoints.best_entries(tmp_path, 4, select_by)] == [3, 4, 1, 2]
    assert checkpoints.is_new_best(tmp_path, 5, 0.19, 0.19, select_by)
    assert not checkpoints.is_new_best(tmp_path, 5, 0.2, 0.2, select_by)
    assert not checkpoints.is_new_best(tmp_path, 5, NAN, NAN, select_by)


def test_first_checkpoint_is_always_a_new_best(tmp_path: Path) -> None:
    assert checkpoints.is_new_best(tmp_path, 1, NAN, NAN)
    _save(tmp_path, 1, 0.5)
    # the same epoch again (a resumed run redoing it) is compared with the others only
    assert checkpoints.is_new_best(tmp_path, 1, 0.9, 0.9)


@pytest.mark.parametrize("select_by", ["loss", "eer"])
@pytest.mark.parametrize("seed", range(3))
def test_prune_keeps_the_best_and_the_latest_and_deletes_the_rest(
    tmp_path: Path, select_by: str, seed: int
) -> None:
    entries = _random_run(tmp_path, seed)
    (tmp_path / "epoch-0042.ckpt").write_bytes(b"left by a crash before the index named it")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    keep = 3
    expected = set(_naive_ranking(entries, select_by)[:keep]) | {8}

    checkpoints.prune_checkpoints(tmp_path, keep, select_by)

    assert _files(tmp_path) == {f"epoch-{epoch:04d}.ckpt" for epoch in expected}
    index = json.loads((tmp_path / checkpoints.INDEX_NAME).read_text())["checkpoints"]
    assert [entry["epoch"] for entry in index] == sorted(expected)
    assert (tmp_path / "notes.txt").is_file()
    assert checkpoints.load_latest(tmp_path)[1].epoch == 8


def test_prune_of_an_empty_folder_does_nothing(tmp_path: Path) -> None:
    checkpoints.prune_checkpoints(tmp_path, 2)
    assert list(tmp_path.iterdir()) == []


def test_stray_sweep_leaves_links_and_folders_alone(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    _three_checkpoints(folder)
    victim = tmp_path / "victim.txt"
    victim.write_text("not cryprint's")
    (folder / "epoch-0008.ckpt").symlink_to(victim)
    (folder / "epoch-0009.ckpt").mkdir()

    checkpoints.prune_checkpoints(folder, 1)

    assert victim.read_text() == "not cryprint's"
    assert (folder / "epoch-0008.ckpt").is_symlink()
    assert (folder / "epoch-0009.ckpt").is_dir()
    assert _files(folder) == {
        "epoch-0002.ckpt",
        "epoch-0003.ckpt",
        "epoch-0008.ckpt",
        "epoch-0009.ckpt",
    }


# --- issue #10 item 2: an index naming files outside its folder -------------------------------


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file outside the checkpoint folder: a valid checkpoint, so reading it would succeed."""
    path = tmp_path / "victim.ckpt"
    torch.save(_state(99), path)
    return path


def _rewrite_entry(folder: Path, epoch: int, fields: dict[str, object]) -> None:
    index = folder / checkpoints.INDEX_NAME
    payload = json.loads(index.read_text())
    for entry in payload["checkpoints"]:
        if entry["epoch"] == epoch:
            entry.update(fields)
    index.write_text(json.dumps(payload))


@pytest.mark.parametrize("how", ["parent", "absolute", "dot-dot inside", "subfolder", "link"])
@pytest.mark.parametrize("operation", ["prune", "load_latest"])
def test_index_naming_a_file_outside_its_folder_is_refused(
    tmp_path: Path, victim: Path, how: str, operation: str
) -> None:
    folder = tmp_path / "checkpoints"
    (folder / "sub").mkdir(parents=True)
    _three_checkpoints(folder)
    named = 1 if operation == "prune" else 3  # the epoch pruning deletes, or load_latest reads
    sha256 = hashlib.sha256(victim.read_bytes()).hexdigest()
    if how == "link":
        (folder / f"epoch-{named:04d}.ckpt").unlink()
        (folder / f"epoch-{named:04d}.ckpt").symlink_to(victim)
        _rewrite_entry(folder, named, {"sha256": sha256})
    else:
        name = {
            "parent": "../victim.ckpt",
            "absolute": str(victim),
            "dot-dot inside": "sub/../../victim.ckpt",
            "subfolder": "sub/epoch-0001.ckpt",
        }[how]
        _rewrite_entry(folder, named, {"file": name, "sha256": sha256})
    inside = _files(folder)

    with _refused(folder):
        if operation == "prune":
            checkpoints.prune_checkpoints(folder, 1)
        else:
            checkpoints.load_latest(folder)

    assert victim.is_file()
    assert _files(folder) == inside  # refused before anything was deleted


@pytest.mark.parametrize(
    "fields",
    [
        {"epoch": "2"},
        {"epoch": -2},
        {"epoch": 2.0},
        {"epoch": True},
        {"file": "epoch-2.ckpt"},
        {"file": "epoch-0003.ckpt"},  # another epoch's file: pruning one would delete the other
        {"file": ""},
        {"sha256": "abc"},
        {"sha256": "g" * 64},
        {"sha256": None},
        {"validation_loss": "0.5"},
        {"validation_eer": None},
        {"validation_eer": [0.1]},
        {"unexpected": 1},
    ],
    ids=repr,
)
def test_index_with_a_malformed_entry_is_refused(tmp_path: Path, fields: dict) -> None:
    _three_checkpoints(tmp_path)
    _rewrite_entry(tmp_path, 2, fields)
    inside = _files(tmp_path)
    for call in (
        lambda: checkpoints.prune_checkpoints(tmp_path, 1),
        lambda: checkpoints.load_latest(tmp_path),
        lambda: checkpoints.best_entries(tmp_path, 1),
    ):
        with _refused(tmp_path):
            call()
    assert _files(tmp_path) == inside


@pytest.mark.parametrize(
    "payload", [[], {"checkpoints": {}}, {"checkpoints": [1]}, {}, "x"], ids=repr
)
def test_index_of_the_wrong_shape_is_refused(tmp_path: Path, payload: object) -> None:
    (tmp_path / checkpoints.INDEX_NAME).write_text(json.dumps(payload))
    with _refused(tmp_path):
        checkpoints.load_latest(tmp_path)


def test_index_with_a_repeated_epoch_is_refused(tmp_path: Path) -> None:
    for epoch in (1, 2):
        _save(tmp_path, epoch, 0.5)
    index = tmp_path / checkpoints.INDEX_NAME
    payload = json.loads(index.read_text())
    payload["checkpoints"].append(payload["checkpoints"][0])
    index.write_text(json.dumps(payload))
    with _refused(tmp_path) as refused:
        checkpoints.prune_checkpoints(tmp_path, 1)
    assert "epoch 1 is listed twice" in str(refused.value)


def test_integral_and_non_finite_numbers_in_an_index_are_accepted(tmp_path: Path) -> None:
    """json writes NaN for a diverged epoch's loss, and a loss may be stored as an integer."""
    for epoch in (1, 2):
        _save(tmp_path, epoch, NAN, NAN)
    _rewrite_entry(tmp_path, 1, {"validation_loss": 1, "validation_eer": 0})
    assert [e.epoch for e in checkpoints.best_entries(tmp_path, 2)] == [1, 2]
    assert checkpoints.load_latest(tmp_path)[1].epoch == 2
