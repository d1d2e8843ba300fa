"""What every evaluation writes: the metrics of labelled trials, ``scores.csv``, the figures,
``report.json`` (one builder, :func:`new_report`, for ``evaluate``, ``score`` and fused scores)
and the side-by-side table."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from cryprint import __version__
from cryprint.evaluation.plots import DetCurve, det_curve_png, score_histogram_png
from cryprint.io import atomic_write
from cryprint.scoring import compute_auc, compute_eer, compute_min_dcf

C_MISS = 1.0
C_FA = 1.0
# Every evaluation folder holds it (written last): the mark of a folder evaluate may replace.
REPORT_NAME = "report.json"
EER_DEFINITION = (
    "interpolated crossing of the FRR and FAR curves; threshold = the closest operating "
    "point, accept when score >= threshold"
)


def new_report(
    identity: Mapping[str, Any],
    split: str,
    source: Mapping[str, str],
    n_pairs: int,
    labels: np.ndarray | None,
    n_recordings: int,
    *,
    score: str = "cosine",
    embedded: Mapping[str, Any] | None = None,
    asnorm: dict[str, Any] | None = None,
    p_targets: Sequence[float] = (0.05, 0.01),
) -> dict[str, Any]:
    """A ``report.json`` before its metrics and files: the same keys, in the same order, for
    every kind of evaluation.

    Args:
        identity: what was scored: ``model`` (a short name) and its source and ids
            (``model_source``, ``model_id``, ...; for a fusion ``models`` and ``model_ids``).
        split: the split (or the trials file's name). source: ``{"data": DIR}`` or
            ``{"trials": CSV}``.
        n_pairs: trials scored. labels: 0/1 [n_pairs], or None when unlabelled.
        n_recordings: the recordings embedded for them.
        score: what the score is (``cosine``, a fusion...). embedded: how the recordings were
            embedded: ``tta``, ``trim`` and ``embedded_with`` (in words).
        asnorm: the AS-norm settings (its metrics are added later), or None.
        p_targets: the minDCF priors.
    """
    return {
        **identity,
        "split": split,
        **source,
        "n_pairs": n_pairs,
        "n_target": None if labels is None else int(labels.sum()),
        "n_nontarget": None if labels is None else int(len(labels) - labels.sum()),
        "n_recordings": n_recordings,
        "score": score,
        "eer_definition": EER_DEFINITION,
        "dcf_parameters": {
            "p_targets": list(p_targets),
            "c_miss": C_MISS,
            "c_fa": C_FA,
            "normalised": True,
        },
        "asnorm": asnorm,
        **dict(embedded or {}),
        "warning": None,
        "files": {},
        "cryprint_version": __version__,
    }


def trial_metrics(
    scores: np.ndarray, labels: np.ndarray, p_targets: Sequence[float] = (0.05, 0.01)
) -> dict[str, Any]:
    """EER (+ threshold), minDCF (+ threshold) at each ``p_target`` and AUC of labelled trials.

    Args:
        scores: float [n_trials], higher = more likely the same baby.
        labels: 0/1 [n_trials], 1 = same baby.
        p_targets: priors for minDCF (``c_miss = c_fa = 1``).

    Returns:
        ``{"eer", "threshold", "min_dcf": {"0.05": ...}, "min_dcf_threshold": {...}, "auc"}``;
        fractions, not percentages. A minDCF threshold is None when rejecting every trial is
        optimal (threshold +inf).
    """
    eer = compute_eer(scores, labels)
    min_dcf: dict[str, float] = {}
    min_dcf_threshold: dict[str, float | None] = {}
    for p_target in p_targets:
        dcf = compute_min_dcf(scores, labels, p_target=p_target, c_miss=C_MISS, c_fa=C_FA)
        min_dcf[f"{p_target:g}"] = dcf.min_dcf
        min_dcf_threshold[f"{p_target:g}"] = dcf.threshold if np.isfinite(dcf.threshold) else None
    return {
        "eer": eer.eer,
        "threshold": eer.threshold,
        "min_dcf": min_dcf,
        "min_dcf_threshold": min_dcf_threshold,
        "auc": compute_auc(scores, labels),
    }


def metrics_or_none(
    scores: np.ndarray, labels: np.ndarray | None, p_targets: Sequence[float]
) -> dict[str, Any]:
    """:func:`trial_metrics`, or the same keys set to None for unlabelled trials."""
    if labels is None:
        keys = ("eer", "threshold", "min_dcf", "min_dcf_threshold", "auc")
        return dict.fromkeys(keys)
    return trial_metrics(scores, labels, p_targets)


def write_scores(
    path: Path, pairs: pd.DataFrame, scores: dict[str, np.ndarray], labels: np.ndarray | None
) -> Path:
    """``scores.csv``: the pair ids, one column per score array, the labels when known."""
    table = pd.DataFrame({"id": pairs["id"].to_numpy(), **scores})
    if labels is not None:
        table["label"] = labels

    def write(file: IO[bytes]) -> None:
        table.to_csv(file, index=False, float_format="%.8g", lineterminator="\n")

    return atomic_write(path, write)


def write_figures(
    folder: Path, report: dict[str, Any], scores: dict[str, np.ndarray], labels: np.ndarray,
    score_name: str = "cosine score",
) -> dict[str, str]:  # fmt: skip
    """The score histogram(s) and the DET curve of labelled trials, written into ``folder``;
    returns their file names by kind. ``score_name`` labels the axis of ``scores["score"]``."""
    heading = (
        f"{report.get('title') or report['model']} on {report['split']} ({report['n_pairs']} pairs)"
    )
    files = {}
    variants = [("score", "", score_name, report)]
    if report["asnorm"] is not None:
        variants.append(("score_asnorm", "_asnorm", "AS-norm score", report["asnorm"]))
    curves = []
    for column, suffix, name, metrics in variants:
        png = score_histogram_png(
            scores[column],
            labels,
            metrics["threshold"],
            f"{heading}\n{name}s: EER {100 * metrics['eer']:.2f}%",
            name,
            report.get("dev_threshold") if column == "score" else None,
        )
        path = atomic_write(
            folder / f"score_histogram{suffix}.png", lambda f, png=png: f.write(png)
        )
        files[f"score_histogram{suffix}"] = path.name
        curves.append(DetCurve(name, scores[column], labels, metrics["eer"]))
    eers = ", ".join(f"{curve.name} EER {100 * curve.eer:.2f}%" for curve in curves)
    png = det_curve_png(curves, f"DET: {heading}\n{eers}")
    files["det_curve"] = atomic_write(folder / "det_curve.png", lambda f: f.write(png)).name
    return files


def to_json(payload: Any) -> str:
    """``report.json``'s text: indented, no NaN (a non-finite number is an error)."""
    return json.dumps(payload, indent=2, allow_nan=False, default=str) + "\n"


def format_table(reports: Sequence[dict[str, Any]]) -> str:
    """The models side by side: EER, minDCF at each prior, AUC, number of pairs (one row per
    model, and one more for its AS-norm scores when present)."""
    if not reports:
        return ""
    p_keys = [f"{p:g}" for p in reports[0]["dcf_parameters"]["p_targets"]]
    header = ["model", "EER", *[f"minDCF@{key}" for key in p_keys], "AUC", "n_pairs"]
    rows = []
    for report in reports:
        variants = [(report["model"], report)]
        if report["asnorm"] is not None:
            variants.append(
                (f"{report['model']} + AS-norm({report['asnorm']['top_n']})", report["asnorm"])
            )
        for label, metrics in variants:
            if metrics["eer"] is None:
                values = ["-"] * (2 + len(p_keys))
            else:
                values = [
                    f"{100 * metrics['eer']:.2f}%",
                    *[f"{metrics['min_dcf'][key]:.4f}" for key in p_keys],
                    f"{metrics['auc']:.4f}",
                ]
            rows.append([label, *values, str(report["n_pairs"])])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest])

    split = reports[0]["split"]
    title = f"{split} split, minDCF with c_miss = c_fa = 1 (normalised)"
    return "\n".join([title, line(header), line(["-" * w for w in widths]), *map(line, rows)])
