"""Evaluate one or more models on the pairs of a split: scores, metrics, report, figures.

For each model, every trial of ``{split}_pairs.csv`` is scored (cosine of the two recordings'
embeddings, optionally also AS-norm against the train split), and when the pairs file has labels:

- EER (interpolated crossing of FRR and FAR, see :func:`cryprint.scoring.compute_eer`) and the
  threshold closest to it;
- normalised minDCF at each ``p_target`` (default 0.05 and 0.01) with ``c_miss = c_fa = 1``;
- AUC (probability that a same-baby pair outscores a different-baby pair).

Written to the output folder (a subfolder per model when there are several), each atomically:
``scores.csv``, ``score_histogram.png``, ``det_curve.png``, the embedding caches, and
``report.json`` last (its presence means the rest is complete). A model that is a local folder
also gets ``evaluation.json`` (per-split metrics and, from the dev split, the EER threshold that
``cryprint verify`` uses).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryprint.data.layout import read_pairs
from cryprint.errors import ConfigError, DataError, ModelError, OutputError
from cryprint.evaluation.fused import (
    FIT_ON_DEV,
    FUSED_FOLDER,
    fit_on_dev,
    labelled_dev_pairs,
    load_fusion,
    write_fused_evaluation,
)
from cryprint.evaluation.model_record import DevScores, record_evaluation
from cryprint.evaluation.pairs import TopN, resolve_top_n, score_pairs, score_pairs_as_norm
from cryprint.evaluation.report import (
    REPORT_NAME,
    metrics_or_none,
    new_report,
    to_json,
    write_figures,
    write_scores,
)
from cryprint.inference.api import CryPrint, embedder_for
from cryprint.inference.embedding_file import RecordingEmbeddings
from cryprint.inference.operating_point import stored_threshold
from cryprint.inference.options import EmbeddingOptions
from cryprint.inference.splits import embed_split, split_keys
from cryprint.io import (
    atomic_write_text,
    check_replaceable_folder,
    folder_lock,
    replace_folder,
    staging_folder,
)
from cryprint.models.ecapa import CryEmbedder
from cryprint.models.folder import INFO_NAME, LoadedModel, ModelSpec
from cryprint.scoring.fusion import stack_scores
from cryprint.training.config import dev_warning

logger = logging.getLogger(__name__)

# The false acceptance rate of the low-false-accept threshold stored for verify ("far1").
FAR_TARGET = 0.01


def default_output(models: Sequence[ModelSpec], root: Path | str, split: str) -> Path:
    """Where an evaluation goes when no folder is given: beside the model folder when there is
    one local model folder (``runs/NAME/best`` → ``runs/NAME/evaluation-dev``), else beside the
    data directory (``data/cryceleb`` → ``data/cryceleb-evaluation-dev``)."""
    if len(models) == 1 and isinstance(models[0], str | Path):
        folder = Path(models[0]).expanduser()
        try:
            if folder.is_dir():
                return folder.resolve().parent / f"evaluation-{split}"
        except OSError:
            pass  # not a folder we can look at: beside the data then
    root = Path(root).resolve()
    return root.parent / f"{root.name}-evaluation-{split}"


def output_names(models: Sequence[ModelSpec]) -> list[str]:
    """A short, unique, file-system-safe name per model, for its output subfolder.

    A path gives its last two parts (``runs/triplet/best`` → ``triplet_best``), a hub id its
    owner and name; repeats get ``-2``, ``-3``.
    """
    names: list[str] = []
    for model in models:
        spec = model.source if isinstance(model, LoadedModel) else str(model)
        if isinstance(model, CryEmbedder):
            spec = "model"
        parts = [part for part in re.split(r"[/\\]+", spec) if part not in ("", ".", "..")]
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", "_".join(parts[-2:])).strip("._-") or "model"
        name, count = base, 1
        while name in names:
            count += 1
            name = f"{base}-{count}"
        names.append(name)
    return names


def evaluate(
    model_specs: Sequence[ModelSpec],
    root: Path | str,
    split: str,
    out_dir: Path | str,
    as_norm_top_n: TopN | None = None,
    p_targets: Sequence[float] = (0.05, 0.01),
    *,
    embedding: EmbeddingOptions | None = None,
    progress: bool = False,
    fusion: str | Path | None = None,
    cohort: bool = True,
) -> list[dict[str, Any]]:
    """Score every pair of ``{split}_pairs.csv`` with each model and write the results.

    Args:
        model_specs: model folders, checkpoints, 'random', hub ids, or loaded models.
        root: a CryCeleb-layout data directory.
        split: ``dev`` or ``test``.
        out_dir: where to write; one subfolder per model (:func:`output_names`) when several.
        as_norm_top_n: None for raw cosine scores only; ``"auto"`` to add AS-norm scores with
            ``top_n = min(100, cohort size)``; an int for that ``top_n`` (an error if larger
            than the cohort, the train split's recordings).
        p_targets: minDCF priors (``c_miss = c_fa = 1``).
        embedding: how recordings are embedded — device, backend, precision, TTA views,
            trimming (:class:`~cryprint.EmbeddingOptions`; None: the defaults).
        progress: show progress.
        fusion: None; ``"dev"`` to fuse the models' cosine scores with a logistic fusion
            fitted on the dev pairs (never on this split's labels); or the :class:`Path` of a
            ``fusion.json`` to apply. The fused scores, their report and ``fusion.json`` go to
            ``out_dir/fused`` and a last report is added for them.
        cohort: on the labelled dev split of a local model folder, also embed the train split
            as the model's AS-norm cohort, measure AS-norm and keep both in the model folder
            (:mod:`cryprint.evaluation.model_record`); False: raw scores only.

    Returns:
        One report per model (the content of its ``report.json``): at least ``eer``,
        ``threshold``, ``min_dcf``, ``auc``, ``n_pairs``, ``model_source``, ``model_id``,
        ``split``, ``dcf_parameters`` and ``asnorm`` (None, or the same metrics on the
        normalised scores). Metrics are None when the pairs have no labels.

    Raises:
        DataError, AudioError, ModelError, HubError, OutputError (see :mod:`cryprint.errors`).
    """
    if not model_specs:
        raise DataError("no model to evaluate")
    root, out_dir = Path(root), Path(out_dir)
    # The pairs file first: a wrong data directory fails before any model is loaded.
    pairs = read_pairs(root, split)
    names = output_names(model_specs)
    folders = [out_dir if len(model_specs) == 1 else out_dir / name for name in names]
    fit_now = isinstance(fusion, str) and fusion == FIT_ON_DEV
    if fusion is not None:
        _check_fusion_request(names, as_norm_top_n)
        if fit_now:
            labelled_dev_pairs(root)  # before any work: the fit needs them
        folders.append(out_dir / FUSED_FOLDER)
    for folder in folders:  # before any work: an output that may not be replaced fails now
        check_replaceable_folder(folder, REPORT_NAME, "an evaluation")
    # Every model loads before any embedding: a missing second model fails now, not in an hour.
    embedders = [embedder_for(spec, embedding) for spec in model_specs]
    stored = load_fusion(fusion, embedders) if fusion is not None and not fit_now else None
    reports, columns = [], []
    with folder_lock(out_dir, "cryprint evaluate"):
        for embedder, name, folder in zip(embedders, names, folders[: len(names)], strict=True):
            report, scores = _evaluate_one(
                embedder, name, root, split, pairs, folder, as_norm_top_n, p_targets, progress,
                cohort,
            )  # fmt: skip
            reports.append(report)
            columns.append(scores)
        if fusion is not None:
            # On the dev split the models' scores are those the fit needs: not computed twice.
            dev_scores = stack_scores(columns) if split == "dev" else None
            stored = stored or fit_on_dev(embedders, root, progress, dev_scores)
            fused = write_fused_evaluation(
                stored, embedders, names, columns, (root, split, pairs), folders[-1], p_targets
            )
            reports.append(fused)
    return reports


def _check_fusion_request(names: list[str], as_norm_top_n: TopN | None) -> None:
    if len(names) < 2:
        raise ConfigError("fusion needs at least two models")
    if as_norm_top_n is not None:
        raise ConfigError("fusion combines raw cosine scores: it cannot be used with AS-norm")
    if FUSED_FOLDER in names:
        raise ConfigError(
            f"a model's output folder would be named {FUSED_FOLDER!r}, the fused scores' folder"
        )


def _evaluate_one(
    embedder: CryPrint,
    name: str,
    root: Path,
    split: str,
    pairs: pd.DataFrame,
    folder: Path,
    as_norm_top_n: TopN | None,
    p_targets: Sequence[float],
    progress: bool,
    cohort: bool = True,
) -> tuple[dict[str, Any], np.ndarray]:
    """Score, then write the model's whole output folder: assembled in a staging folder and
    swapped in at the end, so a failure leaves the earlier folder exactly as it was; then
    record the evaluation in the model folder. Returns the report and the raw cosine scores."""
    started = time.perf_counter()
    loaded = embedder.loaded
    labels = pairs["label"].to_numpy() if "label" in pairs.columns else None
    recorded = loaded.kind == "folder" and loaded.folder is not None and labels is not None
    # The dev thresholds go with a cohort: AS-norm is then measured, and kept when it helps.
    keep_cohort = cohort and recorded and split == "dev" and _has_train_split(root)
    if keep_cohort and as_norm_top_n is None:
        as_norm_top_n = "auto"
    with staging_folder(folder) as staging:
        scores, embeddings, asnorm, cohort_embeddings = _score(
            embedder, root, split, pairs, staging, as_norm_top_n, progress
        )
        identity = {
            "model": name,
            "model_source": loaded.source,
            "model_kind": loaded.kind,
            "model_id": embeddings.model_id,
        }
        report = new_report(
            identity, split, {"data": str(root.resolve())}, len(pairs), labels,
            len(embeddings.keys), embedded=embedder.embedded_as, asnorm=asnorm,
            p_targets=p_targets,
        )  # fmt: skip
        report["warning"] = _dev_warning(loaded, split)
        report["title"], report["dev_threshold"] = _model_title_and_threshold(embedder, split)
        report.update(metrics_or_none(scores["score"], labels, p_targets))
        if asnorm is not None:
            asnorm.update(metrics_or_none(scores["score_asnorm"], labels, p_targets))
        report["files"]["scores"] = write_scores(staging / "scores.csv", pairs, scores, labels).name
        if labels is not None:
            report["files"].update(write_figures(staging, report, scores, labels))
        report["seconds"] = round(time.perf_counter() - started, 3)
        atomic_write_text(staging / REPORT_NAME, to_json(report))
        replace_folder(staging, folder, REPORT_NAME)
    if recorded:
        assert loaded.folder is not None and labels is not None  # recorded says so
        dev = None
        if split == "dev":
            kept = cohort_embeddings if keep_cohort else None
            dev = DevScores(scores["score"], labels, scores.get("score_asnorm"), kept)
        try:
            record = record_evaluation(loaded.folder, report, embedder.options.score_basis, dev)
            report["recorded_in"] = str(record)  # in the answer, not in report.json
        except OutputError as error:
            # The evaluation itself is complete and written; a read-only model folder only
            # means verify will need --threshold.
            logger.warning("could not record the evaluation in the model folder: %s", error)
    return report, scores["score"]


def _has_train_split(root: Path) -> bool:
    try:
        split_keys(root, "train")
    except DataError:
        logger.warning("%s has no train split: no AS-norm cohort is kept", root)
        return False
    return True


def _score(
    embedder: CryPrint, root: Path, split: str, pairs: pd.DataFrame, staging: Path,
    as_norm_top_n: TopN | None, progress: bool,
) -> tuple[
    dict[str, np.ndarray], RecordingEmbeddings, dict[str, Any] | None, RecordingEmbeddings | None
]:  # fmt: skip
    """Cosine (and AS-norm) scores of the pairs, the split's embeddings, the AS-norm settings
    and the cohort's embeddings (the train split's); the embeddings also saved in the output
    folder."""

    def embed(which: str, purpose: str = "") -> RecordingEmbeddings:
        cache = staging / f"embeddings_{which}.npz"
        return embed_split(embedder, root, which, cache, progress=progress, purpose=purpose)

    embeddings = embed(split)
    scores = {"score": score_pairs(embeddings, pairs)}
    if as_norm_top_n is None:
        return scores, embeddings, None, None
    cohort = embed("train", "the AS-norm cohort")
    top_n = resolve_top_n(as_norm_top_n, len(cohort.keys))
    scores["score_asnorm"] = score_pairs_as_norm(embeddings, pairs, cohort, top_n)
    asnorm = {
        "cohort_split": "train",
        "cohort_size": len(cohort.keys),
        "top_n": top_n,
        "top_n_requested": as_norm_top_n,
    }
    return scores, embeddings, asnorm, cohort


def _model_title_and_threshold(embedder: CryPrint, split: str) -> tuple[str, float | None]:
    """The model's name as its card gives it (``runs/triplet/best`` → ``triplet-best``), and,
    for other splits than dev, the dev EER threshold ``cryprint verify`` uses (None without)."""
    folder = embedder.loaded.folder
    if folder is None:
        return embedder.source, None
    folder = Path(folder).resolve()
    title = f"{folder.parent.name}-best" if folder.name == "best" else folder.name
    if split == "dev":
        return title, None
    try:
        basis = embedder.options.score_basis
        return title, stored_threshold(embedder.loaded, embedder.model_id, basis=basis)[0]
    except (ConfigError, ModelError):
        return title, None


def _dev_warning(loaded: LoadedModel, split: str) -> str | None:
    """The warning a dev evaluation carries when the model was trained on dev audio (the
    ``train_on`` its cryprint.json records); logged too."""
    if split != "dev" or loaded.folder is None or not (loaded.folder / INFO_NAME).is_file():
        return None
    try:
        info = json.loads((loaded.folder / INFO_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    warning = dev_warning(info.get("train_on")) if isinstance(info, dict) else None
    if warning:
        logger.warning("%s: %s", loaded.source, warning)
    return warning
