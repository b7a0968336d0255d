"""Element-wise loops and batch norm's per-plane passes (wrappers: ``kernels/elementwise.py``).

Every parallel loop hands out tasks that write outputs of their own: runs of ``RUN`` values
of flat arrays, or blocks of whole planes of ``(N * C, H * W)`` arrays with one coefficient
per channel (``p % C``). The work of a task is a call of the loop's ``*_serial`` form on
slices: written inline in the ``prange`` body the loops are not vectorised (measured ~10x
slower, see :func:`._jit.pool.relu`).

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


# --------------------------------------------------------------------------- serial loops
# ``X_serial`` is the parallel loop ``X``'s task: called on slices by ``X``, and on the
# whole arrays by the wrappers for work too small for two threads (no parallel runtime to
# enter: ~2 us a call instead of ~10). Plane loops' serial forms take the first plane's
# number ``p0`` where the parallel ones take ``block``. Same arithmetic either way.
@njit(**_OPTS)
def add_serial(a, b, y):
    for i in range(y.size):
        y[i] = a[i] + b[i]


@njit(**_OPTS)
def sgd_momentum_serial(p, g, buf, m, d1, lr):
    for i in range(p.size):
        b = buf[i] * m + d1 * g[i]
        buf[i] = b
        p[i] = p[i] - lr * b


@njit(**_OPTS)
def _add_scalar_run(a, s, y):
    for i in range(y.size):
        y[i] = a[i] + s


@njit(**_OPTS)
def add_relu_serial(a, b, zero, y):
    for i in range(y.size):
        v = a[i] + b[i]
        y[i] = zero if v <= zero else v


@njit(**_OPTS)
def hardtanh_serial(x, lo, hi, y):
    for i in range(y.size):
        v = x[i]
        v = lo if v <= lo else v  # as np.maximum: the bound when equal (its sign of zero)
        y[i] = hi if v >= hi else v  # NaN fails both tests and passes through


@njit(**_OPTS)
def hardtanh_grad_serial(g, x, lo, hi, zero, gx):
    for i in range(x.size):
        v = x[i]
        gx[i] = g[i] if (v > lo) & (v < hi) else zero


@njit(**_OPTS)
def leaky_relu_serial(x, a, y):
    for i in range(y.size):
        v = x[i]
        y[i] = v if v > 0 else v * a


@njit(**_OPTS)
def leaky_relu_grad_serial(g, x, a, gx):
    for i in range(x.size):
        gx[i] = g[i] if x[i] > 0 else g[i] * a


@njit(**_OPTS)
def hardswish_serial(x, three, zero, six, y):
    for i in range(y.size):
        v = x[i]
        t = v + three
        t = zero if t <= zero else t  # np.maximum(t, 0): NaN kept
        t = six if t >= six else t
        y[i] = v * t / six


@njit(**_OPTS)
def hardswish_grad_serial(g, x, three, half, zero, gx):
    for i in range(x.size):
        v = x[i]
        if v <= -three:
            gx[i] = zero
        elif v >= three:
            gx[i] = g[i]
        else:  # NaN lands here: NaN, as PyTorch's vectorised kernel
            gx[i] = g[i] * (v / three + half)


@njit(**_OPTS)
def hardsigmoid_serial(x, three, zero, six, y):
    for i in range(y.size):
        t = x[i] + three
        t = zero if t <= zero else t
        t = six if t >= six else t
        y[i] = t / six


@njit(**_OPTS)
def hardsigmoid_grad_serial(g, x, three, six, zero, gx):
    for i in range(x.size):
        v = x[i]
        gx[i] = g[i] / six if (v > -three) & (v < three) else zero


@njit(**_OPTS)
def sigmoid_tail_serial(e, one, y):
    for i in range(y.size):
        y[i] = one / (one + e[i])


@njit(**_OPTS)
def sigmoid_grad_serial(g, y, one, gx):
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
        add_serial(a[lo:hi], b[lo:hi], y[lo:hi])


@njit(parallel=True, **_OPTS)
def sgd_momentum(p, g, buf, m, d1, lr):
    """``buf = buf * m + d1 * g`` then ``p = p - lr * buf``, in place (flat, same size)."""
    n = p.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        sgd_momentum_serial(p[lo:hi], g[lo:hi], buf[lo:hi], m, d1, lr)


@njit(parallel=True, **_OPTS)
def add_relu(a, b, zero, y):
    """``y = a + b``, then 0 where that is <= 0 (NaN kept)."""
    n = y.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        add_relu_serial(a[lo:hi], b[lo:hi], zero, y[lo:hi])


@njit(parallel=True, **_OPTS)
def hardtanh(x, lo_value, hi_value, y):
    n = y.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        hardtanh_serial(x[lo:hi], lo_value, hi_value, y[lo:hi])


@njit(parallel=True, **_OPTS)
def hardtanh_grad(g, x, lo_value, hi_value, zero, gx):
    n = x.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        hardtanh_grad_serial(g[lo:hi], x[lo:hi], lo_value, hi_value, zero, gx[lo:hi])


@njit(parallel=True, **_OPTS)
def leaky_relu(x, a, y):
    n = y.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        leaky_relu_serial(x[lo:hi], a, y[lo:hi])


@njit(parallel=True, **_OPTS)
def leaky_relu_grad(g, x, a, gx):
    n = x.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        leaky_relu_grad_serial(g[lo:hi], x[lo:hi], a, gx[lo:hi])


@njit(parallel=True, **_OPTS)
def hardswish(x, three, zero, six, y):
    n = y.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        hardswish_serial(x[lo:hi], three, zero, six, y[lo:hi])


@njit(parallel=True, **_OPTS)
def hardswish_grad(g, x, three, half, zero, gx):
    n = x.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        hardswish_grad_serial(g[lo:hi], x[lo:hi], three, half, zero, gx[lo:hi])


@njit(parallel=True, **_OPTS)
def hardsigmoid(x, three, zero, six, y):
    n = y.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        hardsigmoid_serial(x[lo:hi], three, zero, six, y[lo:hi])


@njit(parallel=True, **_OPTS)
def hardsigmoid_grad(g, x, three, six, zero, gx):
    n = x.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        hardsigmoid_grad_serial(g[lo:hi], x[lo:hi], three, six, zero, gx[lo:hi])


@njit(parallel=True, **_OPTS)
def sigmoid_tail(e, one, y):
    """``y = 1 / (1 + e)``: the sigmoid from ``e = exp(-x)`` (``y`` may be ``e``)."""
    n = y.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        sigmoid_tail_serial(e[lo:hi], one, y[lo:hi])


@njit(parallel=True, **_OPTS)
def sigmoid_grad(g, y, one, gx):
    n = y.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        sigmoid_grad_serial(g[lo:hi], y[lo:hi], one, gx[lo:hi])


# --------------------------------------------------------------------------- plane loops
# ``x`` is (N * C, H * W); a task takes ``block`` whole planes (about RUN values), so small
# planes (ResNet's 7 x 7, 2 x 2 at the end) do not cost a task each.
@njit(**_OPTS)
def add_channel_serial(p0, a, b, y):
    c = b.size
    for r in range(a.shape[0]):
        _add_scalar_run(a[r], b[(p0 + r) % c], y[r])


@njit(parallel=True, **_OPTS)
def add_channel(block, a, b, y):
    """``y[p] = a[p] + b[p % C]`` on ``(N * C, H * W)`` planes, ``b`` of shape (C,)."""
    n = a.shape[0]
    for t in prange((n + block - 1) // block):
        lo, hi = t * block, min(n, (t + 1) * block)
        add_channel_serial(lo, a[lo:hi], b, y[lo:hi])


@njit(**_OPTS)
def plane_sums_serial(p0, x, shift, s1, s2):
    for r in range(x.shape[0]):
        s1[r], s2[r] = _shifted_sums(x[r], shift[r])


@njit(parallel=True, **_OPTS)
def plane_sums(block, x, shift, s1, s2):
    """Per plane ``p``: ``s1[p] = sum(x[p] - shift[p])``, ``s2[p]`` the sum of squares."""
    n = x.shape[0]
    for t in prange((n + block - 1) // block):
        lo, hi = t * block, min(n, (t + 1) * block)
        plane_sums_serial(lo, x[lo:hi], shift[lo:hi], s1[lo:hi], s2[lo:hi])


@njit(**_OPTS)
def plane_grad_sums_serial(p0, g, x, mean, sg, sgd):
    c = mean.size
    for r in range(x.shape[0]):
        sg[r], sgd[r] = _grad_sums(g[r], x[r], mean[(p0 + r) % c])


@njit(parallel=True, **_OPTS)
def plane_grad_sums(block, g, x, mean, sg, sgd):
    """Per plane: ``sg[p] = sum(g[p])``, ``sgd[p] = sum(g[p] * (x[p] - mean[p % C]))``."""
    n = x.shape[0]
    for t in prange((n + block - 1) // block):
        lo, hi = t * block, min(n, (t + 1) * block)
        plane_grad_sums_serial(lo, g[lo:hi], x[lo:hi], mean, sg[lo:hi], sgd[lo:hi])


@njit(**_OPTS)
def normalize_serial(p0, x, mean, scale, bias, y):
    c = mean.size
    for r in range(x.shape[0]):
        q = (p0 + r) % c
        _normalize_run(x[r], mean[q], scale[q], bias[q], y[r])


@njit(parallel=True, **_OPTS)
def normalize(block, x, mean, scale, bias, y):
    """``y[p] = (x[p] - mean[q]) * scale[q] + bias[q]`` with ``q = p % C``."""
    n = x.shape[0]
    for t in prange((n + block - 1) // block):
        lo, hi = t * block, min(n, (t + 1) * block)
        normalize_serial(lo, x[lo:hi], mean, scale, bias, y[lo:hi])


@njit(**_OPTS)
def scale_channels_serial(p0, x, scale, y):
    c = scale.size
    for r in range(x.shape[0]):
        _scale_run(x[r], scale[(p0 + r) % c], y[r])


@njit(parallel=True, **_OPTS)
def scale_channels(block, x, scale, y):
    """``y[p] = x[p] * scale[p % C]``."""
    n = x.shape[0]
    for t in prange((n + block - 1) // block):
        lo, hi = t * block, min(n, (t + 1) * block)
        scale_channels_serial(lo, x[lo:hi], scale, y[lo:hi])


@njit(**_OPTS)
def batch_norm_grad_serial(p0, g, x, mean, k, gmean, a, gx):
    c = mean.size
    for r in range(x.shape[0]):
        q = (p0 + r) % c
        _bn_grad_run(g[r], x[r], mean[q], k[q], gmean[q], a[q], gx[r])


@njit(parallel=True, **_OPTS)
def batch_norm_grad(block, g, x, mean, k, gmean, a, gx):
    """``gx[p] = (g[p] - gmean[q] - (x[p] - mean[q]) * k[q]) * a[q]``, ``q = p % C``."""
    n = x.shape[0]
    for t in prange((n + block - 1) // block):
        lo, hi = t * block, min(n, (t + 1) * block)
        batch_norm_grad_serial(lo, g[lo:hi], x[lo:hi], mean, k, gmean, a, gx[lo:hi])
