"""Row helpers for the loops: copies (plain or through a ReLU's rule), clamps, sums, checks."""

from __future__ import annotations

import numpy as np
from numba import njit

from .simd import lanes, vfma, vload, vpick, vsplat, vstore, vzero

_OPTS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


@njit(inline="always", **_OPTS)
def _copy(dst, d, src, s, n):
    """``dst[d : d + n] = src[s : s + n]`` on flat arrays, by vectors then values.

    For the short rows copied here a slice assignment (two array views built, with their
    reference counts, per row) costs more than the copy (measured 1.5x on the depthwise
    loop), and a plain element loop is not vectorised.
    """
    L = lanes(dst)
    if n < L:
        for j in range(n):
            dst[d + j] = src[s + j]
        return
    j = 0
    while j + L <= n:
        vstore(dst, d + j, vload(src, s + j))
        j += L
    if j < n:  # the last vector overlaps the one before (same values written twice)
        vstore(dst, d + n - L, vload(src, s + n - L))


@njit(inline="always", **_OPTS)
def _clamp(a, at, n, lo, hi):
    """``a[at : at + n]`` clamped to ``[lo, hi]`` in place, NaN kept (ReLU6 is ``lo = 0,
    hi = 6``): the activation of a fused conv applied to rows it has just written, still
    in cache, instead of a pass of its own over the output."""
    L = lanes(a)
    vlo, vhi, vinf = vsplat(a, lo), vsplat(a, hi), vsplat(a, np.inf)
    j = at
    while j + L <= at + n:  # by vectors (a scalar loop of selects ran at 3.6 ns a value)
        v = vload(a, j)
        r = vpick(v, vhi, vhi, v)  # hi where v > hi (or NaN: put back next)
        r = vpick(v, vinf, v, r)  # NaN kept
        vstore(a, j, vpick(v, vlo, r, vlo))  # lo where v <= lo: -0 becomes lo = +0 (ReLU)
        j += L
    for m in range(j, at + n):
        v = a[m]
        a[m] = hi if v > hi else (lo if v <= lo else v)


@njit(inline="always", **_OPTS)
def _copy_where(dst, d, src, s, mask, m, n):
    """``dst[d + j] = src[s + j]`` where ``mask[m + j] > 0`` or is NaN, else 0 (``j < n``).

    The ReLU gradient's rule (``0 where y <= 0``) applied while copying; with
    ``mask is src`` and ``m == s`` it is ReLU itself (``0 where x <= 0``, NaN kept).
    By vectors as :func:`_copy`.
    """
    L = lanes(dst)
    if n < L:
        for j in range(n):
            v = mask[m + j]
            dst[d + j] = 0 if v <= 0 else src[s + j]
        return
    zero = vzero(dst)
    j = 0
    while j + L <= n:
        vstore(dst, d + j, vpick(vload(mask, m + j), zero, vload(src, s + j), zero))
        j += L
    if j < n:
        j = n - L
        vstore(dst, d + j, vpick(vload(mask, m + j), zero, vload(src, s + j), zero))


@njit(inline="always", **_OPTS)
def _nonfinite(a, at, n):
    """Whether ``a[at : at + n]`` holds a NaN or an infinity (``v * 0`` is 0 for the others)."""
    L = lanes(a)
    zero = vzero(a)
    acc = zero
    j = 0
    while j + L <= n:
        acc = vfma(vload(a, at + j), zero, acc)
        j += L
    lane = np.empty(L, a.dtype)
    vstore(lane, 0, acc)
    for m in range(L):
        if lane[m] != 0:
            return True
    for m in range(j, n):
        if a[at + m] * 0 != 0:
            return True
    return False


@njit(inline="always", **_OPTS)
def _sum(a, at, n):
    """``sum(a[at : at + n])`` for any ``n``: 4 vector accumulators over the whole blocks of
    4 vectors, their lanes in order, then the rest value by value (a fixed order)."""
    L = lanes(a)
    whole = n // (4 * L) * (4 * L)
    total = _vsum(a, at, whole) if whole else a.dtype.type(0)
    for j in range(at + whole, at + n):
        total += a[j]
    return total


@njit(inline="always", **_OPTS)
def _vsum(a, at, n):
    """``sum(a[at : at + n])`` for ``n`` a multiple of 4 vectors: 4 vector accumulators, then
    their lanes in order (a fixed order: deterministic)."""
    L = lanes(a)
    one = vsplat(a, 1)
    s0 = vzero(a)
    s1, s2, s3 = s0, s0, s0
    for p in range(at, at + n, 4 * L):
        s0, s1 = vfma(one, vload(a, p), s0), vfma(one, vload(a, p + L), s1)
        s2, s3 = vfma(one, vload(a, p + 2 * L), s2), vfma(one, vload(a, p + 3 * L), s3)
    lane = np.empty(4 * L, a.dtype)
    vstore(lane, 0, s0), vstore(lane, L, s1), vstore(lane, 2 * L, s2), vstore(lane, 3 * L, s3)
    total = lane[0]
    for j in range(1, 4 * L):
        total += lane[j]
    return total
