"""What an evaluation leaves in the model folder, for every later verdict.

``evaluation.json`` holds each split's metrics (``splits``). From the labelled dev pairs it also
holds what ``verify``, ``identify`` and the API decide with:

- ``thresholds``: the dev EER threshold (``eer``, also kept as ``threshold``) and the lowest
  threshold accepting at most 1 % of different-baby pairs (``far1``) of the raw cosine scores;
  ``asnorm_thresholds``: the same of the AS-norm scores. Each records the ``embedding`` it was
  measured on (TTA views, trimming, whether normalised), which a verdict checks.
- ``nontarget_scores``: the dev different-baby scores (``cosine``, ``as_norm``), sorted: the
  distribution a ward's "stranger" threshold is read from
  (:func:`cryprint.scoring.open_set.stranger_threshold`).
- ``as_norm``: whether adaptive s-norm against the train split (``cohort.npz``, written beside
  it) lowered this model's dev minDCF — then every command normalises by default
  (:mod:`cryprint.inference.cohort`).

Metrics of other weights (an older ``model_id``) are dropped.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cryprint.errors import OutputError
from cryprint.evaluation.report import to_json
from cryprint.inference.embedding_file import RecordingEmbeddings, save_embeddings
from cryprint.inference.operating_point import THRESHOLD_KEYS
from cryprint.io import atomic_write_text
from cryprint.models.files import COHORT_NAME, EVALUATION_NAME
from cryprint.scoring import compute_eer, compute_min_dcf, threshold_at_false_accept_rate

logger = logging.getLogger(__name__)

# The false acceptance rate of the low-false-accept threshold stored for verify ("far1").
FAR_TARGET = 0.01
# The prior of the minDCF by which AS-norm is judged to help (the first the reports show).
DECISION_P_TARGET = 0.05
_SCORE_NAMES = {False: "raw cosine scores", True: "AS-norm scores"}


@dataclass(frozen=True)
class DevScores:
    """The dev pairs' scores: ``raw`` cosine and (with a cohort) ``asnorm``, float [n_pairs];
    ``labels`` 0/1 [n_pairs]; ``cohort``: the train-split embeddings the AS-norm scores were
    normalised with, kept in the model folder (None: none kept)."""

    raw: np.ndarray
    labels: np.ndarray
    asnorm: np.ndarray | None = None
    cohort: RecordingEmbeddings | None = None


def record_evaluation(
    model_folder: Path, report: dict[str, Any], basis: dict[str, Any], dev: DevScores | None = None
) -> Path:
    """Record a split's metrics in ``model_folder/evaluation.json``; with ``dev`` also the
    thresholds, different-baby scores and AS-norm decision (module docstring), and the cohort.

    Args:
        report: the evaluation's report (:func:`cryprint.evaluation.report.new_report`).
        basis: how the recordings were embedded (:attr:`~cryprint.EmbeddingOptions.
            score_basis`: TTA views, trimming).

    Raises:
        OutputError: the folder cannot be written (a read-only model folder).
    """
    path = model_folder / EVALUATION_NAME
    record = _previous_record(path, report["model_id"])
    record["splits"][report["split"]] = _split_summary(report)
    if dev is not None:
        for stale in ("as_norm", THRESHOLD_KEYS[True], "nontarget_scores"):
            record.pop(stale, None)  # an earlier dev evaluation's: replaced, or gone
        record.update(_dev_record(dev, basis, report["asnorm"]))
        if not _keep_cohort(model_folder, dev, record.get("as_norm")):
            record.pop("as_norm", None)
    return atomic_write_text(path, to_json(record))


def _previous_record(path: Path, model_id: str) -> dict[str, Any]:
    record: dict[str, Any] = {"model_id": model_id, "splits": {}}
    if path.is_file():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as error:
            logger.warning("%s: unreadable (%s); rewriting it", path, error)
        else:
            if isinstance(previous, dict) and previous.get("model_id") == model_id:
                record = previous
                record.setdefault("splits", {})
    return record


def _split_summary(report: dict[str, Any]) -> dict[str, Any]:
    keys = ("eer", "threshold", "min_dcf", "auc", "n_pairs", "n_target", "data", "warning")
    summary = {key: report[key] for key in keys}
    if report["asnorm"] is not None:
        summary["asnorm"] = {
            key: report["asnorm"][key] for key in ("eer", "min_dcf", "auc", "top_n", "cohort_size")
        }
    summary["evaluated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return summary


def stored_thresholds(
    scores: np.ndarray, labels: np.ndarray, basis: dict[str, Any], normalised: bool
) -> dict[str, Any]:
    """The thresholds verify's ``--operating-point`` names: ``eer`` and ``far1`` (false
    acceptance rate at most :data:`FAR_TARGET`), each with its source and the ``embedding`` it
    was measured on (``basis`` and ``as_norm``)."""
    measured_on = {**basis, "as_norm": normalised}
    reached = threshold_at_false_accept_rate(scores, labels, FAR_TARGET)
    finite = bool(np.isfinite(reached.threshold))
    return {
        "eer": {
            "threshold": compute_eer(scores, labels).threshold,
            "source": f"EER threshold of the {_SCORE_NAMES[normalised]} on the dev pairs",
            "embedding": measured_on,
        },
        "far1": {
            "threshold": reached.threshold if finite else None,
            "source": (
                f"lowest threshold accepting at most {100 * FAR_TARGET:g} % of the dev "
                f"different-baby pairs ({_SCORE_NAMES[normalised]})"
            ),
            "far": reached.far,
            "frr": reached.frr,
            "embedding": measured_on,
        },
    }


def _dev_record(
    dev: DevScores, basis: dict[str, Any], asnorm: dict[str, Any] | None
) -> dict[str, Any]:
    thresholds = stored_thresholds(dev.raw, dev.labels, basis, normalised=False)
    different = dev.labels == 0
    record: dict[str, Any] = {
        "threshold": thresholds["eer"]["threshold"],
        "threshold_source": thresholds["eer"]["source"],
        THRESHOLD_KEYS[False]: thresholds,
        "nontarget_scores": {"cosine": np.sort(dev.raw[different]).tolist()},
    }
    if dev.asnorm is None or asnorm is None:
        return record
    record[THRESHOLD_KEYS[True]] = stored_thresholds(dev.asnorm, dev.labels, basis, True)
    record["nontarget_scores"]["as_norm"] = np.sort(dev.asnorm[different]).tolist()
    costs = {
        kind: compute_min_dcf(scores, dev.labels, p_target=DECISION_P_TARGET).min_dcf
        for kind, scores in (("cosine", dev.raw), ("as_norm", dev.asnorm))
    }
    record["as_norm"] = {
        "helped": bool(costs["as_norm"] < costs["cosine"]),
        "min_dcf": costs,
        "p_target": DECISION_P_TARGET,
        "top_n": asnorm["top_n"],
        "cohort": COHORT_NAME,
        "cohort_split": asnorm["cohort_split"],
        "cohort_size": asnorm["cohort_size"],
        "embedding": dict(basis),
    }
    return record


def _keep_cohort(model_folder: Path, dev: DevScores, decision: dict[str, Any] | None) -> bool:
    """Write the cohort beside the record that names it; False when there is none to keep."""
    if dev.cohort is None or decision is None:
        return False
    try:
        save_embeddings(model_folder / COHORT_NAME, dev.cohort)
    except OutputError as error:
        logger.warning("no AS-norm cohort kept in the model folder: %s", error)
        return False
    helped = "lowered" if decision["helped"] else "did not lower"
    logger.info(
        "AS-norm %s the dev minDCF (%.4f vs %.4f raw): %s by default",
        helped,
        decision["min_dcf"]["as_norm"],
        decision["min_dcf"]["cosine"],
        "normalised" if decision["helped"] else "raw scores",
    )
    return True
