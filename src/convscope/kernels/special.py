"""Special functions on arrays: ``erf`` (for GELU), by a compiled loop (NumPy has none).

Numba loads on the first call, not at import (see :mod:`._jit`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["erf"]


def erf(x):
    """The error function elementwise, same shape and dtype as ``x`` (float32 or float64).

    >>> float(erf(np.array([1.0]))[0])
    0.8427007929497149
    """
    from ._jit.special import erf_into

    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    erf_into(x.reshape(-1), out.reshape(-1))
    return out
