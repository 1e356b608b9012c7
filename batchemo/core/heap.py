"""A heap that does not grow with the length of a run: glibc's malloc told to give memory back.

Why: over an hour of video, glibc's defaults let the process keep what it freed. Every thread that
allocates (LiteRT's, OpenCV's, NumPy's) may get its own arena, up to 8 per core, each keeping its free
blocks. The first large free also raises the size above which a block is mapped on its own from 128 KB
to as much as 32 MB, so frame-sized buffers then come from those arenas and stay there. Measured with
``benchmarks/video_length.py``: a 60-minute video peaked at 1.15x the 5-minute one's memory with the
defaults, and at 1.07x with these settings, at the same speed.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

#: mallopt's parameters (glibc's malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8


def bound_heap(arenas: int = 2, mmap_above: int = 1 << 20, trim_above: int = 1 << 20) -> bool:
    """On glibc: at most ``arenas`` malloc arenas; blocks over ``mmap_above`` bytes mapped on their own
    (unmapped when freed, the threshold fixed); free memory at the heap's top over ``trim_above`` bytes
    given back. Call once, early, before threads start. Returns whether it was applied: not on other C
    libraries, and not when the user set any ``MALLOC_*`` variable (theirs win)."""
    if any(k.startswith("MALLOC_") for k in os.environ):
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (ValueError, OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(p, v) == 1 for p, v in ((M_ARENA_MAX, arenas), (M_MMAP_THRESHOLD, mmap_above),
                                               (M_TRIM_THRESHOLD, trim_above)))
