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
than 4 in a group) take a 1-channel x 4-vector block. The weight-gradient loops block
4 channels x 4 kernel entries the same way, summing over positions in their registers;
with few channels the work is split over images (each task lays its images out in the
flat layout in buffers of its own and keeps a partial sum, added up in task order),
otherwise over channel and kernel-entry blocks.

Tasks are independent (no two write the same value) and every sum runs in a fixed order,
so results do not depend on the number of threads or on how tasks are handed out.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .simd import lanes, veven, vfma, vload, vpick, vsplat, vstore, vstore_index, vzero

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


@njit(inline="always", **_OPTS)
def _wgrad4(x, d0, d1, d2, d3, g0, g1, g2, g3, r0, r1, r2, r3, k, p0, p1):
    """Add ``sum_p g_j[p] * x[d_m + p]`` (p in p0..p1, by vectors) into ``r_j[k + m]``.

    4 channels ``j`` x 4 kernel entries ``m``: 16 vector accumulators held in registers,
    4 input and 4 gradient loads per 16 fused multiply-adds.
    """
    L = lanes(x)
    a00, a01 = vload(r0[k], 0), vload(r0[k + 1], 0)
    a02, a03 = vload(r0[k + 2], 0), vload(r0[k + 3], 0)
    a10, a11 = vload(r1[k], 0), vload(r1[k + 1], 0)
    a12, a13 = vload(r1[k + 2], 0), vload(r1[k + 3], 0)
    a20, a21 = vload(r2[k], 0), vload(r2[k + 1], 0)
    a22, a23 = vload(r2[k + 2], 0), vload(r2[k + 3], 0)
    a30, a31 = vload(r3[k], 0), vload(r3[k + 1], 0)
    a32, a33 = vload(r3[k + 2], 0), vload(r3[k + 3], 0)
    for p in range(p0, p1, L):
        x0, x1 = vload(x, d0 + p), vload(x, d1 + p)
        x2, x3 = vload(x, d2 + p), vload(x, d3 + p)
        e = vload(g0, p)
        a00, a01 = vfma(e, x0, a00), vfma(e, x1, a01)
        a02, a03 = vfma(e, x2, a02), vfma(e, x3, a03)
        e = vload(g1, p)
        a10, a11 = vfma(e, x0, a10), vfma(e, x1, a11)
        a12, a13 = vfma(e, x2, a12), vfma(e, x3, a13)
        e = vload(g2, p)
        a20, a21 = vfma(e, x0, a20), vfma(e, x1, a21)
        a22, a23 = vfma(e, x2, a22), vfma(e, x3, a23)
        e = vload(g3, p)
        a30, a31 = vfma(e, x0, a30), vfma(e, x1, a31)
        a32, a33 = vfma(e, x2, a32), vfma(e, x3, a33)
    vstore(r0[k], 0, a00), vstore(r0[k + 1], 0, a01)
    vstore(r0[k + 2], 0, a02), vstore(r0[k + 3], 0, a03)
    vstore(r1[k], 0, a10), vstore(r1[k + 1], 0, a11)
    vstore(r1[k + 2], 0, a12), vstore(r1[k + 3], 0, a13)
    vstore(r2[k], 0, a20), vstore(r2[k + 1], 0, a21)
    vstore(r2[k + 2], 0, a22), vstore(r2[k + 3], 0, a23)
    vstore(r3[k], 0, a30), vstore(r3[k + 1], 0, a31)
    vstore(r3[k + 2], 0, a32), vstore(r3[k + 3], 0, a33)


@njit(inline="always", **_OPTS)
def _wgrad1(x, d0, d1, d2, d3, g0, r0, k, p0, p1):
    """:func:`_wgrad4` for one leftover channel: 1 channel x 4 kernel entries."""
    L = lanes(x)
    a0, a1 = vload(r0[k], 0), vload(r0[k + 1], 0)
    a2, a3 = vload(r0[k + 2], 0), vload(r0[k + 3], 0)
    for p in range(p0, p1, L):
        e = vload(g0, p)
        a0 = vfma(e, vload(x, d0 + p), a0)
        a1 = vfma(e, vload(x, d1 + p), a1)
        a2 = vfma(e, vload(x, d2 + p), a2)
        a3 = vfma(e, vload(x, d3 + p), a3)
    vstore(r0[k], 0, a0), vstore(r0[k + 1], 0, a1)
    vstore(r0[k + 2], 0, a2), vstore(r0[k + 3], 0, a3)


@njit(parallel=True, **_OPTS)
def conv_weight_grad(xf, gf, offs, gstride, n_b4, kb_per_task, chunk, gwv):
    """``gwv[g, o, k]`` (lanes summed) ``= sum_{n, p} gf[n, g*og+o, p] * xf[n, g*gs+offs[k]+p]``.

    xf (N, Lx); gf (N, G*og, Pp) holding zeros on the garbage columns and the tail; offs
    (K4,) padded to a multiple of 4; gwv (G, og, K4, lanes), zeroed by the caller, gets
    one partial sum per lane. Channels ``o < 4 * n_b4`` go in blocks of 4 channels x 4
    kernel entries, the rest 1 x 4. A task owns one channel block and ``kb_per_task``
    blocks of kernel entries and walks the images and positions in chunks of 512 (so the
    input it reads stays in L1), adding each chunk into ``gwv``: a fixed order, hence
    deterministic.
    """
    n_img, pp = gf.shape[0], gf.shape[2]
    n_grp, og, k4 = gwv.shape[0], gwv.shape[1], gwv.shape[2]
    n_o, n_kb = n_b4 + og - 4 * n_b4, k4 // 4
    n_kc = (n_kb + kb_per_task - 1) // kb_per_task
    for t in prange(n_grp * n_o * n_kc):
        g, ob, kc = t // (n_o * n_kc), t // n_kc % n_o, t % n_kc
        for i in range(n_img):
            x = xf[i]
            for p0 in range(0, pp, chunk):
                p1 = min(p0 + chunk, pp)
                for kb in range(kc * kb_per_task, min(n_kb, (kc + 1) * kb_per_task)):
                    k = 4 * kb
                    d0, d1 = g * gstride + offs[k], g * gstride + offs[k + 1]
                    d2, d3 = g * gstride + offs[k + 2], g * gstride + offs[k + 3]
                    if ob < n_b4:
                        o = 4 * ob
                        c = g * og + o
                        _wgrad4(x, d0, d1, d2, d3, gf[i, c], gf[i, c + 1], gf[i, c + 2],
                                gf[i, c + 3], gwv[g, o], gwv[g, o + 1], gwv[g, o + 2],
                                gwv[g, o + 3], k, p0, p1)
                    else:
                        o = 4 * n_b4 + ob - n_b4
                        _wgrad1(x, d0, d1, d2, d3, gf[i, g * og + o], gwv[g, o], k, p0, p1)



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


@njit(parallel=True, **_OPTS)
def lay_rows(gy, mask, masked, wp, gf, sums):
    """gy (N, O, H_out, W_out) into gf (N, O, Pp): rows ``wp`` apart, zeros elsewhere.

    The layout the weight-gradient loop reads (the garbage columns and the tail zero); one
    plane per task. ``masked``: values where ``mask`` (gy's shape) is ``<= 0`` become 0
    (a fused ReLU's gradient rule). ``sums[n * O + o]`` gets the plane's sum (for the
    bias gradient; ``Pp`` is a multiple of 4 vectors).
    """
    n, o, oh, ow = gy.shape
    pp = gf.shape[2]
    gflat, mflat, flat = gy.ravel(), mask.ravel(), gf.ravel()
    for t in prange(n * o):
        at, src = t * pp, t * oh * ow
        for r in range(oh):
            row = at + r * wp
            if masked:
                _copy_where(flat, row, gflat, src + r * ow, mflat, src + r * ow, ow)
            else:
                _copy(flat, row, gflat, src + r * ow, ow)
            for j in range(row + ow, row + wp):
                flat[j] = 0
        for j in range(at + oh * wp, at + pp):
            flat[j] = 0
        sums[t] = _vsum(flat, at, pp)


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


@njit(parallel=True, **_OPTS)
def conv_weight_grad_images(xs, gy, mask, masked, top, left, hp, wp, pp, slack, offs, gstride,
                            n_b4, per_task, gwp, gbp, bad):
    """The weight gradient as :func:`conv_weight_grad`, split over images instead.

    xs (N, C, H, W) and gy (N, O, H_out, W_out) in their own layouts: each task lays one
    image at a time out in the flat padded layout in two buffers of its own (in cache:
    no padded copy of the whole batch), input at ``(top, left)`` of ``hp x wp`` planes
    plus ``slack`` zeros, gradient rows ``wp`` apart in ``pp`` positions, zeros elsewhere.
    gwp (T, G, og, K4, lanes), zeroed by the caller: task ``t`` sums images
    ``t * per_task ...`` into ``gwp[t]`` (the caller adds the tasks' partial sums in task
    order: deterministic). For each chunk of 1024 positions of an image, every channel
    block and every kernel entry is done before the next chunk, so the input and the
    gradient are read from memory once (the other split reads them once per task; for
    few channels that traffic, not the multiply-adds, sets the time).
    gbp (T, O) gets each task's sums of the gradient per channel (the bias gradient's
    partials, from the laid-out rows in cache). ``masked``: the gradient is taken as 0
    where ``mask`` (gy's shape) is ``<= 0`` (a fused ReLU's gradient rule, applied as
    the rows are laid out); else ``mask`` is unused. ``bad[t]`` is set to 1 when task
    ``t`` finds a NaN or an infinity in its images: the loop's zero products with cells
    beside the windows would then carry it into the sums, and the caller must take the
    exact path (checked on the laid-out images in cache: no pass of its own).
    """
    n_img, n_c, h, w = xs.shape
    n_out, oh, ow = gy.shape[1], gy.shape[2], gy.shape[3]
    n_grp, og, k4 = gwp.shape[1], gwp.shape[2], gwp.shape[3]
    plane = hp * wp
    n_o, n_kb = n_b4 + og - 4 * n_b4, k4 // 4
    chunk = 1024
    for t in prange(gwp.shape[0]):
        acc = gwp[t]
        x = np.zeros(n_c * plane + slack, gwp.dtype)  # the padding stays zero
        gb = np.zeros((n_out, pp), gwp.dtype)  # the garbage columns and the tail stay zero
        for i in range(t * per_task, min(n_img, (t + 1) * per_task)):
            for c in range(n_c):
                for r in range(h):
                    at = c * plane + (r + top) * wp + left
                    x[at : at + w] = xs[i, c, r]
            if _nonfinite(x, 0, n_c * plane):
                bad[t] = 1
            for c in range(n_out):
                row = gb[c]
                if masked:
                    src, m = gy[i, c].ravel(), mask[i, c].ravel()
                    for r in range(oh):
                        _copy_where(row, r * wp, src, r * ow, m, r * ow, ow)
                else:
                    for r in range(oh):
                        row[r * wp : r * wp + ow] = gy[i, c, r]
                gbp[t, c] += _vsum(row, 0, pp)
            for p0 in range(0, pp, chunk):
                p1 = min(p0 + chunk, pp)
                for g in range(n_grp):
                    for ob in range(n_o):
                        for kb in range(n_kb):
                            k = 4 * kb
                            d0, d1 = g * gstride + offs[k], g * gstride + offs[k + 1]
                            d2, d3 = g * gstride + offs[k + 2], g * gstride + offs[k + 3]
                            if ob < n_b4:
                                o = 4 * ob
                                c = g * og + o
                                _wgrad4(x, d0, d1, d2, d3, gb[c], gb[c + 1], gb[c + 2], gb[c + 3],
                                        acc[g, o], acc[g, o + 1], acc[g, o + 2], acc[g, o + 3],
                                        k, p0, p1)
                            else:
                                o = 4 * n_b4 + ob - n_b4
                                _wgrad1(x, d0, d1, d2, d3, gb[g * og + o], acc[g, o], k, p0, p1)
