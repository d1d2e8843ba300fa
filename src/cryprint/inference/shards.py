"""Embedding a large split in parts: ``cryprint embed --shard K/N`` and ``cryprint embed-merge``.

A job array of a cluster scheduler (Slurm's ``--array=1-N``) or N machines each embed one shard
of a split — every N-th recording of its sorted list, starting at the K-th, so long and short
recordings spread evenly — into its own ``.npz`` part (and its own embedding store). N is at
most the split's number of recordings, so that no shard is empty. The merge reads the parts and
refuses unless they are exactly shards 1..N of one split, embedded by the same weights the same
way, from the same audio files, that together hold every recording of the split once; it writes
the whole split's ``.npz`` (what ``embed`` without ``--shard`` writes).

The merge puts nothing into the embedding store: a part is a file anyone can edit, and the
store must hold only embeddings a cryprint process computed, since every command trusts it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from cryprint.errors import FIELD, ConfigError, DataError, OutputError
from cryprint.inference.embedding_file import (
    RecordingEmbeddings,
    check_replaceable_embeddings,
    how_embedded,
    load_embeddings,
    save_embeddings,
)
from cryprint.inference.splits import split_keys

Item = TypeVar("Item")
# At most six digits each: a longer number is refused before Python converts it.
_SHARD = re.compile(r"^\s*(\d{1,6})\s*/\s*(\d{1,6})\s*$")
# More parts than any job array needs (Slurm's default MaxArraySize is 1001); the split's number
# of recordings bounds N again when the shard is used.
MAX_SHARDS = 100_000
# A refusal lists at most this many shards, keys or paths, then how many more there are.
_LISTED = 3
# ... and shortens each to this many characters (a hand-edited part may hold any text).
_SHOWN_CHARACTERS = 60


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based): the recordings ``index - 1``, ``index - 1 +
    count``, ... of a split's sorted list."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise ConfigError(f"shard {self.index}/{self.count}: K/N needs 1 <= K <= N")
        if self.count > MAX_SHARDS:
            raise ConfigError(f"shard {self.index}/{self.count}: N is at most {MAX_SHARDS}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def rows(self, n: int) -> range:
        """The positions of this shard's items among ``n``.

        Raises:
            ConfigError: more shards than items (some shard would hold nothing).
        """
        if self.count > n:
            raise ConfigError(
                f"{{shard}} {self}: {self.count} parts of {n} recordings; choose N <= {n}",
                fields={"shard": FIELD},
            )
        return range(self.index - 1, n, self.count)

    def take(self, items: Sequence[Item]) -> list[Item]:
        """This shard's items of a list."""
        return [items[i] for i in self.rows(len(items))]


def parse_shard(text: str) -> Shard:
    """``"K/N"`` → :class:`Shard` (``2/8``: the second of eight).

    Raises:
        ConfigError: not ``K/N`` with 1 <= K <= N <= :data:`MAX_SHARDS`.
    """
    text = str(text)
    match = _SHARD.match(text)
    if match is None:
        raise ConfigError(
            f"shard '{_shortened(text)}' is not K/N with N <= {MAX_SHARDS} (e.g. 2/8: the "
            "second of eight parts)"
        )
    return Shard(int(match.group(1)), int(match.group(2)))


def merge_shards(
    parts: Sequence[Path | str], root: Path | str, out: Path | str | None = None
) -> RecordingEmbeddings:
    """Check that ``parts`` are all the shards of one split and merge them.

    Nothing goes into the embedding store (see the module docstring).

    Args:
        parts: the ``.npz`` files written by ``embed --shard K/N`` (any order, each once).
        root: the CryCeleb-layout data directory they were embedded from: the merged keys must
            be exactly its split's recordings, its audio files unchanged since.
        out: the merged ``.npz`` to write (atomically), or None.

    Returns:
        The whole split's :class:`RecordingEmbeddings`, in the order ``embed`` gives.

    Raises:
        DataError: no parts, a file given twice, an unreadable part, parts of different
            splits, weights, embedding options, shard counts or audio, a shard missing or
            given twice, more shards than recordings, a recording in two parts, or recordings
            of the split missing; nothing is written then.
        OutputError: ``out`` is one of the parts, or a file cryprint did not write.
    """
    paths = _distinct_paths(parts)
    if out is not None:
        check_replaceable_embeddings(out)
        if Path(out).resolve() in paths.values():
            raise OutputError(
                f"{out} is one of the parts: choose another {{out}}", fields={"out": FIELD}
            )
    loaded = {path: _read_part(path) for path in paths}
    first = _check_agreement(loaded)
    keys, data_id = split_keys(root, first.split)
    if data_id != first.data_id:
        raise DataError(
            f"the {first.split} audio of {root} changed since the parts were embedded "
            "(or they are of another data directory)"
        )
    _check_shards(loaded, len(keys))
    rows = _rows_of_keys(loaded)
    _check_recordings(first.split, keys, rows)
    merged = RecordingEmbeddings(
        keys,
        np.stack([loaded[rows[key][0]].embeddings[rows[key][1]] for key in keys]),
        first.model_id,
        data_id,
        split=first.split,
        embedding_id=first.embedding_id,
        store_keys=[loaded[rows[key][0]].store_keys[rows[key][1]] for key in keys],
    )
    if out is not None:
        save_embeddings(out, merged)
    return merged


def _distinct_paths(parts: Sequence[Path | str]) -> dict[Path, Path]:
    """Each part as given → its resolved path; the same file given twice is refused."""
    if not parts:
        raise DataError("no parts to merge")
    given: dict[Path, Path] = {}  # resolved → as given
    for part in map(Path, parts):
        resolved = part.resolve()
        if resolved in given:
            raise DataError(f"{part} is given twice (as {given[resolved]}): give each part once")
        given[resolved] = part
    return {part: resolved for resolved, part in given.items()}


def _read_part(path: Path) -> RecordingEmbeddings:
    part = load_embeddings(path)
    if part is None:  # load_embeddings raises instead unless missing_ok
        raise DataError(f"{path}: embeddings file not found")
    return part


def _check_agreement(parts: dict[Path, RecordingEmbeddings]) -> RecordingEmbeddings:
    """The parts are shards that agree on everything but their shard; the first of them."""
    first_path, first = next(iter(parts.items()))
    for path, part in parts.items():
        if not part.shard or (part.keys and not part.store_keys):
            raise DataError(f"{path} is not a shard (written by `cryprint embed --shard K/N`)")
        for what in ("split", "model_id", "embedding_id", "data_id"):
            if getattr(part, what) != getattr(first, what):
                raise DataError(
                    f"{path} and {first_path} differ in {what.replace('_', ' ')}: they are not "
                    "parts of one embedding job (same model, {precision} and {backend}?)",
                    fields={"precision": FIELD, "backend": FIELD},
                )
    suffixes = {how_embedded(key) for part in parts.values() for key in part.store_keys}
    if len(suffixes) > 1:
        listed = _few(sorted(map(repr, suffixes)))
        raise DataError(
            f"the parts were embedded with different {{tta}} or {{trim}} ({listed}): "
            "they are not parts of one embedding job",
            fields={"tta": FIELD, "trim": FIELD},
        )
    return first


def _check_shards(parts: dict[Path, RecordingEmbeddings], n_recordings: int) -> None:
    """The parts are shards 1..N of ``n_recordings``, once each."""
    shards = {path: _part_shard(path, part) for path, part in parts.items()}
    counts = {shard.count for shard in shards.values()}
    if len(counts) != 1:
        raise DataError(f"the parts split the data differently: N = {_few(sorted(counts))}")
    count = counts.pop()
    if count > n_recordings:
        raise DataError(
            f"the parts are of {count} shards, more than the split's {n_recordings} recordings"
        )
    seen: dict[int, Path] = {}
    for path, shard in shards.items():
        if shard.index in seen:
            raise DataError(f"shard {shard} is given twice: {seen[shard.index]} and {path}")
        seen[shard.index] = path
    if len(seen) < count:
        absent = (f"{k}/{count}" for k in range(1, count + 1) if k not in seen)
        raise DataError(
            f"shard(s) {_few(absent, count - len(seen))} missing: run them, then merge again"
        )


def _part_shard(path: Path, part: RecordingEmbeddings) -> Shard:
    try:
        return parse_shard(part.shard)
    except ConfigError as error:
        raise DataError(f"{path}: {error}") from error


def _rows_of_keys(parts: dict[Path, RecordingEmbeddings]) -> dict[str, tuple[Path, int]]:
    """Each recording key → (its part, its row there); a key in two parts is refused."""
    rows: dict[str, tuple[Path, int]] = {}
    for path, part in parts.items():
        for row, key in enumerate(part.keys):
            if key in rows:
                raise DataError(
                    f"recording {_shortened(key)} is in two parts: {rows[key][0]} and {path}"
                )
            rows[key] = (path, row)
    return rows


def _check_recordings(split: str, keys: list[str], rows: dict[str, tuple[Path, int]]) -> None:
    """The parts hold exactly the split's recordings."""
    missing = [key for key in keys if key not in rows]
    extra = sorted(set(rows) - set(keys))
    if missing or extra:
        raise DataError(
            f"the parts do not hold exactly the {split} split's {len(keys)} recordings: "
            f"{len(missing)} missing ({_few(missing)}), {len(extra)} not in it ({_few(extra)})"
        )


def _few(items: Iterable[object], total: int | None = None) -> str:
    """At most :data:`_LISTED` items, each shortened, and how many more: ``a, b, c and 7 more``
    (``total``: how many there are, when ``items`` is an iterator)."""
    if total is None:
        items = list(items)
        total = len(items)
    shown = [_shortened(str(item)) for item in itertools.islice(items, _LISTED)]
    if not shown:
        return "none"
    more = f" and {total - len(shown)} more" if total > len(shown) else ""
    return ", ".join(shown) + more


def _shortened(text: str) -> str:
    """``text``, cut to :data:`_SHOWN_CHARACTERS` with an ellipsis when longer."""
    if len(text) <= _SHOWN_CHARACTERS:
        return text
    return f"{text[: _SHOWN_CHARACTERS - 3]}... ({len(text)} characters)"
