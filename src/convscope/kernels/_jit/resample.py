"""Scatter-add loops for the resampling gradients (see :mod:`convscope.kernels.resample`)."""

from __future__ import annotations

from numba import njit

_OPTS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


@njit(**_OPTS)
def scatter_add(v, index, out):
    """``out[a, index[j], b] += v[a, j, b]`` (3-D arrays; ``b`` innermost and contiguous)."""
    for a in range(v.shape[0]):
        for j in range(v.shape[1]):
            t = index[j]
            for b in range(v.shape[2]):
                out[a, t, b] += v[a, j, b]


@njit(**_OPTS)
def scatter_add2(v, i0, w0, i1, w1, out):
    """``out[a, i0[j], b] += w0[j] v[a, j, b]`` and the same with ``i1, w1`` (linear
    interpolation's two source cells)."""
    for a in range(v.shape[0]):
        for j in range(v.shape[1]):
            t0, t1, c0, c1 = i0[j], i1[j], w0[j], w1[j]
            for b in range(v.shape[2]):
                g = v[a, j, b]
                out[a, t0, b] += c0 * g
                out[a, t1, b] += c1 * g
