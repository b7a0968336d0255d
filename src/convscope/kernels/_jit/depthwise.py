"""Depthwise convolution loops (one kernel per channel), plane by plane in cache."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .rows import _copy
from .simd import lanes, vfma, vload, vsplat, vstore, vzero

__all__ = ["depthwise", "depthwise_weight_grad"]

_OPTS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


@njit(inline="always", **_OPTS)
def _dw_vector(buf, at, wc, b, offs, y, dst):
    """One vector of a depthwise output row: ``y[dst:] = b + sum_k wc[k] * buf[at+offs[k]:]``."""
    a = vsplat(buf, b)
    for k in range(offs.size):
        a = vfma(vsplat(buf, wc[k]), vload(buf, at + offs[k]), a)
    vstore(y, dst, a)


@njit(parallel=True, **_OPTS)
def depthwise(x, w, bias, top, left, hp, wp, offs, per_task, y):
    """Depthwise convolution over planes, ``per_task`` planes per task, written in place.

    x (P, H, W) planes (``P = N * C``); w (C, K) with ``offs`` (K,) into a padded plane
    ``hp x wp`` that holds the plane at ``(top, left)``; bias (C,); y (P, H_out, W_out).
    A task zeroes one padded plane buffer (in cache) once; for each of its planes it
    copies the plane into it (the padding stays zero) and computes every output row
    straight into ``y``: 4 vectors of the row at a time, the taps' weights splatted per
    vector block, then single vectors, the last one overlapping the one before (the
    same values written twice); rows narrower than a vector go value by value. No
    garbage columns are computed and nothing is copied out.
    """
    planes, h, wd = x.shape
    n_ch, kk = w.shape
    oh, ow = y.shape[1], y.shape[2]
    L = lanes(x)
    xflat, yflat = x.ravel(), y.ravel()
    for t in prange((planes + per_task - 1) // per_task):
        buf = np.zeros(hp * wp, x.dtype)
        for pl in range(t * per_task, min(planes, (t + 1) * per_task)):
            c = pl % n_ch
            for r in range(h):
                _copy(buf, (r + top) * wp + left, xflat, (pl * h + r) * wd, wd)
            wc = w[c]
            b = bias[c]
            for r in range(oh):
                base, dst = r * wp, (pl * oh + r) * ow
                q = 0
                while q + 4 * L <= ow:
                    a0 = vsplat(buf, b)
                    a1, a2, a3 = a0, a0, a0
                    for k in range(kk):
                        at = base + q + offs[k]
                        e = vsplat(buf, wc[k])
                        a0, a1 = vfma(e, vload(buf, at), a0), vfma(e, vload(buf, at + L), a1)
                        a2 = vfma(e, vload(buf, at + 2 * L), a2)
                        a3 = vfma(e, vload(buf, at + 3 * L), a3)
                    vstore(yflat, dst + q, a0), vstore(yflat, dst + q + L, a1)
                    vstore(yflat, dst + q + 2 * L, a2), vstore(yflat, dst + q + 3 * L, a3)
                    q += 4 * L
                while q + L <= ow:
                    _dw_vector(buf, base + q, wc, b, offs, yflat, dst + q)
                    q += L
                if q < ow:
                    if ow >= L:  # overlaps the vector before
                        _dw_vector(buf, base + ow - L, wc, b, offs, yflat, dst + ow - L)
                    else:
                        for j in range(ow):
                            s = b
                            for k in range(kk):
                                s += wc[k] * buf[base + j + offs[k]]
                            yflat[dst + j] = s


@njit(inline="always", **_OPTS)
def _dw_row3(g, buf, at, dw, a0, a1, a2):
    """``a_v += g * buf[at + v*dw :]`` for v = 0, 1, 2."""
    return (vfma(g, vload(buf, at), a0), vfma(g, vload(buf, at + dw), a1),
            vfma(g, vload(buf, at + 2 * dw), a2))


@njit(parallel=True, **_OPTS)
def depthwise_weight_grad(x, gy, top, left, hp, wp, slack, kh, kw, dh, dw, per_task, out):
    """Depthwise weight gradient per plane: ``out[p, u, v] = sum_pos gy[p] * x_shifted``.

    x (P, H, W) and gy (P, H_out, W_out) planes; the input plane sits at ``(top, left)``
    of a zero-padded ``hp x wp`` plane; out (P, ceil(kh/3)*3, ceil(kw/3)*3): entries
    outside the kernel are dropped by the caller. Each task pads its planes into one
    buffer (``slack`` zeros after it), as :func:`depthwise`. Kernel entries go in blocks
    of 3 x 3 held in 9 vector accumulators: for each vector of columns of ``gy`` and each
    padded row ``rho``, 3 input vectors (the block's columns) are loaded once and
    multiplied by the ``gy`` rows ``rho - u*dh`` of the block's rows ``u`` that exist (a
    row of a kernel entry outside the kernel, or outside ``gy``, is skipped, never
    multiplied by a zero: a NaN of the padded plane cannot reach a sum the reference keeps
    finite). The columns of ``gy`` left after its whole vectors go value by value. The
    lanes are then added in order: every sum has a fixed order (deterministic); the
    caller adds the planes of each channel in image order.
    """
    planes, h, wd = x.shape
    oh, ow = gy.shape[1], gy.shape[2]
    bu, bv = out.shape[1] // 3, out.shape[2] // 3
    L = lanes(x)
    nv = ow // L
    xflat, gflat = x.ravel(), gy.ravel()
    for t in prange((planes + per_task - 1) // per_task):
        buf = np.zeros(hp * wp + slack, x.dtype)
        lane = np.empty(9 * L, x.dtype)
        for pl in range(t * per_task, min(planes, (t + 1) * per_task)):
            for r in range(h):
                _copy(buf, (r + top) * wp + left, xflat, (pl * h + r) * wd, wd)
            gp = pl * oh * ow
            for ub in range(bu):
                for vb in range(bv):
                    u0, v0 = 3 * ub, 3 * vb
                    a00 = vzero(buf)
                    a01, a02, a10, a11, a12, a20, a21, a22 = a00, a00, a00, a00, a00, a00, a00, a00
                    for rho in range(u0 * dh, hp):
                        r0 = rho - u0 * dh  # the gy row of the block's first kernel row
                        r1, r2 = r0 - dh, r0 - 2 * dh
                        ok0, ok1 = r0 < oh, u0 + 1 < kh and 0 <= r1 < oh
                        ok2 = u0 + 2 < kh and 0 <= r2 < oh
                        for j in range(nv):
                            q = j * L
                            at = rho * wp + q + v0 * dw
                            if ok0:
                                g = vload(gflat, gp + r0 * ow + q)
                                a00, a01, a02 = _dw_row3(g, buf, at, dw, a00, a01, a02)
                            if ok1:
                                g = vload(gflat, gp + r1 * ow + q)
                                a10, a11, a12 = _dw_row3(g, buf, at, dw, a10, a11, a12)
                            if ok2:
                                g = vload(gflat, gp + r2 * ow + q)
                                a20, a21, a22 = _dw_row3(g, buf, at, dw, a20, a21, a22)
                    vstore(lane, 0, a00), vstore(lane, L, a01), vstore(lane, 2 * L, a02)
                    vstore(lane, 3 * L, a10), vstore(lane, 4 * L, a11)
                    vstore(lane, 5 * L, a12), vstore(lane, 6 * L, a20)
                    vstore(lane, 7 * L, a21), vstore(lane, 8 * L, a22)
                    for i in range(9):
                        u, v = u0 + i // 3, v0 + i % 3
                        s = lane[i * L]
                        for m in range(1, L):
                            s += lane[i * L + m]
                        if u < kh and v < kw:
                            for r in range(oh):  # the columns after the whole vectors
                                at = (r + u * dh) * wp + v * dw
                                for qq in range(nv * L, ow):
                                    s += gflat[gp + r * ow + qq] * buf[at + qq]
                        out[pl, u, v] = s
