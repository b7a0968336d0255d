"""Reference resampling kernels: one output value at a time. The executable spec.

Twins of :mod:`convscope.kernels.resample` with the same signatures, written as the
definitions read: *each output cell looks up its source cells and mixes them with their
weights*; *each adaptive window is averaged*. Slow on purpose; tests run them on small
shapes and hold the fast kernels to them. The index arithmetic is PyTorch's, on NumPy
scalars of the same precision (float32 for the nearest modes, the input's dtype for
linear), so the chosen source cells are PyTorch's.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

__all__ = [
    "interpolate",
    "interpolate_grad",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_grad",
]


def _sources(j, size, out, scale, mode, align_corners, dtype, dims):
    """``[(source cell, weight), ...]`` of output cell ``j`` along one axis of ``dims``."""
    f32 = np.float32
    if mode in ("nearest", "nearest-exact"):
        s = f32(1.0 / scale) if scale is not None else f32(size) / f32(out)
        if mode == "nearest" and dims == 2:  # PyTorch's 2-D kernel copies or halves here
            if out == size:
                return [(j, 1.0)]
            if out == 2 * size:
                return [(j // 2, 1.0)]
        if mode == "nearest":
            src = math.floor(f32(j) * s)  # float32 product, as C's `floorf(j * scale)`
        else:
            src = math.floor(f32((j + 0.5) * float(s)))  # double product, rounded to float
        return [(min(src, size - 1), 1.0)]
    f = np.dtype(dtype).type
    if out == size:
        return [(j, f(1)), (j, f(0))]
    if align_corners:
        s = f(size - 1) / f(out - 1) if out > 1 else f(0)
        real = s * f(j)
    else:
        s = f(1.0 / scale) if scale is not None else f(size) / f(out)
        if f is np.float32:  # one fused multiply-add, as PyTorch's compiled code
            real = f(float(s) * float(f(j) + f(0.5)) - 0.5)
        else:
            real = s * (f(j) + f(0.5)) - f(0.5)
        real = max(real, f(0))
    i0 = min(int(real), size - 1)
    i1 = i0 + 1 if i0 < size - 1 else i0
    lam = min(max(real - f(i0), f(0)), f(1))
    return [(i0, f(1) - lam), (i1, lam)]


def _table(in_size, out_size, mode, align_corners, scales, dtype):
    scales = scales or (None,) * len(out_size)
    return [
        [_sources(j, n, o, s, mode, align_corners, dtype, len(out_size)) for j in range(o)]
        for n, o, s in zip(in_size, out_size, scales, strict=True)
    ]


def interpolate(x, out_size, mode, align_corners, scales):
    """Every output cell: the sum over its source cells (one per axis) of the product of
    their weights times the input there."""
    k = len(out_size)
    lead, in_size = x.shape[:-k], x.shape[-k:]
    table = _table(in_size, out_size, mode, align_corners, scales, x.dtype)
    y = np.zeros(lead + tuple(out_size), dtype=x.dtype)
    for cell in np.ndindex(*out_size):
        for combo in itertools.product(*(table[a][cell[a]] for a in range(k))):
            weight = np.prod([w for _, w in combo], dtype=np.float64)
            y[(...,) + cell] += weight * x[(...,) + tuple(i for i, _ in combo)]
    return y


def interpolate_grad(gy, in_size, mode, align_corners, scales):
    """Each output cell's gradient, times the weight of each of its source cells, added there."""
    k = len(in_size)
    out_size = gy.shape[-k:]
    table = _table(in_size, out_size, mode, align_corners, scales, gy.dtype)
    gx = np.zeros(gy.shape[:-k] + tuple(in_size), dtype=gy.dtype)
    for cell in np.ndindex(*out_size):
        for combo in itertools.product(*(table[a][cell[a]] for a in range(k))):
            weight = np.prod([w for _, w in combo], dtype=np.float64)
            gx[(...,) + tuple(i for i, _ in combo)] += weight * gy[(...,) + cell]
    return gx


def _window(i, size, out):
    """PyTorch's adaptive window ``[floor(i * size / out), ceil((i + 1) * size / out))``."""
    return (i * size) // out, -(-(i + 1) * size // out)


def adaptive_avg_pool2d(x, out_hw):
    """Every output cell: the mean of the input cells under its window."""
    n, c, h, w = x.shape
    y = np.zeros((n, c) + tuple(out_hw), dtype=x.dtype)
    for oh, ow in np.ndindex(*out_hw):
        (h0, h1), (w0, w1) = _window(oh, h, out_hw[0]), _window(ow, w, out_hw[1])
        y[:, :, oh, ow] = x[:, :, h0:h1, w0:w1].astype(np.float64).mean(axis=(2, 3))
    return y


def adaptive_avg_pool2d_grad(gy, in_hw):
    """Every output cell's gradient, shared equally among the cells of its window."""
    n, c, oh_size, ow_size = gy.shape
    h, w = in_hw
    gx = np.zeros((n, c, h, w), dtype=np.float64)
    for oh, ow in np.ndindex(oh_size, ow_size):
        (h0, h1), (w0, w1) = _window(oh, h, oh_size), _window(ow, w, ow_size)
        gx[:, :, h0:h1, w0:w1] += gy[:, :, oh, ow, None, None] / ((h1 - h0) * (w1 - w0))
    return gx.astype(gy.dtype)
