"""Large buffers go back to the operating system when they are freed.

A decoded picture is tens to hundreds of MB, allocated by Pillow in blocks of up to 16 MB. glibc serves a block that
large with mmap at first, but after the first one is freed it raises its "mmap threshold" to that size (up to 32 MB),
and from then on takes such blocks from the heap of the thread that asked. Daphne runs every request in a thread of
its own, so each decode left its raster's worth of memory in another thread's heap: three simultaneous 49-megapixel
uploads took a process 790 MiB further, and it never came back. Setting the threshold fixes it at 1 MB (and turns the
dynamic raising off): every buffer of 1 MB or more is mapped on its own and returned whole when freed. Same effect
as MALLOC_MMAP_THRESHOLD_=1048576 in the environment, without relying on every launcher to set it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)


def return_large_buffers_to_the_os(threshold: int = 1024 * 1024) -> bool:
    """glibc only; returns whether the setting took (False elsewhere, e.g. musl or macOS, which need nothing)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
