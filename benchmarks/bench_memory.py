"""Benchmark 4: peak resident memory (RSS) of training and of embedding on the default corpus.

Each measurement is one ``cryprint`` command in its own process (its peak RSS from ``wait4``,
so nothing of this script is counted): embedding the test split with the full VoxCeleb ECAPA
and with the CPU demo's, and one training epoch with each, with the reference recipe's batch
(P=32 babies x K=4 crops of 3-5 s: ``cryprint train``'s defaults).

    python benchmarks/bench_memory.py
    python benchmarks/bench_memory.py --skip-full-training   # full-size training is slow on CPU
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import parser, setup, table
from cryprint.models.ecapa import CryEmbedder, ModelConfig
from cryprint.models.folder import save_model_folder
from cryprint.training.config import TrainConfig


def peak_rss(command: list[str]) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of ``command`` run to completion."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    error = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{error[-2000:]}")
    return usage.ru_maxrss / 1024, seconds  # ru_maxrss is in KiB on Linux


def main() -> None:
    arguments = parser(__doc__.split("\n\n")[0])
    arguments.add_argument("--skip-full-training", action="store_true")
    args = arguments.parse_args()
    root = setup(args)
    cryprint = [sys.executable, "-m", "cryprint"]
    defaults = TrainConfig()  # `cryprint train` without options: the reference recipe's batch
    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        baseline, _ = peak_rss([*cryprint, "--version"])
        rows.append(["`cryprint --version` (Python + torch imported)", f"{baseline:.0f}", ""])
        for channels, label in ((1024, "full ECAPA (C=1024)"), (64, "CPU demo ECAPA (C=64)")):
            torch.manual_seed(0)
            config = ModelConfig() if channels == 1024 else ModelConfig.small(channels)
            model = save_model_folder(CryEmbedder(config), folder / f"model{channels}", {})
            rss, seconds = peak_rss(
                [
                    *cryprint,
                    "embed",
                    "--model",
                    str(model),
                    "--data",
                    str(root),
                    "--split",
                    "test",
                    "--out",
                    str(folder / f"test{channels}.npz"),
                    "--device",
                    "cpu",
                ]
            )
            rows.append([f"embed the test split, {label}", f"{rss:.0f}", f"{seconds:.0f}"])
            if channels == 1024 and args.skip_full_training:
                continue
            run = folder / f"run{channels}"
            rss, seconds = peak_rss(
                [
                    *cryprint,
                    "train",
                    "--data",
                    str(root),
                    "--run",
                    str(run),
                    "--init",
                    "random",
                    "--channels",
                    str(channels),
                    "--epochs",
                    "1",
                    "--quiet",
                    "--device",
                    "cpu",
                ]
            )
            shutil.rmtree(run)
            recipe = (
                f"P={defaults.batch_babies} K={defaults.crops_per_baby}, crops "
                f"{defaults.crop_min_seconds:g}-{defaults.crop_max_seconds:g} s"
            )
            rows.append([f"train 1 epoch, {label}, {recipe}", f"{rss:.0f}", f"{seconds:.0f}"])
    audio_mib = sum(p.stat().st_size for p in root.rglob("*.wav")) / 2**20
    print(f"\ncorpus: {root} ({audio_mib:.0f} MiB of 16-bit WAV)")
    print(table(["process", "peak RSS (MiB)", "wall (s)"], rows))


if __name__ == "__main__":
    main()
