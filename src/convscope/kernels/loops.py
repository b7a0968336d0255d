"""Max pooling and ReLU by compiled loops: plain-Python wrappers around :mod:`._jit.pool`.

One pass over the input instead of NumPy's several (window view, argmax, gather, index
arithmetic), and both cores. Small arrays stay with NumPy: starting the threads costs
more than the work. Numba is imported on the first large call.
"""

from __future__ import annotations

import numpy as np

SMALL = 1 << 15  # values; below this NumPy is faster than waking the threads


def _jit():
    from ._jit import pool

    return pool


def max_pool2d(x, kernel, stride, padding, dilation, out_hw):
    """``(y, idx)`` as :func:`convscope.kernels.fast.max_pool2d`, output size given."""
    n, c, h, w = x.shape
    y = np.empty((n, c, *out_hw), dtype=x.dtype)
    idx = np.empty((n, c, *out_hw), dtype=np.int64)
    if y.size:
        _jit().max_pool(np.ascontiguousarray(x).reshape(n * c, h, w), tuple(kernel),
                        tuple(stride), tuple(padding), tuple(dilation),
                        y.reshape(n * c, *out_hw), idx.reshape(n * c, *out_hw))
    return y, idx


def max_pool2d_grad(gy, idx, input_hw):
    """Scatter-add ``gy`` onto the winners ``idx`` (``-1``: no winner, skipped)."""
    n, c = gy.shape[:2]
    gx = np.zeros((n, c, *input_hw), dtype=gy.dtype)
    if gy.size:
        _jit().max_pool_grad(np.ascontiguousarray(gy).reshape(n * c, *gy.shape[2:]),
                             np.ascontiguousarray(idx).reshape(n * c, *gy.shape[2:]),
                             gx.reshape(n * c, *input_hw))
    return gx


def relu(x):
    if x.size < SMALL or not x.flags.c_contiguous:
        return np.where(x <= 0, x.dtype.type(0), x)
    y = np.empty_like(x)
    _jit().relu(x.reshape(-1), y.reshape(-1))
    return y


def relu_grad(gy, x):
    if x.size < SMALL or not (x.flags.c_contiguous and gy.flags.c_contiguous):
        return np.where(x <= 0, gy.dtype.type(0), gy)
    gx = np.empty_like(gy)
    _jit().relu_grad(gy.reshape(-1), x.reshape(-1), gx.reshape(-1))
    return gx
