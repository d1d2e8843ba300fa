"""Benchmark 9: two cryprint commands side by side, against the same two one after the other.

Two jobs — `cryprint embed` of a split (no embedding store: each computes; torch or onnx) and
a short `cryprint train` (the demo's recipe, 2 epochs) — each run alone, twice in sequence and
twice at once, under each way of waiting: OpenMP's default spin (300,000 rounds, then sleep),
``OMP_WAIT_POLICY=PASSIVE`` (sleep at once), cryprint's short spin (``GOMP_SPINCOUNT=10000``),
1,000 rounds, and one thread per job. The ratio (side by side / in sequence) is the cost of
sharing the cores (1.0 = none; the goal is <= 1.1), "one job" the policy's cost when alone.

    python benchmarks/bench_concurrency.py --model demo/runs/triplet/best --data demo/corpus

Needs an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine_description, table

CRYPRINT = [sys.executable, "-m", "cryprint"]
POLICIES = {
    "OpenMP's default spin": {"GOMP_SPINCOUNT": "300000"},
    "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "cryprint's short spin": {},  # GOMP_SPINCOUNT=10000, set by importing cryprint
    "spin 1k": {"GOMP_SPINCOUNT": "1000"},
    "1 thread per job": {"CRYPRINT_THREADS": "1"},
}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="demo/runs/triplet/best", help="a model folder")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx"], help="embed's")
    parser.add_argument("--data", default="demo/corpus", help="a CryCeleb-layout directory")
    parser.add_argument("--split", default="test", help="the split each embed job embeds")
    parser.add_argument("--repeats", type=int, default=2, help="measurements, best kept")
    parser.add_argument("--jobs", nargs="+", default=["embed", "train"], choices=["embed", "train"])
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=list(POLICIES))
    return parser.parse_args()


def command(args: argparse.Namespace, kind: str, out: Path) -> list[str]:
    if kind == "embed":
        return [*CRYPRINT, "embed", "--model", args.model, "--data", args.data, "--split",
                args.split, "--out", str(out), "--device", "cpu",
                "--backend", args.backend]  # fmt: skip
    return [*CRYPRINT, "train", "--data", args.data, "--run", str(out), "--init", "random",
            "--channels", "64", "--epochs", "2", "--batch-babies", "16", "--crops-per-baby", "3",
            "--crop-min-seconds", "1", "--crop-max-seconds", "2", "--select-by", "eer",
            "--device", "cpu", "--quiet"]  # fmt: skip


def timed(commands: list[list[str]], together: bool, environment: dict[str, str]) -> float:
    """Wall seconds of the commands, one after the other or all at once."""
    started = time.perf_counter()
    run = {"env": environment, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    if together:
        codes = [process.wait() for process in [subprocess.Popen(c, **run) for c in commands]]
    else:
        codes = [subprocess.run(c, **run).returncode for c in commands]
    if any(codes):
        raise SystemExit(f"a job failed: {codes}")
    return time.perf_counter() - started


def measure(args: argparse.Namespace, kind: str, policy: str) -> list[str]:
    environment = {
        k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
    }
    environment.update(CRYPRINT_STORE="off", **POLICIES[policy])
    times = {"alone": [], "sequence": [], "together": []}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            out = [Path(folder) / f"{repeat}-{i}" for i in range(6)]
            times["alone"].append(timed([command(args, kind, out[0])], False, environment))
            pair = [command(args, kind, out[1]), command(args, kind, out[2])]
            times["sequence"].append(timed(pair, False, environment))
            pair = [command(args, kind, out[3]), command(args, kind, out[4])]
            times["together"].append(timed(pair, True, environment))
    alone, sequence, together = (min(times[key]) for key in ("alone", "sequence", "together"))
    name = kind if kind == "train" else f"embed ({args.backend})"
    return [name, policy, f"{alone:.1f}", f"{sequence:.1f}", f"{together:.1f}",
            f"{together / sequence:.2f}x"]  # fmt: skip


def main() -> None:
    args = arguments()
    print(machine_description())
    rows = []
    for kind in args.jobs:
        for policy in args.policies:
            rows.append(measure(args, kind, policy))
            print(rows[-1], flush=True)
    header = ["job", "threads wait", "one job, s", "two in sequence, s", "two side by side, s"]
    print(table([*header, "side by side / sequence"], rows))


if __name__ == "__main__":
    main()
