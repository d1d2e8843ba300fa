"""Whose cry is this? The ward's answer for one cry (``cryprint identify``).

The cry is scored against every enrolled baby (cosine, or AS-norm where the model normalises).
With the model's calibration each score becomes a likelihood ratio and the babies and "none of
these" get probabilities that sum to one (:func:`cryprint.scoring.open_set.ward_probabilities`).
One rule decides, stated with the answer:

- the probability rule (the default with a calibration): a baby is named only at
  ``min_probability``; two babies at ``review_level`` are a close call for a person to review;
  else "none of these" when that is most probable, else "uncertain" (:class:`WardRule`);
- a score threshold: ``max_false_alarm`` (the stranger threshold for this gallery's size,
  from the dev different-baby scores — the default without a calibration, at 5 %),
  ``threshold`` (given), or verify's ``point`` (``eer``, ``far1``) or ``prior``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cryprint.data.inputs import recording_files
from cryprint.errors import FIELD, ConfigError, DataError
from cryprint.inference.api import embedder_for
from cryprint.inference.operating_point import (
    model_calibration,
    operating_point,
    stored_nontarget_scores,
)
from cryprint.inference.options import EmbeddingOptions
from cryprint.scoring import Calibration
from cryprint.scoring.open_set import (
    DEFAULT_ENROLLED_PRIOR,
    DEFAULT_MAX_FALSE_ALARM,
    WardRule,
    decide,
    decide_at_threshold,
    stranger_threshold,
    ward_probabilities,
)
from cryprint.scoring.ranking import Identification, rank_candidates
from cryprint.ward.gallery import Gallery, open_for

if TYPE_CHECKING:
    from cryprint.inference.api import CryPrint
    from cryprint.models.folder import ModelSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WardQuestion:
    """How to answer: at most one score rule (``threshold``, ``max_false_alarm``, verify's
    ``point`` or ``prior``), else the probability ``rule``; the ``enrolled_prior`` (P that the
    crying baby is enrolled) and ``baby_priors`` (relative weights by baby id; others 1) the
    probabilities rest on; ``top`` candidates to list."""

    threshold: float | None = None
    max_false_alarm: float | None = None
    point: str | None = None
    prior: float | None = None
    enrolled_prior: float = DEFAULT_ENROLLED_PRIOR
    baby_priors: Mapping[str, float] | None = None
    rule: WardRule = field(default_factory=WardRule)
    top: int = 5

    def __post_init__(self) -> None:
        given = [
            name
            for name in ("threshold", "max_false_alarm", "point", "prior")
            if getattr(self, name) is not None
        ]
        if len(given) > 1:
            raise ConfigError(
                " and ".join(f"{{{name}}}" for name in given) + " each set the rule: give one",
                fields=dict.fromkeys(given, FIELD),
            )
        if isinstance(self.top, bool) or not isinstance(self.top, int) or self.top < 1:
            raise ConfigError(
                f"{{top}} must be at least 1, got {self.top!r}", fields={"top": FIELD}
            )

    @property
    def by_score(self) -> bool:
        return any(
            value is not None
            for value in (self.threshold, self.max_false_alarm, self.point, self.prior)
        )


def identify(
    model: ModelSpec | CryPrint,
    gallery_path: Path | str,
    cry: Path | str,
    question: WardQuestion | None = None,
    *,
    embedding: EmbeddingOptions | None = None,
) -> Identification:
    """Which enrolled baby is crying in ``cry`` (an audio file or folder of segments), if any.

    Args:
        model: a model spec or a loaded :class:`cryprint.CryPrint` (as enrolled).
        gallery_path: the gallery's SQLite file.
        question: how to answer (:class:`WardQuestion`; None: the defaults).
        embedding: how the cry is embedded and scored (:class:`~cryprint.EmbeddingOptions`;
            None: the defaults), as the gallery's enrolments were.

    Raises:
        ConfigError: two score rules, a bad rule or prior, nothing stored for the chosen rule,
            or a gallery embedded or scored otherwise. DataError: not a gallery, an empty one,
            or a damaged enrolment. ModelError: another model's gallery. AudioError: a bad cry.
    """
    question = question or WardQuestion()
    with Gallery.open(gallery_path) as gallery:
        if not gallery.babies():
            raise DataError(f"{gallery_path}: no baby is enrolled; `cryprint enroll` first")
    recording_files(cry)
    embedder = embedder_for(model, embedding)
    with open_for(gallery_path, embedder) as gallery:
        babies, centroids, counts = gallery.centroids()  # a damaged enrolment: before embedding
    calibration, calibrated_by = _calibration(embedder, question)
    scores = embedder.score_matrix(embedder.embed(cry)[None], centroids)[0]
    probabilities, p_none = None, None
    if calibration is not None:
        weights = _baby_weights(babies, question.baby_priors)
        log_lrs = calibration.log_likelihood_ratio(scores)
        probabilities, p_none = ward_probabilities(log_lrs, question.enrolled_prior, weights)
    candidates = rank_candidates(scores, babies, counts, question.top, probabilities)
    parts: dict[str, Any] = {
        "p_none": p_none,
        "enrolled_prior": None if calibration is None else question.enrolled_prior,
        "probabilities": calibrated_by,
        "scoring": embedder.scoring,
    }
    if question.by_score or probabilities is None:
        threshold, source = _score_threshold(embedder, question, len(babies), calibration)
        answer = decide_at_threshold(babies, scores, threshold, probabilities, p_none)
        rule = f"a baby is named when its score reaches {threshold:.4f} ({source}); two or more "
        rule += "reaching it are a close call to review"
        return Identification(candidates, answer, len(babies), rule, threshold, source, **parts)
    assert p_none is not None  # probabilities come with P(none)
    answer = decide(babies, probabilities, p_none, question.rule)
    return Identification(candidates, answer, len(babies), question.rule.describe(), **parts)


def _calibration(embedder: CryPrint, question: WardQuestion) -> tuple[Calibration | None, str]:
    """The model's calibration for these scores and where it came from, or None and why."""
    try:
        calibration, path = model_calibration(
            embedder.loaded, embedder.model_id, embedder.score_basis
        )
    except ConfigError as fitted_otherwise:
        if question.prior is not None:
            raise  # the prior needs it
        logger.warning("%s. No probabilities are given.", fitted_otherwise)
        return None, f"none: the calibration is of other scores ({fitted_otherwise})"
    if calibration is None:
        return None, (
            f"none: {embedder.source} has no calibration (run `cryprint calibrate --model "
            "FOLDER --data DIR`)"
        )
    return calibration, f"from {path}"


def _baby_weights(babies: list[str], priors: Mapping[str, float] | None) -> np.ndarray | None:
    if not priors:
        return None
    unknown = sorted(set(priors) - set(babies))
    if unknown:
        raise ConfigError(f"baby priors name babies who are not enrolled: {', '.join(unknown)}")
    return np.array([float(priors.get(baby, 1.0)) for baby in babies])


def _score_threshold(
    embedder: CryPrint, question: WardQuestion, n_babies: int, calibration: Calibration | None
) -> tuple[float, str]:
    """The score threshold of the question's score rule (the stranger threshold at 5 % when
    none is given), and where it came from."""
    if question.threshold is not None or question.point is not None or question.prior is not None:
        point = operating_point(
            embedder.loaded,
            question.threshold,
            embedder.model_id,
            prior=question.prior,
            point=question.point,
            basis=embedder.score_basis,
        )
        return point.threshold, point.source
    rate = question.max_false_alarm
    if rate is None:
        rate = DEFAULT_MAX_FALSE_ALARM
    scores, source = stored_nontarget_scores(
        embedder.loaded, embedder.model_id, embedder.score_basis
    )
    chosen = stranger_threshold(scores, n_babies, rate)
    return chosen.threshold, (
        f"a baby not enrolled named at most {100 * rate:g} % of the time among {n_babies} "
        f"babies: {chosen.method} of the {source}"
    )
