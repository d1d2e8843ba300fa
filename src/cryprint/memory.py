"""Keep the process's memory from growing with every new tensor shape.

Training draws a new crop length for every batch, and evaluation embeds recordings of every
length, so the tensors of each step have new sizes. glibc's malloc raises its mmap threshold
each time a large block is freed (up to 32 MiB), after which blocks of a few to 32 MiB come
from the heap, where differently sized ones fragment it and the freed memory is not returned.
Measured (full ECAPA, 16 crops per step, 4 steps of 3.0-4.7 s): peak RSS 2.6 → 5.4 GB, and
one epoch with the reference recipe's batch (128 crops of 3-5 s) was killed at 24 GB. With a
fixed threshold, blocks above it are mmapped and given back on free. 1 MiB: 2.4 → 3.6 GB (the
activations' own growth) and the epoch completes at 22 GB, but the CPU demo's small ECAPA,
whose activations are a few MiB, trains at half speed (page faults on every fresh block).
8 MiB: 2.5 → 4.0 GB, and no slower for either model (C=64: 232 vs 212-277 crops/s).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
MMAP_THRESHOLD_BYTES = 8 << 20


def limit_heap_fragmentation(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes for this process.

    Returns whether it was applied (False off Linux or without glibc, where there is nothing
    to do). Setting it more than once is harmless.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
