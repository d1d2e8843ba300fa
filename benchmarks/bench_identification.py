"""Benchmark 5: whose cry is this? The ward's answer measured on a corpus's test split.

Wards of 10, 30, 100 and all test babies (drawn at random, several draws): each enrolled baby's
birth (B) recording is enrolled; every discharge (D) cry of an enrolled baby is identified
(closed set: top-1, top-5; open set: the default rule names the true baby = "enrolled cries
found"), and every D cry of a baby *not* on the ward is a stranger ("strangers named": the
rule names some baby). For the whole split, strangers are the D cries with their own baby left
out. Measured with the library's own functions (the model's scoring, calibration, ward
probabilities, rule and stranger threshold); one cry is checked against a real gallery and
``cryprint.ward.identify.identify``.

- The probabilities' calibration: the expected calibration error (ECE, 10 bins) of the leading
  baby's stated P against how often it is the crying baby, with enrolled cries and strangers
  weighted as the stated prior says (0.9 / 0.1), and a reliability plot.
- The score rule: with ``--max-false-alarm F`` (F = 1, 5, 10 %) the share of strangers named,
  against F; and the old default, the dev EER threshold.
- Several cries per baby: 1, 2 or 3 B segments enrolled per baby, scored as the centroid of
  their unit embeddings, the best single match, or the mean of the scores.

    python benchmarks/bench_identification.py --model demo/runs/triplet/best --data demo/corpus

The model folder must have been evaluated on dev (`cryprint evaluate --split dev`: thresholds,
different-baby scores, cohort) and calibrated (`cryprint calibrate`). Writes only ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import machine_description, table
from cryprint.data.layout import read_metadata
from cryprint.errors import CryprintError
from cryprint.inference.api import CryPrint
from cryprint.inference.operating_point import (
    model_calibration,
    stored_nontarget_scores,
    stored_threshold,
)
from cryprint.inference.splits import embed_split
from cryprint.io import atomic_write_bytes, atomic_write_text
from cryprint.scoring import Calibration, reliability_bins
from cryprint.scoring.open_set import (
    DEFAULT_ENROLLED_PRIOR,
    NAMED,
    WardRule,
    decide,
    stranger_threshold,
    ward_probabilities,
)
from cryprint.ward.enrol import enrol
from cryprint.ward.identify import identify

FALSE_ALARMS = (0.01, 0.05, 0.1)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="demo/runs/triplet/best", help="a model folder")
    parser.add_argument("--data", type=Path, default=Path("demo/corpus"), help="CryCeleb layout")
    parser.add_argument("--split", default="test", help="the split to enrol and identify")
    parser.add_argument("--sizes", default="10,30,100,all", help="ward sizes (comma-separated)")
    parser.add_argument("--draws", type=int, default=5, help="random wards per size")
    parser.add_argument("--label", default="", help="a name for the results table")
    parser.add_argument("--out", type=Path, help="results.json and reliability.png go here")
    return parser.parse_args()


class Ward:
    """One split's embeddings and the model's scoring, calibration and dev scores."""

    def __init__(self, args: argparse.Namespace, store: Path) -> None:
        self.embedder = CryPrint(args.model, device="cpu", store=store)
        started = time.perf_counter()
        embedded = embed_split(self.embedder, args.data, args.split, progress=sys.stderr.isatty())
        self.embedding_seconds = time.perf_counter() - started
        periods: dict[str, dict[str, np.ndarray]] = {"B": {}, "D": {}}
        for key, vector in zip(embedded.keys, embedded.embeddings, strict=True):
            periods[key[-1]][key[:-1]] = vector
        self.babies = sorted(periods["B"])
        self.births = np.stack([periods["B"][b] for b in self.babies])
        self.criers = [b for b in self.babies if b in periods["D"]]
        self.cries = np.stack([periods["D"][b] for b in self.criers])
        # Every cry against every baby, as the model scores (cosine, or AS-norm).
        self.scores = self.embedder.score_matrix(self.cries, self.births)
        basis = self.embedder.score_basis
        loaded, model_id = self.embedder.loaded, self.embedder.model_id
        calibration, _ = model_calibration(loaded, model_id, basis)
        if calibration is None:
            raise SystemExit(f"{args.model} has no calibration: run `cryprint calibrate` first")
        self.calibration: Calibration = calibration
        self.nontarget, _ = stored_nontarget_scores(loaded, model_id, basis)
        self.eer_threshold, _ = stored_threshold(loaded, model_id, basis=basis)


def ward_draws(ward: Ward, size: str, draws: int) -> list[tuple[np.ndarray, bool]]:
    """The wards of ``size`` babies: (column indices into ward.babies, leave-one-out)."""
    if size == "all":
        return [(np.arange(len(ward.babies)), True)]
    n = int(size)
    rng = np.random.default_rng(n)
    return [(np.sort(rng.choice(len(ward.babies), n, replace=False)), False) for _ in range(draws)]


def answers(ward: Ward, columns: np.ndarray, leave_out: bool) -> dict[str, list]:
    """Each cry's outcome on the ward ``columns``: as an enrolled baby's cry and as a
    stranger's (a cry of a baby off the ward, or with its own baby left out)."""
    rule, outcome = WardRule(), {key: [] for key in ("enrolled", "stranger")}
    on_ward = {ward.babies[c]: i for i, c in enumerate(columns)}
    names = [ward.babies[c] for c in columns]
    for row, baby in enumerate(ward.criers):
        scores = ward.scores[row, columns]
        kinds = []
        if baby in on_ward:
            kinds.append(("enrolled", np.arange(len(columns)), baby))
            if leave_out:
                kinds.append(("stranger", np.delete(np.arange(len(columns)), on_ward[baby]), None))
        else:
            kinds.append(("stranger", np.arange(len(columns)), None))
        for kind, keep, truth in kinds:
            kept, ids = scores[keep], [names[i] for i in keep]
            llr = ward.calibration.log_likelihood_ratio(kept)
            p, p_none = ward_probabilities(llr, DEFAULT_ENROLLED_PRIOR)
            answer = decide(ids, p, p_none, rule)
            order = np.argsort(-kept, kind="stable")
            outcome[kind].append(
                {
                    "rank": None if truth is None else [ids[i] for i in order].index(truth),
                    "named_right": answer.kind == NAMED and answer.baby == truth,
                    "named": answer.kind == NAMED,
                    "leader_p": float(p.max()),
                    "leader_right": truth is not None and ids[int(np.argmax(p))] == truth,
                    "best_score": float(kept.max()),
                }
            )
    return outcome


def weighted_ece(stated: np.ndarray, right: np.ndarray, weights: np.ndarray) -> float:
    """Expected calibration error over 10 equal bins of stated P, with weights."""
    bins = np.minimum((stated * 10).astype(int), 9)
    total, error = weights.sum(), 0.0
    for b in range(10):
        inside = bins == b
        if inside.any():
            w = weights[inside]
            gap = np.average(stated[inside], weights=w) - np.average(right[inside], weights=w)
            error += w.sum() / total * abs(gap)
    return float(error)


def measure_size(ward: Ward, size: str, draws: int) -> dict[str, float]:
    enrolled, strangers, false_alarm = [], [], {f: [] for f in FALSE_ALARMS}
    n_babies = 0
    for columns, leave_out in ward_draws(ward, size, draws):
        outcome = answers(ward, columns, leave_out)
        enrolled += outcome["enrolled"]
        strangers += outcome["stranger"]
        n_babies = len(columns) - (1 if leave_out else 0)
        for rate in FALSE_ALARMS:
            threshold = stranger_threshold(ward.nontarget, n_babies, rate).threshold
            false_alarm[rate] += [o["best_score"] >= threshold for o in outcome["stranger"]]
    ranks = np.array([o["rank"] for o in enrolled])
    stated = np.array([o["leader_p"] for o in enrolled + strangers])
    right = np.array([o["leader_right"] for o in enrolled + strangers], dtype=float)
    prior = DEFAULT_ENROLLED_PRIOR
    weights = np.array(
        [prior / len(enrolled)] * len(enrolled) + [(1 - prior) / len(strangers)] * len(strangers)
    )
    return {
        "babies": n_babies if size == "all" else int(size),
        "enrolled_cries": len(enrolled),
        "stranger_cries": len(strangers),
        "top1": float(np.mean(ranks == 0)),
        "top5": float(np.mean(ranks < 5)),
        "found": float(np.mean([o["named_right"] for o in enrolled])),
        "strangers_named": float(np.mean([o["named"] for o in strangers])),
        "ece": weighted_ece(stated, right, weights),
        "strangers_named_at_eer": float(
            np.mean([o["best_score"] >= ward.eer_threshold for o in strangers])
        ),
        **{f"strangers_named_at_F{rate:g}": float(np.mean(v)) for rate, v in false_alarm.items()},
        "_stated": stated.tolist(),
        "_right": right.tolist(),
        "_weights": weights.tolist(),
    }


def check_against_the_library(args: argparse.Namespace, ward: Ward, folder: Path) -> None:
    """One cry through a real gallery and identify(): the same answer as measured here."""
    gallery = folder / "check.db"
    names = ward.babies[:5]
    columns = np.arange(len(names))
    for baby in names:
        recording = next(Path(args.data).glob(f"audio/{args.split}/{baby}/B"))
        enrol(ward.embedder, gallery, baby, [recording])
    crier = next(b for b in ward.criers if b in names)
    cry = next(Path(args.data).glob(f"audio/{args.split}/{crier}/D"))
    result = identify(ward.embedder, gallery, cry)
    row = ward.criers.index(crier)
    p, p_none = ward_probabilities(
        ward.calibration.log_likelihood_ratio(ward.scores[row, columns]), DEFAULT_ENROLLED_PRIOR
    )
    expected = decide(list(names), p, p_none, WardRule())
    # The same answer; the gallery scores against each baby's centroid: equal to 1e-9.
    same = (result.answer.kind, result.answer.baby) == (expected.kind, expected.baby)
    assert same and np.isclose(result.answer.probability, expected.probability), (result, expected)


def several_cries(args: argparse.Namespace, ward: Ward) -> list[list[str]]:
    """Enrol 1, 2, 3 B segments per baby (babies with 3 or more); identify every D cry by the
    centroid, the best single match and the mean score. Top-1 and the EER of the true
    baby's score against the others'."""
    from cryprint.scoring import compute_eer

    rows = read_metadata(args.data)
    usable = rows[(rows["split"] == args.split) & (rows["period"] == "B")]
    usable = usable[usable["duration"] >= 0.5]  # a cry of its own (0.25 s at the least)
    segments = {
        baby: [Path(args.data) / name for name in sorted(group["file_name"])]
        for baby, group in usable.groupby("baby_id")
    }
    segments = {baby: segments.get(baby, []) for baby in ward.criers}
    babies = [b for b in ward.criers if len(segments[b]) >= 3]
    vectors = {
        b: ward.embedder.embed_many([str(s) for s in segments[b][:3]], progress=False)
        for b in babies
    }
    cries = ward.cries[[ward.criers.index(b) for b in babies]]
    rows = []
    for k in (1, 2, 3):
        per_method = {}
        for method in ("centroid", "best single", "mean score"):
            scores = np.stack([_score(ward, method, cries, vectors[b][:k]) for b in babies], 1)
            truth = np.eye(len(babies), dtype=bool)
            top1 = float(np.mean(np.argmax(scores, axis=1) == np.arange(len(babies))))
            eer = compute_eer(scores.ravel(), truth.ravel().astype(int)).eer
            per_method[method] = f"{top1:.3f} / {100 * eer:.2f} %"
        rows.append([str(k), *per_method.values()])
    return rows


def _score(ward: Ward, method: str, cries: np.ndarray, enrolled: np.ndarray) -> np.ndarray:
    if method == "centroid":
        unit = enrolled / np.linalg.norm(enrolled, axis=1, keepdims=True)
        return ward.embedder.score_matrix(cries, unit.mean(axis=0, keepdims=True))[:, 0]
    scores = ward.embedder.score_matrix(cries, enrolled)
    return scores.max(axis=1) if method == "best single" else scores.mean(axis=1)


def reliability_plot(results: dict[str, dict], path: Path, title: str) -> None:
    from cryprint.evaluation.plots import reliability_png

    every = results["all"]
    predicted, observed, counts = reliability_bins(
        np.array(every["_stated"]), np.array(every["_right"]), n_bins=10
    )
    atomic_write_bytes(path, reliability_png(predicted, observed, counts, title))


def main() -> None:
    args = arguments()
    print(machine_description())
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.out or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            ward = Ward(args, Path(scratch) / "store.sqlite")
            check_against_the_library(args, ward, Path(scratch))
            results = {size: measure_size(ward, size, args.draws) for size in args.sizes.split(",")}
            cries_rows = several_cries(args, ward)
        except CryprintError as error:
            raise SystemExit(f"error: {error}") from error
        name = args.label or str(args.data)
        print(f"\n{name}: {ward.embedder.scoring}; calibration {ward.calibration}")
        header = ["ward", "top-1", "top-5", "enrolled cries found", "strangers named", "ECE"]
        header += [f"strangers named, F = {100 * f:g} %" for f in FALSE_ALARMS]
        header += ["strangers named, dev EER threshold"]
        rows = [
            [
                f"{r['babies']} babies",
                f"{r['top1']:.3f}",
                f"{r['top5']:.3f}",
                f"{r['found']:.3f}",
                f"{r['strangers_named']:.3f}",
                f"{r['ece']:.3f}",
                *[f"{r[f'strangers_named_at_F{f:g}']:.3f}" for f in FALSE_ALARMS],
                f"{r['strangers_named_at_eer']:.3f}",
            ]
            for r in results.values()
        ]
        print(table(header, rows))
        every = results[args.sizes.split(",")[-1]]
        predicted, observed, counts = reliability_bins(
            np.array(every["_stated"]), np.array(every["_right"]), n_bins=10
        )
        print(f"\nreliability, ward of {every['babies']} (unweighted): stated P of the leader")
        bins = zip(predicted, observed, counts, strict=True)
        rows = [[f"{p:.3f}", f"{o:.3f}", str(c)] for p, o, c in bins]
        print(table(["stated P", "observed", "cries"], rows))
        print("\nseveral cries per baby (top-1 / EER of the true baby's score):")
        print(table(["B segments enrolled", "centroid", "best single", "mean score"], cries_rows))
        if args.out:
            reliability_plot(results, args.out / "reliability.png", f"{name}: stated P vs observed")
            public = {
                size: {k: v for k, v in r.items() if not k.startswith("_")}
                for size, r in results.items()
            }
            payload = {"label": name, "results": public, "several_cries": cries_rows}
            atomic_write_text(args.out / "results.json", json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
