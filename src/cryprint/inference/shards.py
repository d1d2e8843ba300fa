"""Embedding a large split in parts: ``cryprint embed --shard K/N`` and ``cryprint embed-merge``.

A job array of a cluster scheduler (Slurm's ``--array=1-N``) or N machines each embed one shard
of a split — every N-th recording of its sorted list, starting at the K-th, so long and short
recordings spread evenly — into its own ``.npz`` part (and its own embedding store). The merge
reads the parts and refuses unless they are exactly shards 1..N of one split, embedded by the
same weights the same way, from the same audio files, that together hold every recording of
the split once; it writes the whole split's ``.npz`` (what ``embed`` without ``--shard`` writes)
and puts the embeddings into the local embedding store, so that ``evaluate`` and ``submit``
then embed nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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
from cryprint.inference.store import EmbeddingStore, open_store

Item = TypeVar("Item")
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
# The embedding store receives the merged embeddings in chunks of this many (one transaction).
_STORE_CHUNK = 1000


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based): the recordings ``index - 1``, ``index - 1 +
    count``, ... of a split's sorted list."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise ConfigError(f"shard {self.index}/{self.count}: K/N needs 1 <= K <= N")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def rows(self, n: int) -> range:
        """The positions of this shard's items among ``n``."""
        return range(self.index - 1, n, self.count)

    def take(self, items: Sequence[Item]) -> list[Item]:
        """This shard's items of a list."""
        return [items[i] for i in self.rows(len(items))]


def parse_shard(text: str) -> Shard:
    """``"K/N"`` → :class:`Shard` (``2/8``: the second of eight).

    Raises:
        ConfigError: not ``K/N`` with 1 <= K <= N.
    """
    match = _SHARD.match(str(text))
    if match is None:
        raise ConfigError(f"shard '{text}' is not K/N (e.g. 2/8: the second of eight parts)")
    return Shard(int(match.group(1)), int(match.group(2)))


def merge_shards(
    parts: Sequence[Path | str],
    root: Path | str,
    out: Path | str | None = None,
    store: EmbeddingStore | Path | str | bool | None = True,
) -> RecordingEmbeddings:
    """Check that ``parts`` are all the shards of one split and merge them.

    Args:
        parts: the ``.npz`` files written by ``embed --shard K/N`` (any order).
        root: the CryCeleb-layout data directory they were embedded from: the merged keys must
            be exactly its split's recordings, its audio files unchanged since.
        out: the merged ``.npz`` to write (atomically), or None.
        store: the embedding store to put the embeddings in (True: the default one; False:
            none).

    Returns:
        The whole split's :class:`RecordingEmbeddings`, in the order ``embed`` gives.

    Raises:
        DataError: an unreadable part, parts of different splits, weights, embedding options,
            shard counts or audio, a shard missing or given twice, a recording in two parts,
            or recordings of the split missing; nothing is written then.
    """
    loaded = {Path(part): _read_part(Path(part)) for part in parts}
    if not loaded:
        raise DataError("no parts to merge")
    if out is not None:
        check_replaceable_embeddings(out)
        if any(Path(out).resolve() == path.resolve() for path in loaded):
            raise OutputError(
                f"{out} is one of the parts: choose another {{out}}", fields={"out": FIELD}
            )
    first = _check_parts(loaded)
    keys, data_id = split_keys(root, first.split)
    if data_id != first.data_id:
        raise DataError(
            f"the {first.split} audio of {root} changed since the parts were embedded "
            "(or they are of another data directory)"
        )
    rows: dict[str, tuple[Path, int]] = {}
    for path, part in loaded.items():
        for row, key in enumerate(part.keys):
            if key in rows:
                raise DataError(f"recording {key} is in two parts: {rows[key][0]} and {path}")
            rows[key] = (path, row)
    missing = [key for key in keys if key not in rows]
    extra = sorted(set(rows) - set(keys))
    if missing or extra:
        raise DataError(
            f"the parts do not hold exactly the {first.split} split's {len(keys)} recordings: "
            f"{len(missing)} missing (first: {missing[:1]}), {len(extra)} not in it "
            f"(first: {extra[:1]})"
        )
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
    _put_in_store(merged, store)
    return merged


def _read_part(path: Path) -> RecordingEmbeddings:
    part = load_embeddings(path)
    if part is None:  # load_embeddings raises instead unless missing_ok
        raise DataError(f"{path}: embeddings file not found")
    return part


def _check_parts(parts: dict[Path, RecordingEmbeddings]) -> RecordingEmbeddings:
    """The parts agree on everything but their shard, and are shards 1..N once each."""
    first_path, first = next(iter(parts.items()))
    for path, part in parts.items():
        # A shard of a short split may hold no recording at all (N > recordings).
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
        raise DataError(
            f"the parts were embedded with different {{tta}} or {{trim}} ({sorted(suffixes)}): "
            "they are not parts of one embedding job",
            fields={"tta": FIELD, "trim": FIELD},
        )
    shards = {path: parse_shard(part.shard) for path, part in parts.items()}
    counts = {shard.count for shard in shards.values()}
    if len(counts) != 1:
        raise DataError(f"the parts split the data differently: N = {sorted(counts)}")
    count = counts.pop()
    seen: dict[int, Path] = {}
    for path, shard in shards.items():
        if shard.index in seen:
            raise DataError(f"shard {shard} is given twice: {seen[shard.index]} and {path}")
        seen[shard.index] = path
    absent = [f"{k}/{count}" for k in range(1, count + 1) if k not in seen]
    if absent:
        raise DataError(f"shard(s) {', '.join(absent)} missing: run them, then merge again")
    return first


def _put_in_store(
    merged: RecordingEmbeddings, store: EmbeddingStore | Path | str | bool | None
) -> None:
    opened = open_store(store)
    if opened is None:
        return
    for start in range(0, len(merged.keys), _STORE_CHUNK):
        chunk = range(start, min(start + _STORE_CHUNK, len(merged.keys)))
        opened.put(
            merged.embedding_id,
            {merged.store_keys[i]: merged.embeddings[i] for i in chunk},
        )
