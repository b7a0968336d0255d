"""Special functions NumPy lacks, as compiled elementwise loops: the error function."""

from __future__ import annotations

import math

from numba import njit

_OPTS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


@njit(**_OPTS)
def erf_into(x, out):
    """``out[i] = erf(x[i])`` over flat arrays (the C library's ``erf``, as PyTorch's)."""
    for i in range(x.shape[0]):
        out[i] = math.erf(x[i])
