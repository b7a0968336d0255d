"""Max and average pooling and ReLU by compiled loops: wrappers around :mod:`._jit.pool`.

One pass over the input instead of NumPy's several (window view, argmax, gather, index
arithmetic), and both cores. Small arrays stay with NumPy: starting the threads costs
more than the work. Numba is imported on the first large call.
"""

from __future__ import annotations

import numpy as np

SMALL = 1 << 15  # values; below this NumPy is faster than waking the threads
RUN = 4096  # values per task of the elementwise loops (must match ``_jit.pool.RUN``)
PLANE_TASKS = 128  # padded max pooling: planes handed out in about this many tasks


def _jit():
    from ._heap import keep_heap
    from ._jit import pool

    keep_heap()  # once per process (see :mod:`._heap`)
    return pool


def _run(loop, tasks, work, *args):
    """Dynamic chunks, one thread below ``direct.SERIAL_WORK`` (see :func:`.direct._run`).

    ``work`` is in vector multiply-add units: a scalar step of a pooling loop counts 16,
    a value streamed by ReLU counts 4 (memory-bound, but the arrays come from DRAM in a
    training step, where two cores move about 1.5-2x the bytes of one), as does a value of
    the pooling gradient.
    """
    from .direct import _run as run

    run(loop, tasks, work, *args)


def index_dtype(h, w):
    """Winner indices (flat cells of one plane) as int32 when they fit: half the memory
    traffic of int64 for the pooling loops, which are memory-bound."""
    return np.int32 if h * w < 2**31 else np.int64


def max_pool2d(x, kernel, stride, padding, dilation, out_hw, indices=True):
    """``(y, idx)`` as :func:`convscope.kernels.fast.max_pool2d`, output size given.

    ``indices=False``: the winners are not recorded; ``idx`` is None.
    """
    n, c, h, w = x.shape
    y = np.empty((n, c, *out_hw), dtype=x.dtype)
    idx = np.empty((n, c, *out_hw) if indices else (1, 1, 1), dtype=index_dtype(h, w))
    if y.size and any(padding) and stride[1] <= 2 and out_hw[1] >= 64 // x.itemsize:
        # padded: planes in a -inf buffer, every window by vectors
        span = [(o - 1) * s + d * (k - 1) + 1
                for o, s, d, k in zip(out_hw, stride, dilation, kernel, strict=True)]
        hb, wb = max(h + 2 * padding[0], span[0]), max(w + 2 * padding[1], span[1])
        per_task = max(1, -(-n * c // PLANE_TASKS))
        _run(_jit().max_pool_padded, -(-n * c // per_task), 16 * y.size * kernel[0] * kernel[1],
             np.ascontiguousarray(x).reshape(n * c, h, w), tuple(kernel), tuple(stride),
             tuple(padding), tuple(dilation), indices, hb, wb, per_task,
             y.reshape(n * c, *out_hw), idx.reshape(n * c, *out_hw) if indices else idx)
    elif y.size:
        _run(_jit().max_pool, n * c, 16 * y.size * kernel[0] * kernel[1],
             np.ascontiguousarray(x).reshape(n * c, h, w), tuple(kernel), tuple(stride),
             tuple(padding), tuple(dilation), indices, y.reshape(n * c, *out_hw),
             idx.reshape(n * c, *out_hw) if indices else idx)
    return y, (idx if indices else None)


def max_pool2d_grad(gy, idx, input_hw, y=None, windows=None):
    """Scatter-add ``gy`` onto the winners ``idx`` (``-1``: no winner, skipped).

    ``y``: the pool's output, when its input was a ReLU's output: windows with ``y <= 0``
    credit nothing (that ReLU's gradient rule, applied here). ``windows``: ``(kernel,
    stride, padding, dilation)`` when known; 2 x 2 windows side by side take a loop that
    writes each cell once (:func:`._jit.pool.max_pool_grad_2x2`).
    """
    n, c = gy.shape[:2]
    if gy.size == 0:
        return np.zeros((n, c, *input_hw), dtype=gy.dtype)
    gx = np.empty((n, c, *input_hw), dtype=gy.dtype)  # the loop zeroes each plane
    if gx.size:
        planes = (n * c, *gy.shape[2:])
        g = np.ascontiguousarray(gy).reshape(planes)
        oh, ow = gy.shape[2:]
        side_by_side = windows is not None and tuple(map(tuple, windows)) == (
            (2, 2), (2, 2), (0, 0), (1, 1))
        if (side_by_side and ow >= 64 // gy.dtype.itemsize and 2 * oh <= input_hw[0]
                and 2 * ow <= input_hw[1] and input_hw[0] * input_hw[1] < 2**24):
            _run(_jit().max_pool_grad_2x2, n * c, 4 * gx.size, g,
                 np.ascontiguousarray(idx).reshape(planes),
                 g if y is None else np.ascontiguousarray(y, dtype=gy.dtype).reshape(planes),
                 y is not None, gx.reshape(n * c, *input_hw))
            return gx
        _run(_jit().max_pool_grad, n * c, 4 * gx.size, g,
             np.ascontiguousarray(idx).reshape(planes),
             g if y is None else np.ascontiguousarray(y, dtype=gy.dtype).reshape(planes),
             y is not None, gx.reshape(n * c, *input_hw))
    return gx


def avg_pool2d(x, kernel, stride, padding, divisor):
    """Window sums / ``divisor`` (H_out, W_out), as :func:`convscope.kernels.fast.avg_pool2d`."""
    n, c, h, w = x.shape
    y = np.empty((n, c, *divisor.shape), dtype=x.dtype)
    if y.size:
        _run(_jit().avg_pool, n * c, 16 * y.size * kernel[0] * kernel[1] // 4,
             np.ascontiguousarray(x).reshape(n * c, h, w), tuple(kernel), tuple(stride),
             tuple(padding), divisor.astype(x.dtype), y.reshape(n * c, *divisor.shape))
    return y


def avg_pool2d_grad(gy, input_hw, kernel, stride, padding, divisor):
    """``gy / divisor`` spread over each window (see :func:`.fast.avg_pool2d_grad`)."""
    n, c = gy.shape[:2]
    gx = np.empty((n, c, *input_hw), dtype=gy.dtype)  # the loop zeroes each plane
    if gx.size:
        _run(_jit().avg_pool_grad, n * c, 4 * gx.size + 16 * gy.size * kernel[0] * kernel[1],
             np.ascontiguousarray(gy).reshape(n * c, *gy.shape[2:]), tuple(kernel),
             tuple(stride), tuple(padding), divisor.astype(gy.dtype),
             gx.reshape(n * c, *input_hw))
    return gx


def relu(x, out=None):
    """``0 where x <= 0 else x`` (NaN kept); ``out=x`` works in place (on an array we own)."""
    assert out is None or out is x
    if x.size < SMALL or not x.flags.c_contiguous:
        if out is None:
            return np.where(x <= 0, x.dtype.type(0), x)
        x[x <= 0] = 0
        return x
    y = np.empty_like(x) if out is None else x
    _run(_jit().relu, -(-x.size // RUN), 4 * x.size, x.reshape(-1), y.reshape(-1))
    return y


def relu_grad(gy, x):
    if x.size < SMALL or not (x.flags.c_contiguous and gy.flags.c_contiguous):
        return np.where(x <= 0, gy.dtype.type(0), gy)
    gx = np.empty_like(gy)
    _run(_jit().relu_grad, -(-x.size // RUN), 4 * x.size, gy.reshape(-1), x.reshape(-1),
         gx.reshape(-1))
    return gx
