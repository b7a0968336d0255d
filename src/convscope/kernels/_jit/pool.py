"""Max pooling and ReLU loops (one plane or one run of values per task, deterministic)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_OPTS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


@njit(parallel=True, **_OPTS)
def max_pool(x, kernel, stride, padding, dilation, y, idx):
    """``y``/``idx`` (N*C, H_out, W_out) from ``x`` (N*C, H, W): the reference's rule.

    The window's cells inside the input are scanned in row-major order; a larger value or
    a NaN takes over (so the first maximum wins, or the last NaN); the winner starts as
    the first real cell, so a window of -inf values points at a real cell.
    """
    planes, h, w = x.shape
    oh, ow = y.shape[1], y.shape[2]
    kh, kw = kernel
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    for t in prange(planes):
        for r in range(oh):
            top = r * sh - ph
            for q in range(ow):
                left = q * sw - pw
                best = -np.inf
                at = -1
                for u in range(kh):
                    hi = top + u * dh
                    if hi < 0 or hi >= h:
                        continue
                    for v in range(kw):
                        wi = left + v * dw
                        if wi < 0 or wi >= w:
                            continue
                        value = x[t, hi, wi]
                        # Written as selects, not branches: random data mispredicts them.
                        take = (value > best) | (value != value) | (at < 0)
                        at = hi * w + wi if take else at
                        best = value if (value > best) | (value != value) else best
                y[t, r, q] = best
                idx[t, r, q] = at


@njit(parallel=True, **_OPTS)
def max_pool_grad(gy, idx, gx):
    """``gx[t].flat[idx[t, r, q]] += gy[t, r, q]``, one plane per task, in output order.

    ``idx = -1`` marks a window with no input cell: nothing to credit.
    """
    planes, oh, ow = gy.shape
    for t in prange(planes):
        flat = gx[t].ravel()
        for r in range(oh):
            for q in range(ow):
                at = idx[t, r, q]
                if at >= 0:
                    flat[at] += gy[t, r, q]


@njit(parallel=True, **_OPTS)
def relu(x, y):
    """``y = 0 where x <= 0 else x`` on flat arrays (NaN passes through)."""
    for i in prange(x.size):
        value = x[i]
        y[i] = 0 if value <= 0 else value


@njit(parallel=True, **_OPTS)
def relu_grad(gy, x, gx):
    """``gx = 0 where x <= 0 else gy`` on flat arrays."""
    for i in prange(x.size):
        gx[i] = 0 if x[i] <= 0 else gy[i]
