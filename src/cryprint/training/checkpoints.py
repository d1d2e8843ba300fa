"""Checkpoints written atomically, indexed with checksums, pruned to the best few.

``CHECKPOINT_DIR/index.json`` lists every kept checkpoint with its epoch, validation loss and
EER, and the SHA-256 of its bytes. A checkpoint file is written completely (temporary file,
fsync, rename) before the index names it, so a crash at any moment leaves the index naming only
complete files. On load, a file whose checksum does not match (truncated, corrupted) is reported
and the previous good one is used.

The index is checked whenever it is read: each entry names its own epoch's ``epoch-NNNN.ckpt``
inside the folder (no other path, no link out of it) with a well-formed checksum and numbers,
or the whole index is refused with a :class:`CheckpointError` before anything is read or
deleted. Pruning deletes only regular files.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import pickle
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from cryprint.errors import CheckpointError
from cryprint.io import atomic_write, atomic_write_text

INDEX_NAME = "index.json"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckpointEntry:
    epoch: int
    file: str
    sha256: str
    validation_loss: float
    validation_eer: float


_ENTRY_FIELDS = frozenset(field.name for field in fields(CheckpointEntry))
_SHA256 = re.compile("[0-9a-f]{64}")


def _entry_problem(raw: Any, folder: Path) -> str | None:
    """Why one index entry cannot be trusted, or None. Its file must be this epoch's own
    ``epoch-NNNN.ckpt`` and resolve inside ``folder``: an index naming ``../x``, an absolute
    path or a link out of the folder would make pruning delete (and loading read) files that
    are not this run's."""
    if not isinstance(raw, dict) or set(raw) != _ENTRY_FIELDS:
        return f"an entry must have exactly the fields {', '.join(sorted(_ENTRY_FIELDS))}"
    epoch, file = raw["epoch"], raw["file"]
    if type(epoch) is not int or epoch < 0:
        return f"epoch {epoch!r} is not an integer >= 0"
    if file != f"epoch-{epoch:04d}.ckpt":
        return f"file {file!r} of epoch {epoch} is not 'epoch-{epoch:04d}.ckpt'"
    if not _stays_inside(folder, file):
        return f"{file} leads outside the folder (a symbolic link)"
    if not (isinstance(raw["sha256"], str) and _SHA256.fullmatch(raw["sha256"])):
        return f"sha256 of epoch {epoch} is not 64 hexadecimal digits"
    for name in ("validation_loss", "validation_eer"):
        if type(raw[name]) not in (int, float):
            return f"{name} of epoch {epoch} is not a number"
    return None


def _stays_inside(folder: Path, name: str) -> bool:
    try:
        return (folder / name).resolve().parent == folder.resolve()
    except (OSError, RuntimeError):  # a symbolic link loop
        return False


def _read_index(folder: Path) -> list[CheckpointEntry]:
    """The index's entries, each checked (see :func:`_entry_problem`).

    Raises:
        CheckpointError: the index is unreadable or any entry is malformed; nothing is used.
    """
    path = folder / INDEX_NAME
    if not path.is_file():
        return []
    try:
        raw_entries = json.loads(path.read_text())["checkpoints"]
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: unreadable checkpoint index ({error})") from error
    if not isinstance(raw_entries, list):
        raise CheckpointError(f"{path}: unreadable checkpoint index ('checkpoints' is no list)")
    seen: set[int] = set()
    entries = []
    for raw in raw_entries:
        problem = _entry_problem(raw, folder)
        if problem is None and raw["epoch"] in seen:
            problem = f"epoch {raw['epoch']} is listed twice"
        if problem is not None:
            raise CheckpointError(
                f"{path}: refusing this checkpoint index: {problem}; "
                "restore the folder from a backup or start a new run"
            )
        seen.add(raw["epoch"])
        entries.append(
            CheckpointEntry(
                raw["epoch"],
                raw["file"],
                raw["sha256"],
                float(raw["validation_loss"]),
                float(raw["validation_eer"]),
            )
        )
    return entries


def _write_index(folder: Path, entries: list[CheckpointEntry]) -> None:
    payload = {"checkpoints": [asdict(entry) for entry in sorted(entries, key=lambda e: e.epoch)]}
    atomic_write_text(folder / INDEX_NAME, json.dumps(payload, indent=2) + "\n")


def save_checkpoint(
    folder: Path, epoch: int, state: dict[str, Any], validation_loss: float, validation_eer: float
) -> CheckpointEntry:
    """Write ``state`` as ``epoch-NNNN.ckpt`` and add it to the index (after it is complete)."""
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    entry = CheckpointEntry(
        epoch,
        f"epoch-{epoch:04d}.ckpt",
        hashlib.sha256(data).hexdigest(),
        float(validation_loss),
        float(validation_eer),
    )
    atomic_write(folder / entry.file, lambda file: file.write(data))
    entries = [e for e in _read_index(folder) if e.epoch != epoch] + [entry]
    _write_index(folder, entries)
    return entry


def _selection_key(entry: CheckpointEntry, select_by: str) -> tuple[float, int]:
    value = entry.validation_eer if select_by == "eer" else entry.validation_loss
    # NaN sorts last; among equals the earlier epoch wins.
    return (value if value == value else float("inf"), entry.epoch)


def best_entries(folder: Path, keep: int, select_by: str = "loss") -> list[CheckpointEntry]:
    """The ``keep`` best checkpoints by validation loss (or EER), best first."""
    return sorted(_read_index(folder), key=lambda e: _selection_key(e, select_by))[:keep]


def is_new_best(
    folder: Path,
    epoch: int,
    validation_loss: float,
    validation_eer: float,
    select_by: str = "loss",
) -> bool:
    """Whether a checkpoint of ``epoch`` with these numbers would rank first among the indexed
    ones (as :func:`best_entries` ranks them), before it is saved."""
    candidate = CheckpointEntry(epoch, "", "", float(validation_loss), float(validation_eer))
    key = _selection_key(candidate, select_by)
    return all(
        key < _selection_key(entry, select_by)
        for entry in _read_index(folder)
        if entry.epoch != epoch
    )


def prune_checkpoints(folder: Path, keep: int, select_by: str = "loss") -> None:
    """Keep the ``keep`` best checkpoints and the latest one (to resume from); delete the rest."""
    entries = _read_index(folder)
    if not entries:
        return
    kept = {e.epoch for e in best_entries(folder, keep, select_by)}
    kept.add(max(e.epoch for e in entries))
    _write_index(folder, [e for e in entries if e.epoch in kept])
    for entry in entries:
        if entry.epoch not in kept:
            _remove_checkpoint_file(folder / entry.file)
    # Files no index names (left by a crash between writing a file and the index) go too.
    named = {e.file for e in entries if e.epoch in kept}
    for stray in folder.glob("epoch-*.ckpt"):
        if stray.name not in named:
            _remove_checkpoint_file(stray)


def _remove_checkpoint_file(path: Path) -> None:
    """Delete ``path`` when it is a regular file; a link (wherever it points) or a folder that
    happens to carry a checkpoint's name is not one cryprint wrote, and is left alone."""
    if path.is_symlink() or not path.is_file():
        if path.exists() or path.is_symlink():
            logger.warning("left %s alone: not a regular checkpoint file", path)
        return
    path.unlink(missing_ok=True)


def verify(folder: Path, entry: CheckpointEntry) -> bool:
    """True when the checkpoint file exists and its SHA-256 matches the index."""
    path = folder / entry.file
    if not path.is_file():
        return False
    return hashlib.sha256(path.read_bytes()).hexdigest() == entry.sha256


def load_latest(folder: Path) -> tuple[dict[str, Any], CheckpointEntry] | None:
    """The newest checkpoint whose checksum verifies, or None when there is none at all.

    A corrupted or truncated newer checkpoint is logged by name and skipped, and so is one that
    holds more than weights (it is read with ``weights_only=True``: a pickle that would run code
    is refused, never run).

    Raises:
        CheckpointError: checkpoints exist but none is usable; the message says why for each.
    """
    entries = sorted(_read_index(folder), key=lambda e: e.epoch, reverse=True)
    if not entries:
        return None
    problems = []
    for entry in entries:
        path = folder / entry.file
        if not verify(folder, entry):
            logger.warning(
                "checkpoint %s is missing or corrupt (checksum mismatch); trying the previous one",
                path,
            )
            problems.append(f"{entry.file} is missing or fails its checksum")
            continue
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            # torch's own message advises weights_only=False: not advice to pass on here.
            if "GLOBAL" in str(error):
                why = "refused: it holds Python objects that would run code when loaded"
            else:
                why = f"is unreadable ({str(error).splitlines()[0]})"
            logger.warning("checkpoint %s %s; trying the previous one", path, why)
            problems.append(f"{entry.file} {why}")
            continue
        except Exception as error:  # a verified file that still fails to load is also skipped
            logger.warning("checkpoint %s could not be loaded (%s)", path, error)
            problems.append(f"{entry.file} could not be loaded ({error})")
            continue
        return state, entry
    raise CheckpointError(
        f"{folder}: none of the {len(entries)} checkpoint(s) is usable ({'; '.join(problems)}); "
        "start a new run or restore the folder from a backup"
    )
