"""Winograd F(2x2, 3x3) convolution loops (3 x 3 kernels, stride 1, dilation 1, groups 1).

A 2 x 2 block of outputs (a *tile*) comes from a 4 x 4 patch ``d`` of the padded input.
With ``V = B^T d B`` (the patch transformed, per channel) and ``U = G g G^T`` (each 3 x 3
kernel transformed, once per call), the tile is ``A^T (sum_c U_c * V_c) A``: for each of
the 16 entries ``(xi, nu)`` a matrix product ``M[xi, nu] (O x tiles) = U[xi, nu] (O x C) @
V[xi, nu] (C x tiles)``, 16 multiply-adds per 4 outputs and channel pair instead of 36::

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

The input is laid out as 4 *phase planes* per channel (:func:`pack_phases`): phase
``(a, b)`` holds the padded input's cells ``(2i + a, 2j + b)``, so the tile ``(i, j)`` reads
cell ``(2i + a + 2s, 2j + b + 2t)`` at ``(i + s, j + t)`` of phase ``(a, b)``: with the tiles
of an image numbered ``p = i * wph + j`` along the phase planes' rows, every one of the 16
patch cells of 16 consecutive tiles is one vector load (the last tile of each row, and the
rows past the output, are computed and dropped). A task owns a block of 4 vectors of tiles
of one image and a block of output channels: it transforms ``kc`` channels of its tiles
into a buffer in cache, multiplies them into its 16 ``M`` blocks (the panel loop's 4 x 4
register block, :func:`.panel._mm4x4`), then transforms ``M`` into its outputs.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .panel import _gather, _mm4x4
from .rows import _copy, _copy_where, _nonfinite
from .simd import lanes, vadd, vload, vsplat, vstore, vsub, vziphi, vziplo

__all__ = ["pack_phases", "transform_weights", "winograd_forward"]

_OPTS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


@njit(parallel=True, **_OPTS)
def pack_phases(x, top, left, hph, wph, out, bad):
    """x (N, C, H, W) into out (N, C * 4 * hph * wph + slack): per channel the 4 phase planes
    ``(a, b)`` (at ``(2a + b) * hph * wph``) of the input zero-padded at ``(top, left)``;
    then zeros. ``bad[n * C + c] = 1`` when that plane holds a NaN or an infinity."""
    n_img, n_ch, h, w = x.shape
    plane = hph * wph
    size = out.shape[1]
    xflat, flat = x.ravel(), out.ravel()
    for t in prange(n_img * n_ch):
        i, c = t // n_ch, t % n_ch
        src0 = t * h * w
        if _nonfinite(xflat, src0, h * w):
            bad[t] = 1
        for a in range(2):
            for b in range(2):
                at = i * size + (4 * c + 2 * a + b) * plane
                # phase columns j whose input column 2j + b - left lies in [0, w)
                ja = max(0, (left - b + 1) // 2)
                jb = min(wph, (w - 1 + left - b) // 2 + 1)
                for r in range(hph):
                    row = at + r * wph
                    ih = 2 * r + a - top
                    if ih < 0 or ih >= h or jb <= ja:
                        for j in range(row, row + wph):
                            flat[j] = 0
                        continue
                    for j in range(row, row + ja):
                        flat[j] = 0
                    _gather(flat, row + ja, xflat, src0 + ih * w + 2 * ja + b - left, jb - ja, 2)
                    for j in range(row + jb, row + wph):
                        flat[j] = 0
        if c == n_ch - 1:
            for j in range(i * size + n_ch * 4 * plane, (i + 1) * size):
                flat[j] = 0


@njit(parallel=True, **_OPTS)
def transform_weights(w, u4):
    """``U = G g G^T`` of every kernel ``g = w[o, c]`` (3 x 3), in float64, rounded once into
    u4 (16, OB, C, 4): entry ``e = 4 * xi + nu`` of channel ``o`` at ``u4[e, o // 4, c, o % 4]``
    (the caller zeroes the channels past ``O``). ``G a`` along an axis of 3 values is
    ``[a0, (a0 + a1 + a2) / 2, (a0 - a1 + a2) / 2, a2]``. One block of 4 channels per
    task, so that each entry's 4 values are written side by side."""
    n_out, n_ch = w.shape[0], w.shape[1]
    for ob in prange(u4.shape[1]):
        t = np.empty((4, 3), np.float64)
        for c in range(n_ch):
            for o in range(4 * ob, min(n_out, 4 * ob + 4)):
                for j in range(3):  # G g: down each column
                    a0, a1 = np.float64(w[o, c, 0, j]), np.float64(w[o, c, 1, j])
                    a2 = np.float64(w[o, c, 2, j])
                    t[0, j], t[1, j] = a0, 0.5 * (a0 + a2 + a1)
                    t[2, j], t[3, j] = 0.5 * (a0 + a2 - a1), a2
                for xi in range(4):  # (G g) G^T: along each row
                    a0, a1, a2 = t[xi, 0], t[xi, 1], t[xi, 2]
                    e, j = 4 * xi, o % 4
                    u4[e, ob, c, j] = a0
                    u4[e + 1, ob, c, j] = 0.5 * (a0 + a2 + a1)
                    u4[e + 2, ob, c, j] = 0.5 * (a0 + a2 - a1)
                    u4[e + 3, ob, c, j] = a2


@njit(inline="always", **_OPTS)
def _input_tile(x, at, plane, wph, v, vat, vstride):
    """``V = B^T d B`` for a vector of tiles whose patches start at ``x[at]`` (phase planes
    ``plane`` apart): ``v[vat + e * vstride]`` for the 16 entries ``e = 4 * xi + nu``."""
    p00, p01, p10, p11 = at, at + plane, at + 2 * plane, at + 3 * plane  # phase (a, b)
    # patch row 2s + a, column 2t + b is phase (a, b) at (s, t): d[row][col]
    d00, d01 = vload(x, p00), vload(x, p01)
    d02, d03 = vload(x, p00 + 1), vload(x, p01 + 1)
    d10, d11 = vload(x, p10), vload(x, p11)
    d12, d13 = vload(x, p10 + 1), vload(x, p11 + 1)
    d20, d21 = vload(x, p00 + wph), vload(x, p01 + wph)
    d22, d23 = vload(x, p00 + wph + 1), vload(x, p01 + wph + 1)
    d30, d31 = vload(x, p10 + wph), vload(x, p11 + wph)
    d32, d33 = vload(x, p10 + wph + 1), vload(x, p11 + wph + 1)
    # t = d B (along each row), then V = B^T t (along each column)
    t00, t01, t02, t03 = vsub(d00, d02), vadd(d01, d02), vsub(d02, d01), vsub(d01, d03)
    t10, t11, t12, t13 = vsub(d10, d12), vadd(d11, d12), vsub(d12, d11), vsub(d11, d13)
    t20, t21, t22, t23 = vsub(d20, d22), vadd(d21, d22), vsub(d22, d21), vsub(d21, d23)
    t30, t31, t32, t33 = vsub(d30, d32), vadd(d31, d32), vsub(d32, d31), vsub(d31, d33)
    s = vstride
    vstore(v, vat, vsub(t00, t20)), vstore(v, vat + s, vsub(t01, t21))
    vstore(v, vat + 2 * s, vsub(t02, t22)), vstore(v, vat + 3 * s, vsub(t03, t23))
    vstore(v, vat + 4 * s, vadd(t10, t20)), vstore(v, vat + 5 * s, vadd(t11, t21))
    vstore(v, vat + 6 * s, vadd(t12, t22)), vstore(v, vat + 7 * s, vadd(t13, t23))
    vstore(v, vat + 8 * s, vsub(t20, t10)), vstore(v, vat + 9 * s, vsub(t21, t11))
    vstore(v, vat + 10 * s, vsub(t22, t12)), vstore(v, vat + 11 * s, vsub(t23, t13))
    vstore(v, vat + 12 * s, vsub(t10, t30)), vstore(v, vat + 13 * s, vsub(t11, t31))
    vstore(v, vat + 14 * s, vsub(t12, t32)), vstore(v, vat + 15 * s, vsub(t13, t33))


@njit(inline="always", **_OPTS)
def _output_tile(m, at, s, b, top, bottom, dst):
    """``A^T M A + b`` for a vector of tiles (``M``'s 16 entries at ``m[at + e * s]``): the
    outputs interleaved by tile into ``top`` (the tiles' upper rows) and ``bottom``,
    2 vectors each from ``dst``."""
    m00, m01, m02, m03 = vload(m, at), vload(m, at + s), vload(m, at + 2 * s), vload(m, at + 3 * s)
    m10, m11 = vload(m, at + 4 * s), vload(m, at + 5 * s)
    m12, m13 = vload(m, at + 6 * s), vload(m, at + 7 * s)
    m20, m21 = vload(m, at + 8 * s), vload(m, at + 9 * s)
    m22, m23 = vload(m, at + 10 * s), vload(m, at + 11 * s)
    m30, m31 = vload(m, at + 12 * s), vload(m, at + 13 * s)
    m32, m33 = vload(m, at + 14 * s), vload(m, at + 15 * s)
    # along each row: (m0 + m1 + m2, m1 - m2 - m3); then the same down the columns
    a0, c0 = vadd(vadd(m00, m01), m02), vsub(vsub(m01, m02), m03)
    a1, c1 = vadd(vadd(m10, m11), m12), vsub(vsub(m11, m12), m13)
    a2, c2 = vadd(vadd(m20, m21), m22), vsub(vsub(m21, m22), m23)
    a3, c3 = vadd(vadd(m30, m31), m32), vsub(vsub(m31, m32), m33)
    y00, y10 = vadd(vadd(vadd(a0, a1), a2), b), vadd(vsub(vsub(a1, a2), a3), b)
    y01, y11 = vadd(vadd(vadd(c0, c1), c2), b), vadd(vsub(vsub(c1, c2), c3), b)
    L = lanes(m)
    vstore(top, dst, vziplo(y00, y01)), vstore(top, dst + L, vziphi(y00, y01))
    vstore(bottom, dst, vziplo(y10, y11)), vstore(bottom, dst + L, vziphi(y10, y11))


@njit(parallel=True, **_OPTS)
def winograd_forward(xph, u4, bias, plane, wph, th, tw, kc, oc, relu, mask, masked, y):
    """``y = conv(x, w) + bias`` by F(2x2, 3x3); ``relu``: the ReLU applied as ``y`` is written;
    ``masked``: values where ``mask`` (y's shape) is ``<= 0`` are written as 0 (an input
    gradient whose input was a ReLU's output).

    xph (N, C * 4 * plane + slack) from :func:`pack_phases` (phase planes ``wph`` wide);
    u4 (16, OB, C, 4): entry ``e`` of output channel ``4b + j``'s transformed kernels is
    ``u4[e, b, :, j]``; bias (O,); y (N, O, H_out, W_out); ``th`` x ``tw`` tiles per image.
    A task: 4 vectors of tiles (``T``) of one image x ``oc`` channels (a multiple of 4).
    """
    n_img = xph.shape[0]
    n_ob, n_ch = u4.shape[1], u4.shape[2]
    og4 = 4 * n_ob
    n_out, oh, ow = y.shape[1], y.shape[2], y.shape[3]
    L = lanes(xph)
    T = 4 * L
    n_blk = (th * wph + T - 1) // T
    n_oc = (og4 + oc - 1) // oc
    xflat, uflat, yflat, mflat = xph.ravel(), u4.ravel(), y.ravel(), mask.ravel()
    size = xph.shape[1]
    for t in prange(n_img * n_blk * n_oc):
        i, blk, oi = t // (n_blk * n_oc), t // n_oc % n_blk, t % n_oc
        p0, o0 = blk * T, oi * oc
        o1 = min(og4, o0 + oc)
        ocx = o1 - o0
        v = np.empty(16 * kc * T, xph.dtype)
        m = np.empty(16 * ocx * T, xph.dtype)
        for c0 in range(0, n_ch, kc):
            c1 = min(n_ch, c0 + kc)
            for c in range(c0, c1):
                for j in range(4):
                    _input_tile(xflat, i * size + 4 * c * plane + p0 + j * L, plane, wph, v,
                                (c - c0) * T + j * L, kc * T)
            for e in range(16):
                for o in range(o0, o1, 4):
                    r = ((e * n_ob + o // 4) * n_ch + c0) * 4
                    _mm4x4(v, e * kc * T, T, c1 - c0, uflat, r, r + 1, r + 2, r + 3, 4, m,
                           (e * ocx + o - o0) * T, T, c0 == 0, 0.0, 0.0, 0.0, 0.0)
        top = np.empty(2 * T, xph.dtype)
        bottom = np.empty(2 * T, xph.dtype)
        for o in range(o0, min(o1, n_out)):
            b = vsplat(xph, bias[o])
            for j in range(4):
                _output_tile(m, (o - o0) * T + j * L, ocx * T, b, top, bottom, 2 * j * L)
            # copy the valid outputs: rows 2r, 2r + 1 of the tile rows r this block meets
            for r in range(p0 // wph, min(th, (p0 + T + wph - 1) // wph)):
                ca, cb = max(0, p0 - r * wph), min(tw, p0 + T - r * wph)
                if ca >= cb:
                    continue
                n = min(ow, 2 * cb) - 2 * ca
                src = 2 * (r * wph + ca - p0)
                for half in range(2):
                    row = 2 * r + half
                    if row >= oh:
                        break
                    buf = top if half == 0 else bottom
                    dst = ((i * n_out + o) * oh + row) * ow + 2 * ca
                    if masked:
                        _copy_where(yflat, dst, buf, src, mflat, dst, n)
                    elif relu:
                        _copy_where(yflat, dst, buf, src, buf, src, n)
                    else:
                        _copy(yflat, dst, buf, src, n)
