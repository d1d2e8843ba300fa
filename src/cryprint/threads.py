"""How many threads cryprint computes with, and how they wait: one policy for torch and
onnxruntime.

Threads: as many as the cores this process may use (its CPU affinity, a container's CPU set);
``CRYPRINT_THREADS=N`` sets it.

Waiting: an idle OpenMP thread (torch's) spins a while before it sleeps. Alone, spinning is what
makes small operations fast; beside another job it burns the core the other job's thread
needs. Measured on 2 cores (benchmarks/RESULTS.md §8), two jobs side by side against the same
two in sequence: with OpenMP's default spin (300,000 rounds) 3.2x (embed) and 4.6x (train);
sleeping at once (``OMP_WAIT_POLICY=PASSIVE``) 0.3-0.5x side by side but 1.4-1.7x slower alone;
a short spin (``GOMP_SPINCOUNT=10000``) no slower alone and 1.5x side by side; one thread per
job 0.5x side by side, 1.3x slower alone for training. cryprint therefore sets the short spin
unless ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` is set (it must be set before torch is
imported: importing cryprint first does it); to run jobs side by side, give each
``CRYPRINT_THREADS`` = cores / jobs. onnxruntime's threads spin unless ``OMP_WAIT_POLICY=PASSIVE``.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

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


# Spin rounds before an idle OpenMP thread sleeps (libgomp's default: 300,000): see above.
SHORT_SPIN = "10000"


def set_wait_policy(environment: MutableMapping[str, str]) -> None:
    """The short spin (:data:`SHORT_SPIN`) unless the user chose how threads wait."""
    if not environment.get("OMP_WAIT_POLICY") and not environment.get("GOMP_SPINCOUNT"):
        environment["GOMP_SPINCOUNT"] = SHORT_SPIN


def spinning() -> bool:
    """Whether idle onnxruntime threads may spin: unless ``OMP_WAIT_POLICY=PASSIVE``."""
    return os.environ.get("OMP_WAIT_POLICY", "").strip().upper() != "PASSIVE"


def apply_to_torch() -> None:
    """torch's intra-op threads: :func:`compute_threads` (call once torch is imported)."""
    import torch

    threads = compute_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
