"""Adaptive s-norm with a model's own cohort: kept in its folder, used exactly when it helped.

``cryprint evaluate --split dev`` embeds the train split as the model's AS-norm cohort
(``cohort.npz``, beside the weights), scores the dev pairs both raw and normalised, and records
in ``evaluation.json`` (``as_norm``) whether normalising lowered *this model's* dev minDCF. Every
command that scores then normalises by default exactly when it did (:func:`model_cohort`;
``as_norm=True``/``False`` decides instead). A cohort of other weights, or embedded with other TTA
views or trimming, is refused. Torch-free: the ONNX path uses it too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cryprint.errors import ConfigError, DataError, ModelError
from cryprint.inference.embedding_file import RecordingEmbeddings, how_embedded, load_embeddings
from cryprint.inference.operating_point import evaluation_record
from cryprint.inference.options import check_score_basis
from cryprint.models.files import COHORT_NAME

if TYPE_CHECKING:
    from cryprint.inference.operating_point import ModelRef

logger = logging.getLogger(__name__)

_ADVICE = (
    "run `cryprint evaluate --model FOLDER --data DIR --split dev` (it keeps the train split as "
    "the model's cohort)"
)


@dataclass(frozen=True)
class Cohort:
    """A model's AS-norm cohort: ``embeddings`` float32 [n, dim] of train-split recordings,
    normalised by the mean and std of each side's ``top_n`` best cohort scores; ``path`` the
    file it came from."""

    embeddings: np.ndarray
    top_n: int
    path: Path

    def describe(self) -> str:
        return f"AS-norm (top {self.top_n} of a {len(self.embeddings)}-recording cohort)"


def cohort_basis(cohort: RecordingEmbeddings) -> dict[str, Any]:
    """The TTA views and trimming the cohort was embedded with (from its store keys)."""
    suffix = how_embedded(cohort.store_keys[0]) if cohort.store_keys else ""
    views = next((int(part[3:]) for part in suffix.split("|") if part.startswith("tta")), 1)
    return {"tta": views, "trim": "trim" in suffix.split("|")}


def load_cohort(folder: Path, model_id: str, basis: dict[str, Any], top_n: int) -> Cohort:
    """``folder``'s cohort, checked to be of these weights, embedded as ``basis`` says.

    Raises:
        ModelError: missing, unreadable, or of other weights. ConfigError: embedded otherwise.
    """
    path = Path(folder) / COHORT_NAME
    try:
        stored = load_embeddings(path)
    except DataError as error:
        raise ModelError(f"{path}: no usable AS-norm cohort ({error}); {_ADVICE}") from error
    assert stored is not None  # load_embeddings raises rather than returning None here
    if stored.model_id != model_id:
        raise ModelError(f"{path} is the cohort of other weights (the model changed?); {_ADVICE}")
    check_score_basis(
        cohort_basis(stored), {**basis, "as_norm": False}, f"the cohort in {path}", _ADVICE
    )
    if not 2 <= top_n <= len(stored.keys):
        raise ModelError(f"{path}: top_n {top_n} does not fit a cohort of {len(stored.keys)}")
    return Cohort(stored.embeddings, int(top_n), path)


def _decision(model: ModelRef, model_id: str) -> tuple[dict[str, Any] | None, Path | None]:
    """The model folder's recorded AS-norm decision (``evaluation.json``'s ``as_norm``)."""
    if model.folder is None or model.kind != "folder":
        return None, None
    try:
        record, path = evaluation_record(model, model_id)
    except (ConfigError, ModelError):
        return None, None
    decision = record.get("as_norm")
    if decision is not None and not (
        isinstance(decision, dict)
        and isinstance(decision.get("helped"), bool)
        and isinstance(decision.get("top_n"), int)
        and isinstance(decision.get("embedding"), dict)
    ):
        raise ModelError(f"{path}: 'as_norm' must record helped, top_n and embedding")
    return decision, path


def model_cohort(
    model: ModelRef, model_id: str, basis: dict[str, Any], requested: bool | None
) -> Cohort | None:
    """The cohort to normalise with, or None for raw cosine scores.

    Args:
        model: the model (its folder holds the cohort). model_id: its weights' identity.
        basis: the TTA views and trimming recordings are embedded with.
        requested: True (normalise: the folder must have a cohort), False (never), or None
            (exactly when the model folder records that AS-norm lowered its dev minDCF, for
            recordings embedded as ``basis`` says).

    Raises:
        ConfigError: ``requested`` True without a cohort, or a cohort embedded otherwise.
        ModelError: a cohort of other weights, or unreadable.
    """
    if requested is False:
        return None
    decision, path = _decision(model, model_id)
    if decision is None:
        if requested:
            raise ConfigError(
                f"{model.source} has no AS-norm cohort, so {{as_norm}} cannot be used: "
                f"{_ADVICE}, or score without it",
                fields={"as_norm": True},
            )
        return None
    same_basis = {"as_norm": False, **decision["embedding"]} == {**basis, "as_norm": False}
    if requested is None and not (decision["helped"] and same_basis):
        return None
    assert model.folder is not None and path is not None  # a decision comes from a folder
    cohort = load_cohort(model.folder, model_id, basis, decision["top_n"])
    logger.info("scores: %s (%s)", cohort.describe(), path)
    return cohort
