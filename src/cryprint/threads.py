"""How many threads cryprint computes with, and how they wait: one policy for torch and
onnxruntime.

Two cryprint commands side by side (two users, a job and the ward station, CI) share the cores.
Each runs as many compute threads as the cores this process may use (its CPU affinity, a
container's CPU set) — ``CRYPRINT_THREADS=N`` sets it — and idle threads sleep instead of
spinning: a spinning thread of one job burns the core the other job's thread needs (measured:
two embedding jobs side by side took 1.40x the time of the same two in sequence; see
benchmarks/bench_concurrency.py). Importing cryprint sets ``OMP_WAIT_POLICY=PASSIVE`` for
torch's OpenMP threads unless the user set it; onnxruntime sessions follow the same choice.
"""

from __future__ import annotations

import os

from cryprint.errors import FIELD, ConfigError

THREADS_ENVIRONMENT = "CRYPRINT_THREADS"


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system says, as a
    container's CPU set does), else ``os.cpu_count()``."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def compute_threads() -> int:
    """The compute threads to use: ``CRYPRINT_THREADS`` when set, else :func:`available_cores`.

    Raises:
        ConfigError: ``CRYPRINT_THREADS`` is not a whole number from 1 to 1024.
    """
    configured = os.environ.get(THREADS_ENVIRONMENT, "").strip()
    if not configured:
        return available_cores()
    if not configured.isdigit() or not 1 <= int(configured) <= 1024:
        raise ConfigError(
            f"{THREADS_ENVIRONMENT}={configured[:20]!r} is not a number of threads from 1 to "
            "1024 ({threads})",
            fields={"threads": FIELD},
        )
    return int(configured)


def spinning() -> bool:
    """Whether idle compute threads may spin: only when ``OMP_WAIT_POLICY=ACTIVE``."""
    return os.environ.get("OMP_WAIT_POLICY", "").upper() == "ACTIVE"


def apply_to_torch() -> None:
    """torch's intra-op threads: :func:`compute_threads` (call once torch is imported)."""
    import torch

    threads = compute_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
