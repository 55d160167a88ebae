"""Keep freed host memory in the process (glibc malloc), for training on the CPU.

A training step allocates and frees the same activation-sized buffers (megabytes each) every step. glibc
serves a block above its mmap threshold with a fresh mapping and unmaps it on free, and it trims the top of
its heap beyond a trim threshold, so every step takes a page fault per 4 KiB again for memory it had a
moment ago. Raising both thresholds keeps that memory in the process, where the next step reuses it.
Measured on the CPU (bench/bench_torch.py, binary and float resnet20, batch 128, one thread): every model
trains 8-12% more images/s with it, and compiled binary steps beside the float model went from 221-315 ms
without to 221-246 ms with.

The cost is that the process keeps its peak heap until it exits, which is what a training process does
anyway. ``FDAREF_MALLOPT=0`` leaves glibc's defaults.
"""
from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 32 << 20       # the largest glibc accepts on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = (1 << 31) - 1  # an int: never trim in practice
TOP_PAD = 64 << 20


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks up to MMAP_THRESHOLD in the heap and not to trim it; True where that
    took effect (Linux with glibc, not turned off by FDAREF_MALLOPT=0), else False and nothing changes."""
    if os.environ.get("FDAREF_MALLOPT", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):   # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    done = all(mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_TOP_PAD, TOP_PAD)))
    log.debug("mallopt: keep freed memory %s", "on" if done else "refused")
    return done
