"""Depthwise convolution loops (one kernel per channel), plane by plane in cache.

Each task copies a plane into a zero-padded buffer of its own. With a column stride of 2
the buffer holds the padded plane's even columns then its odd columns (two *phase*
planes, ``wph = ceil(wp / 2)`` wide): every kernel entry then reads a contiguous run of
one phase plane, so the loops are those of stride 1 with other offsets (``_phase_off``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .rows import _clamp, _copy, _sum
from .simd import (
    lanes,
    prefetch,
    veven,
    vfma,
    vload,
    vpick,
    vshift1,
    vshift2,
    vsplat,
    vstore,
    vzero,
    vziphi,
    vziplo,
)

__all__ = ["depthwise", "depthwise3x3", "depthwise_grad_input_s2", "depthwise_weight_grad"]

_OPTS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


@njit(inline="always", **_OPTS)
def _phase_off(col, sw, plane):
    """Where padded column ``col`` (of row 0) sits in a buffer split by column stride ``sw``
    (1 or 2; ``plane``: one phase plane's size)."""
    return col if sw == 1 else (col % 2) * plane + col // 2


@njit(inline="always", **_OPTS)
def _fill(buf, xflat, src, row, left, wd, sw, wph, plane):
    """One input row (``wd`` values at ``xflat[src]``) into padded row ``row`` of the buffer
    at column ``left``; with ``sw = 2`` its even and odd padded columns go to the two
    phase planes (by two loads and their even lanes where a vector fits)."""
    if sw == 1:
        _copy(buf, row * wph + left, xflat, src, wd)
        return
    L = lanes(buf)
    for j0 in range(2):  # input columns j0, j0 + 2, ...: one phase plane
        col = left + j0
        n = (wd - j0 + 1) // 2
        dst = (col % 2) * plane + row * wph + col // 2
        s = src + j0
        j = 0
        while j + L <= n and s + 2 * (j + L) <= xflat.size:
            vstore(buf, dst + j, veven(vload(xflat, s + 2 * j), vload(xflat, s + 2 * j + L)))
            j += L
        for m in range(j, n):
            buf[dst + m] = xflat[s + 2 * m]


@njit(inline="always", **_OPTS)
def _prefetch_next(xflat, pl, size, r, rows):
    """Ask for the ``r``-th of ``rows`` slices of plane ``pl + 1`` (``size`` values): spread
    over a plane's output rows, the next plane arrives while this one is computed (its
    reads from memory then overlap the arithmetic: measured 0.74x the time on one thread,
    0.66x on two, 32 planes of 64 x 64 x 32)."""
    step = (size + rows - 1) // rows
    at = (pl + 1) * size + r * step
    for j in range(at, min(at + step, (pl + 2) * size), 64 // xflat.itemsize):
        prefetch(xflat, j)


@njit(inline="always", **_OPTS)
def _dw_vector(buf, at, wc, b, offs, y, dst):
    """One vector of a depthwise output row: ``y[dst:] = b + sum_k wc[k] * buf[at+offs[k]:]``."""
    a = vsplat(buf, b)
    for k in range(offs.size):
        a = vfma(vsplat(buf, wc[k]), vload(buf, at + offs[k]), a)
    vstore(y, dst, a)


@njit(inline="always", **_OPTS)
def _dw_narrow(buf, wc, b, offs, rstride, oh, ow, tmp, y, dst):
    """A plane whose output rows are narrower than a vector (``ow < lanes``): one vector per
    row, 4 rows at a time in 4 accumulators (independent chains), computed into ``tmp``
    (``4 * lanes``) and their first ``ow`` lanes copied to ``y[dst + r * ow ...]``; output row
    ``r`` reads the buffer from ``r * rstride``. Value by value these planes ran 30x
    PyTorch's time (8 x 960 planes of 7 x 7), one vector per row in one chain 14x."""
    L = lanes(buf)
    kk = offs.size
    r = 0
    while r < oh:
        at = r * rstride
        a0 = vsplat(buf, b)
        a1, a2, a3 = a0, a0, a0
        if r + 4 <= oh:
            for k in range(kk):
                e = vsplat(buf, wc[k])
                o = at + offs[k]
                a0 = vfma(e, vload(buf, o), a0)
                a1 = vfma(e, vload(buf, o + rstride), a1)
                a2 = vfma(e, vload(buf, o + 2 * rstride), a2)
                a3 = vfma(e, vload(buf, o + 3 * rstride), a3)
            rows = 4
        else:
            for k in range(kk):
                a0 = vfma(vsplat(buf, wc[k]), vload(buf, at + offs[k]), a0)
            rows = 1
        vstore(tmp, 0, a0), vstore(tmp, L, a1), vstore(tmp, 2 * L, a2), vstore(tmp, 3 * L, a3)
        for i in range(rows):
            for j in range(ow):
                y[dst + (r + i) * ow + j] = tmp[i * L + j]
        r += rows


@njit(parallel=True, **_OPTS)
def depthwise(x, w, bias, top, left, hp, wph, sh, sw, offs, per_task, lo, hi, y):
    """Depthwise convolution over planes, ``per_task`` planes per task, written in place.

    x (P, H, W) planes (``P = N * C``); w (C, K) with ``offs`` (K,) into a padded plane
    ``hp`` rows high, ``wph`` wide (each phase plane's width for column stride ``sw = 2``,
    see the module's docstring) that holds the plane at ``(top, left)``; row stride
    ``sh``; bias (C,); y (P, H_out, W_out).
    A task zeroes one padded plane buffer (in cache) once; for each of its planes it
    copies the plane into it (the padding stays zero) and computes every output row
    straight into ``y``: 4 vectors of the row at a time, the taps' weights splatted per
    vector block, then single vectors, the last one overlapping the one before (the
    same values written twice); rows narrower than a vector by :func:`_dw_narrow`. Each
    plane is clamped to ``[lo, hi]`` once written (a fused ReLU or ReLU6; -inf, inf: none).
    """
    planes, h, wd = x.shape
    n_ch, kk = w.shape
    oh, ow = y.shape[1], y.shape[2]
    L = lanes(x)
    plane = hp * wph
    xflat, yflat = x.ravel(), y.ravel()
    for t in prange((planes + per_task - 1) // per_task):
        buf = np.zeros(sw * plane + L, x.dtype)
        row = np.empty(4 * L, x.dtype)
        for pl in range(t * per_task, min(planes, (t + 1) * per_task)):
            c = pl % n_ch
            for r in range(h):
                _fill(buf, xflat, (pl * h + r) * wd, r + top, left, wd, sw, wph, plane)
            wc = w[c]
            b = bias[c]
            if ow < L:
                _dw_narrow(buf, wc, b, offs, sh * wph, oh, ow, row, yflat, pl * oh * ow)
            for r in range(oh if ow >= L else 0):
                _prefetch_next(xflat, pl, h * wd, r, oh)
                base, dst = r * sh * wph, (pl * oh + r) * ow
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
                if q < ow:  # overlaps the vector before
                    _dw_vector(buf, base + ow - L, wc, b, offs, yflat, dst + ow - L)
            if lo > -np.inf or hi < np.inf:
                _clamp(yflat, pl * oh * ow, oh * ow, lo, hi)


@njit(inline="always", **_OPTS)
def _tap3(a0, s1, s2, e0, e1, e2, acc):
    """``acc + e0 * a0 + e1 * s1 + e2 * s2`` (one kernel row on one vector of outputs)."""
    return vfma(e2, s2, vfma(e1, s1, vfma(e0, a0, acc)))


@njit(inline="always", **_OPTS)
def _rows3(buf, at, L, e0, e1, e2, acc0, acc1):
    """One padded row's contribution to 2 vectors of outputs: 3 aligned loads, the
    vectors one and two columns further made by shuffling neighbours (no unaligned
    loads: each of those crosses a cache line)."""
    p0, p1, p2 = vload(buf, at), vload(buf, at + L), vload(buf, at + 2 * L)
    return (_tap3(p0, vshift1(p0, p1), vshift2(p0, p1), e0, e1, e2, acc0),
            _tap3(p1, vshift1(p1, p2), vshift2(p1, p2), e0, e1, e2, acc1))


@njit(parallel=True, **_OPTS)
def depthwise3x3(x, w, bias, top, left, wpa, offs, per_task, lo, hi, y):
    """:func:`depthwise` for 3 x 3 kernels, stride 1, dilation 1 (MobileNet's and the input
    gradient of those), faster: the padded plane's rows start on 64-byte boundaries
    (``wpa`` a multiple of a vector), and blocks of 2 output rows x 2 vectors read each
    input row with aligned loads once for both rows (4 input rows feed 2 output rows);
    the next plane is asked for while this one is computed. Columns past the last whole
    block go by single vectors as :func:`depthwise` (``offs`` in this layout). Sums in
    the same order as :func:`depthwise`: the same values, bit for bit; ``lo, hi`` as
    there.
    """
    planes, h, wd = x.shape
    n_ch = w.shape[0]
    oh, ow = y.shape[1], y.shape[2]
    L = lanes(x)
    xflat, yflat = x.ravel(), y.ravel()
    for t in prange((planes + per_task - 1) // per_task):
        raw = np.zeros((oh + 3) * wpa + 2 * L, x.dtype)  # + a zero row: the last pair's 4th
        buf = raw[((64 - raw.ctypes.data % 64) % 64) // raw.itemsize :]
        for pl in range(t * per_task, min(planes, (t + 1) * per_task)):
            c = pl % n_ch
            for r in range(h):
                _copy(buf, (r + top) * wpa + left, xflat, (pl * h + r) * wd, wd)
            wc = w[c]
            e00, e01, e02 = vsplat(buf, wc[0]), vsplat(buf, wc[1]), vsplat(buf, wc[2])
            e10, e11, e12 = vsplat(buf, wc[3]), vsplat(buf, wc[4]), vsplat(buf, wc[5])
            e20, e21, e22 = vsplat(buf, wc[6]), vsplat(buf, wc[7]), vsplat(buf, wc[8])
            b = bias[c]
            bv = vsplat(buf, b)
            for r in range(0, oh, 2):
                _prefetch_next(xflat, pl, h * wd, r // 2, (oh + 1) // 2)
                q = 0
                while q + 2 * L <= ow:
                    at = r * wpa + q
                    a00, a01 = _rows3(buf, at, L, e00, e01, e02, bv, bv)
                    a00, a01 = _rows3(buf, at + wpa, L, e10, e11, e12, a00, a01)
                    a10, a11 = _rows3(buf, at + wpa, L, e00, e01, e02, bv, bv)
                    a00, a01 = _rows3(buf, at + 2 * wpa, L, e20, e21, e22, a00, a01)
                    a10, a11 = _rows3(buf, at + 2 * wpa, L, e10, e11, e12, a10, a11)
                    a10, a11 = _rows3(buf, at + 3 * wpa, L, e20, e21, e22, a10, a11)
                    dst = (pl * oh + r) * ow + q
                    vstore(yflat, dst, a00), vstore(yflat, dst + L, a01)
                    if r + 1 < oh:
                        vstore(yflat, dst + ow, a10), vstore(yflat, dst + ow + L, a11)
                    q += 2 * L
                for rr in range(r, min(oh, r + 2)):  # the columns left, as depthwise does
                    base, dst = rr * wpa, (pl * oh + rr) * ow
                    qq = q
                    while qq + L <= ow:
                        _dw_vector(buf, base + qq, wc, b, offs, yflat, dst + qq)
                        qq += L
                    if qq < ow:
                        if ow >= L:
                            _dw_vector(buf, base + ow - L, wc, b, offs, yflat, dst + ow - L)
                        else:
                            for j in range(ow):
                                s = b
                                for k in range(9):
                                    s += wc[k] * buf[base + j + offs[k]]
                                yflat[dst + j] = s
            if lo > -np.inf or hi < np.inf:
                _clamp(yflat, pl * oh * ow, oh * ow, lo, hi)


@njit(inline="always", **_OPTS)
def _dw_row3(g, buf, at, o0, o1, o2, a0, a1, a2):
    """``a_m += g * buf[at + o_m :]`` for m = 0, 1, 2."""
    return (vfma(g, vload(buf, at + o0), a0), vfma(g, vload(buf, at + o1), a1),
            vfma(g, vload(buf, at + o2), a2))


@njit(parallel=True, **_OPTS)
def depthwise_weight_grad(x, gy, top, left, hp, wph, sh, sw, slack, kh, kw, dh, dw, per_task,
                          out, gb):
    """Depthwise weight gradient per plane: ``out[p, u, v] = sum_pos gy[p] * x_shifted``.

    x (P, H, W) and gy (P, H_out, W_out) planes; the input plane sits at ``(top, left)``
    of a zero-padded plane ``hp`` rows high, ``wph`` wide (per phase plane for column
    stride ``sw = 2``: see the module's docstring), row stride ``sh``; out (P,
    ceil(kh/3)*3, ceil(kw/3)*3): entries outside the kernel are dropped by the caller;
    gb (P,): each plane's sum of ``gy`` (the bias gradient's partials, from the same
    reads). Each task pads its planes into one buffer (``slack`` zeros after it), as
    :func:`depthwise`. Kernel entries go in blocks of 3 x 3 held in 9 vector
    accumulators: for each padded row ``rho`` and each vector of columns of ``gy``, 3
    input vectors (the block's columns) are loaded once and multiplied by the ``gy`` rows
    ``(rho - u*dh) / sh`` of the block's rows ``u`` that exist (a row of a kernel entry
    outside the kernel, or outside ``gy``, is skipped, never multiplied by a zero: a NaN
    of the padded plane cannot reach a sum the reference keeps finite). The columns of
    ``gy`` left after its whole vectors go by one more vector ending at the last column,
    its lanes already counted set to 0 in both factors (value by value for rows narrower
    than a vector: 4x faster on 56-wide rows). The lanes are then added in
    order: every sum has a fixed order (deterministic); the caller adds the planes of
    each channel in image order.
    """
    planes, h, wd = x.shape
    oh, ow = gy.shape[1], gy.shape[2]
    bu, bv = out.shape[1] // 3, out.shape[2] // 3
    L = lanes(x)
    nv = ow // L
    plane = hp * wph
    xflat, gflat = x.ravel(), gy.ravel()
    for t in prange((planes + per_task - 1) // per_task):
        buf = np.zeros(sw * plane + slack, x.dtype)
        lane = np.empty(9 * L, x.dtype)
        # 1 in the lanes of a row's last vector that the whole vectors have not counted
        mask = np.zeros(L, x.dtype)
        mask[L - (ow - nv * L):] = 1
        tail, acc0 = vload(mask, 0), vzero(buf)
        for pl in range(t * per_task, min(planes, (t + 1) * per_task)):
            for r in range(h):
                _fill(buf, xflat, (pl * h + r) * wd, r + top, left, wd, sw, wph, plane)
            gp = pl * oh * ow
            gb[pl] = _sum(gflat, gp, oh * ow)
            for ub in range(bu):
                for vb in range(bv):
                    u0, v0 = 3 * ub, 3 * vb
                    o0 = _phase_off(v0 * dw, sw, plane)
                    o1 = _phase_off((v0 + 1) * dw, sw, plane)
                    o2 = _phase_off((v0 + 2) * dw, sw, plane)
                    a00 = vzero(buf)
                    a01, a02, a10, a11, a12, a20, a21, a22 = a00, a00, a00, a00, a00, a00, a00, a00
                    for rho in range(u0 * dh, hp):
                        d0 = rho - u0 * dh  # sh * (the gy row of the block's first kernel row)
                        d1, d2 = d0 - dh, d0 - 2 * dh
                        if sh == 1:  # no division (3 a row cost as much as the row's FMAs)
                            r0, r1, r2 = d0, d1, d2
                            ok0, ok1, ok2 = r0 < oh, u0 + 1 < kh and 0 <= r1 < oh, (
                                u0 + 2 < kh and 0 <= r2 < oh)
                        else:
                            r0, r1, r2 = d0 // sh, d1 // sh, d2 // sh
                            ok0 = d0 % sh == 0 and r0 < oh
                            ok1 = u0 + 1 < kh and d1 >= 0 and d1 % sh == 0 and r1 < oh
                            ok2 = u0 + 2 < kh and d2 >= 0 and d2 % sh == 0 and r2 < oh
                        if not (ok0 or ok1 or ok2):
                            continue
                        for j in range(nv):
                            q = j * L
                            at = rho * wph + q
                            if ok0:
                                g = vload(gflat, gp + r0 * ow + q)
                                a00, a01, a02 = _dw_row3(g, buf, at, o0, o1, o2, a00, a01, a02)
                            if ok1:
                                g = vload(gflat, gp + r1 * ow + q)
                                a10, a11, a12 = _dw_row3(g, buf, at, o0, o1, o2, a10, a11, a12)
                            if ok2:
                                g = vload(gflat, gp + r2 * ow + q)
                                a20, a21, a22 = _dw_row3(g, buf, at, o0, o1, o2, a20, a21, a22)
                    vstore(lane, 0, a00), vstore(lane, L, a01), vstore(lane, 2 * L, a02)
                    vstore(lane, 3 * L, a10), vstore(lane, 4 * L, a11)
                    vstore(lane, 5 * L, a12), vstore(lane, 6 * L, a20)
                    vstore(lane, 7 * L, a21), vstore(lane, 8 * L, a22)
                    for i in range(9):
                        u, v = u0 + i // 3, v0 + i % 3
                        s = lane[i * L]
                        for m in range(1, L):
                            s += lane[i * L + m]
                        if u < kh and v < kw and nv * L < ow:  # the columns after them
                            off = _phase_off(v * dw, sw, plane)
                            if nv:  # one vector ending at the last column, its lanes
                                q = ow - L  # already counted masked out (value and gy)
                                acc = vzero(buf)
                                for r in range(oh):
                                    at = (r * sh + u * dh) * wph + off + q
                                    g = vpick(tail, acc0, vload(gflat, gp + r * ow + q), acc0)
                                    xv = vpick(tail, acc0, vload(buf, at), acc0)
                                    acc = vfma(g, xv, acc)
                                vstore(lane, 0, acc)
                                for m in range(L):
                                    s += lane[m]
                            else:
                                for r in range(oh):
                                    at = (r * sh + u * dh) * wph + off
                                    for qq in range(ow):
                                        s += gflat[gp + r * ow + qq] * buf[at + qq]
                        out[pl, u, v] = s


@njit(parallel=True, **_OPTS)
def depthwise_grad_input_s2(gy, w, top, left, sh, dh, dw, kh, kw, gpad, per_task, gx):
    """Input gradient of a depthwise convolution with column stride 2, per plane.

    ``gx[p, ih, iw] = sum w[c, u, v] * gy[p, r, q]`` over ``r*sh + u*dh = ih + top`` and
    ``2q + v*dw = iw + left``. For one padded input row, its even columns ``2j`` take the
    kernel columns with ``v*dw`` even (``q = j - v*dw/2``), its odd ones the others
    (``q = j - (v*dw - 1)/2``): a vector of even and one of odd columns are summed from
    shifted loads of the ``gy`` rows involved, then interleaved into 2 vectors of the
    padded row (in a row buffer, whose valid part is copied to ``gx``). Each task copies
    its planes' ``gy`` into a buffer with ``gpad`` zeros before each row (and enough
    after) so no load leaves it. gy (P, H_out, W_out); w (C, kh*kw); gx (P, H, W).
    """
    planes, oh, ow = gy.shape
    h, wd = gx.shape[1], gx.shape[2]
    n_ch = w.shape[0]
    L = lanes(gy)
    n_j = (left + wd + 1) // 2  # even/odd column pairs of the padded row that hold gx
    nb = (n_j + L - 1) // L
    gw_row = gpad + nb * L + L
    gflat, xflat = gy.ravel(), gx.ravel()
    for t in prange((planes + per_task - 1) // per_task):
        gbuf = np.zeros(oh * gw_row + L, gy.dtype)
        row = np.empty(2 * nb * L, gy.dtype)
        for pl in range(t * per_task, min(planes, (t + 1) * per_task)):
            c = pl % n_ch
            for r in range(oh):
                _copy(gbuf, r * gw_row + gpad, gflat, (pl * oh + r) * ow, ow)
            for ih in range(h):
                rho = ih + top
                for jb in range(nb):
                    j0 = jb * L
                    ev = vzero(gy)
                    od = ev
                    for u in range(kh):
                        d = rho - u * dh
                        if d < 0 or d % sh != 0 or d // sh >= oh:
                            continue
                        at = (d // sh) * gw_row + gpad + j0
                        for v in range(kw):
                            e = vsplat(gy, w[c, u * kw + v])
                            vd = v * dw
                            if vd % 2 == 0:
                                ev = vfma(e, vload(gbuf, at - vd // 2), ev)
                            else:
                                od = vfma(e, vload(gbuf, at - (vd - 1) // 2), od)
                    vstore(row, 2 * j0, vziplo(ev, od))
                    vstore(row, 2 * j0 + L, vziphi(ev, od))
                _copy(xflat, (pl * h + ih) * wd, row, left, wd)
