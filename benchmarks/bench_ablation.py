"""Benchmark 7: the CryCeleb2023 winners' options, one at a time, on the demo recipe (issue #13).

For each corpus difficulty and training seed, the demo's triplet model is trained as it is
(``baseline``) and with one option changed (``train+dev-B``, ``augment-light``,
``augment-strong``), plus the AAM-softmax baseline for fusion; each is evaluated on dev and test
without and with test-time augmentation. Fusion of the AAM and triplet models is fitted on dev
(``evaluate --fuse``) and applied to test. The same corpus (seed 0) for every run; the training
seed varies, so the spread between seeds says what is noise.

    python benchmarks/bench_ablation.py --out benchmarks/.cache/ablation --difficulty 1.0 1.5

Every run folder is resumable: rerunning the command continues where it stopped (training
resumes bit-exactly, finished evaluations are read back). Results go to ``OUT/results.json``
and the table to stdout. ~6 minutes per training run on 2 cores (AVX2), more with augmentation.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from common import machine_description, table
from cryprint.data.synth import MARKER_NAME, generate_corpus
from cryprint.demo import DEMO_TRAINING, DemoSettings
from cryprint.inference.options import EmbeddingOptions
from cryprint.io import atomic_write_text
from cryprint.training.checkpoints import INDEX_NAME
from cryprint.training.config import make_config

# What each trained variant changes in the demo recipe.
VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "aam": {"method": "aam"},
    "train+dev-B": {"train_on": "train+dev-B"},
    "augment-light": {"augment": "light"},
    "augment-strong": {"augment": "strong"},
    "train+dev-B+light": {"train_on": "train+dev-B", "augment": "light"},
}
TTA_VIEWS = 5


# The runs in priority order (what fitted in one 3-hour session on 2 cores): every option at
# seed 0 on the default corpus, a second seed for the baseline (the run-to-run spread) and the
# options that may help, then the harder corpus. AAM models exist for fusion with the baseline.
PLAN = [
    *(f"d1/seed0/{v}" for v in ("baseline", "aam", "train+dev-B")),
    *(f"d1/seed0/{v}" for v in ("augment-light", "augment-strong")),
    *(f"d1/seed1/{v}" for v in ("baseline", "train+dev-B")),
    *(f"d1.5/seed0/{v}" for v in ("baseline", "aam", "train+dev-B")),
    "d1.5/seed1/baseline",
    "d1.5/seed0/augment-light",
    "d1/seed1/augment-light",
    "d1.5/seed1/train+dev-B",
    *(f"d1/seed1/{v}" for v in ("aam", "augment-strong")),
    *(f"d1.5/seed0/{v}" for v in ("augment-strong",)),
    *(f"d1.5/seed1/{v}" for v in ("aam", "augment-light", "augment-strong")),
]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/.cache/ablation"))
    parser.add_argument(
        "--runs",
        nargs="+",
        default=PLAN,
        help="DIFFICULTY/SEED/VARIANT keys, e.g. d1/seed0/baseline (default: the whole plan)",
    )
    parser.add_argument("--epochs", type=int, default=DEMO_TRAINING.epochs)
    parser.add_argument("--report-only", action="store_true", help="print the table, train nothing")
    return parser.parse_args()


def corpus(out: Path, difficulty: float) -> Path:
    """The demo's corpus (corpus seed 0) at this difficulty, generated once."""
    demo = DemoSettings()
    root = out / f"corpus-d{difficulty:g}"
    if not (root / MARKER_NAME).is_file():
        print(f"generating {root} ...", flush=True)
        generate_corpus(
            root,
            babies=demo.babies,
            seed=demo.seed,
            difficulty=difficulty,
            segments_per_recording=demo.segments_per_recording,
            overwrite=True,
        )
    return root


def train_variant(root: Path, run: Path, seed: int, epochs: int, changes: dict[str, Any]) -> Path:
    """Train (or resume, or find finished) one variant; returns its best model folder."""
    from cryprint.training.trainer import train

    config = make_config(
        {
            **DEMO_TRAINING.to_dict(),
            "data": str(root),
            "run": str(run),
            "seed": seed,
            "epochs": epochs,
            **changes,
        }
    )
    resume = (run / "checkpoints" / INDEX_NAME).is_file()
    return train(config, resume=resume, quiet=True).best


def evaluate_model(model: Path, root: Path, folder: Path, tta: int) -> dict[str, Any]:
    from cryprint.evaluation.evaluate import evaluate

    result = {}
    for split in ("dev", "test"):
        report = evaluate(
            [model], root, split, folder / split, embedding=EmbeddingOptions(tta=tta)
        )[0]
        result[split] = {"eer": report["eer"], "min_dcf": report["min_dcf"]["0.05"]}
    return result


def fuse_models(models: list[Path], root: Path, folder: Path) -> dict[str, Any]:
    """AAM + triplet score fusion fitted on dev, applied to test (``evaluate --fuse``)."""
    from cryprint.evaluation.evaluate import evaluate

    result = {}
    for split in ("dev", "test"):
        report = evaluate(models, root, split, folder / split, fusion="dev")[-1]
        result[split] = {"eer": report["eer"], "min_dcf": report["min_dcf"]["0.05"]}
    return result


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}

    def record(name: str, measure: Any) -> None:
        if name not in results:
            started = time.perf_counter()
            measured = {**measure(), "seconds": round(time.perf_counter() - started, 1)}
            # Re-read first: another run of this script may have recorded results meanwhile.
            if results_path.is_file():
                results.update(json.loads(results_path.read_text()))
            results[name] = measured
            atomic_write_text(results_path, json.dumps(results, indent=1, sort_keys=True))
        print(name, json.dumps(results[name]), flush=True)

    models: dict[str, Path] = {}
    for key in args.runs:
        difficulty, seed, variant = key.split("/")
        root = corpus(args.out, float(difficulty[1:]))
        started = time.perf_counter()
        models[key] = train_variant(
            root, args.out / "runs" / key, int(seed[4:]), args.epochs, VARIANTS[variant]
        )
        print(f"{key}: trained in {time.perf_counter() - started:.0f} s", flush=True)
        for tta in (1, TTA_VIEWS) if variant != "aam" else (1,):
            folder = args.out / "evaluation" / f"{key}/tta{tta}"
            record(f"{key}/tta{tta}", lambda: evaluate_model(models[key], root, folder, tta))  # noqa: B023
        pair = [models.get(f"{difficulty}/{seed}/{v}") for v in ("baseline", "aam")]
        if variant in ("baseline", "aam") and None not in pair:
            name = f"{difficulty}/{seed}/fusion aam+baseline/tta1"
            folder = args.out / "evaluation" / name
            record(name, lambda: fuse_models(pair, root, folder))  # noqa: B023
    return results


# Table rows in this order; "+ TTA5" rows are the same models embedded with 5 views.
ROW_ORDER = [
    "baseline",
    "baseline + TTA5",
    "train+dev-B",
    "train+dev-B + TTA5",
    "augment-light",
    "augment-light + TTA5",
    "augment-strong",
    "augment-strong + TTA5",
    "train+dev-B+light",
    "train+dev-B+light + TTA5",
    "aam",
    "fusion aam+baseline",
]


def summary(results: dict[str, Any]) -> str:
    """One row per difficulty x option: dev/test EER per seed and their mean, mean minDCF."""
    grouped: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for name, result in results.items():
        difficulty, seed, variant, tta = name.split("/")
        label = variant if tta == "tta1" else f"{variant} + TTA{tta[3:]}"
        grouped.setdefault((difficulty, label), {})[seed] = result

    def order(item: tuple[tuple[str, str], Any]) -> tuple[float, int]:
        (difficulty, label), _ = item
        return float(difficulty[1:]), ROW_ORDER.index(label)

    rows = []
    for (difficulty, label), by_seed in sorted(grouped.items(), key=order):
        seeds = sorted(by_seed)
        cells = [difficulty[1:], label, " / ".join(seed[4:] for seed in seeds)]
        for split in ("dev", "test"):
            eers = [100 * by_seed[seed][split]["eer"] for seed in seeds]
            dcfs = [by_seed[seed][split]["min_dcf"] for seed in seeds]
            per_seed = f" ({' / '.join(f'{e:.2f}' for e in eers)})" if len(eers) > 1 else ""
            cells.append(f"{sum(eers) / len(eers):.2f}{per_seed}")
            cells.append(f"{sum(dcfs) / len(dcfs):.3f}")
        rows.append(cells)
    header = ["difficulty", "option", "seeds", "dev EER % (per seed)", "dev minDCF"]
    return table([*header, "test EER % (per seed)", "test minDCF"], rows)


def threshold_shift(out: Path) -> str:
    """What a dev EER threshold measured on single-view embeddings does to TTA5 scores (why
    verify refuses a threshold of other TTA views): per trained model, both dev thresholds and
    the TTA5 dev/test false acceptance / false rejection rates at each."""
    import pandas as pd

    rows = []
    for report in sorted((out / "evaluation").glob("*/*/*/tta1/dev/report.json")):
        single, views = report.parents[1], report.parents[2] / f"tta{TTA_VIEWS}"
        if not (views / "dev" / "report.json").is_file():
            continue
        own = json.loads((views / "dev" / "report.json").read_text())["threshold"]
        moved = json.loads(report.read_text())["threshold"]
        cells = [str(single.parent.relative_to(out / "evaluation")), f"{moved:.4f}", f"{own:.4f}"]
        for split in ("dev", "test"):
            scores = pd.read_csv(views / split / "scores.csv")
            same, other = scores[scores["label"] == 1], scores[scores["label"] == 0]
            for threshold in (own, moved):
                far = 100 * (other["score"] >= threshold).mean()
                frr = 100 * (same["score"] < threshold).mean()
                cells.append(f"{far:.2f} / {frr:.2f}")
        rows.append(cells)
    header = ["model", "dev EER thr. (1 view)", f"(TTA{TTA_VIEWS})"]
    at = [f"{split} FAR / FRR % at {which}" for split in ("dev", "test") for which in (
        f"TTA{TTA_VIEWS} thr.", "1-view thr.")]  # fmt: skip
    return table([*header, *at], rows)


def main() -> None:
    args = arguments()
    print(machine_description())
    os.environ.setdefault("CRYPRINT_STORE", str(args.out / "embeddings.sqlite"))
    results = {}
    if args.report_only:
        results = json.loads((args.out / "results.json").read_text())
    else:
        results = run_all(args)
    print(summary(results))
    print(threshold_shift(args.out))


if __name__ == "__main__":
    main()
