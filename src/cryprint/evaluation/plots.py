"""Evaluation figures as PNG bytes: score histograms by label, DET curves, and the
reliability (calibration) curve.

Built with matplotlib's object API (``Figure``), not pyplot: no global figure state and no GUI
backend, so it runs in threads, on servers and in tests. The caller writes the bytes (atomically).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from scipy.stats import norm

from cryprint.scoring import det_points

# DET axes: error rates from 0.05 % to 99.5 %; ticks at the usual NIST values (spaced so their
# labels do not overlap on normal-deviate axes).
DET_TICKS_PERCENT = (0.1, 0.5, 1, 2, 5, 10, 20, 30, 40, 50, 60, 80, 90, 95, 99)
_DET_LIMITS = (0.0005, 0.995)


@dataclass(frozen=True)
class DetCurve:
    """One curve of a DET plot.

    name: legend label. scores: float [n_trials]. labels: 0/1 [n_trials]. eer: a fraction.
    """

    name: str
    scores: np.ndarray
    labels: np.ndarray
    eer: float


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def score_histogram_png(
    scores: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    title: str,
    score_name: str = "cosine score",
    decision_threshold: float | None = None,
) -> bytes:
    """Histograms of target and non-target scores (each scaled to its own density, since
    targets are few) with the EER threshold as a vertical line, and the threshold ``cryprint
    verify`` decides at (the dev EER threshold) when given — on test plots, where they differ.

    Args:
        scores: float [n_trials]. labels: 0/1 [n_trials], 1 = same baby.
        threshold: drawn as a vertical line (accept when score >= threshold).
        title: the figure title (should hold the EER).
        score_name: the x-axis label.
        decision_threshold: drawn as a red line when given.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    figure = Figure(figsize=(7.0, 4.5), layout="constrained")
    axes = figure.add_subplot()
    bins = np.histogram_bin_edges(scores, bins=int(np.clip(np.sqrt(len(scores)), 10, 60)))
    for mask, name, color in (
        (~labels, "different babies", "tab:blue"),
        (labels, "same baby", "tab:orange"),
    ):
        axes.hist(
            scores[mask],
            bins=bins,
            density=True,
            alpha=0.55,
            color=color,
            edgecolor=color,
            label=f"{name} ({int(mask.sum())} pairs)",
        )
    axes.axvline(
        threshold,
        color="black",
        linestyle="--",
        linewidth=1.5,
        label=f"EER threshold {threshold:.3f}",
    )
    if decision_threshold is not None:
        axes.axvline(
            decision_threshold,
            color="tab:red",
            linewidth=1.5,
            label=f"verify's threshold {decision_threshold:.3f} (dev EER)",
        )
    axes.set_xlabel(score_name)
    axes.set_ylabel("density (each class scaled to area 1)")
    axes.set_title(title)
    axes.legend(loc="upper left", fontsize="small")
    axes.grid(alpha=0.3)
    return _png(figure)


def det_curve_png(curves: list[DetCurve], title: str) -> bytes:
    """A DET curve (false rejection vs false acceptance rate) on normal-deviate axes, one line
    per :class:`DetCurve`, with each EER point marked; the diagonal is FRR = FAR and the
    anti-diagonal a system that guesses."""
    figure = Figure(figsize=(6.0, 6.0), layout="constrained")
    axes = figure.add_subplot()
    low, high = norm.ppf(_DET_LIMITS)
    span = np.array([low, high])
    axes.plot(span, span, color="grey", linestyle=":", linewidth=1, label="FRR = FAR")
    axes.plot(span, -span, color="lightgrey", linestyle="-", linewidth=1, label="chance")
    for index, curve in enumerate(curves):
        far, frr = det_points(curve.scores, curve.labels)
        color = f"C{index}"
        axes.plot(
            norm.ppf(np.clip(far, *_DET_LIMITS)),
            norm.ppf(np.clip(frr, *_DET_LIMITS)),
            color=color,
            linewidth=2,
            drawstyle="default",
            label=f"{curve.name} (EER {100 * curve.eer:.2f}%)",
        )
        point = norm.ppf(np.clip(curve.eer, *_DET_LIMITS))
        axes.plot(point, point, "o", color=color, markersize=8, markeredgecolor="black")
    ticks = np.array(DET_TICKS_PERCENT) / 100
    labels = [f"{value:g}" for value in DET_TICKS_PERCENT]
    for set_ticks, set_labels, set_limits in (
        (axes.set_xticks, axes.set_xticklabels, axes.set_xlim),
        (axes.set_yticks, axes.set_yticklabels, axes.set_ylim),
    ):
        set_ticks(norm.ppf(ticks))
        set_labels(labels, fontsize="small")
        set_limits(low, high)
    axes.set_xlabel("false acceptance rate (%): different babies accepted")
    axes.set_ylabel("false rejection rate (%): same baby rejected")
    axes.set_title(title)
    axes.set_aspect("equal")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper right", fontsize="small")
    return _png(figure)


def reliability_png(
    predicted: np.ndarray, observed: np.ndarray, counts: np.ndarray, title: str
) -> bytes:
    """A reliability diagram: the observed same-baby rate against the predicted P(same baby)
    per bin of trials (from :func:`cryprint.scoring.reliability_bins`), each point labelled
    with its number of pairs; on the diagonal a calibration is perfect.

    Args:
        predicted: float [n_bins], mean predicted probability of each bin, in [0, 1].
        observed: float [n_bins], share of same-baby pairs in each bin, in [0, 1].
        counts: int [n_bins], pairs in each bin.
        title: the figure title (should say what the calibration was fitted on).
    """
    figure = Figure(figsize=(6.0, 6.0), layout="constrained")
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect")
    # Marker area grows with the bin's pairs, so sparse bins are seen to weigh little.
    sizes = 30 + 270 * np.sqrt(np.asarray(counts) / max(int(np.max(counts, initial=1)), 1))
    axes.plot(predicted, observed, color="C0", linewidth=1.5)
    axes.scatter(
        predicted,
        observed,
        s=sizes,
        color="C0",
        edgecolor="black",
        zorder=3,
        label=f"bins of pairs ({int(np.sum(counts))} in all)",
    )
    for x, y, count in zip(predicted, observed, counts, strict=True):
        # Below the point, unless that would put the label on the x axis: then above it.
        axes.annotate(
            f"n={int(count)}",
            (x, y),
            textcoords="offset points",
            xytext=(6, -12 if y > 0.08 else 8),
            fontsize="small",
        )
    axes.set_xlim(-0.05, 1.05)
    axes.set_ylim(-0.05, 1.05)
    axes.set_aspect("equal")
    axes.set_xlabel("predicted P(same baby) at the fit prior")
    axes.set_ylabel("observed share of same-baby pairs")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize="small")
    return _png(figure)
