"""Whose cry is this? Ranking a ward's babies for a cry, and the whole answer (pure, no I/O).

Each baby's enrolments are reduced to one direction (:func:`baby_centroids`), a cry is scored
against every baby's direction, :func:`rank_candidates` orders them, and an
:class:`Identification` holds the ranking with the answer of one decision rule
(:mod:`cryprint.scoring.open_set`) and where each of its parts came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cryprint.errors import FIELD, ConfigError, DataError
from cryprint.scoring.cosine import unit_rows
from cryprint.scoring.open_set import NONE_OF_THESE, WardAnswer


@dataclass(frozen=True)
class Candidate:
    """A baby ranked for a cry: ``score`` is the cry's score against the baby's enrolments'
    mean direction (cosine in [-1, 1], or its AS-norm); ``probability``: P(this baby is
    crying), with a calibration (else None)."""

    baby_id: str
    score: float
    n_enrolments: int
    probability: float | None = None


@dataclass(frozen=True)
class Identification:
    """The answer to "whose cry is this?" and everything it rests on.

    candidates: the best babies, highest score first (ties by baby id). answer: the rule's
    answer (:class:`~cryprint.scoring.open_set.WardAnswer`). n_babies: babies in the gallery.
    rule: the decision rule in words. threshold, threshold_source: the score threshold of a
    threshold rule and where it came from (None under the probability rule). p_none:
    P(none of these), enrolled_prior: the prior that the crying baby is enrolled, and
    probabilities: where the probabilities came from, or why there are none. scoring: how
    scores were made (cosine, AS-norm).
    """

    candidates: tuple[Candidate, ...]
    answer: WardAnswer
    n_babies: int
    rule: str
    threshold: float | None = None
    threshold_source: str | None = None
    p_none: float | None = None
    enrolled_prior: float | None = None
    probabilities: str = ""
    scoring: str = "cosine"

    @property
    def best(self) -> Candidate:
        return self.candidates[0]

    @property
    def none_of_these(self) -> bool:
        return self.answer.kind == NONE_OF_THESE

    def to_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["answer"] = self.answer.to_dict()
        result["best"] = self.answer.baby
        return result

    def explain(self) -> list[str]:
        """The answer as a nurse reads it: in words first, then the ranked candidates with
        their probabilities and scores, "none of these", the rule, the prior and where the
        probabilities and scores came from."""
        calibrated = self.p_none is not None
        lines = [self.answer.words()]
        chance = f"{'P':>6}  " if calibrated else ""
        lines.append(f"{'rank':>4}  {'baby':<20} {chance}{'score':>8}  enrolments")
        for rank, candidate in enumerate(self.candidates, start=1):
            p = f"{candidate.probability:>6.3f}  " if candidate.probability is not None else ""
            lines.append(
                f"{rank:>4}  {candidate.baby_id:<20} {p}{candidate.score:>8.4f}  "
                f"{candidate.n_enrolments}"
            )
        if calibrated:
            lines.append(f"{'':>4}  {'none of these':<20} {self.p_none:>6.3f}")
        lines.append(f"rule: {self.rule}")
        if calibrated:
            lines.append(
                f"prior: P(the crying baby is enrolled) = {self.enrolled_prior:g}, over "
                f"{self.n_babies} enrolled babies"
            )
        lines.append(f"probabilities: {self.probabilities}")
        lines.append(f"scores: {self.scoring}")
        return lines


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
    top: int = 5,
    probabilities: ArrayLike | None = None,
) -> tuple[Candidate, ...]:
    """The ``top`` babies by score, highest first; equal scores in baby-id order, so the
    ranking is reproducible.

    Args:
        scores: float [n_babies], the cry's score against each baby.
        baby_ids: [n_babies]. counts: int [n_babies], each baby's enrolments.
        top: how many candidates to keep (at least 1).
        probabilities: float [n_babies], P(each baby), or None.

    Raises:
        ConfigError: ``top`` < 1. DataError: no babies, or lengths that differ.
    """
    scores = np.asarray(scores, dtype=np.float64)
    counts = np.asarray(counts)
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigError(f"{{top}} must be at least 1, got {top!r}", fields={"top": FIELD})
    if len(scores) == 0:
        raise DataError("no babies to identify among: enrol some first")
    chances = None if probabilities is None else np.asarray(probabilities, dtype=np.float64)
    lengths = {len(scores), len(baby_ids), len(counts), len(scores if chances is None else chances)}
    if len(lengths) != 1:
        raise DataError(f"{len(scores)} scores, {len(baby_ids)} babies, {len(counts)} counts")
    order = np.lexsort((np.asarray(baby_ids, dtype=str), -scores))[:top]
    return tuple(
        Candidate(
            str(baby_ids[i]),
            float(scores[i]),
            int(counts[i]),
            None if chances is None else float(chances[i]),
        )
        for i in order
    )
