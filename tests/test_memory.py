"""The glibc mmap threshold is set on Linux and harmless to set again."""

import subprocess
import sys

import pytest

from cryprint.memory import limit_heap_fragmentation


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_threshold_is_applied_and_idempotent() -> None:
    assert limit_heap_fragmentation() is True
    assert limit_heap_fragmentation() is True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_freed_large_blocks_go_back_to_the_system() -> None:
    """Without the fixed threshold, a freed 8 MiB block raises glibc's threshold and the next
    ones stay in the heap; with it, the process's RSS falls back after each free."""
    program = """
import ctypes, sys
from cryprint.memory import limit_heap_fragmentation
if sys.argv[1] == "limit":
    limit_heap_fragmentation()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096

def touch(size):
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    return block

libc.free(touch(8 << 20))  # raises the dynamic threshold to 8 MiB
blocks = [touch((4 << 20) + i * 4096) for i in range(16)]  # 64 MiB of 4 MiB blocks
before = rss()
for block in blocks:
    libc.free(block)
print(before - rss())
"""
    returned = {
        mode: int(
            subprocess.run(
                [sys.executable, "-c", program, mode], capture_output=True, text=True, check=True
            ).stdout
        )
        for mode in ("default", "limit")
    }
    assert returned["limit"] > 60 << 20  # all 64 MiB given back
    assert returned["default"] < returned["limit"]
