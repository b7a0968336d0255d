"""Element-wise loops and batch norm's per-plane passes (wrappers: ``kernels/elementwise.py``).

Every parallel loop hands out tasks that write outputs of their own: runs of ``RUN`` values
of flat arrays, or ``(N * C)`` planes of ``(N * C, H * W)`` arrays with one coefficient per
channel (``p % C``). The work of a task is a call of a ``_run`` helper on 1-D slices:
written inline in the ``prange`` body the loops are not vectorised (measured ~10x slower,
see :func:`._jit.pool.relu`).

Sums (batch norm's statistics and gradient sums) are per plane, in float64, in a fixed
order given by the compiled code; the wrapper adds the planes of a channel in image order.
So results never depend on how tasks meet threads. Only those sums are compiled with
fast-math, and only ``reassoc`` (the additions may be regrouped into vector lanes); no
flag that assumes away NaN or infinity. Every other loop computes exactly the NumPy
expression its wrapper's reference twin writes, operation by operation, in the array's
dtype: the scalars they take are of that dtype (a float64 constant would promote a
float32 loop).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_OPTS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)
_SUMS = dict(_OPTS, fastmath={"reassoc"})

RUN = 8192  # values per task of the flat loops (must match ``kernels.elementwise.RUN``)


# --------------------------------------------------------------------------- runs on slices
@njit(**_OPTS)
def _add_run(a, b, y):
    for i in range(y.size):
        y[i] = a[i] + b[i]


@njit(**_OPTS)
def _add_scalar_run(a, s, y):
    for i in range(y.size):
        y[i] = a[i] + s


@njit(**_OPTS)
def _add_relu_run(a, b, zero, y):
    for i in range(y.size):
        v = a[i] + b[i]
        y[i] = zero if v <= zero else v


@njit(**_OPTS)
def _add_relu_grad_run(g, y, zero, gx):
    for i in range(y.size):
        gx[i] = zero if y[i] <= zero else g[i]


@njit(**_OPTS)
def _hardtanh_run(x, lo, hi, y):
    for i in range(y.size):
        v = x[i]
        v = lo if v <= lo else v  # as np.maximum: the bound when equal (its sign of zero)
        y[i] = hi if v >= hi else v  # NaN fails both tests and passes through


@njit(**_OPTS)
def _hardtanh_grad_run(g, x, lo, hi, zero, gx):
    for i in range(x.size):
        v = x[i]
        gx[i] = g[i] if (v > lo) & (v < hi) else zero


@njit(**_OPTS)
def _leaky_run(x, a, y):
    for i in range(y.size):
        v = x[i]
        y[i] = v if v > 0 else v * a


@njit(**_OPTS)
def _leaky_grad_run(g, x, a, gx):
    for i in range(x.size):
        gx[i] = g[i] if x[i] > 0 else g[i] * a


@njit(**_OPTS)
def _hardswish_run(x, three, zero, six, y):
    for i in range(y.size):
        v = x[i]
        t = v + three
        t = zero if t <= zero else t  # np.maximum(t, 0): NaN kept
        t = six if t >= six else t
        y[i] = v * t / six


@njit(**_OPTS)
def _hardswish_grad_run(g, x, three, half, zero, gx):
    for i in range(x.size):
        v = x[i]
        if v <= -three:
            gx[i] = zero
        elif v >= three:
            gx[i] = g[i]
        else:  # NaN lands here: NaN, as PyTorch's vectorised kernel
            gx[i] = g[i] * (v / three + half)


@njit(**_OPTS)
def _hardsigmoid_run(x, three, zero, six, y):
    for i in range(y.size):
        t = x[i] + three
        t = zero if t <= zero else t
        t = six if t >= six else t
        y[i] = t / six


@njit(**_OPTS)
def _hardsigmoid_grad_run(g, x, three, six, zero, gx):
    for i in range(x.size):
        v = x[i]
        gx[i] = g[i] / six if (v > -three) & (v < three) else zero


@njit(**_OPTS)
def _sigmoid_tail_run(e, one, y):
    for i in range(y.size):
        y[i] = one / (one + e[i])


@njit(**_OPTS)
def _sigmoid_grad_run(g, y, one, gx):
    for i in range(y.size):
        v = y[i]
        gx[i] = g[i] * (one - v) * v


@njit(**_SUMS)
def _shifted_sums(x, k):
    """``(sum(x - k), sum((x - k)**2))`` in float64."""
    s1 = 0.0
    s2 = 0.0
    for i in range(x.size):
        d = np.float64(x[i]) - k
        s1 += d
        s2 += d * d
    return s1, s2


@njit(**_SUMS)
def _grad_sums(g, x, m):
    """``(sum(g), sum(g * (x - m)))`` in float64."""
    sg = 0.0
    sgd = 0.0
    for i in range(x.size):
        v = np.float64(g[i])
        sg += v
        sgd += v * (np.float64(x[i]) - m)
    return sg, sgd


@njit(**_OPTS)
def _normalize_run(x, m, s, b, y):
    for i in range(y.size):
        y[i] = (x[i] - m) * s + b


@njit(**_OPTS)
def _scale_run(x, s, y):
    for i in range(y.size):
        y[i] = x[i] * s


@njit(**_OPTS)
def _bn_grad_run(g, x, m, k, gm, a, gx):
    for i in range(x.size):
        gx[i] = (g[i] - gm - (x[i] - m) * k) * a


# --------------------------------------------------------------------------- flat loops
@njit(parallel=True, **_OPTS)
def add(a, b, y):
    """``y = a + b`` (flat, same size)."""
    n = y.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        _add_run(a[lo:hi], b[lo:hi], y[lo:hi])


@njit(parallel=True, **_OPTS)
def add_relu(a, b, zero, y):
    """``y = a + b``, then 0 where that is <= 0 (NaN kept)."""
    n = y.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        _add_relu_run(a[lo:hi], b[lo:hi], zero, y[lo:hi])


@njit(parallel=True, **_OPTS)
def relu_mask_grad(g, y, zero, gx):
    """``gx = 0 where y <= 0 else g`` (the gradient of a ReLU read from its output)."""
    n = y.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        _add_relu_grad_run(g[lo:hi], y[lo:hi], zero, gx[lo:hi])


@njit(parallel=True, **_OPTS)
def hardtanh(x, lo_value, hi_value, y):
    n = y.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        _hardtanh_run(x[lo:hi], lo_value, hi_value, y[lo:hi])


@njit(parallel=True, **_OPTS)
def hardtanh_grad(g, x, lo_value, hi_value, zero, gx):
    n = x.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        _hardtanh_grad_run(g[lo:hi], x[lo:hi], lo_value, hi_value, zero, gx[lo:hi])


@njit(parallel=True, **_OPTS)
def leaky_relu(x, a, y):
    n = y.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        _leaky_run(x[lo:hi], a, y[lo:hi])


@njit(parallel=True, **_OPTS)
def leaky_relu_grad(g, x, a, gx):
    n = x.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        _leaky_grad_run(g[lo:hi], x[lo:hi], a, gx[lo:hi])


@njit(parallel=True, **_OPTS)
def hardswish(x, three, zero, six, y):
    n = y.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        _hardswish_run(x[lo:hi], three, zero, six, y[lo:hi])


@njit(parallel=True, **_OPTS)
def hardswish_grad(g, x, three, half, zero, gx):
    n = x.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        _hardswish_grad_run(g[lo:hi], x[lo:hi], three, half, zero, gx[lo:hi])


@njit(parallel=True, **_OPTS)
def hardsigmoid(x, three, zero, six, y):
    n = y.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        _hardsigmoid_run(x[lo:hi], three, zero, six, y[lo:hi])


@njit(parallel=True, **_OPTS)
def hardsigmoid_grad(g, x, three, six, zero, gx):
    n = x.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        _hardsigmoid_grad_run(g[lo:hi], x[lo:hi], three, six, zero, gx[lo:hi])


@njit(parallel=True, **_OPTS)
def sigmoid_tail(e, one, y):
    """``y = 1 / (1 + e)``: the sigmoid from ``e = exp(-x)`` (``y`` may be ``e``)."""
    n = y.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        _sigmoid_tail_run(e[lo:hi], one, y[lo:hi])


@njit(parallel=True, **_OPTS)
def sigmoid_grad(g, y, one, gx):
    n = y.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        _sigmoid_grad_run(g[lo:hi], y[lo:hi], one, gx[lo:hi])


# --------------------------------------------------------------------------- plane loops
@njit(parallel=True, **_OPTS)
def add_channel(a, b, y):
    """``y[p] = a[p] + b[p % C]`` on ``(N * C, H * W)`` planes, ``b`` of shape (C,)."""
    c = b.size
    for p in prange(a.shape[0]):
        _add_scalar_run(a[p], b[p % c], y[p])


@njit(parallel=True, **_OPTS)
def plane_sums(x, shift, s1, s2):
    """Per plane ``p``: ``s1[p] = sum(x[p] - shift[p])``, ``s2[p]`` the sum of squares."""
    for p in prange(x.shape[0]):
        s1[p], s2[p] = _shifted_sums(x[p], shift[p])


@njit(parallel=True, **_OPTS)
def plane_grad_sums(g, x, mean, sg, sgd):
    """Per plane: ``sg[p] = sum(g[p])``, ``sgd[p] = sum(g[p] * (x[p] - mean[p % C]))``."""
    c = mean.size
    for p in prange(x.shape[0]):
        sg[p], sgd[p] = _grad_sums(g[p], x[p], mean[p % c])


@njit(parallel=True, **_OPTS)
def normalize(x, mean, scale, bias, y):
    """``y[p] = (x[p] - mean[q]) * scale[q] + bias[q]`` with ``q = p % C``."""
    c = mean.size
    for p in prange(x.shape[0]):
        q = p % c
        _normalize_run(x[p], mean[q], scale[q], bias[q], y[p])


@njit(parallel=True, **_OPTS)
def scale_channels(x, scale, y):
    """``y[p] = x[p] * scale[p % C]``."""
    c = scale.size
    for p in prange(x.shape[0]):
        _scale_run(x[p], scale[p % c], y[p])


@njit(parallel=True, **_OPTS)
def batch_norm_grad(g, x, mean, k, gmean, a, gx):
    """``gx[p] = (g[p] - gmean[q] - (x[p] - mean[q]) * k[q]) * a[q]``, ``q = p % C``."""
    c = mean.size
    for p in prange(x.shape[0]):
        q = p % c
        _bn_grad_run(g[p], x[p], mean[q], k[q], gmean[q], a[q], gx[p])
