"""Score the trials of a pairs file from recording embeddings: cosine, optionally AS-norm.

A trial (one row of ``{split}_pairs.csv``) compares the B recording of ``baby_id_B`` (key
``{baby_id_B}B``) with the D recording of ``baby_id_D`` (key ``{baby_id_D}D``). Scores are
computed for all trials at once: an index lookup of both sides, then a row-wise dot product of
unit vectors.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from cryprint.errors import FIELD, DataError
from cryprint.inference.embedding_file import RecordingEmbeddings
from cryprint.scoring import as_norm_pairs, cosine_pairs

# AS-norm cohort size used when none is given: the usual choice in speaker verification
# (wespeaker, SpeechBrain recipes use 100–300 of several thousand); clipped to the cohort.
DEFAULT_COHORT_TOP_N = 100

TopN = int | Literal["auto"]


def pair_indices(embeddings: RecordingEmbeddings, pairs: pd.DataFrame) -> np.ndarray:
    """Row indices into ``embeddings`` of both sides of every trial.

    Args:
        embeddings: recording embeddings with keys ``{baby_id}{period}``.
        pairs: columns ``baby_id_B``, ``baby_id_D``, ``id`` (as :func:`read_pairs` returns).

    Returns:
        int64 [n_pairs, 2]: (row of the B recording, row of the D recording).

    Raises:
        DataError: a trial names a recording that has no embedding (the first such trial's id
            and the missing key are named).
    """
    index = pd.Index(embeddings.keys)
    columns = []
    for column, period in (("baby_id_B", "B"), ("baby_id_D", "D")):
        keys = pairs[column].astype(str) + period
        positions = index.get_indexer(keys)
        missing = positions < 0
        if missing.any():
            first = int(np.flatnonzero(missing)[0])
            raise DataError(
                f"pair {pairs['id'].iloc[first]}: no recording {keys.iloc[first]} "
                f"(baby {pairs[column].iloc[first]}, period {period}) among the "
                f"{len(embeddings.keys)} embedded recordings; {int(missing.sum())} pair(s) "
                "name a missing recording"
            )
        columns.append(positions)
    return np.stack(columns, axis=1).astype(np.int64)


def score_pairs(embeddings: RecordingEmbeddings, pairs: pd.DataFrame) -> np.ndarray:
    """Cosine similarity of each trial's B and D recordings.

    Args:
        embeddings: recording embeddings, float [n_recordings, dim].
        pairs: trials (columns ``baby_id_B``, ``baby_id_D``, ``id``).

    Returns:
        float64 [n_pairs] in [-1, 1], in the order of ``pairs``.

    Raises:
        DataError: a trial names a recording without an embedding.
    """
    sides = pair_indices(embeddings, pairs)
    return cosine_pairs(embeddings.embeddings, embeddings.embeddings, sides)


def resolve_top_n(requested: TopN | None, cohort_size: int) -> int:
    """The AS-norm ``top_n`` to use with a cohort of ``cohort_size`` recordings.

    ``"auto"`` (or None) gives ``min(DEFAULT_COHORT_TOP_N, cohort_size)``; an explicit value must
    lie in [2, cohort_size] (an explicit request is never silently changed).

    Raises:
        DataError: cohort smaller than 2, or an explicit value outside [2, cohort_size].
    """
    if cohort_size < 2:
        raise DataError(f"the AS-norm cohort holds {cohort_size} recording(s); at least 2 needed")
    if requested is None or requested == "auto":
        return min(DEFAULT_COHORT_TOP_N, cohort_size)
    if isinstance(requested, bool) or not isinstance(requested, int | np.integer):
        raise DataError(f"cohort top-n must be an integer or 'auto', got {requested!r}")
    if not 2 <= requested <= cohort_size:
        raise DataError(
            f"cohort top-n {requested} is outside [2, {cohort_size}]: the cohort (the train "
            f"split) holds {cohort_size} recordings; pass a smaller {{as_norm_top_n}}",
            fields={"as_norm_top_n": FIELD},
        )
    return int(requested)


def score_pairs_as_norm(
    embeddings: RecordingEmbeddings,
    pairs: pd.DataFrame,
    cohort: RecordingEmbeddings,
    top_n: int,
) -> np.ndarray:
    """AS-norm scores of the trials (see :mod:`cryprint.scoring.normalization`).

    Args:
        embeddings: the trials' recording embeddings.
        pairs: trials (columns ``baby_id_B``, ``baby_id_D``, ``id``).
        cohort: embeddings of recordings of other babies (the train split); both sides of a
            trial are normalised by the mean and std of their ``top_n`` best cohort scores.
        top_n: 2 <= top_n <= number of cohort recordings.

    Returns:
        float64 [n_pairs], in the order of ``pairs``.
    """
    shared = sorted(set(embeddings.keys) & set(cohort.keys))
    if shared:
        raise DataError(
            f"the AS-norm cohort holds recordings of the trials themselves ({', '.join(shared[:3])}"
            "…): use recordings of other babies (the train split)"
        )
    sides = pair_indices(embeddings, pairs)
    return as_norm_pairs(
        embeddings.embeddings, embeddings.embeddings, cohort.embeddings, sides, top_n
    )
