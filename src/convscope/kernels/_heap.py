"""Keep freed arrays' memory for the next training step instead of handing it back (glibc).

A training step allocates and frees about a hundred megabytes of arrays of the same
sizes every step. With glibc's default rules many of them are mapped fresh each time
(arrays over the *mmap threshold*) or handed back when the top of the heap is trimmed,
so the next step gets them back as fresh pages, faulted in and zeroed by the kernel one
at a time. Measured on the Tiny VGG step (batch 64, 2 threads, 30 steps):

=================================================  ============  ===========
glibc setting                                      median step   page faults
=================================================  ============  ===========
defaults (dynamic mmap threshold, ~10 MB here)     20.1 ms       1,419/step
``M_TOP_PAD`` 64 MiB (this module until Nov 2026)  27.5 ms       522/step
``M_MMAP_THRESHOLD`` 32 MiB, ``M_TRIM_THRESHOLD``  17.7 ms       0/step
64 MiB (now)
=================================================  ============  ===========

(Setting ``M_TOP_PAD`` also freezes glibc's dynamic threshold at 128 KiB, so every large
array was a fresh mapping.) The setting used pins the mmap threshold at 32 MiB, the
highest value glibc's own dynamic rule would reach, and keeps up to 64 MiB free at the
heap's top; the process's peak resident memory did not change (225 MB in that run).

:func:`keep_heap` runs once, when the compiled kernels are first loaded; it changes the
process's allocator settings. ``CONVSCOPE_KEEP_HEAP=0`` in the environment turns it off.
Other C libraries (musl, macOS) are left alone.
"""

from __future__ import annotations

import ctypes
import os
import platform

MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 64 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers
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
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        )
    except (OSError, AttributeError):
        return False
