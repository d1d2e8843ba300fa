"""Benchmark 9: two cryprint commands side by side, against the same two one after the other.

Runs `cryprint embed` of a split twice in sequence, then twice at once (no embedding store:
each computes), for the torch and the ONNX backend, with the thread policy (idle threads sleep:
cryprint's default) and without it (``OMP_WAIT_POLICY=ACTIVE``: idle threads spin). The ratio
(side by side / in sequence) is the cost of sharing the cores: 1.0 = none; the goal is <= 1.1.

    python benchmarks/bench_concurrency.py --model demo/runs/triplet/best --data demo/corpus

Needs an otherwise idle machine. The model folder must hold an ONNX export for the ONNX rows
(``cryprint export --model M --out M --format onnx`` is refused: export to a copy and pass
``--onnx FOLDER``).
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


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="demo/runs/triplet/best", help="a model folder")
    parser.add_argument("--onnx", help="a folder holding its ONNX export (skip ONNX without)")
    parser.add_argument("--data", default="demo/corpus", help="a CryCeleb-layout directory")
    parser.add_argument("--split", default="test", help="the split each job embeds")
    parser.add_argument("--repeats", type=int, default=2, help="measurements, best kept")
    return parser.parse_args()


def job(args: argparse.Namespace, model: str, backend: str, out: Path) -> list[str]:
    return [
        *CRYPRINT, "embed", "--model", model, "--data", args.data, "--split", args.split,
        "--out", str(out), "--backend", backend, "--device", "cpu",
    ]  # fmt: skip


def timed(commands: list[list[str]], together: bool, environment: dict[str, str]) -> float:
    """Wall seconds of the commands, one after the other or all at once."""
    started = time.perf_counter()
    if together:
        running = [
            subprocess.Popen(c, env=environment, stdout=subprocess.DEVNULL) for c in commands
        ]
        codes = [process.wait() for process in running]
    else:
        codes = [
            subprocess.run(c, env=environment, stdout=subprocess.DEVNULL).returncode
            for c in commands
        ]
    if any(codes):
        raise SystemExit(f"a job failed: {codes}")
    return time.perf_counter() - started


def measure(args: argparse.Namespace, model: str, backend: str, policy: str) -> list[str]:
    environment = {**os.environ, "CRYPRINT_STORE": "off", "OMP_WAIT_POLICY": policy}
    with tempfile.TemporaryDirectory() as folder:
        commands = [job(args, model, backend, Path(folder) / f"{i}.npz") for i in range(2)]
        timed(commands[:1], False, environment)  # warm the file cache
        alone = min(timed(commands[:1], False, environment) for _ in range(args.repeats))
        sequence = min(timed(commands, False, environment) for _ in range(args.repeats))
        together = min(timed(commands, True, environment) for _ in range(args.repeats))
    return [
        backend,
        "idle threads sleep (default)" if policy == "PASSIVE" else "idle threads spin",
        f"{alone:.1f}",
        f"{sequence:.1f}",
        f"{together:.1f}",
        f"{together / sequence:.2f}x",
    ]


def main() -> None:
    args = arguments()
    print(machine_description())
    rows = []
    models = [("torch", args.model)] + ([("onnx", args.onnx)] if args.onnx else [])
    for backend, model in models:
        for policy in ("PASSIVE", "ACTIVE"):
            rows.append(measure(args, model, backend, policy))
            print(rows[-1], flush=True)
    header = ["backend", "threads", "one job, s", "two in sequence, s", "two side by side, s"]
    print(table([*header, "side by side / sequence"], rows))


if __name__ == "__main__":
    main()
