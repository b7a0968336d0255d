"""Direct convolution loops on the *flat padded* layout (stride 1), register-blocked.

The layout. Each image is zero-padded and its channel planes laid end to end in one row
``xf[n]``; a plane is ``Hp x Wp``. With stride 1 the output value ``(r, q)`` of a kernel
reads ``xf[n, c * Hp * Wp + (r + u*dh) * Wp + q + v*dw]``: writing ``p = r * Wp + q`` (the
output on a grid as wide as the *padded* input) that is ``xf[n, p + offs[k]]`` with one
fixed offset per kernel entry ``k = (c, u, v)``. So every kernel entry reads a contiguous
run of ``xf`` and consecutive outputs ``p .. p + 15`` are one vector load. The last
``kw - 1`` columns of each output row (``q >= W_out``) are garbage: the forward loop
computes a task's rows into a buffer in cache and copies only the valid columns out;
``xf`` has enough zero slack after the last plane that no load leaves the array.

The blocking. The forward loop computes 4 output channels x 4 vectors of ``p`` (64
float32 outputs) in 16 vector accumulators held in registers; each step over ``k`` loads 4
input vectors and 4 weights and does 16 fused multiply-adds. Channels left over (fewer
than 4 in a group) take a 1-channel x 4-vector block. The weight-gradient loops (:mod:`.wgrad`)
block 4 channels x 4 kernel entries the same way, summing over positions in their registers;
with few channels the work is split over images (each task lays its images out in the
flat layout in buffers of its own and keeps a partial sum, added up in task order),
otherwise over channel and kernel-entry blocks.

Tasks are independent (no two write the same value) and every sum runs in a fixed order,
so results do not depend on the number of threads or on how tasks are handed out.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .rows import _copy, _copy_where, _nonfinite
from .simd import lanes, veven, vfma, vload, vpick, vsplat, vstore, vstore_index, vzero

__all__ = ["conv_forward", "pack"]

_OPTS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


@njit(inline="always", **_OPTS)
def _block4(x, base, w, bias, offs, out, o, at):
    """4 channels x 4 vectors: ``out[o+j, at:] = bias[j] + sum_k w[k, j] * x[base+offs[k]:]``."""
    L = lanes(x)
    s0, s1 = vsplat(x, bias[0]), vsplat(x, bias[1])
    s2, s3 = vsplat(x, bias[2]), vsplat(x, bias[3])
    a00, a01, a02, a03 = s0, s0, s0, s0
    a10, a11, a12, a13 = s1, s1, s1, s1
    a20, a21, a22, a23 = s2, s2, s2, s2
    a30, a31, a32, a33 = s3, s3, s3, s3
    for k in range(offs.size):
        p = base + offs[k]
        x0, x1 = vload(x, p), vload(x, p + L)
        x2, x3 = vload(x, p + 2 * L), vload(x, p + 3 * L)
        e = vsplat(x, w[k, 0])
        a00, a01 = vfma(e, x0, a00), vfma(e, x1, a01)
        a02, a03 = vfma(e, x2, a02), vfma(e, x3, a03)
        e = vsplat(x, w[k, 1])
        a10, a11 = vfma(e, x0, a10), vfma(e, x1, a11)
        a12, a13 = vfma(e, x2, a12), vfma(e, x3, a13)
        e = vsplat(x, w[k, 2])
        a20, a21 = vfma(e, x0, a20), vfma(e, x1, a21)
        a22, a23 = vfma(e, x2, a22), vfma(e, x3, a23)
        e = vsplat(x, w[k, 3])
        a30, a31 = vfma(e, x0, a30), vfma(e, x1, a31)
        a32, a33 = vfma(e, x2, a32), vfma(e, x3, a33)
    r = out[o]
    vstore(r, at, a00), vstore(r, at + L, a01)
    vstore(r, at + 2 * L, a02), vstore(r, at + 3 * L, a03)
    r = out[o + 1]
    vstore(r, at, a10), vstore(r, at + L, a11)
    vstore(r, at + 2 * L, a12), vstore(r, at + 3 * L, a13)
    r = out[o + 2]
    vstore(r, at, a20), vstore(r, at + L, a21)
    vstore(r, at + 2 * L, a22), vstore(r, at + 3 * L, a23)
    r = out[o + 3]
    vstore(r, at, a30), vstore(r, at + L, a31)
    vstore(r, at + 2 * L, a32), vstore(r, at + 3 * L, a33)


@njit(inline="always", **_OPTS)
def _block1(x, base, w, bias, offs, out, at):
    """1 channel x 4 vectors: ``out[at ...] = bias + sum_k w[k] * x[base + offs[k] ...]``."""
    L = lanes(x)
    a0 = vsplat(x, bias)
    a1, a2, a3 = a0, a0, a0
    for k in range(offs.size):
        p = base + offs[k]
        e = vsplat(x, w[k])
        a0, a1 = vfma(e, vload(x, p), a0), vfma(e, vload(x, p + L), a1)
        a2, a3 = vfma(e, vload(x, p + 2 * L), a2), vfma(e, vload(x, p + 3 * L), a3)
    vstore(out, at, a0), vstore(out, at + L, a1)
    vstore(out, at + 2 * L, a2), vstore(out, at + 3 * L, a3)


@njit(inline="always", **_OPTS)
def _pool_cell(value, best, k, at):
    """One cell of a max-pooling window after a ReLU: ``(best, k)`` by the reference's rule
    (a larger value or a NaN takes over, so the first maximum wins, or the last NaN)."""
    value = 0 if value <= 0 else value
    take = (value > best) | (value != value)
    return (value if take else best), (at if take else k)


@njit(inline="always", **_OPTS)
def _pool_rows(src, wp, r0, r1, ow, py, pidx):
    """``relu`` then 2 x 2 max pooling, stride 2, of the output rows ``r0 .. r1`` in ``src``.

    ``src`` holds the rows ``wp`` apart (row ``r`` at ``(r - r0) * wp``), ``r0`` even; a last
    odd row has no window (floor mode). ``py``/``pidx`` are one channel's pooled plane and
    the winners' flat indices ``r * W_out + q`` in the conv output's plane. The window's
    cells go in row-major order, each after the ReLU, as the unfused ReLU then
    :func:`.pool.max_pool` would: a vector of pooled columns at a time (even and odd
    columns by two stride-2 loads per row; the last vector overlaps the one before), and
    value by value for rows narrower than a vector.
    """
    L = lanes(src)
    pw = ow // 2
    zero = vzero(src)
    pyf, pif = py.ravel(), pidx.ravel()
    for r in range(r0, r1 - 1, 2):
        pr = r // 2
        top = (r - r0) * wp
        bottom = top + wp
        if pw >= L:
            q = 0
            while q < pw:
                q = min(q, pw - L)
                a = top + 2 * q
                b = bottom + 2 * q
                c00 = veven(vload(src, a), vload(src, a + L))
                c01 = veven(vload(src, a + 1), vload(src, a + 1 + L))
                c10 = veven(vload(src, b), vload(src, b + L))
                c11 = veven(vload(src, b + 1), vload(src, b + 1 + L))
                m = vpick(c00, zero, c00, zero)  # ReLU: 0 where <= 0, NaN kept
                kv = zero  # the winner's offset in its window: 0, 1, W_out, W_out + 1
                c01 = vpick(c01, zero, c01, zero)
                kv = vpick(c01, m, vsplat(src, 1), kv)
                m = vpick(c01, m, c01, m)
                c10 = vpick(c10, zero, c10, zero)
                kv = vpick(c10, m, vsplat(src, ow), kv)
                m = vpick(c10, m, c10, m)
                c11 = vpick(c11, zero, c11, zero)
                kv = vpick(c11, m, vsplat(src, ow + 1), kv)
                m = vpick(c11, m, c11, m)
                vstore(pyf, pr * pw + q, m)
                vstore_index(pif, pr * pw + q, kv, r * ow + 2 * q, 2)
                q += L
        else:
            for q in range(pw):
                a, b = top + 2 * q, bottom + 2 * q
                first = src[a]
                best = 0 if first <= 0 else first
                k = 0
                best, k = _pool_cell(src[a + 1], best, k, 1)
                best, k = _pool_cell(src[b], best, k, ow)
                best, k = _pool_cell(src[b + 1], best, k, ow + 1)
                pyf[pr * pw + q] = best
                pif[pr * pw + q] = r * ow + 2 * q + k


@njit(parallel=True, **_OPTS)
def conv_forward(xf, w4, b4, w1, b1, offs, gstride, wp, rows, out_hw, relu, mask, masked,
                 pool, py, pidx, y):
    """``y[n, g*og + o, r, q] = bias + sum_k weight[o, k] * xf[n, g*gstride + offs[k] + r*wp + q]``.

    xf (N, Lx); offs (K,); y (N, G*og, H_out, W_out). Channels ``o < 4B`` of each group
    (``og' = 4B + b1.shape[1]`` computed, ``og <= og'``: a zero kernel may pad a group):
    w4 (G, B, K, 4), b4 (G, B, 4), channel ``4b + j`` is ``w4[g, b, :, j]``; the others
    w1 (G, og' - 4B, K), b1 (G, og' - 4B). A task computes ``rows`` output rows of one
    image, all channels, over the flat positions ``r * wp + q`` (``wp`` wide, from the
    task's first row; the last block may run past its rows: ``xf`` has the slack), into
    a buffer in cache, then copies the valid ``q < W_out`` columns to ``y`` (no separate
    pass over a full-size flat output). ``relu``: ReLU applied in that copy (the fused
    ``conv + ReLU`` of a layer followed by one; no pass of its own over ``y``).
    ``masked``: values where ``mask`` (y's shape) is ``<= 0`` are written as 0 (an input
    gradient whose input was a ReLU's output: that ReLU's gradient rule, applied here).
    ``out_hw`` is (H_out, W_out). ``pool``: ``y`` is not written (a placeholder): the
    ReLU's output goes through 2 x 2 max pooling, stride 2, in the same copy, into
    ``py`` (N, G*og, H_out // 2, W_out // 2) with the winners' flat indices in ``pidx``
    (:func:`_pool_rows`); ``rows`` is then even. The conv's own output is never stored.
    """
    n_img, n_grp, n_b4, n_b1 = xf.shape[0], w4.shape[0], w4.shape[1], w1.shape[1]
    og_c = 4 * n_b4 + n_b1
    og = (py.shape[1] if pool else y.shape[1]) // n_grp
    oh, ow = out_hw
    L = lanes(xf)
    n_c = (oh + rows - 1) // rows
    for t in prange(n_img * n_c):
        i, r0 = t // n_c, t % n_c * rows
        r1 = min(oh, r0 + rows)
        n_blk = ((r1 - r0) * wp + 4 * L - 1) // (4 * L)
        buf = np.empty((og_c, n_blk * 4 * L), xf.dtype)
        x = xf[i]
        for g in range(n_grp):
            base = g * gstride + r0 * wp
            for blk in range(n_blk):
                at = blk * 4 * L
                for b in range(n_b4):
                    _block4(x, base + at, w4[g, b], b4[g, b], offs, buf, 4 * b, at)
                for j in range(n_b1):
                    _block1(x, base + at, w1[g, j], b1[g, j], offs, buf[4 * n_b4 + j], at)
            for o in range(og):
                if pool:
                    _pool_rows(buf[o], wp, r0, r1, ow, py[i, g * og + o], pidx[i, g * og + o])
                    continue
                out, src = y[i, g * og + o], buf[o]
                if relu or masked:
                    flat = out.ravel()
                    m = mask[i, g * og + o].ravel()
                    for r in range(r0, r1):
                        at = (r - r0) * wp
                        if masked:
                            _copy_where(flat, r * ow, src, at, m, r * ow, ow)
                        else:
                            _copy_where(flat, r * ow, src, at, src, at, ow)
                    continue
                for r in range(r0, r1):  # slice copies: an element loop is not vectorised
                    row = (r - r0) * wp
                    out[r, :] = src[row : row + ow]


@njit(parallel=True, **_OPTS)
def pack(x, mask, masked, top, left, hp, wp, xf, bad):
    """x (N, C, H, W) into xf (N, C*hp*wp + slack): zero-padded planes, then zeros.

    One plane per task; every value of ``xf`` is written once (the padding and the slack
    with zeros). ``masked``: values where ``mask`` (x's shape) is ``<= 0`` become 0 (the
    ReLU gradient's rule, applied to a gradient as it is packed); else ``mask`` is unused.
    ``bad`` (N*C or empty): ``bad[t] = 1`` when plane ``t`` holds a NaN or an infinity
    (checked in cache, as it is packed); an empty ``bad``: no check.
    """
    n, c, h, w = x.shape
    plane = hp * wp
    xflat, flat, mflat = x.ravel(), xf.ravel(), mask.ravel()
    size = xf.shape[1]
    for t in prange(n * c):  # index loops, not slices: a slice builds a counted view
        i, ch = t // c, t % c
        at = i * size + ch * plane
        for j in range(at, at + top * wp):
            flat[j] = 0
        for r in range(h):
            row = at + (top + r) * wp
            for j in range(row, row + left):
                flat[j] = 0
            if masked:
                _copy_where(flat, row + left, xflat, (t * h + r) * w, mflat, (t * h + r) * w, w)
            else:
                _copy(flat, row + left, xflat, (t * h + r) * w, w)
            for j in range(row + left + w, row + wp):
                flat[j] = 0
        for j in range(at + (top + h) * wp, at + plane):
            flat[j] = 0
        if bad.size and _nonfinite(flat, at, plane):
            bad[t] = 1
        if ch == c - 1:
            for j in range(i * size + c * plane, (i + 1) * size):
                flat[j] = 0
