"""Benchmark 12: the full-size recipe on a GPU (issue 22, point 5) — seconds per epoch in
float32, with ``--amp`` (bfloat16) and with ``--amp --compile``, peak GPU memory, and the
learning curve of a run that fills the time left.

Full size: ECAPA C=1024 from random initialisation (the VoxCeleb weights cannot be fetched
here), 3-5 s crops, P=32 babies x K=4 crops, triplet loss with batch-hard mining, cosine
schedule. Each variant runs in its own process (its peak memory is its own); the main run gets
the epochs that fit before ``--deadline-seconds`` at the eager bf16 speed, minus time for
compiling and for evaluating its best model on the test split.

    python benchmarks/bench_gpu_recipe.py --data hard/corpus --out gpu --deadline-seconds 420
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import machine_description

HERE = Path(__file__).resolve()
RECIPE = {
    "init": "random", "channels": 1024, "batch_babies": 32, "crops_per_baby": 4,
    "crop_min_seconds": 3.0, "crop_max_seconds": 5.0, "learning_rate": 0.001,
    "schedule": "cosine", "select_by": "eer",
}  # fmt: skip
COMPILE_SECONDS = 150  # allowance for torch.compile's first (and one dynamic-shape) compile
EVALUATE_SECONDS = 60


def train_variant(args: argparse.Namespace) -> None:
    """One variant, in this process; a thread writes the peak GPU memory as it grows (the
    process may be stopped at the deadline)."""
    import torch

    from cryprint.training.config import TrainConfig
    from cryprint.training.trainer import train

    run = args.out / args.variant
    peak_file = args.out / f"{args.variant}.peak.json"

    def watch() -> None:
        while True:
            peak = {
                "allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
                "reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
            }
            peak_file.write_text(json.dumps(peak) + "\n")
            time.sleep(2)

    if args.device.startswith("cuda"):
        threading.Thread(target=watch, daemon=True).start()
    amp, compiled = args.variant in ("bf16", "bf16-compile"), args.variant == "bf16-compile"
    config = TrainConfig(
        data=str(args.data), run=str(run), epochs=args.epochs, device=args.device,
        amp=amp, compile=compiled, **{**RECIPE, **json.loads(args.override)},
    )  # fmt: skip
    train(config, quiet=True)
    if args.device.startswith("cuda"):
        time.sleep(2.5)  # one last reading


def seconds_per_epoch(run: Path) -> float | None:
    """Mean seconds of the epochs after the first (which compiles and warms up)."""
    path = run / "metrics.csv"
    if not path.exists():
        return None
    with path.open() as file:
        rows = [row for row in csv.DictReader(file) if int(row["epoch"]) >= 1]
    later = rows[1:] or rows
    return sum(float(r["seconds"]) for r in later) / len(later) if later else None


def variant(args: argparse.Namespace, name: str, epochs: int, limit: float) -> float | None:
    command = [sys.executable, str(HERE), "--variant", name, "--epochs", str(epochs),
               "--data", str(args.data), "--out", str(args.out), "--device", args.device,
               "--override", args.override]  # fmt: skip
    started = time.perf_counter()
    try:
        subprocess.run(command, check=True, timeout=max(limit, 1))
    except (subprocess.TimeoutExpired, subprocess.CalledProcessError) as error:
        print(f"{name}: {type(error).__name__} after {time.perf_counter() - started:.0f} s")
    seconds = seconds_per_epoch(args.out / name)
    print(f"{name}: {seconds} s per epoch ({time.perf_counter() - started:.0f} s in all)")
    return seconds


def main_run(args: argparse.Namespace) -> None:
    print(machine_description(), flush=True)
    deadline = time.perf_counter() + args.deadline_seconds
    results = {"recipe": RECIPE, "override": json.loads(args.override)}
    if args.eager_seconds is None:
        results["fp32"] = variant(args, "fp32", 2, deadline - time.perf_counter())
        results["bf16"] = variant(args, "bf16", 2, deadline - time.perf_counter())
    eager = args.eager_seconds or results["bf16"] or results["fp32"] or 60.0
    compiling = COMPILE_SECONDS if args.main == "bf16-compile" else 0
    left = deadline - time.perf_counter() - compiling - EVALUATE_SECONDS
    epochs = max(2, min(args.max_epochs, int(left // eager)))
    results["main"], results["main_epochs"] = args.main, epochs
    results[args.main] = variant(
        args, args.main, epochs, deadline - time.perf_counter() - EVALUATE_SECONDS
    )
    best = args.out / args.main / "best"
    if best.exists():
        subprocess.run(
            [sys.executable, "-m", "cryprint", "evaluate", "--model", str(best), "--data",
             str(args.data), "--split", "test", "--out", str(args.out / "test"), "--no-cohort",
             "--device", args.device],
            timeout=max(deadline - time.perf_counter(), 30), check=False,
        )  # fmt: skip
    for name in ("fp32", "bf16", "bf16-compile"):
        peak = args.out / f"{name}.peak.json"
        results[f"{name}_peak"] = json.loads(peak.read_text()) if peak.exists() else None
    (args.out / "gpu_results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a CryCeleb-layout corpus")
    parser.add_argument("--out", type=Path, required=True, help="where runs and results go")
    parser.add_argument("--device", default="cuda", help="cuda (cpu only for a dry run)")
    parser.add_argument("--deadline-seconds", type=float, default=420)
    parser.add_argument("--max-epochs", type=int, default=60)
    parser.add_argument(
        "--main",
        choices=("bf16-compile", "bf16"),
        default="bf16-compile",
        help="the variant of the run that fills the time left",
    )
    parser.add_argument(
        "--eager-seconds",
        type=float,
        help="bf16 seconds per epoch measured before: skip the short variants",
    )
    parser.add_argument("--override", default="{}", help="JSON: recipe keys to change (dry run)")
    parser.add_argument("--variant", help="internal: run one variant in this process")
    parser.add_argument("--epochs", type=int, help="internal: the variant's epochs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    train_variant(args) if args.variant else main_run(args)


if __name__ == "__main__":
    main()
