"""What every benchmark needs: the machine's description, its peak FLOP rate, the default
synthetic corpus, a timer and a markdown table.

Benchmarks are run on demand (``python benchmarks/bench_*.py``), never by the test suite: their
numbers depend on the machine and on what else runs on it. Each one measures cryprint's path and
the reference path in the same process, on the same weights and data, and prints a ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from cryprint import __version__
from cryprint.data.synth import MARKER_NAME, generate_corpus

CACHE = Path(__file__).resolve().parent / ".cache"
DEFAULT_CORPUS = CACHE / "corpus"

# fp32 FLOPs per cycle per core: two 256-bit FMA pipes (8 lanes x 2 FLOPs x 2 pipes). True for
# AVX2 cores since Haswell and for AMD Zen 2-4 (Zen 4 runs AVX-512 as two 256-bit halves).
# Intel cores with two 512-bit FMA units do 64: pass --flops-per-cycle 64 there.
DEFAULT_FLOPS_PER_CYCLE = 32


def parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes."""
    result = argparse.ArgumentParser(description=description)
    result.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_CORPUS,
        help="a CryCeleb-layout directory (default: the default synthetic corpus, generated "
        "once into benchmarks/.cache/corpus)",
    )
    result.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's choice)"
    )
    result.add_argument(
        "--flops-per-cycle",
        type=int,
        default=DEFAULT_FLOPS_PER_CYCLE,
        help="fp32 FLOPs per cycle per core, for the nominal peak (default: 32)",
    )
    return result


def setup(args: argparse.Namespace) -> Path:
    """Apply --threads, print the machine, and return the data directory (generating the
    default synthetic corpus the first time)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine_description())
    if args.data == DEFAULT_CORPUS and not (DEFAULT_CORPUS / MARKER_NAME).is_file():
        print(f"generating the default synthetic corpus into {DEFAULT_CORPUS} ...", flush=True)
        generate_corpus(DEFAULT_CORPUS, overwrite=True)
    return args.data


def _cpuinfo(field: str) -> str | None:
    """The first ``field`` of /proc/cpuinfo (Linux), or None."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or "unknown CPU"


def cpu_mhz() -> float | None:
    """The nominal clock from /proc/cpuinfo (a VM reports its host's base clock)."""
    try:
        return float(_cpuinfo("cpu MHz") or "")
    except ValueError:
        return None


def cpu_flags() -> str:
    """The CPU's vector and matrix flags (what decides fp32/bf16/int8 speed), from /proc/cpuinfo."""
    flags = (_cpuinfo("flags") or "").split()
    wanted = [f for f in flags if f.startswith(("avx", "amx", "fma", "sse4", "f16c", "vnni"))]
    return " ".join(sorted(wanted)) or "unknown"


def machine_description() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mhz = cpu_mhz()
    clock = f" at {mhz:.0f} MHz" if mhz else ""
    return (
        f"machine: {cpu_model()}, {cores} cores{clock}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), cryprint {__version__}, "
        f"python {platform.python_version()}\nCPU flags: {cpu_flags()}"
    )


def nominal_peak_flops(flops_per_cycle: int = DEFAULT_FLOPS_PER_CYCLE) -> float | None:
    """cores x clock x fp32 FLOPs per cycle: the rate no fp32 code can exceed on this CPU."""
    mhz = cpu_mhz()
    if mhz is None:
        return None
    return torch.get_num_threads() * mhz * 1e6 * flops_per_cycle


def measured_gemm_flops(
    size: int = 2048, seconds: float = 3.0, dtype: torch.dtype = torch.float32
) -> float:
    """The rate of one large matrix product in ``dtype``: what this machine really reaches."""
    left, right = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.mm(left, right)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        torch.mm(left, right)
        count += 1
    return 2 * size**3 * count / (time.perf_counter() - started)


def flops_per_audio_second(model: torch.nn.Module, seconds: float = 10.0) -> float:
    """FLOPs of one forward pass over ``seconds`` of audio, divided by ``seconds``.

    The flop counter sees the matrix products and convolutions (everything but a few percent:
    the STFT, the element-wise ops and the batch norms are not counted).
    """
    audio = torch.zeros(1, int(16000 * seconds))
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(audio, torch.ones(1))
    return counter.get_total_flops() / seconds


@contextmanager
def timer(into: dict[str, float], name: str) -> Iterator[None]:
    """Add the wall time of the block to ``into[name]``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        into[name] = into.get(name, 0.0) + time.perf_counter() - started


def best_of(repeats: int, function: Callable[[], object]) -> float:
    """The fastest of ``repeats`` wall times of ``function()`` (the least disturbed run)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
