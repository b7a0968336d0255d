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
64 MiB (Nov 2026)
=================================================  ============  ===========

Whole networks (Dec 2026) allocate larger arrays (MobileNetV2's 8x96x112x112 activations
are 38.5 MB; a Winograd layer's transformed tiles 25 MB) and free more at once, so the
32/64 MiB setting still mapped and trimmed: ResNet-18 inference at batch 8, 224x224x3, had
14,608 page faults per forward pass (60 MB faulted in and zeroed each time). With
``M_MMAP_THRESHOLD`` 64 MiB and ``M_TRIM_THRESHOLD`` 256 MiB (now): 2 per pass, the
median pass 281 -> 229-243 ms, the same peak resident memory (353 MiB). Above glibc's
largest heap (64 MiB on 64-bit) the mmap threshold stops working (1 GiB: 56,377 faults).

(Setting ``M_TOP_PAD`` also freezes glibc's dynamic threshold at 128 KiB, so every large
array was a fresh mapping.) The setting pins the mmap threshold at 64 MiB and keeps up to
256 MiB free at the heap's top; the process's peak resident memory did not change.

:func:`keep_heap` runs once, when the compiled kernels are first loaded; it changes the
process's allocator settings. ``CONVSCOPE_KEEP_HEAP=0`` in the environment turns it off.
Other C libraries (musl, macOS) are left alone.
"""

from __future__ import annotations

import ctypes
import os
import platform

MMAP_THRESHOLD = 64 << 20
TRIM_THRESHOLD = 256 << 20
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
