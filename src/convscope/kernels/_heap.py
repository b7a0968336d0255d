"""Keep freed heap memory for the next training step instead of handing it back (glibc).

A training step allocates and frees about a hundred megabytes of arrays of the same
sizes every step. With glibc's default rules the freed memory at the top of the heap
goes back to the system after each step (its trim threshold follows the largest freed
block, ~20 MB here), so the next step gets it back as fresh pages, faulted in and zeroed
by the kernel one at a time: on the Tiny VGG step that was 8-40 ms of a 20 ms step
(measured). ``mallopt(M_TOP_PAD, 64 MiB)`` makes the heap keep up to 64 MiB free at its
top (and grow in steps of that much), so the step's arrays come from pages already
mapped.

:func:`keep_heap` runs once, when the compiled kernels are first loaded; it changes the
process's allocator settings (the resident memory may stay up to 64 MiB above what is in
use). ``CONVSCOPE_KEEP_HEAP=0`` in the environment turns it off. Other C libraries
(musl, macOS) are left alone.
"""

from __future__ import annotations

import ctypes
import os
import platform

TOP_PAD = 64 << 20
_M_TOP_PAD = -2  # glibc's mallopt parameter number
_done = False


def keep_heap() -> bool:
    """Apply the setting once per process; returns whether glibc accepted it."""
    global _done
    if _done:
        return False
    _done = True
    if os.environ.get("CONVSCOPE_KEEP_HEAP", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        return bool(ctypes.CDLL(None).mallopt(_M_TOP_PAD, TOP_PAD))
    except (OSError, AttributeError):
        return False
