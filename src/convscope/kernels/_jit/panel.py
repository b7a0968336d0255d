"""Convolution as a matrix product, blocked for the caches (any stride, padding, dilation).

Per group, the forward pass is ``Y (og x P) = W (og x K) @ B (K x P)``: ``P = N * H_out *
W_out`` output positions of the whole batch, ``K = C/G * kh * kw`` kernel entries and
``B`` the im2col matrix (row ``k = (c, u, v)``, column ``p = (n, r, q)``: the input cell
under kernel entry ``k`` at output ``p``, 0 on the padding). ``B`` is never stored whole:
a task packs a *panel* of it, ``kc`` rows x ``nc`` positions (:func:`_pack_cols`, in L1/L2),
multiplies it by the matching columns of ``W`` into an ``oc x nc`` block of ``Y`` kept in
cache (:func:`_mm4x4`: 4 output channels x 4 vectors of positions in 16 vector
accumulators, the weights broadcast), and so on along ``K``; then it copies its block of
``Y`` out to the ``(N, O, H_out, W_out)`` result (positions of one image are contiguous in
each output plane, so a block is a few row copies). Tasks own disjoint blocks of ``Y``.

The input gradient is ``B' = W^T @ GY`` scattered back onto the input (col2im): a task owns
one image and a few input channels, so its scatter never meets another task's. The weight
gradient is ``GW = GY @ B^T``: a task owns a block of kernel entries and output channels,
walks all positions in panels, and keeps each sum's lanes apart (added by the caller).
Every sum runs in a fixed order: results do not depend on threads or task hand-out.

For layers with many channels the forward has the roles swapped (:func:`nhwc_forward`):
the output channels are the vector lanes, the input values are broadcast from a copy of
the task's input rows laid out channels last, and nothing is packed.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .rows import _clamp, _copy, _copy_where, _sum
from .simd import lanes, vadd, veven, vfma, vload, vsplat, vstore, vzero, vziphi, vziplo
from .tasks import next_task

__all__ = ["channels_last", "col2im", "nhwc_forward", "pack_all", "panel_forward",
           "panel_grad_input", "panel_grad_weight", "pad_planes", "phase_grad_input",
           "pointwise_forward", "pointwise_grad_weight", "transpose_grad", "transpose_planes"]

_OPTS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


@njit(inline="always", **_OPTS)
def _zero(a, at, n):
    """``a[at : at + n] = 0`` by vectors, the last one overlapping (nothing written past
    the run: the next cells may be another task's); values for runs under a vector (a
    value at a time, 16 cells a cycle or so, was a third of a padding pass)."""
    L = lanes(a)
    if n < L:
        for j in range(at, at + n):
            a[j] = 0
        return
    zero = vzero(a)
    for j in range(at, at + n - L, L):
        vstore(a, j, zero)
    vstore(a, at + n - L, zero)


@njit(inline="always", **_OPTS)
def _gather(dst, d, src, s, n, step):
    """``dst[d + j] = src[s + j * step]`` for ``j < n``: by vectors for steps 1 and 2 (two
    loads and their even lanes), value by value otherwise and for the tail."""
    if step == 1:
        _copy(dst, d, src, s, n)
        return
    j = 0
    if step == 2:
        L = lanes(dst)
        while j + L <= n and s + 2 * (j + L) <= src.size:
            at = s + 2 * j
            vstore(dst, d + j, veven(vload(src, at), vload(src, at + L)))
            j += L
    for m in range(j, n):
        dst[d + m] = src[s + m * step]


@njit(inline="always", **_OPTS)
def _zero_spill(a, at, n):
    """``a[at : at + n] = 0`` by whole vectors: up to a vector's worth of zeros *past* the
    run too (``a`` has that much slack; a later write covers them)."""
    L = lanes(a)
    zero = vzero(a)
    for j in range(at, at + n, L):
        vstore(a, j, zero)


@njit(inline="always", **_OPTS)
def _gather_spill(dst, d, src, s, n, step):
    """:func:`_gather` by whole vectors for steps 1 and 2, spilling past the run as
    :func:`_zero_spill` (the runs of a panel row are written in order, each covering the
    spill of the one before); reads stay inside ``src`` (else :func:`_gather`)."""
    L = lanes(dst)
    full = (n + L - 1) // L * L
    if step == 1 and s + full <= src.size:
        for j in range(0, n, L):
            vstore(dst, d + j, vload(src, s + j))
    elif step == 2 and s + 2 * full <= src.size:
        for j in range(0, n, L):
            at = s + 2 * j
            vstore(dst, d + j, veven(vload(src, at), vload(src, at + L)))
    else:
        _gather(dst, d, src, s, n, step)


@njit(inline="always", **_OPTS)
def _scatter_add(dst, d, src, s, n, step, limit):
    """``dst[d + j * step] += src[s + j]`` for ``j < n`` (the adjoint of :func:`_gather`).

    Step 2 by vectors: the source interleaved with zeros, added to two vectors of ``dst``;
    those never reach ``dst[limit]`` (the row's end: the cells beyond may be another
    task's, and a read-modify-write of them, even adding 0, would race with it).
    """
    L = lanes(dst)
    j = 0
    if step == 1:
        while j + L <= n:
            vstore(dst, d + j, vadd(vload(dst, d + j), vload(src, s + j)))
            j += L
    elif step == 2:
        zero = vzero(dst)
        while j + L <= n and d + 2 * (j + L) <= limit:
            v = vload(src, s + j)
            at = d + 2 * j
            vstore(dst, at, vadd(vload(dst, at), vziplo(v, zero)))
            vstore(dst, at + L, vadd(vload(dst, at + L), vziphi(v, zero)))
            j += L
    for m in range(j, n):
        dst[d + m * step] += src[s + m]


@njit(inline="always", **_OPTS)
def _cols(w, off, sw, ow):
    """Output columns ``[qa, qb)`` whose input column ``q * sw + off`` lies in ``[0, w)``."""
    qa = 0 if off >= 0 else (sw - 1 - off) // sw
    qb = min(ow, (w - 1 - off) // sw + 1)
    return qa, qb


@njit(inline="always", **_OPTS)
def _segments(geo, n_ch, h, w, p_total, p0, nc, segs):
    """The positions ``p0 .. p0 + nc`` (up to ``p_total``) as runs along output rows:
    ``segs[i] = (offset in the panel row, first input cell of the image, input row of
    the kernel's top row, first column, end column)``; returns how many.

    The same for every row of a panel, so :func:`_pack_cols` does no division per run.
    """
    sh, pt, oh, ow = geo[2], geo[6], geo[8], geo[9]
    limg = oh * ow
    end = min(p0 + nc, p_total)
    m = 0
    p = p0
    while p < end:
        n = p // limg
        rq = p - n * limg
        r = rq // ow
        q0 = rq - r * ow
        q1 = min(ow, q0 + end - p)
        segs[m, 0], segs[m, 1], segs[m, 2] = p - p0, n * n_ch * h * w, r * sh - pt
        segs[m, 3], segs[m, 4] = q0, q1
        m += 1
        p += q1 - q0
    return m


@njit(inline="always", **_OPTS)
def _pack_cols(xflat, c0, h, w, geo, segs, m, used, k0, k1, nc, buf, base):
    """``buf[base + (k - k0) * nc + j]`` = im2col row ``k`` (channel ``c0 + k // (kh*kw)``) at the
    panel's position ``j``, for ``k0 <= k < k1``: the runs ``segs[:m]`` (:func:`_segments`,
    ``used`` positions), each one strided copy between zeros for the padding, all by whole
    vectors (``buf`` has a vector of slack: narrow rows, 7 or 14 wide in ResNet, cost a
    few vector moves each); zeros after the last position.

    ``geo = (kh, kw, sh, sw, dh, dw, pt, pl, oh, ow)``.
    """
    kh, kw, sw, dh, dw, pl, ow = geo[0], geo[1], geo[3], geo[4], geo[5], geo[7], geo[9]
    khw = kh * kw
    for k in range(k0, k1):
        plane = (c0 + k // khw) * h * w
        u, v = k % khw // kw, k % kw
        row = base + (k - k0) * nc
        off = v * dw - pl
        qa, qb = _cols(w, off, sw, ow)
        for i in range(m):
            dst, q0, q1 = row + segs[i, 0], segs[i, 3], segs[i, 4]
            ih = segs[i, 2] + u * dh
            a, b = max(q0, qa), min(q1, qb)
            if ih < 0 or ih >= h or b <= a:
                _zero_spill(buf, dst, q1 - q0)
            else:  # in this order: each write covers the previous one's spill
                _zero_spill(buf, dst, a - q0)
                src = segs[i, 1] + plane + ih * w + a * sw + off
                _gather_spill(buf, dst + a - q0, xflat, src, b - a, sw)
                _zero_spill(buf, dst + b - q0, q1 - b)
        _zero(buf, row + used, nc - used)


@njit(inline="always", **_OPTS)
def _plain(geo, h, w):
    """Stride 1 and every window inside the input (no padding: the caller padded it): each
    run of a panel row is then a plain copy (:func:`_pack_plain`)."""
    return (geo[2] == 1 and geo[3] == 1 and geo[6] == 0 and geo[7] == 0
            and geo[8] + geo[4] * (geo[0] - 1) <= h and geo[9] + geo[5] * (geo[1] - 1) <= w)


@njit(inline="always", **_OPTS)
def _runs(geo, n_ch, h, w, p_total, p0, nc, segs):
    """:func:`_segments`, and for a plain geometry each run as ``(offset in the panel row,
    first input cell under kernel entry (0, 0), -, -, length)`` for :func:`_pack_plain`."""
    m = _segments(geo, n_ch, h, w, p_total, p0, nc, segs)
    if _plain(geo, h, w):
        for i in range(m):
            segs[i, 1] += segs[i, 2] * w + segs[i, 3]
            segs[i, 4] -= segs[i, 3]
    return m


@njit(inline="always", **_OPTS)
def _pack_plain(xflat, c0, h, w, geo, segs, m, used, k0, k1, nc, buf, base):
    """:func:`_pack_cols` for a plain geometry (:func:`_plain`), runs from :func:`_runs`:
    each run is the input row under the kernel entry, copied by whole vectors (its spill
    covered by the next run), the last run of a row exactly (no spill past the row: the
    next row may be another task's). 2.5-2.8x faster than the general packing (0.19
    against 0.48 ns a value for 16-wide rows, in cache)."""
    kh, kw, dh, dw = geo[0], geo[1], geo[4], geo[5]
    khw = kh * kw
    L = lanes(buf)
    for k in range(k0, k1):
        koff = (c0 + k // khw) * h * w + (k % khw // kw) * dh * w + (k % kw) * dw
        row = base + (k - k0) * nc
        for i in range(m):
            d, s, n = row + segs[i, 0], segs[i, 1] + koff, segs[i, 4]
            full = (n + L - 1) // L * L
            if i + 1 < m and s + full <= xflat.size:
                for j in range(0, n, L):
                    vstore(buf, d + j, vload(xflat, s + j))
            else:
                _copy(buf, d, xflat, s, n)
        _zero(buf, row + used, nc - used)


@njit(inline="always", **_OPTS)
def _pack(xflat, c0, h, w, geo, segs, m, used, k0, k1, nc, buf, base):
    """Pack panel rows ``k0 .. k1`` (runs from :func:`_runs`): :func:`_pack_plain` where
    the geometry is plain, else :func:`_pack_cols`."""
    if _plain(geo, h, w):
        _pack_plain(xflat, c0, h, w, geo, segs, m, used, k0, k1, nc, buf, base)
    else:
        _pack_cols(xflat, c0, h, w, geo, segs, m, used, k0, k1, nc, buf, base)


@njit(inline="always", **_OPTS)
def _pack_table(xflat, c0, h, w, n_ch, tab, p0, used, k0, k1, nc, buf, base):
    """:func:`_pack_cols` for narrow planes, through a table: ``tab[(u, v), j]`` is the input
    cell (``ih * w + iw``) under kernel entry ``(u, v)`` at output position ``j`` of an
    image, or -1 on the padding. Runs along output rows of 2 to 7 values cost a few vector
    moves each there (5 ns a value on 2 x 2 planes); here a value is one table read.
    """
    khw, limg = tab.shape[0], tab.shape[1]
    img = n_ch * h * w
    for k in range(k0, k1):
        uv = k % khw
        row = base + (k - k0) * nc
        n = p0 // limg
        j = p0 - n * limg
        src = n * img + (c0 + k // khw) * h * w
        i = 0
        while i < used:
            run = min(limg - j, used - i)
            for t in range(run):
                o = tab[uv, j + t]
                v = xflat[src + max(o, 0)]
                buf[row + i + t] = v if o >= 0 else 0
            i += run
            j = 0
            src += img
        _zero(buf, row + used, nc - used)


@njit(inline="always", **_OPTS)
def _four(g, og, o):
    """The 4 output channels of group ``g`` from channel ``o`` of its ``og`` (a block past
    the group's last channel repeats it: computed and dropped)."""
    last = og - 1
    return (g * og + min(o, last), g * og + min(o + 1, last), g * og + min(o + 2, last),
            g * og + min(o + 3, last))


@njit(inline="always", **_OPTS)
def _write(yflat, dst, acc, src, n, relu, hi):
    """Copy ``n`` sums out of a task's block into the result, with the fused activation:
    ``relu`` the ReLU, ``hi < inf`` a clamp to ``hi`` too (ReLU6)."""
    if relu:
        _copy_where(yflat, dst, acc, src, acc, src, n)
    else:
        _copy(yflat, dst, acc, src, n)
    if hi < np.inf:
        _clamp(yflat, dst, n, -np.inf, hi)


@njit(inline="always", **_OPTS)
def _mm4x4(b, bat, nc, kc, w, r0, r1, r2, r3, ks, acc, at, stride, init, i0, i1, i2, i3):
    """4 rows x 4 vectors: ``acc[at + j*stride + m*L ...]`` (+)= ``sum_k w[r_j + k*ks] *
    b[bat + k*nc + m*L ...]`` for ``k < kc``; ``init``: start from ``i_j`` instead.

    The weights are read where they lie (row ``j`` from ``r_j``, ``ks`` apart): a layer's
    own ``(O, K)`` array (``ks = 1``), its transpose (``ks = K``), or a packed one; no
    per-call packing (a transposing copy of 512 x 4608 weights took 3-14 ms).
    """
    L = lanes(b)
    if init:
        a00, a10, a20, a30 = vsplat(b, i0), vsplat(b, i1), vsplat(b, i2), vsplat(b, i3)
        a01, a02, a03 = a00, a00, a00
        a11, a12, a13 = a10, a10, a10
        a21, a22, a23 = a20, a20, a20
        a31, a32, a33 = a30, a30, a30
    else:
        r = at
        a00, a01 = vload(acc, r), vload(acc, r + L)
        a02, a03 = vload(acc, r + 2 * L), vload(acc, r + 3 * L)
        r += stride
        a10, a11 = vload(acc, r), vload(acc, r + L)
        a12, a13 = vload(acc, r + 2 * L), vload(acc, r + 3 * L)
        r += stride
        a20, a21 = vload(acc, r), vload(acc, r + L)
        a22, a23 = vload(acc, r + 2 * L), vload(acc, r + 3 * L)
        r += stride
        a30, a31 = vload(acc, r), vload(acc, r + L)
        a32, a33 = vload(acc, r + 2 * L), vload(acc, r + 3 * L)
    for k in range(kc):
        p = bat + k * nc
        x0, x1 = vload(b, p), vload(b, p + L)
        x2, x3 = vload(b, p + 2 * L), vload(b, p + 3 * L)
        q = k * ks
        e = vsplat(b, w[r0 + q])
        a00, a01 = vfma(e, x0, a00), vfma(e, x1, a01)
        a02, a03 = vfma(e, x2, a02), vfma(e, x3, a03)
        e = vsplat(b, w[r1 + q])
        a10, a11 = vfma(e, x0, a10), vfma(e, x1, a11)
        a12, a13 = vfma(e, x2, a12), vfma(e, x3, a13)
        e = vsplat(b, w[r2 + q])
        a20, a21 = vfma(e, x0, a20), vfma(e, x1, a21)
        a22, a23 = vfma(e, x2, a22), vfma(e, x3, a23)
        e = vsplat(b, w[r3 + q])
        a30, a31 = vfma(e, x0, a30), vfma(e, x1, a31)
        a32, a33 = vfma(e, x2, a32), vfma(e, x3, a33)
    r = at
    vstore(acc, r, a00), vstore(acc, r + L, a01), vstore(acc, r + 2 * L, a02)
    vstore(acc, r + 3 * L, a03)
    r += stride
    vstore(acc, r, a10), vstore(acc, r + L, a11), vstore(acc, r + 2 * L, a12)
    vstore(acc, r + 3 * L, a13)
    r += stride
    vstore(acc, r, a20), vstore(acc, r + L, a21), vstore(acc, r + 2 * L, a22)
    vstore(acc, r + 3 * L, a23)
    r += stride
    vstore(acc, r, a30), vstore(acc, r + L, a31), vstore(acc, r + 2 * L, a32)
    vstore(acc, r + 3 * L, a33)


@njit(parallel=True, **_OPTS)
def pack_all(x, geo, n_grp, kc, pp, tab, out, threads):
    """The whole im2col matrix of every group: ``out[(g * K + k) * pp + p]`` (``pp >= P``
    positions a row, zeros after ``P``; ``out`` has a vector of slack at its end).

    For :func:`panel_forward` when the batch has few positions: then several tasks share
    each panel, and packing it once for all of them is cheaper than once per task.
    A task packs ``kc`` rows of one group.
    """
    n_img, n_ch, h, w = x.shape
    kh, kw, oh = geo[0], geo[1], geo[8]
    cg = n_ch // n_grp
    k_all = cg * kh * kw
    p_total = n_img * oh * geo[9]
    n_kc = (k_all + kc - 1) // kc
    xflat = x.ravel()
    n_tasks = n_grp * n_kc
    counter = np.zeros(1, np.int64)
    for _ in prange(threads):  # one worker per thread, tasks on demand (.tasks)
        while True:
            t = next_task(counter, n_tasks, threads)
            if t < 0:
                break
            g, k0 = t // n_kc, t % n_kc * kc
            segs = np.empty((n_img * oh + 2, 5), np.int64)
            k1, at = min(k_all, k0 + kc), (g * k_all + k0) * pp
            if tab.size:
                _pack_table(xflat, g * cg, h, w, n_ch, tab, 0, p_total, k0, k1, pp, out, at)
            else:
                m = _runs(geo, n_ch, h, w, p_total, 0, pp, segs)
                _pack(xflat, g * cg, h, w, geo, segs, m, p_total, k0, k1, pp, out, at)


@njit(parallel=True, **_OPTS)
def panel_forward(x, w, bias, geo, kc, nc, oc, relu, hi, packed, pp, tab, y, threads):
    """``y[n, g*og + o, r, q] = bias[o] + sum_k W[o, k] * B[k, (n, r, q)]`` per group ``g``.

    x (N, C, H, W); w (O, C/G, kh, kw) read in place (a block of 4 channels past a group's
    last one repeats that channel: computed and dropped); bias (O,); ``geo`` as
    :func:`_pack_cols`; y (N, O, H_out, W_out).
    A task owns ``nc`` positions (a multiple of 4 vectors) x ``oc`` channels (a multiple
    of 4) of one group; it packs ``kc`` rows of ``B`` at a time into a panel (in L2),
    multiplies every block of 4 channels (their ``kc`` weights in L1) by each block of 4
    vectors of positions, and finally copies its block out (``relu``: the ReLU applied
    there; ``hi < inf``: values clamped to ``hi`` too, ReLU6).
    ``pp > 0``: the panels are read from ``packed``, the whole im2col matrix laid out by
    :func:`pack_all` with rows ``pp`` long, instead of packed by each task.
    """
    n_img, n_ch, h, wd = x.shape
    n_out, cg = y.shape[1], w.shape[1]
    n_grp = n_ch // cg
    og = n_out // n_grp
    og4 = (og + 3) // 4 * 4
    k_all = cg * w.shape[2] * w.shape[3]
    oh, ow = geo[8], geo[9]
    limg = oh * ow
    p_total = n_img * limg
    L = lanes(x)
    n_pc, n_oc = (p_total + nc - 1) // nc, (og4 + oc - 1) // oc
    xflat, wflat, yflat = x.ravel(), w.ravel(), y.ravel()
    n_tasks = n_grp * n_pc * n_oc
    counter = np.zeros(1, np.int64)
    for _ in prange(threads):  # one worker per thread, tasks on demand (.tasks)
        while True:
            t = next_task(counter, n_tasks, threads)
            if t < 0:
                break
            g, pc, oi = t // (n_pc * n_oc), t // n_oc % n_pc, t % n_oc
            p0, o0 = pc * nc, oi * oc
            o1 = min(og4, o0 + oc)
            panel = np.empty(0 if pp else kc * nc + L, x.dtype)  # + L: slack for the spills
            acc = np.empty((o1 - o0) * nc, x.dtype)
            segs = np.empty((nc + 2, 5), np.int64)
            m = 0 if pp else _runs(geo, n_ch, h, wd, p_total, p0, nc, segs)
            used = min(nc, p_total - p0)
            for k0 in range(0, k_all, kc):
                k1 = min(k_all, k0 + kc)
                if pp:
                    b, at, stride = packed, (g * k_all + k0) * pp + p0, pp
                else:
                    if tab.size:
                        _pack_table(xflat, g * cg, h, wd, n_ch, tab, p0, used, k0, k1, nc,
                                    panel, 0)
                    else:
                        _pack(xflat, g * cg, h, wd, geo, segs, m, used, k0, k1, nc, panel, 0)
                    b, at, stride = panel, 0, nc
                for o in range(o0, o1, 4):  # the 4 channels' weights stay in L1 across jb
                    c0, c1, c2, c3 = _four(g, og, o)
                    for jb in range(0, nc, 4 * L):
                        _mm4x4(b, at + jb, stride, k1 - k0, wflat, c0 * k_all + k0,
                               c1 * k_all + k0, c2 * k_all + k0, c3 * k_all + k0, 1, acc,
                               (o - o0) * nc + jb, nc, k0 == 0, bias[c0], bias[c1], bias[c2],
                               bias[c3])
            end = min(p0 + nc, p_total)
            for o in range(o0, min(o1, og)):
                p = p0
                while p < end:
                    n = p // limg
                    rq = p - n * limg
                    run = min(limg - rq, end - p)
                    dst = (n * n_out + g * og + o) * limg + rq
                    src = (o - o0) * nc + p - p0
                    _write(yflat, dst, acc, src, run, relu, hi)
                    p += run


@njit(parallel=True, **_OPTS)
def panel_grad_input(gy, wt, geo, cc, gx, threads):
    """``gx[n, c] = sum over (o, k=(c,u,v), r, q) landing on the cell of W[o, k] * gy[n, o, r, q]``.

    gy (N, O, H_out, W_out); w (O, C/G, kh, kw), read in place (row ``k`` of ``W^T`` is a
    column of the group's ``(og, K)`` matrix); gx (N, C, H, W) is written whole.
    A task owns image ``n`` and ``cc`` channels of one group (a multiple of 4 kernel
    entries, so no block straddles two tasks' channels): it zeroes their planes, then for
    each block of 4 vectors of positions lays ``gy``'s rows out (zeros past the plane),
    computes 4 rows of ``B'`` at a time and adds each onto the input cells it came from.
    """
    n_img, n_out, oh, ow = gy.shape
    n_ch, h, w = gx.shape[1], gx.shape[2], gx.shape[3]
    cg = wt.shape[1]
    n_grp = n_ch // cg
    og = n_out // n_grp
    kh, kw, sw, dh, dw, pl = geo[0], geo[1], geo[3], geo[4], geo[5], geo[7]
    sh, pt = geo[2], geo[6]
    khw, limg = kh * kw, oh * ow
    k_all = cg * khw
    L = lanes(gy)
    nc = 4 * L
    n_cc = (cg + cc - 1) // cc
    gflat, wflat, xflat = gy.ravel(), wt.ravel(), gx.ravel()
    n_tasks = n_img * n_grp * n_cc
    counter = np.zeros(1, np.int64)
    for _ in prange(threads):  # one worker per thread, tasks on demand (.tasks)
        while True:
            t = next_task(counter, n_tasks, threads)
            if t < 0:
                break
            n, g, ci = t // (n_grp * n_cc), t // n_cc % n_grp, t % n_cc
            c0 = g * cg + ci * cc
            c1 = min(g * cg + cg, c0 + cc)
            _zero(xflat, (n * n_ch + c0) * h * w, (c1 - c0) * h * w)
            gb = np.empty(og * nc, gy.dtype)
            rows = np.empty(4 * nc, gy.dtype)
            k0, k1 = (c0 - g * cg) * khw, (c1 - g * cg) * khw
            for l0 in range(0, limg, nc):
                run = min(nc, limg - l0)
                for o in range(og):
                    _copy(gb, o * nc, gflat, (n * n_out + g * og + o) * limg + l0, run)
                    _zero(gb, o * nc + run, nc - run)
                for kb in range(k0 // 4, (k1 + 3) // 4):
                    r = g * og * k_all  # W^T's row k is column k of the group's (og, K) rows
                    k = 4 * kb
                    _mm4x4(gb, 0, nc, og, wflat, r + k, r + min(k + 1, k_all - 1),
                           r + min(k + 2, k_all - 1), r + min(k + 3, k_all - 1), k_all, rows,
                           0, nc, True, 0.0, 0.0, 0.0, 0.0)
                    for k in range(max(k0, 4 * kb), min(k1, 4 * kb + 4)):
                        c = g * cg + k // khw
                        u, v = k % khw // kw, k % kw
                        off = v * dw - pl
                        qa, qb = _cols(w, off, sw, ow)
                        src0 = (k - 4 * kb) * nc - l0
                        p = l0
                        while p < l0 + run:
                            r = p // ow
                            q0 = p - r * ow
                            q1 = min(ow, q0 + l0 + run - p)
                            ih = r * sh + u * dh - pt
                            a, b = max(q0, qa), min(q1, qb)
                            if 0 <= ih < h and a < b:
                                line = ((n * n_ch + c) * h + ih) * w
                                _scatter_add(xflat, line + a * sw + off, rows,
                                             src0 + p - q0 + a, b - a, sw, line + w)
                            p += q1 - q0


@njit(parallel=True, **_OPTS)
def pad_planes(x, pt, pl, hp, wp, out, threads):
    """``out``'s first ``N * C`` planes of ``hp x wp`` = the planes of x (N, C, H, W) at
    row ``pt``, column ``pl``, zeros around (each cell written once; NumPy's slice
    assignment copied the short rows one call each: 1.4 ms for 8 x 128 x 28 x 28); the
    rest of ``out`` (slack) zeroed too."""
    n_pl, h, w = x.shape[0] * x.shape[1], x.shape[2], x.shape[3]
    plane = hp * wp
    xflat = x.ravel()
    per = 16
    n_tasks = (n_pl + per - 1) // per
    counter = np.zeros(1, np.int64)
    for _ in prange(threads):  # one worker per thread, tasks on demand (.tasks)
        while True:
            t = next_task(counter, n_tasks, threads)
            if t < 0:
                break
            p1 = min(n_pl, t * per + per)
            for p in range(t * per, p1):
                at = p * plane
                _zero(out, at, pt * wp + pl)  # the rows above, the first row's left cells
                for r in range(h):
                    row = at + (pt + r) * wp + pl
                    _copy(out, row, xflat, (p * h + r) * w, w)
                    # this row's right cells and the next row's left cells (or the rows below)
                    _zero(out, row + w, (wp - w - pl) + (pl if r + 1 < h else 0))
                _zero(out, at + (pt + h) * wp, (hp - pt - h) * wp)
            if p1 == n_pl:
                _zero(out, n_pl * plane, out.size - n_pl * plane)


@njit(parallel=True, **_OPTS)
def phase_grad_input(gp, hp, wp, wt, kw, rph, cph, tasks, sh, sw, pt, pl, kc, nr, nc, oc, gx,
                     threads):
    """The input gradient of a strided convolution (dilation 1) as one product per
    *phase* of the input, written in place: no scatter, every cell of ``gx`` written once.

    Input row ``ih`` receives from the kernel rows ``u = (ih + pt) mod sh`` (mod ``sh``):
    the rows of phase ``a`` (``ih = sh * m + a - pt``) are a stride-1 product of ``gy``
    with the phase's kernel rows ``u = a + sh * i`` (``ka`` of them; row ``m`` reads
    ``gy`` row ``m - i``), and the same along columns. So phase ``(a, b)`` is ``GX_ab (cg
    x P_ab) = W_ab^T (cg x og*ka*kb) @ B_ab``, where for one kernel entry the rows of
    ``B_ab`` are ``gy``'s planes shifted: with ``gy`` zero-padded to ``hp x wp`` and the
    phase's positions laid out ``wp`` apart too (columns past the phase's are computed
    and dropped), a task's share of each row is one contiguous run of a padded plane,
    copied into its panel as it is (reading the planes in place took the same time). A
    3 x 3 kernel with stride 2 has phases of 4, 2, 2 and 1 entries: 9 in all, no product
    for nothing.

    gp: ``gy`` (N, O, H_out, W_out) padded to (N, O, hp, wp), flat, its row 0 / column 0
    being row ``-rph[0, 3]`` / column ``-cph[0, 3]`` of ``gy``; wt (G, C/G * kh * kw, O/G):
    the weights transposed (:func:`transpose_planes`), each sum's weights in a row;
    ``rph[a] = (ka, m0, mh, pad)``: row phase ``a``'s kernel rows, its first row ``m`` and
    how many lie in the input (``cph[b]`` the same along the columns); ``tasks[t] = (a,
    group, image, first row, first channel)``: a task owns ``nr`` rows of row phase ``a``
    of one image (whole rows of ``gx``, every column phase: no two tasks write one cache
    line) x ``oc`` channels (a multiple of 4), its column phases' sums ``nc`` positions
    apart; gx (N, C, H, W) written whole (a phase with no kernel entry as zeros).
    """
    n_img, n_ch, h, wd = gx.shape
    n_grp, k_all, og = wt.shape
    cg, n_out = n_ch // n_grp, n_grp * og
    khw = k_all // cg
    plane = hp * wp
    last = cg - 1
    L = lanes(gx)
    block = 4 * L
    wflat, xflat = wt.ravel(), gx.ravel()
    n_tasks = tasks.shape[0]
    counter = np.zeros(1, np.int64)
    for _ in prange(threads):  # one worker per thread, tasks on demand (.tasks)
        while True:
            t = next_task(counter, n_tasks, threads)
            if t < 0:
                break
            a, g, n, r0, c0 = tasks[t, 0], tasks[t, 1], tasks[t, 2], tasks[t, 3], tasks[t, 4]
            ka, m0, mh = rph[a, 0], rph[a, 1], rph[a, 2]
            r1 = min(mh, r0 + nr)
            c1 = min((cg + 3) // 4 * 4, c0 + oc)
            size = (c1 - c0) * nc  # one column phase's sums
            used = (r1 - r0) * wp
            full = used // block * block
            acc = np.empty(sw * size + L, gx.dtype)  # + L: the last row's zip reads past it
            panel = np.empty(kc * nc, gx.dtype)
            line = np.empty(wd + 2 * L, gx.dtype)
            if ka == 0:  # rows no kernel entry reaches: zeros
                for c in range(c0, min(c1, cg)):
                    for rr in range(r0, r1):
                        at = ((n * n_ch + g * cg + c) * h + sh * (m0 + rr) + a - pt) * wd
                        _zero(xflat, at, wd)
                continue
            for b in range(sw):
                kb, l0, mw = cph[b, 0], cph[b, 1], cph[b, 2]
                if kb * mw == 0:
                    _zero(acc, b * size, size)
                    continue
                first = True
                for i in range(ka):
                    for j in range(kb):
                        # entry (u, v): phase cell (m0 + r, l0 + q) reads gy cell
                        # (m0 + r - i, l0 + q - j)
                        src = ((n * n_out + g * og) * hp + r0 + m0 - i + rph[0, 3]) * wp
                        src += l0 - j + cph[0, 3]
                        r = (g * k_all + (a + sh * i) * kw + b + sw * j) * og
                        for o0 in range(0, og, kc):
                            o1 = min(og, o0 + kc)
                            for k in range(o0, o1):  # contiguous runs: plain copies
                                at = (k - o0) * nc
                                if used > full:
                                    _zero(panel, at + full, block)
                                _copy(panel, at, gp, src + k * plane, used)
                            q, cs = r + o0, khw * og  # channel c's weights: cs apart
                            for c in range(c0, c1, 4):
                                w0, w1 = q + min(c, last) * cs, q + min(c + 1, last) * cs
                                w2, w3 = q + min(c + 2, last) * cs, q + min(c + 3, last) * cs
                                at = b * size + (c - c0) * nc
                                for jb in range(0, used, block):
                                    _mm4x4(panel, jb, nc, o1 - o0, wflat, w0, w1, w2, w3, 1,
                                           acc, at + jb, nc, first, 0.0, 0.0, 0.0, 0.0)
                            first = False
            # the first column phase's first cell: 0 or 1 (stride 2: the two interleaved)
            b0 = (pl - 2 * cph[0, 1]) % 2 if sw == 2 else 0
            for c in range(c0, min(c1, cg)):
                for rr in range(r0, r1):  # a row of gx: every sw-th cell from each column phase
                    dst = ((n * n_ch + g * cg + c) * h + sh * (m0 + rr) + a - pt) * wd
                    src = (c - c0) * nc + (rr - r0) * wp
                    if sw == 1:
                        _copy(xflat, dst + cph[0, 1] - pl, acc, src, cph[0, 2])
                    elif sw == 2:  # cells 2e and 2e + 1 from phases b0 and 1 - b0: zipped
                        s0, s1 = b0 * size + src, (1 - b0) * size + src
                        for e in range(0, (wd + 1) // 2, L):
                            v0, v1 = vload(acc, s0 + e), vload(acc, s1 + e)
                            vstore(line, 2 * e, vziplo(v0, v1))
                            vstore(line, 2 * e + L, vziphi(v0, v1))
                        _copy(xflat, dst, line, 0, wd)
                    else:
                        for b in range(sw):
                            l0, mw = cph[b, 1], cph[b, 2]
                            for f in range(mw):
                                xflat[dst + sw * (l0 + f) + b - pl] = acc[b * size + src + f]


@njit(inline="always", **_OPTS)
def _tile(src, s, ss, step, dst, d, ds, n_out, tmp):
    """``dst[d + j * ds + i] = src[s + i * ss + j * step]`` for ``i < L`` and ``j < n_out``
    (``<= L``), every ``step``-th value of the rows (1 or 2: two loads and their even
    lanes; reads go ``step * L`` values along each row whatever ``n_out``): the ``L`` rows
    loaded, zipped with the row half a tile away ``log2(L)`` times (row ``2i`` / ``2i + 1``
    = low / high halves of rows ``i`` and ``i + L/2`` zipped: after ``log2(L)`` rounds, the
    transpose), the first ``n_out`` stored; ``tmp`` holds ``2 L`` vectors."""
    L = lanes(src)
    half = L // 2
    for i in range(L):
        at = s + i * ss
        if step == 1:
            vstore(tmp, i * L, vload(src, at))
        else:
            vstore(tmp, i * L, veven(vload(src, at), vload(src, at + L)))
    a, b = 0, L * L
    k = 1
    while k < L:
        for i in range(half):
            x, y = vload(tmp, a + i * L), vload(tmp, a + (i + half) * L)
            vstore(tmp, b + 2 * i * L, vziplo(x, y))
            vstore(tmp, b + (2 * i + 1) * L, vziphi(x, y))
        a, b = b, a
        k *= 2
    for j in range(n_out):
        vstore(dst, d + j * ds, vload(tmp, a + j * L))


@njit(inline="always", **_OPTS)
def _transpose_over(src, s, ss, rows, cols, step, dst, d, ds, tmp):
    """``dst[d + j * ds + i] = src[s + i * ss + j * step]`` for ``i < rows``, ``j < cols``
    (``step`` 1 or 2) by :func:`_tile`'s tiles, the last tile of each axis overlapping the
    one before (the same values written twice) and narrow blocks (``cols < L``) by tiles
    storing ``cols`` rows: no value by value at the edges (a 14-wide row had none in a
    whole tile). Value by value where ``rows < L`` or a tile would read past ``src``."""
    L = lanes(src)
    if rows < L or s + (rows - 1) * ss + max(cols, L) * step > src.size:
        for i in range(rows):
            for j in range(cols):
                dst[d + j * ds + i] = src[s + i * ss + j * step]
        return
    for i in range(0, rows, L):
        i0 = min(i, rows - L)
        for j in range(0, cols, L):
            j0 = max(0, min(j, cols - L))
            _tile(src, s + i0 * ss + j0 * step, ss, step, dst, d + j0 * ds + i0, ds,
                  min(L, cols - j0), tmp)


@njit(inline="always", **_OPTS)
def _channels_last(xflat, n, n_ch, h, w, ih0, rows, step, pl, wp, out, tmp):
    """``out[i, j, c] = x[n, c, (ih0 + i) * step, j * step - pl]`` for ``i < rows``, ``j <
    wp`` (flat), 0 outside ``x``: input rows channels last, for :func:`nhwc_forward`.
    ``step`` 1, or 2 to keep every other row and column (what a 1 x 1 kernel with stride 2
    reads). Each block of a vector's channels walks all the rows (its planes read along
    their rows; a block of rows per plane at a time was 3x faster than a row of all
    planes), by :func:`_transpose_over`."""
    L = lanes(out)
    line = wp * n_ch
    ja = min(wp, (pl + step - 1) // step)  # the first column inside x
    jb = max(ja, min(wp, (w - 1 + pl) // step + 1))
    for i in range(rows):
        ih = (ih0 + i) * step
        if ih < 0 or ih >= h:
            _zero(out, i * line, line)
        else:
            _zero(out, i * line, ja * n_ch)
            _zero(out, i * line + jb * n_ch, (wp - jb) * n_ch)
    for c in range(0, n_ch, L):
        c0 = max(0, min(c, n_ch - L))  # the last block overlaps the one before
        for i in range(rows):
            ih = (ih0 + i) * step
            if 0 <= ih < h:
                _transpose_over(xflat, (n * n_ch + c0) * h * w + ih * w + ja * step - pl,
                                h * w, min(L, n_ch), jb - ja, step, out,
                                i * line + ja * n_ch + c0, n_ch, tmp)


@njit(inline="always", **_OPTS)
def _quad(wt, at, n_ch, taps, xt, b0, b1, b2, b3, acc, out):
    """4 positions x 4 vectors of output channels over the whole sum, in registers:
    ``acc[out + j*4L + m*L ...] = sum_{c, t} xt[b_j + taps[t] + c] * wt[at + (c*T + t)*4L
    + m*L ...]`` (``T`` taps, ``b_j`` position ``j``'s window in the channels-last input).

    The weights stream in order (a block of 4 vectors per kernel entry, from L2); the
    input values, broadcast, come from the 4 windows (in L1)."""
    L = lanes(xt)
    a00 = vzero(xt)
    a01, a02, a03 = a00, a00, a00
    a10, a11, a12, a13 = a00, a00, a00, a00
    a20, a21, a22, a23 = a00, a00, a00, a00
    a30, a31, a32, a33 = a00, a00, a00, a00
    p = at
    for c in range(n_ch):
        for t in range(taps.size):
            q = taps[t] + c
            x0, x1 = vload(wt, p), vload(wt, p + L)
            x2, x3 = vload(wt, p + 2 * L), vload(wt, p + 3 * L)
            p += 4 * L
            e = vsplat(xt, xt[b0 + q])
            a00, a01 = vfma(e, x0, a00), vfma(e, x1, a01)
            a02, a03 = vfma(e, x2, a02), vfma(e, x3, a03)
            e = vsplat(xt, xt[b1 + q])
            a10, a11 = vfma(e, x0, a10), vfma(e, x1, a11)
            a12, a13 = vfma(e, x2, a12), vfma(e, x3, a13)
            e = vsplat(xt, xt[b2 + q])
            a20, a21 = vfma(e, x0, a20), vfma(e, x1, a21)
            a22, a23 = vfma(e, x2, a22), vfma(e, x3, a23)
            e = vsplat(xt, xt[b3 + q])
            a30, a31 = vfma(e, x0, a30), vfma(e, x1, a31)
            a32, a33 = vfma(e, x2, a32), vfma(e, x3, a33)
    r = out
    vstore(acc, r, a00), vstore(acc, r + L, a01), vstore(acc, r + 2 * L, a02)
    vstore(acc, r + 3 * L, a03)
    r += 4 * L
    vstore(acc, r, a10), vstore(acc, r + L, a11), vstore(acc, r + 2 * L, a12)
    vstore(acc, r + 3 * L, a13)
    r += 4 * L
    vstore(acc, r, a20), vstore(acc, r + L, a21), vstore(acc, r + 2 * L, a22)
    vstore(acc, r + 3 * L, a23)
    r += 4 * L
    vstore(acc, r, a30), vstore(acc, r + L, a31), vstore(acc, r + 2 * L, a32)
    vstore(acc, r + 3 * L, a33)


@njit(parallel=True, **_OPTS)
def nhwc_forward(x, wt, bias, geo, step, nr, ni, relu, hi, y, threads):
    """The forward product with the output channels as the vector lanes, the input read
    channels last: no im2col panel is packed (packing was 13-21 % of a stride-2 3 x 3
    forward: a few cycles a value for runs of 14 or 28).

    x (N, C, H, W); wt (O / 4L, C*kh*kw, 4L): the weights of each block of ``4L`` output
    channels (``L`` lanes) transposed (:func:`transpose_planes`), kernel entries ``(c,
    u, v)``; bias (O,); ``geo`` as :func:`_pack_cols`; ``step`` 2: a 1 x 1 kernel with
    stride 2 and no padding, run as stride 1 over every other row and column (``geo``
    says stride 1); y (N, O, H_out, W_out).
    A task owns ``nr`` output rows of ``ni`` images (``ni > 1``: whole planes, weights
    streamed once for more positions): it copies the input rows they read channels last
    and padded into its own buffer (:func:`_channels_last`, in L2: a copy of the whole
    input went out to memory and back, 0.5-1 ms on 56 x 56 x 64 x 8), then
    for each block of ``4L`` channels sums 4 positions at a time in registers over the
    whole kernel (:func:`_quad`), adds the bias, applies the activation (``relu``, ``hi``
    as :func:`panel_forward`) and copies the block into the output planes, transposed
    (:func:`_transpose_over`). Sums run in the order ``c, u, v``, the bias added last.
    """
    n_img, n_ch, h, w = x.shape
    kh, kw, sh, sw, dh, dw, pt, pl, oh, ow = (geo[0], geo[1], geo[2], geo[3], geo[4],
                                              geo[5], geo[6], geo[7], geo[8], geo[9])
    n_out = y.shape[1]
    khw, limg = kh * kw, oh * ow
    L = lanes(x)
    ob = 4 * L
    wp = (ow - 1) * sw + (kw - 1) * dw + 1
    xflat, yflat = x.ravel(), y.ravel()
    taps = np.empty(khw, np.int64)  # each kernel entry's cell from the window's corner
    for t in range(khw):
        taps[t] = ((t // kw) * dh * wp + (t % kw) * dw) * n_ch
    n_rb = (oh + nr - 1) // nr
    n_ib = (n_img + ni - 1) // ni
    n_tasks = n_ib * n_rb
    counter = np.zeros(1, np.int64)
    for _ in prange(threads):  # one worker per thread, tasks on demand (.tasks)
        while True:
            t = next_task(counter, n_tasks, threads)
            if t < 0:
                break
            n0, r0 = t // n_rb * ni, t % n_rb * nr
            n1, r1 = min(n_img, n0 + ni), min(oh, r0 + nr)
            rows = (r1 - r0 - 1) * sh + (kh - 1) * dh + 1
            size = rows * wp * n_ch  # of one image's rows in the buffer
            tmp = np.empty(2 * L * L, x.dtype)
            buf = np.empty((n1 - n0) * size, x.dtype)
            for n in range(n0, n1):
                _channels_last(xflat, n, n_ch, h, w, r0 * sh - pt, rows, step, pl, wp,
                               buf[(n - n0) * size:], tmp)
            per = (r1 - r0) * ow
            used = (n1 - n0) * per
            nq = (used + 3) // 4
            corner = np.empty(nq * 4, np.int64)  # a block past the last repeats it
            for j in range(nq * 4):
                a, rq = divmod(min(j, used - 1), per)
                corner[j] = a * size + ((rq // ow) * sh * wp + rq % ow * sw) * n_ch
            acc = np.empty(nq * 4 * ob, x.dtype)
            for o0 in range(0, n_out, ob):
                for j in range(0, nq * 4, 4):
                    _quad(wt, o0 * n_ch * khw, n_ch, taps, buf, corner[j], corner[j + 1],
                          corner[j + 2], corner[j + 3], acc, j * ob)
                for j in range(used):
                    at = j * ob
                    for m in range(0, ob, L):
                        vstore(acc, at + m, vadd(vload(acc, at + m), vload(bias, o0 + m)))
                    if relu:
                        _copy_where(acc, at, acc, at, acc, at, ob)
                    if hi < np.inf:
                        _clamp(acc, at, ob, -np.inf, hi)
                for n in range(n0, n1):
                    _transpose_over(acc, (n - n0) * per * ob, ob, per, ob, 1, yflat,
                                    (n * n_out + o0) * limg + r0 * ow, limg, tmp)


@njit(parallel=True, **_OPTS)
def channels_last(x, step, oh, ow, nr, out, threads):
    """``out[n, r, q, c] = x[n, c, r * step, q * step]`` (out (N, oh, ow, C), flat): the
    cells a 1 x 1 kernel with stride ``step`` and no padding reads, channels last, for
    :func:`pointwise_grad_weight`. A task copies ``nr`` rows of one image
    (:func:`_channels_last`)."""
    n_img, n_ch, h, w = x.shape
    L = lanes(x)
    xflat = x.ravel()
    n_rb = (oh + nr - 1) // nr
    n_tasks = n_img * n_rb
    counter = np.zeros(1, np.int64)
    for _ in prange(threads):  # one worker per thread, tasks on demand (.tasks)
        while True:
            t = next_task(counter, n_tasks, threads)
            if t < 0:
                break
            n, r0 = t // n_rb, t % n_rb * nr
            _channels_last(xflat, n, n_ch, h, w, r0, min(nr, oh - r0), step, 0, ow,
                           out[(n * oh + r0) * ow * n_ch:], np.empty(2 * L * L, x.dtype))


@njit(parallel=True, **_OPTS)
def pointwise_grad_weight(xs, gy, pc, ot, out, threads):
    """The weight gradient of a 1 x 1 kernel (one group): ``out[o, c] = sum_p gy[n, o, p] *
    xs[n, p, c]`` over images and positions in order, ``xs`` the input's cells channels
    last (:func:`channels_last`), ``gy`` (N, O, H_out, W_out) read in place (no
    transposed copy). A task owns ``ot`` output channels (a multiple of 4) x ``4L`` input
    channels: for each run of ``pc`` positions (its block of ``xs`` in L1) every 4
    channels' rows of ``gy`` are broadcast against it (:func:`_mm4x4`), the sums in the
    task's block."""
    n_img, n_out = gy.shape[0], gy.shape[1]
    hw = gy.shape[2] * gy.shape[3]
    n_ch = out.shape[1]
    L = lanes(xs)
    cb = 4 * L
    n_cb = n_ch // cb
    n_ot = (n_out + ot - 1) // ot
    gflat, oflat = gy.ravel(), out.ravel()
    n_tasks = n_ot * n_cb
    counter = np.zeros(1, np.int64)
    for _ in prange(threads):  # one worker per thread, tasks on demand (.tasks)
        while True:
            t = next_task(counter, n_tasks, threads)
            if t < 0:
                break
            o0, c0 = t // n_cb * ot, t % n_cb * cb
            o1 = min(n_out, o0 + ot)
            acc = np.empty((o1 - o0) * cb, xs.dtype)
            for n in range(n_img):
                for p0 in range(0, hw, pc):
                    k = min(pc, hw - p0)
                    for o in range(o0, o1, 4):
                        r = (n * n_out + o) * hw + p0
                        _mm4x4(xs, (n * hw + p0) * n_ch + c0, n_ch, k, gflat, r, r + hw,
                               r + 2 * hw, r + 3 * hw, 1, acc, (o - o0) * cb, cb,
                               n == 0 and p0 == 0, 0.0, 0.0, 0.0, 0.0)
            for o in range(o0, o1):
                _copy(oflat, o * n_ch + c0, acc, (o - o0) * cb, cb)


@njit(parallel=True, **_OPTS)
def transpose_planes(a, out, threads):
    """``out[g, j, i] = a[g, i, j]`` for a (G, R, C), by :func:`_transpose_over` (a task per
    tile row; a last one of fewer than ``L`` rows value by value)."""
    n_grp, n_r, n_c = a.shape
    L = lanes(a)
    aflat, oflat = a.ravel(), out.ravel()
    n_rb = (n_r + L - 1) // L
    n_tasks = n_grp * n_rb
    counter = np.zeros(1, np.int64)
    for _ in prange(threads):  # one worker per thread, tasks on demand (.tasks)
        while True:
            t = next_task(counter, n_tasks, threads)
            if t < 0:
                break
            g, i0 = t // n_rb, t % n_rb * L
            base = g * n_r * n_c
            _transpose_over(aflat, base + i0 * n_c, n_c, min(L, n_r - i0), n_c, 1, oflat,
                             base + i0, n_r, np.empty(2 * L * L, a.dtype))


@njit(parallel=True, **_OPTS)
def transpose_grad(gy, n_grp, og64, gt, gbp, threads):
    """gy (N, G*og, H_out, W_out) into gt (G, P', og64): ``gt[g, n*L + l, o] = gy[n, g*og + o,
    l]`` (``L = H_out * W_out``; zeros for ``o >= og`` and positions ``>= N * L``), so that
    the weight gradient reads a vector of output channels per position; ``gbp[n, c]`` gets
    the sum of ``gy[n, c]`` (the bias gradient's partials, added by the caller in image
    order). One image of one group per task, by tiles of a vector's lanes squared
    (:func:`_transpose_over`: 1.15 -> ~0.2 ms for 8 x 128 x 28 x 28, where a value at a
    time read each channel's cache line 16 times; the last tiles overlap the ones before,
    fewer than ``L`` channels value by value)."""
    n_img, n_out = gy.shape[0], gy.shape[1]
    limg = gy.shape[2] * gy.shape[3]
    og = n_out // n_grp
    pp = gt.shape[1]
    L = lanes(gy)
    gflat, tflat = gy.ravel(), gt.ravel()
    n_tasks = n_grp * n_img + n_grp
    counter = np.zeros(1, np.int64)
    for _ in prange(threads):  # one worker per thread, tasks on demand (.tasks)
        while True:
            t = next_task(counter, n_tasks, threads)
            if t < 0:
                break
            g, n = t // (n_img + 1), t % (n_img + 1)
            if n == n_img:  # the rows past the last position
                _zero(tflat, (g * pp + n_img * limg) * og64, (pp - n_img * limg) * og64)
                continue
            tmp = np.empty(2 * L * L, gy.dtype)
            src0 = (n * n_out + g * og) * limg
            row0 = (g * pp + n * limg) * og64
            for o in range(og):  # by vectors: a chain of scalar adds was half of this loop
                gbp[n, g * og + o] = _sum(gflat, src0 + o * limg, limg)
            _transpose_over(gflat, src0, limg, og, limg, 1, tflat, row0, og64, tmp)
            for q in range(limg):  # the channels past og: zeros
                _zero(tflat, row0 + q * og64 + og, og64 - og)


@njit(parallel=True, **_OPTS)
def panel_grad_weight(x, gt, geo, kc, nc, obs, tab, out, threads):
    """``out[g*og + o, k] = sum_p GY[o, p] * B[k, p]`` (the weight gradient, ``(O, K)``).

    x (N, C, H, W); gt (G, P', og64) from :func:`transpose_grad`; out (O, K) written whole.
    Computed transposed, ``GW^T (K x og) = B (K x P) @ GY^T (P x og)``, so the micro-kernel
    of the forward pass applies unchanged (4 kernel entries broadcast from the packed im2col
    rows x 4 vectors of output channels; no lanes left to add up). A task owns ``kc``
    kernel entries (a multiple of 4) x ``obs`` blocks of 4 vectors of output channels of one
    group, walks every position in panels of ``nc`` (the im2col rows packed in cache once
    for all its channel blocks: packing a panel costs more than one block's products), keeps
    its block of ``GW^T`` in a buffer and finally writes it, transposed, into ``out``.
    """
    n_img, n_ch, h, w = x.shape
    n_grp, pp, og64 = gt.shape[0], gt.shape[1], gt.shape[2]
    n_out, k_all = out.shape[0], out.shape[1]
    og = n_out // n_grp
    oh, ow = geo[8], geo[9]
    p_total = n_img * oh * ow
    cg = n_ch // n_grp
    L = lanes(x)
    ob_width = 4 * L
    n_ob = og64 // ob_width
    n_kc, n_os = (k_all + kc - 1) // kc, (n_ob + obs - 1) // obs
    xflat, tflat, oflat = x.ravel(), gt.ravel(), out.ravel()
    n_tasks = n_grp * n_kc * n_os
    counter = np.zeros(1, np.int64)
    for _ in prange(threads):  # one worker per thread, tasks on demand (.tasks)
        while True:
            t = next_task(counter, n_tasks, threads)
            if t < 0:
                break
            g, ki, oi = t // (n_kc * n_os), t // n_os % n_kc, t % n_os
            k0, b0 = ki * kc, oi * obs
            k1, b1 = min(k_all, k0 + kc), min(n_ob, b0 + obs)
            rows = (k1 - k0 + 3) // 4 * 4
            size = rows * ob_width  # one channel block's sums
            panel = np.empty(rows * nc + L, x.dtype)
            acc = np.empty((b1 - b0) * size, x.dtype)
            segs = np.empty((nc + 2, 5), np.int64)
            for p0 in range(0, p_total, nc):
                used = min(nc, p_total - p0)
                if tab.size:
                    _pack_table(xflat, g * cg, h, w, n_ch, tab, p0, used, k0, k1, nc, panel, 0)
                else:
                    m = _runs(geo, n_ch, h, w, p_total, p0, nc, segs)
                    _pack(xflat, g * cg, h, w, geo, segs, m, used, k0, k1, nc, panel, 0)
                _zero(panel, (k1 - k0) * nc, (rows - (k1 - k0)) * nc)
                for ob in range(b0, b1):
                    at = (g * pp + p0) * og64 + ob * ob_width
                    for k in range(0, rows, 4):
                        _mm4x4(tflat, at, og64, nc, panel, k * nc, (k + 1) * nc, (k + 2) * nc,
                               (k + 3) * nc, 1, acc, (ob - b0) * size + k * ob_width, ob_width,
                               p0 == 0, 0.0, 0.0, 0.0, 0.0)
            for ob in range(b0, b1):
                o0 = ob * ob_width
                for k in range(k0, k1):
                    src = (ob - b0) * size + (k - k0) * ob_width - o0
                    for o in range(o0, min(og, o0 + ob_width)):
                        oflat[(g * og + o) * k_all + k] = acc[src + o]


@njit(parallel=True, **_OPTS)
def col2im(cols, geo, gx, threads):
    """``gx[n, c, r*sh + u*dh - pt, q*sw + v*dw - pl] += cols[n, c, u, v, r, q]``, the cells on
    the padding dropped; gx (N, C, H, W) written whole. One plane of ``gx`` per task, its
    sums in a fixed order."""
    n_img, n_ch, kh, kw, oh, ow = cols.shape
    h, w = gx.shape[2], gx.shape[3]
    sh, sw, dh, dw, pt, pl = geo[2], geo[3], geo[4], geo[5], geo[6], geo[7]
    n_tasks = n_img * n_ch
    counter = np.zeros(1, np.int64)
    for _ in prange(threads):  # one worker per thread, tasks on demand (.tasks)
        while True:
            t = next_task(counter, n_tasks, threads)
            if t < 0:
                break
            n, c = t // n_ch, t % n_ch
            _zero(gx[n, c].ravel(), 0, h * w)
            for u in range(kh):
                for v in range(kw):
                    for r in range(oh):
                        ih = r * sh + u * dh - pt
                        if ih < 0 or ih >= h:
                            continue
                        for q in range(ow):
                            iw = q * sw + v * dw - pl
                            if 0 <= iw < w:
                                gx[n, c, ih, iw] += cols[n, c, u, v, r, q]


@njit(parallel=True, **_OPTS)
def pointwise_forward(x, w, bias, kc, nc, oc, relu, hi, y, threads):
    """:func:`panel_forward` for 1 x 1 kernels, stride 1, no padding, without packing:
    there ``B``'s row ``k`` over one image's positions *is* the input plane ``k``, so the
    micro-kernel reads the planes where they lie (rows ``H * W`` apart). A task owns ``nc``
    positions of one image x ``oc`` channels of one group; its last block of positions,
    when shorter than 4 vectors, is copied into a zero-padded panel (reading past the
    plane would read the next plane, or past the array). ``relu``, ``hi`` as there.
    """
    n_img, n_ch = x.shape[0], x.shape[1]
    n_out, cg = y.shape[1], w.shape[1]
    limg = x.shape[2] * x.shape[3]
    n_grp = n_ch // cg
    og = n_out // n_grp
    og4 = (og + 3) // 4 * 4
    L = lanes(x)
    block = 4 * L
    n_jc, n_oc = (limg + nc - 1) // nc, (og4 + oc - 1) // oc
    xflat, wflat, yflat = x.ravel(), w.ravel(), y.ravel()
    n_tasks = n_img * n_grp * n_jc * n_oc
    counter = np.zeros(1, np.int64)
    for _ in prange(threads):  # one worker per thread, tasks on demand (.tasks)
        while True:
            t = next_task(counter, n_tasks, threads)
            if t < 0:
                break
            n, g = t // (n_grp * n_jc * n_oc), t // (n_jc * n_oc) % n_grp
            jc, oi = t // n_oc % n_jc, t % n_oc
            j0, o0 = jc * nc, oi * oc
            o1 = min(og4, o0 + oc)
            used = min(nc, limg - j0)
            full = used // block * block
            ragged = used - full
            acc = np.empty((o1 - o0) * nc, x.dtype)
            tail = np.empty(kc * block if ragged else 0, x.dtype)
            plane0 = (n * n_ch + g * cg) * limg + j0  # plane of input channel 0 of the group
            for k0 in range(0, cg, kc):
                k1 = min(cg, k0 + kc)
                for k in range(k0, k1) if ragged else range(0):
                    at = (k - k0) * block
                    _copy(tail, at, xflat, plane0 + k * limg + full, ragged)
                    _zero(tail, at + ragged, block - ragged)
                for o in range(o0, o1, 4):
                    c0, c1, c2, c3 = _four(g, og, o)
                    for jb in range(0, full, block):
                        _mm4x4(xflat, plane0 + k0 * limg + jb, limg, k1 - k0, wflat,
                               c0 * cg + k0, c1 * cg + k0, c2 * cg + k0, c3 * cg + k0, 1, acc,
                               (o - o0) * nc + jb, nc, k0 == 0, bias[c0], bias[c1], bias[c2],
                               bias[c3])
                    if ragged:
                        _mm4x4(tail, 0, block, k1 - k0, wflat, c0 * cg + k0, c1 * cg + k0,
                               c2 * cg + k0, c3 * cg + k0, 1, acc, (o - o0) * nc + full, nc,
                               k0 == 0, bias[c0], bias[c1], bias[c2], bias[c3])
            for o in range(o0, min(o1, og)):
                dst = (n * n_out + g * og + o) * limg + j0
                src = (o - o0) * nc
                _write(yflat, dst, acc, src, used, relu, hi)
