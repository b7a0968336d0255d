"""Resampling kernels: interpolation (nearest, linear) and adaptive average pooling.

All of them are *separable*: a 2-D resampling is a 1-D resampling of the rows followed by
one of the columns. Each axis gets a small plan computed once from the sizes (for every
output cell: its source cells and their weights), and the work is one gather (``np.take``)
per source cell and axis, with no Python loop over pixels. Gradients scatter the output's
gradient back with the same plans, by a compiled loop (:mod:`._jit.resample`; Numba loads
on the first backward pass).

The index formulas are PyTorch's CPU ones, computed in the same precision (the nearest
modes in float32, linear in the input's dtype), so the chosen source cells agree with
PyTorch exactly. :mod:`.resample_reference` is the plain-loop twin these are tested against.

``x`` is ``(N, C, *spatial)`` with one or two spatial axes; ``out_size`` and ``scales`` have
one entry per spatial axis (a scale None: the ratio ``in / out`` is used). Kernels never
validate; :func:`convscope.shapes.interpolate_out` and :func:`~convscope.shapes.adaptive_out`
do that first.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "nearest_index",
    "linear_plan",
    "interpolate",
    "interpolate_grad",
    "adaptive_windows",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_grad",
]


# --------------------------------------------------------------------------- plans per axis
def _scale32(size, out, scale):
    """PyTorch's ``compute_scales_value<float>``: ``1 / scale`` when given, else ``in / out``."""
    if scale is not None and scale > 0:
        return np.float32(1.0 / scale)
    return np.float32(size) / np.float32(out)


def nearest_index(size, out, scale, exact=False, shortcuts=True):
    """Source cell of every output cell along one axis, int64 of shape ``(out,)``.

    ``'nearest'`` (PyTorch's legacy rule): ``floor(i * s)`` in float32, with ``s = 1 / scale``
    or ``in / out``; with ``shortcuts`` (PyTorch's 2-D kernel; its 1-D one has none), an
    output of the input's size or twice it copies (``i``, ``i // 2``) whatever the scale.
    ``'nearest-exact'``: ``floor((i + 0.5) * s)``. Both capped at ``in - 1``.
    """
    i = np.arange(out, dtype=np.int64)
    if shortcuts and not exact and out == size:
        return i
    if shortcuts and not exact and out == 2 * size:
        return i >> 1
    s = _scale32(size, out, scale)
    if exact:  # (i + 0.5) * s in double, rounded to float, then floored (floorf of a double)
        src = np.floor(((i + 0.5) * np.float64(s)).astype(np.float32))
    else:
        src = np.floor(i.astype(np.float32) * s)
    return np.minimum(src.astype(np.int64), size - 1)


def linear_plan(size, out, scale, align_corners, dtype):
    """``(i0, i1, w0, w1)`` along one axis: output cell ``j`` is ``w0[j] * x[i0[j]] + w1[j] *
    x[i1[j]]`` (PyTorch's ``compute_source_index_and_lambda``, in ``dtype``).

    Source coordinate: ``j * (in - 1) / (out - 1)`` with ``align_corners``, else
    ``(j + 0.5) * s - 0.5`` (one fused multiply-add) clamped at 0, with ``s = 1 / scale`` or
    ``in / out``. An output of the input's size copies.
    """
    dt = np.dtype(dtype)
    f = dt.type
    j = np.arange(out, dtype=np.int64)
    if out == size:
        return j, j, np.ones(out, dt), np.zeros(out, dt)
    if align_corners:
        s = f(size - 1) / f(out - 1) if out > 1 else f(0)
        real = s * j.astype(dt)
    else:
        s = f(1.0 / scale) if scale is not None and scale > 0 else f(size) / f(out)
        real = _fma(s, j.astype(dt) + f(0.5), f(-0.5))
        real = np.where(real < 0, f(0), real)
    i0 = np.minimum(real.astype(np.int64), size - 1)
    i1 = i0 + (i0 < size - 1)
    w1 = np.clip(real - i0.astype(dt), f(0), f(1))
    return i0, i1, (f(1) - w1).astype(dt), w1.astype(dt)


def _fma(a, b, c):
    """``a * b + c`` rounded once, as PyTorch's compiled index code computes it (a fused
    multiply-add): exact in float64 for float32 operands, then rounded to float32. float64
    operands are rounded twice (a difference of at most one unit in the last place)."""
    if np.result_type(a, b) == np.float32:
        exact = np.float64(a) * np.asarray(b, dtype=np.float64) + np.float64(c)
        return exact.astype(np.float32)
    return a * b + c


def _along(w, axis, ndim):
    """Weights of shape ``(n,)`` shaped to broadcast along ``axis`` of an ndim-D array."""
    shape = [1] * ndim
    shape[axis] = w.shape[0]
    return w.reshape(shape)


def _scatter(v, index, size, axis, weights=None):
    """``out[..., index[j], ...] += v[..., j, ...]`` along ``axis``, by a compiled loop.

    ``weights``: ``(w0, i1, w1)`` for linear interpolation, where cell ``j`` sends ``w0[j]
    v[j]`` to ``index[j]`` and ``w1[j] v[j]`` to ``i1[j]``.
    """
    from ._jit.resample import scatter_add, scatter_add2

    before = math.prod(v.shape[:axis])
    after = math.prod(v.shape[axis + 1:])
    out = np.zeros((before, size, after), dtype=v.dtype)
    if v.size:
        v3 = np.ascontiguousarray(v).reshape(before, v.shape[axis], after)
        if weights is None:
            scatter_add(v3, index, out)
        else:
            w0, i1, w1 = weights
            scatter_add2(v3, index, w0.astype(v.dtype), i1, w1.astype(v.dtype), out)
    return out.reshape(v.shape[:axis] + (size,) + v.shape[axis + 1:])


# --------------------------------------------------------------------------- interpolation
def _plans(in_size, out_size, mode, align_corners, scales, dtype):
    """One plan per spatial axis: an index array (nearest modes) or :func:`linear_plan`."""
    scales = scales or (None,) * len(out_size)
    sizes = zip(in_size, out_size, scales, strict=True)
    if mode in ("nearest", "nearest-exact"):
        exact, shortcuts = mode == "nearest-exact", len(out_size) > 1
        return [nearest_index(n, o, s, exact, shortcuts) for n, o, s in sizes]
    return [linear_plan(n, o, s, align_corners, dtype) for n, o, s in sizes]


def interpolate(x, out_size, mode, align_corners, scales):
    """Resample the trailing ``len(out_size)`` axes of ``x`` to ``out_size``.

    ``mode``: ``'nearest'``, ``'nearest-exact'`` or ``'linear'`` (linear along each axis:
    bilinear on two axes). Returns a new array of ``x``'s dtype.
    """
    first = x.ndim - len(out_size)
    plans = _plans(x.shape[first:], out_size, mode, align_corners, scales, x.dtype)
    y = x
    for axis, plan in enumerate(plans, start=first):
        if mode != "linear":
            y = np.take(y, plan, axis=axis)
            continue
        i0, i1, w0, w1 = plan
        y = (np.take(y, i0, axis=axis) * _along(w0, axis, y.ndim)
             + np.take(y, i1, axis=axis) * _along(w1, axis, y.ndim))
    return np.ascontiguousarray(y)


def interpolate_grad(gy, in_size, mode, align_corners, scales):
    """Gradient of :func:`interpolate`: each output cell's gradient, times its weights, added
    onto its source cells (the axes in reverse order)."""
    first = gy.ndim - len(in_size)
    plans = _plans(in_size, gy.shape[first:], mode, align_corners, scales, gy.dtype)
    g = gy
    for axis in reversed(range(first, gy.ndim)):
        plan, n = plans[axis - first], in_size[axis - first]
        if mode != "linear":
            g = _scatter(g, plan, n, axis)
            continue
        i0, i1, w0, w1 = plan
        g = _scatter(g, i0, n, axis, (w0, i1, w1))
    return g


# --------------------------------------------------------------------------- adaptive pooling
def adaptive_windows(size, out):
    """``(start, end)`` arrays of the ``out`` windows over ``size`` cells (PyTorch's):
    ``start = floor(i * size / out)``, ``end = ceil((i + 1) * size / out)``."""
    i = np.arange(out, dtype=np.int64)
    return (i * size) // out, -((-(i + 1) * size) // out)


def _window_mean(x, out, axis):
    """Mean of each adaptive window along ``axis``: a loop over the offset inside a window
    (at most ``ceil(size / out) + 1`` steps), each a gather of every window at once."""
    size = x.shape[axis]
    if out and size % out == 0:  # equal, disjoint windows: a reshape
        k = size // out
        shape = x.shape[:axis] + (out, k) + x.shape[axis + 1:]
        return x.reshape(shape).sum(axis=axis + 1) / x.dtype.type(k)
    start, end = adaptive_windows(size, out)
    count = end - start
    shape = list(x.shape)
    shape[axis] = out
    acc = np.zeros(shape, dtype=x.dtype)
    for offset in range(int(count.max()) if out else 0):
        rows = np.flatnonzero(count > offset)
        where = [slice(None)] * x.ndim
        where[axis] = rows
        acc[tuple(where)] += np.take(x, start[rows] + offset, axis=axis)
    return acc / _along(count.astype(x.dtype), axis, x.ndim)


def _window_mean_grad(g, size, axis):
    """Adjoint of :func:`_window_mean`: each window's gradient / its length, onto its cells."""
    out = g.shape[axis]
    if out and size % out == 0:
        k = size // out
        return np.repeat(g / g.dtype.type(k), k, axis=axis)
    start, end = adaptive_windows(size, out)
    count = end - start
    share = g / _along(count.astype(g.dtype), axis, g.ndim)
    shape = list(g.shape)
    shape[axis] = size
    gx = np.zeros(shape, dtype=g.dtype)
    for offset in range(int(count.max()) if out else 0):
        rows = np.flatnonzero(count > offset)
        gx += _scatter(np.take(share, rows, axis=axis), start[rows] + offset, size, axis)
    return gx


def adaptive_avg_pool2d(x, out_hw):
    """Mean of each adaptive window of the last two axes: ``(N, C, H, W) -> (N, C, *out_hw)``."""
    if tuple(out_hw) == (1, 1):  # global pooling: one sum over each contiguous plane
        n, c, h, w = x.shape
        return (x.reshape(n, c, h * w).sum(axis=2) / x.dtype.type(h * w)).reshape(n, c, 1, 1)
    return np.ascontiguousarray(_window_mean(_window_mean(x, out_hw[0], 2), out_hw[1], 3))


def adaptive_avg_pool2d_grad(gy, in_hw):
    """Gradient of :func:`adaptive_avg_pool2d` for an input of ``(H, W) = in_hw``."""
    return _window_mean_grad(_window_mean_grad(gy, in_hw[1], 3), in_hw[0], 2)
