"""A CryCeleb-layout corpus held in memory, and its groupings into recordings.

Audio is read once and kept as int16 (the whole real train split is about 0.75 GB that way,
half of float32); every later crop or embedding slices these arrays instead of touching disk.

Groupings:

- :func:`recordings` — the verification unit: one (baby_id, period), its segments concatenated
  in ``chronological_index`` order (numeric when the indices are whole numbers).
- :func:`unified_groups` — the triplet method's training unit: every recording of a baby, B and
  D together, under one label.
- :func:`baseline_groups` — the official baseline's: babies with both periods, B recordings for
  training and D recordings for validation.
- :func:`split_babies` — a seeded random split of babies into train/validation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cryprint.data.audio import SAMPLE_RATE, read_audio, to_float32, to_int16
from cryprint.data.layout import chronological_sort_key, read_metadata
from cryprint.errors import DataError


@dataclass(frozen=True)
class Recording:
    """All segments of one (baby_id, period), in chronological order.

    ``segments`` are int16 [samples] arrays at 16 kHz; :meth:`waveform` concatenates them.
    """

    baby_id: str
    period: str
    split: str
    segments: tuple[np.ndarray, ...]

    @property
    def key(self) -> str:
        """``{baby_id}{period}``, the half of a pair id that names this recording (``0133B``)."""
        return f"{self.baby_id}{self.period}"

    @property
    def num_samples(self) -> int:
        return sum(len(segment) for segment in self.segments)

    @property
    def seconds(self) -> float:
        return self.num_samples / SAMPLE_RATE

    def waveform(self) -> np.ndarray:
        """float32 [samples]: the segments concatenated."""
        return to_float32(np.concatenate(self.segments))


class Corpus:
    """The metadata of a CryCeleb-layout directory plus its audio, loaded once.

    Args:
        root: the data directory.
        splits: which splits to load audio for (metadata is always read whole).
        progress: show a progress bar while reading audio.
    """

    def __init__(
        self,
        root: Path | str,
        splits: Iterable[str] = ("train", "dev", "test"),
        progress: bool = False,
    ) -> None:
        self.root = Path(root)
        self.metadata = read_metadata(self.root)
        wanted = self.metadata[self.metadata["split"].isin(list(splits))]
        self._segments: dict[str, np.ndarray] = {}
        for file_name in tqdm(
            wanted["file_name"], desc="reading audio", disable=not progress, unit="file"
        ):
            self._segments[file_name] = to_int16(read_audio(self.root / file_name))
        self.splits = tuple(sorted(set(wanted["split"])))

    def segment(self, file_name: str) -> np.ndarray:
        """int16 [samples] of one file listed in the metadata."""
        try:
            return self._segments[file_name]
        except KeyError:
            raise DataError(f"{file_name}: not loaded (loaded splits: {self.splits})") from None

    def rows(self, split: str) -> pd.DataFrame:
        """The metadata rows of ``split``, requiring its audio to be loaded."""
        if split not in self.splits:
            raise DataError(f"split '{split}' not loaded; loaded: {', '.join(self.splits)}")
        return self.metadata[self.metadata["split"] == split]


def recording_segments(rows: pd.DataFrame) -> list[tuple[str, str, list[str]]]:
    """``(baby_id, period, file names in chronological order)`` of each recording among metadata
    ``rows``, sorted by baby then period — what :func:`recordings` joins, without reading audio."""
    result = []
    for (baby_id, period), group in rows.groupby(["baby_id", "period"], sort=True):
        group = group.sort_values("chronological_index", key=chronological_sort_key, kind="stable")
        result.append((str(baby_id), str(period), list(group["file_name"])))
    return result


def recordings(corpus: Corpus, split: str) -> list[Recording]:
    """One :class:`Recording` per (baby_id, period) of ``split``, sorted by baby then period."""
    return [
        Recording(baby_id, period, split, tuple(corpus.segment(name) for name in names))
        for baby_id, period, names in recording_segments(corpus.rows(split))
    ]


def unified_groups(items: list[Recording]) -> dict[str, list[Recording]]:
    """Each baby's recordings, B and D together: the triplet method's training unit."""
    groups: dict[str, list[Recording]] = {}
    for recording in items:
        groups.setdefault(recording.baby_id, []).append(recording)
    return groups


def baseline_groups(items: list[Recording]) -> tuple[list[Recording], list[Recording]]:
    """The official baseline's grouping: among babies with both periods, the B recordings to
    train on and the D recordings to validate on."""
    periods = unified_groups(items)
    both = {baby for baby, group in periods.items() if {r.period for r in group} == {"B", "D"}}
    train = [r for r in items if r.baby_id in both and r.period == "B"]
    validation = [r for r in items if r.baby_id in both and r.period == "D"]
    return train, validation


def split_babies(
    baby_ids: Iterable[str], validation_fraction: float = 0.15, seed: int = 0
) -> tuple[list[str], list[str]]:
    """A seeded random split of babies (not recordings) into train and validation.

    Returns:
        (train_ids, validation_ids), each sorted. Every baby lands in exactly one of them.
    """
    ids = sorted(set(baby_ids))
    if not 0.0 < validation_fraction < 1.0:
        raise DataError(f"validation fraction must be in (0, 1), got {validation_fraction}")
    n_validation = round(len(ids) * validation_fraction)
    if n_validation < 2 or len(ids) - n_validation < 2:
        raise DataError(
            f"{len(ids)} babies are too few to split {validation_fraction:.0%} off for validation"
        )
    order = np.random.default_rng(seed).permutation(len(ids))
    validation = sorted(ids[i] for i in order[:n_validation])
    train = sorted(ids[i] for i in order[n_validation:])
    return train, validation
