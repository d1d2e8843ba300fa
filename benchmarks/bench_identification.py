"""Benchmark 5: enrolment and open-set identification on a corpus's test split (a ward).

Every test baby's B recording is enrolled in a gallery (a real SQLite file, one transaction per
baby); every D recording is identified among all of them → top-1 and top-5 accuracy (closed
set). Then the open set: for each D cry its true baby is left out → the false-alarm rate, the
fraction of D cries whose best remaining baby still scores >= the model's threshold (a stranger
taken for an enrolled baby). A baby's centroid does not depend on the other babies, so leaving
it out of the ranking gives what removing it from the gallery gives; the first cry is checked
against a real removal in a copy of the gallery.

    python benchmarks/bench_identification.py --model demo/runs/triplet/best --data demo/corpus

Writes nothing outside ``--out`` (without it: no embedding store, the gallery in a temporary
folder removed at the end).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import setup, table
from cryprint.errors import CryprintError
from cryprint.inference.api import CryPrint
from cryprint.inference.operating_point import stored_threshold
from cryprint.inference.splits import embed_split
from cryprint.io import atomic_write_text
from cryprint.scoring.ranking import Identification
from cryprint.ward.gallery import Gallery


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default="demo/runs/triplet/best", help="a model folder (default: %(default)s)"
    )
    parser.add_argument(
        "--data", type=Path, default=Path("demo/corpus"), help="a CryCeleb-layout directory"
    )
    parser.add_argument("--split", default="test", help="the split to enrol and identify")
    parser.add_argument(
        "--threshold",
        type=float,
        help="accept the best baby when score >= this (default: the model folder's dev EER "
        "threshold, from `cryprint evaluate --split dev`)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, auto, cuda, cuda:N")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--out", type=Path, help="a folder for gallery.db, embeddings.sqlite and results.json"
    )
    return parser.parse_args()


def split_periods(keys: list[str], embeddings: np.ndarray) -> tuple[dict, dict]:
    """``{baby_id: embedding}`` of the B and of the D recordings (keys ``{baby_id}{period}``)."""
    periods: dict[str, dict[str, np.ndarray]] = {"B": {}, "D": {}}
    for key, embedding in zip(keys, embeddings, strict=True):
        periods[key[-1]][key[:-1]] = embedding
    return periods["B"], periods["D"]


def best_other(result: Identification, true_baby: str) -> float:
    """The best score among the babies other than the true one (the ranking holds them all)."""
    return next(c.score for c in result.candidates if c.baby_id != true_baby)


def check_removal(gallery_path: Path, cry: np.ndarray, true_baby: str, expected: float) -> None:
    """Removing the true baby from a copy of the gallery gives the left-out ranking's best."""
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "copy.db"
        shutil.copyfile(gallery_path, copy)
        with Gallery.open(copy) as gallery:
            gallery.remove(true_baby)
            best = gallery.identify(cry, threshold=0.0).best.score
    assert abs(best - expected) < 1e-9, f"removal gives {best}, leaving out gives {expected}"


def enrol_births(gallery_path: Path, embedder: CryPrint, births: dict[str, np.ndarray]) -> float:
    """Enrol each baby's B embedding (one transaction per baby); return the seconds taken."""
    started = time.perf_counter()
    with Gallery.create_or_open(
        gallery_path, embedder.model_id, embedder.embedding_dim, embedder.source
    ) as gallery:
        for baby_id, vector in births.items():
            gallery.enrol(baby_id, vector[None], [f"{baby_id}B"])
    return time.perf_counter() - started


def identify_discharges(
    gallery_path: Path, discharges: dict[str, np.ndarray], threshold: float
) -> dict[str, float]:
    """Identify each D cry among every enrolled baby: closed-set accuracy, open-set rates."""
    ranks, false_alarms, detections = [], 0, 0
    started = time.perf_counter()
    with Gallery.open(gallery_path) as gallery:
        n_babies = len(gallery.babies())
        for baby_id, cry in discharges.items():
            result = gallery.identify(cry, threshold, top=n_babies)
            ranked = [candidate.baby_id for candidate in result.candidates]
            ranks.append(ranked.index(baby_id))
            detections += ranked[0] == baby_id and not result.none_of_these
            others_best = best_other(result, baby_id)
            false_alarms += others_best >= threshold
            if len(ranks) == 1:
                check_removal(gallery_path, cry, baby_id, others_best)
    seconds = time.perf_counter() - started
    ranks_array = np.array(ranks)
    return {
        "top1_accuracy": float(np.mean(ranks_array < 1)),
        "top5_accuracy": float(np.mean(ranks_array < 5)),
        "open_set_false_alarm_rate": false_alarms / len(ranks),
        "detection_rate": detections / len(ranks),
        "identify_ms_per_cry": 1000 * seconds / len(ranks),
    }


def measure(args: argparse.Namespace, folder: Path) -> dict[str, object]:
    """Embed the split, enrol every B into ``folder``/gallery.db, identify every D."""
    store = folder / "embeddings.sqlite" if args.out else False
    embedder = CryPrint(args.model, device=args.device, store=store)
    if args.threshold is None:
        basis = embedder.options.score_basis
        threshold, source = stored_threshold(embedder.loaded, embedder.model_id, basis=basis)
    else:
        threshold, source = args.threshold, "given"
    started = time.perf_counter()
    embedded = embed_split(embedder, args.data, args.split, progress=sys.stderr.isatty())
    embedding_seconds = time.perf_counter() - started
    births, discharges = split_periods(embedded.keys, embedded.embeddings)
    cries = {baby: cry for baby, cry in discharges.items() if baby in births}
    if not cries or len(births) < 2:
        raise SystemExit(
            f"the {args.split} split needs 2 babies with a B recording and one with both B and D"
        )
    gallery_path = folder / "gallery.db"
    gallery_path.unlink(missing_ok=True)  # a fresh gallery each run
    enrol_seconds = enrol_births(gallery_path, embedder, births)
    return {
        "model": str(args.model),
        "model_id": embedder.model_id,
        "data": str(args.data),
        "split": args.split,
        "babies_enrolled": len(births),
        "cries_identified": len(cries),
        "threshold": threshold,
        "threshold_source": source,
        **identify_discharges(gallery_path, cries, threshold),
        "embedding_seconds": embedding_seconds,
        "enrol_ms_per_baby": 1000 * enrol_seconds / len(births),
    }


def report(results: dict[str, object]) -> str:
    babies = results["babies_enrolled"]
    rows = [
        ["top-1 accuracy", f"{results['top1_accuracy']:.3f}", f"{1 / babies:.3f}"],
        ["top-5 accuracy", f"{results['top5_accuracy']:.3f}", f"{min(1, 5 / babies):.3f}"],
        [
            "open-set false-alarm rate (true baby removed)",
            f"{results['open_set_false_alarm_rate']:.3f}",
            "",
        ],
        [
            "detection rate (true baby first and >= threshold)",
            f"{results['detection_rate']:.3f}",
            "",
        ],
        ["enrol, ms per baby (gallery write)", f"{results['enrol_ms_per_baby']:.2f}", ""],
        [
            "identify, ms per cry (gallery read + ranking)",
            f"{results['identify_ms_per_cry']:.2f}",
            "",
        ],
    ]
    return (
        f"{results['cries_identified']} D cries of the {results['split']} split identified "
        f"among {babies} enrolled babies (B); threshold {results['threshold']:.4f} "
        f"({results['threshold_source']}); embedding took {results['embedding_seconds']:.1f} s\n"
        + table(["measure", "value", "chance"], rows)
    )


def main() -> None:
    args = arguments()
    args.data = setup(args)
    try:
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            results = measure(args, args.out)
        else:
            with tempfile.TemporaryDirectory() as folder:
                results = measure(args, Path(folder))
    except CryprintError as error:
        raise SystemExit(f"error: {error}") from error
    print(report(results))
    if args.out:
        atomic_write_text(args.out / "results.json", json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
