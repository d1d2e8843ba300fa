"""Which enrolled baby is a cry closest to? Ranking babies by score (pure numpy, no I/O).

Each baby's enrolments are reduced to one direction (:func:`baby_centroids`), a cry is scored
against every baby's direction, and :func:`rank_candidates` orders them and decides between the
best baby and "none of these" at a threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cryprint.errors import ConfigError, DataError
from cryprint.scoring.cosine import unit_rows


@dataclass(frozen=True)
class Candidate:
    """A baby ranked for a cry: ``score`` is the cosine of the cry with the baby's enrolments'
    mean direction, in [-1, 1]."""

    baby_id: str
    score: float
    n_enrolments: int


@dataclass(frozen=True)
class Identification:
    """The outcome of identifying one cry.

    candidates: the best babies, highest score first (ties by baby id). threshold: the best
    candidate is accepted when ``score >= threshold``. threshold_source: where it came from.
    none_of_these: the best score is below the threshold (open set: the crying baby is taken
    to be none of the enrolled ones). n_babies: babies in the gallery.
    """

    candidates: tuple[Candidate, ...]
    threshold: float
    threshold_source: str
    none_of_these: bool
    n_babies: int

    @property
    def best(self) -> Candidate:
        return self.candidates[0]

    def to_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["best"] = None if self.none_of_these else self.best.baby_id
        return result


def baby_centroids(
    baby_ids: Sequence[str], embeddings: ArrayLike
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Each baby's enrolments reduced to one direction.

    Why the mean of the unit enrolment vectors, not the best single enrolment: the mean averages
    out what varies from cry to cry (crying state, noise) and gives every baby exactly one
    score however many recordings it has. The maximum over enrolments would give babies with
    more enrolments more chances to score high by luck: more false alarms in the open set.

    Args:
        baby_ids: [n] the baby of each enrolment.
        embeddings: float [n, dim], any norm (each is scaled to unit length first).

    Returns:
        (babies sorted by id, float64 [n_babies, dim] unit centroids, int [n_babies] counts).

    Raises:
        DataError: non-finite or zero embeddings, or a baby whose enrolments cancel out.
    """
    vectors = unit_rows(embeddings, "enrolment")
    if len(baby_ids) != len(vectors):
        raise DataError(f"{len(baby_ids)} baby ids for {len(vectors)} enrolment embeddings")
    babies, index = np.unique(np.asarray(baby_ids, dtype=object).astype(str), return_inverse=True)
    sums = np.zeros((len(babies), vectors.shape[1]))
    np.add.at(sums, index, vectors)
    counts = np.bincount(index, minlength=len(babies))
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    cancelled = [str(babies[i]) for i in np.flatnonzero(norms[:, 0] < 1e-12)]
    if cancelled:
        raise DataError(f"the enrolments of {', '.join(cancelled)} cancel out (zero mean)")
    return [str(baby) for baby in babies], sums / norms, counts


def rank_candidates(
    scores: ArrayLike,
    baby_ids: Sequence[str],
    counts: ArrayLike,
    threshold: float,
    threshold_source: str = "given",
    top: int = 5,
) -> Identification:
    """Rank babies by score and decide: the best one, or none of them.

    Args:
        scores: float [n_babies], the cry's score against each baby.
        baby_ids: [n_babies]. counts: int [n_babies], each baby's enrolments.
        threshold: the best baby is accepted when its score is >= this.
        threshold_source: where the threshold came from, printed with it.
        top: how many candidates to keep (at least 1).

    Raises:
        ConfigError: ``top`` < 1 or a non-finite threshold. DataError: no babies.
    """
    scores = np.asarray(scores, dtype=np.float64)
    counts = np.asarray(counts)
    if top < 1:
        raise ConfigError(f"top must be at least 1, got {top}")
    if not math.isfinite(threshold):
        raise ConfigError(f"threshold must be a finite number, got {threshold}")
    if len(scores) == 0:
        raise DataError("no babies to identify among: enrol some first")
    if not (len(scores) == len(baby_ids) == len(counts)):
        raise DataError(f"{len(scores)} scores, {len(baby_ids)} babies, {len(counts)} counts")
    # Highest score first; equal scores in baby-id order, so the ranking is reproducible.
    order = np.lexsort((np.asarray(baby_ids, dtype=str), -scores))[:top]
    candidates = tuple(Candidate(str(baby_ids[i]), float(scores[i]), int(counts[i])) for i in order)
    return Identification(
        candidates,
        float(threshold),
        threshold_source,
        none_of_these=candidates[0].score < threshold,
        n_babies=len(scores),
    )
