"""Everything compiled by Numba lives in this package, and only here.

It is imported on the first call of a fast kernel (never by ``import convscope``), and
every function is compiled with ``cache=True``, so a new process loads machine code from
``__pycache__`` instead of compiling it again. :mod:`.simd` gives the loops explicit
512-bit vectors; the loops themselves are :mod:`.conv` (forward and packing),
:mod:`.wgrad` (weight gradients), :mod:`.depthwise` and :mod:`.pool`, the blocked matrix
product :mod:`.panel` and its tiny-plane variant :mod:`.tiny`, with row helpers in
:mod:`.rows` and tasks handed out to threads on demand by :mod:`.tasks`. Callers pass
arrays already laid out as each loop expects (see :mod:`convscope.kernels.direct`).

With ``NUMBA_DISABLE_JIT=1`` every loop runs as plain Python on NumPy arrays (slowly),
which is how the tests cover the loop bodies line by line.

Numba keys a cached function on the contents of *its own* file only: a change to a helper
it inlines from another file (:mod:`.rows`, :mod:`.simd`) leaves the old machine code in
use (measured: a changed clamp in ``rows.py`` still ran the old one after a restart). So
:func:`refresh_cache` drops this package's cached code whenever any of its files changed
(after an upgrade or an edit), before a loop is loaded.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

MARK = "convscope-sources.sha256"


def refresh_cache(folder: Path) -> bool:
    """Delete ``folder/__pycache__``'s Numba files if ``folder``'s ``*.py`` files changed
    since they were written (a hash of all of them, kept beside them); True if it did.
    Best effort: a cache folder that cannot be written is left alone."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    stamp = digest.hexdigest()
    cache = folder / "__pycache__"
    mark = cache / MARK
    try:
        if mark.read_text() == stamp:
            return False
    except OSError:
        pass
    try:
        cache.mkdir(exist_ok=True)
        for stale in [*cache.glob("*.nbi"), *cache.glob("*.nbc")]:
            stale.unlink(missing_ok=True)
        tmp = cache / f".{MARK}.{os.getpid()}.tmp"
        tmp.write_text(stamp)
        os.replace(tmp, mark)
    except OSError:
        return False
    return True


refresh_cache(Path(__file__).resolve().parent)
