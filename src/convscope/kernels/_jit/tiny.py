"""Convolutions on tiny planes (ResNet's 4 x 4 and 2 x 2 at training sizes): the product
with the images as the vector lanes, and the kernel entries that fall on the padding
skipped instead of multiplied by zeros.

On a 2 x 2 plane with a 3 x 3 kernel and padding 1, each output position sees 4 of the
9 kernel entries; the im2col matrix of :mod:`.panel` is 5/9 zeros, and its product does
2.25x the useful work (a 4 x 4 plane: 1.44x). Here the input is laid out ``(C, H, W, N)``
(the images of one cell side by side), so for one output position and one kernel entry
the rows of ``B`` are the ``N`` images of one input cell, channel after channel: no
packing, and an entry whose cell is off the plane is simply not visited.

The weight gradient is the same sum read the other way: the input laid out ``(H, W, N,
C)`` (channels as the lanes) and the output gradient ``(O, H_out, W_out, N)``; for each
kernel entry it runs over the output positions whose cell lies on the plane only.
Every sum runs in a fixed order (channels, then entries, then positions, as laid out):
results do not depend on threads or task hand-out.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .panel import _cols, _mm4x4
from .simd import lanes, vfma, vload, vsplat, vstore

__all__ = ["tiny_forward", "tiny_grad_weight"]

_OPTS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


@njit(inline="always", **_OPTS)
def _mm8x2(b, bat, nc, kc, w, r0, r1, r2, r3, r4, r5, r6, r7, ks, acc, at, stride):
    """8 rows x 2 vectors: ``acc[at + j*stride + m*L ...] += sum_k w[r_j + k*ks] *
    b[bat + k*nc + m*L ...]`` for ``k < kc`` (16 vector accumulators, as :func:`._mm4x4`
    with half the positions and twice the channels)."""
    L = lanes(b)
    r = at
    a00, a01 = vload(acc, r), vload(acc, r + L)
    r += stride
    a10, a11 = vload(acc, r), vload(acc, r + L)
    r += stride
    a20, a21 = vload(acc, r), vload(acc, r + L)
    r += stride
    a30, a31 = vload(acc, r), vload(acc, r + L)
    r += stride
    a40, a41 = vload(acc, r), vload(acc, r + L)
    r += stride
    a50, a51 = vload(acc, r), vload(acc, r + L)
    r += stride
    a60, a61 = vload(acc, r), vload(acc, r + L)
    r += stride
    a70, a71 = vload(acc, r), vload(acc, r + L)
    for k in range(kc):
        p = bat + k * nc
        x0, x1 = vload(b, p), vload(b, p + L)
        q = k * ks
        e = vsplat(b, w[r0 + q])
        a00, a01 = vfma(e, x0, a00), vfma(e, x1, a01)
        e = vsplat(b, w[r1 + q])
        a10, a11 = vfma(e, x0, a10), vfma(e, x1, a11)
        e = vsplat(b, w[r2 + q])
        a20, a21 = vfma(e, x0, a20), vfma(e, x1, a21)
        e = vsplat(b, w[r3 + q])
        a30, a31 = vfma(e, x0, a30), vfma(e, x1, a31)
        e = vsplat(b, w[r4 + q])
        a40, a41 = vfma(e, x0, a40), vfma(e, x1, a41)
        e = vsplat(b, w[r5 + q])
        a50, a51 = vfma(e, x0, a50), vfma(e, x1, a51)
        e = vsplat(b, w[r6 + q])
        a60, a61 = vfma(e, x0, a60), vfma(e, x1, a61)
        e = vsplat(b, w[r7 + q])
        a70, a71 = vfma(e, x0, a70), vfma(e, x1, a71)
    r = at
    vstore(acc, r, a00), vstore(acc, r + L, a01)
    r += stride
    vstore(acc, r, a10), vstore(acc, r + L, a11)
    r += stride
    vstore(acc, r, a20), vstore(acc, r + L, a21)
    r += stride
    vstore(acc, r, a30), vstore(acc, r + L, a31)
    r += stride
    vstore(acc, r, a40), vstore(acc, r + L, a41)
    r += stride
    vstore(acc, r, a50), vstore(acc, r + L, a51)
    r += stride
    vstore(acc, r, a60), vstore(acc, r + L, a61)
    r += stride
    vstore(acc, r, a70), vstore(acc, r + L, a71)


@njit(inline="always", **_OPTS)
def _wrow(o, last, so, base):
    """Offset of output channel ``o``'s weights (a block past the last channel repeats it:
    computed and dropped)."""
    return min(o, last) * so + base


@njit(parallel=True, **_OPTS)
def tiny_forward(xt, w, so, sc, flip, bias, geo, oc, kc, relu, hi, y):
    """``y[n, o, r, q] = bias[o] + sum over (c, u, v) on the plane of W(o, c, u, v) *
    x[n, c, r*sh + u*dh - pt, q*sw + v*dw - pl]``.

    xt (C, H, W, Np): the input with the images as the last axis (``Np`` a multiple of 2
    vectors, images past ``N`` anything finite); ``W(o, c, u, v) = w[o*so + c*sc + e]``
    with ``e = u*kw + v``, or ``kh*kw - 1 - e`` with ``flip`` (the input gradient reads
    a layer's own weights transposed and flipped in place); bias (O,); ``geo`` as
    :func:`._panel._pack_cols`; y (N, O, H_out, W_out).
    A task owns ``oc`` output channels (a multiple of 8) x 2 vectors of images, all
    positions: ``acc[(o, position), image]`` starts at the bias, then for each block of
    ``kc`` channels, each block of 8 output channels, each kernel entry and each position
    whose cell is on the plane, :func:`_mm8x2` adds that cell's ``kc`` rows of images.
    """
    n_ch, h, wd, n_pad = xt.shape
    n_img, n_out = y.shape[0], y.shape[1]
    kh, kw, sh, sw, dh, dw, pt, pl, oh, ow = (geo[0], geo[1], geo[2], geo[3], geo[4],
                                              geo[5], geo[6], geo[7], geo[8], geo[9])
    khw, limg = kh * kw, oh * ow
    L = lanes(xt)
    nv = 2 * L
    n_ob, n_nb = (n_out + oc - 1) // oc, n_pad // nv
    cell = n_pad  # one input cell's images
    plane = h * wd * n_pad  # one channel's cells
    last = n_out - 1
    xflat, wflat, yflat = xt.ravel(), w.ravel(), y.ravel()
    for t in prange(n_ob * n_nb):
        o0, n0 = t // n_nb * oc, t % n_nb * nv
        o1 = min(o0 + oc, (n_out + 7) // 8 * 8)
        stride = limg * nv
        acc = np.empty((o1 - o0) * stride, xt.dtype)
        for o in range(o0, o1):
            vb = vsplat(xt, bias[min(o, last)])
            for j in range((o - o0) * stride, (o - o0 + 1) * stride, L):
                vstore(acc, j, vb)
        for c0 in range(0, n_ch, kc):
            kn = min(kc, n_ch - c0)
            for ob in range(o0, o1, 8):
                for e in range(khw):
                    u, v = e // kw, e % kw
                    we = c0 * sc + (khw - 1 - e if flip else e)
                    r0, r1 = _wrow(ob, last, so, we), _wrow(ob + 1, last, so, we)
                    r2, r3 = _wrow(ob + 2, last, so, we), _wrow(ob + 3, last, so, we)
                    r4, r5 = _wrow(ob + 4, last, so, we), _wrow(ob + 5, last, so, we)
                    r6, r7 = _wrow(ob + 6, last, so, we), _wrow(ob + 7, last, so, we)
                    qa, qb = _cols(wd, v * dw - pl, sw, ow)  # columns on the plane
                    for r in range(oh):
                        ih = r * sh + u * dh - pt
                        if ih < 0 or ih >= h:
                            continue
                        for q in range(qa, qb):
                            iw = q * sw + v * dw - pl
                            _mm8x2(xflat, c0 * plane + (ih * wd + iw) * cell + n0, plane, kn,
                                   wflat, r0, r1, r2, r3, r4, r5, r6, r7, sc, acc,
                                   ((ob - o0) * limg + r * ow + q) * nv, stride)
        for i in range(min(nv, n_img - n0)):  # each image's block of y is contiguous
            dst = ((n0 + i) * n_out + o0) * limg
            for j in range((min(o1, n_out) - o0) * limg):
                s = acc[j * nv + i]
                if relu and not s > 0 and s == s:
                    s = 0
                if s > hi:
                    s = hi
                yflat[dst + j] = s


@njit(parallel=True, **_OPTS)
def tiny_grad_weight(xr, gt, geo, ob, gw):
    """``gw[o, c, u, v] = sum over n and the positions (r, q) whose cell is on the plane of
    gy[n, o, r, q] * x[n, c, r*sh + u*dh - pt, q*sw + v*dw - pl]``.

    xr (H, W, N, Cp): the input with the channels as the last axis (``Cp`` a multiple of
    4 vectors, channels past ``C`` anything finite); gt (O, H_out, W_out, N); gw (O, C,
    kh, kw). A task owns ``ob`` output channels (a multiple of 4) x 4 vectors of input
    channels, all kernel entries: for each entry and 4 output channels, :func:`._mm4x4`
    runs over the images of each run of positions whose cells are on the plane (a whole
    output row's run at stride 1), the 4 x 4 vectors of sums kept in ``acc``.
    """
    h, wd, n_img, c_pad = xr.shape
    n_out, oh, ow = gt.shape[0], gt.shape[1], gt.shape[2]
    n_ch, kh, kw = gw.shape[1], gw.shape[2], gw.shape[3]
    sh, sw, dh, dw, pt, pl = geo[2], geo[3], geo[4], geo[5], geo[6], geo[7]
    khw = kh * kw
    L = lanes(xr)
    nv = 4 * L
    n_obk, n_cb = (n_out + ob - 1) // ob, c_pad // nv
    last = n_out - 1
    xflat, gflat, wflat = xr.ravel(), gt.ravel(), gw.ravel()
    for t in prange(n_obk * n_cb):
        o0, c0 = t // n_cb * ob, t % n_cb * nv
        acc = np.empty(khw * 4 * nv, xr.dtype)  # (entry, 4 output channels, nv channels)
        for o in range(o0, min(o0 + ob, n_out), 4):
            for e in range(khw):
                u, v = e // kw, e % kw
                off = v * dw - pl
                qa, qb = _cols(wd, off, sw, ow)  # output columns whose cell is on the plane
                first = True
                for r in range(oh):
                    ih = r * sh + u * dh - pt
                    if ih < 0 or ih >= h or qa >= qb:
                        continue
                    step = qb - qa if sw == 1 else 1  # stride 1: the row's cells in a run
                    for q in range(qa, qb, step):
                        g = (r * ow + q) * n_img
                        _mm4x4(xflat, ((ih * wd + q * sw + off) * n_img) * c_pad + c0, c_pad,
                               step * n_img, gflat, min(o, last) * oh * ow * n_img + g,
                               min(o + 1, last) * oh * ow * n_img + g,
                               min(o + 2, last) * oh * ow * n_img + g,
                               min(o + 3, last) * oh * ow * n_img + g, 1, acc, e * 4 * nv, nv,
                               first, 0.0, 0.0, 0.0, 0.0)
                        first = False
                if first:  # no position sees this entry
                    acc[e * 4 * nv : (e + 1) * 4 * nv] = 0
            for j in range(min(4, n_out - o)):  # gw[o + j, c0 + i, :] in order
                for i in range(min(nv, n_ch - c0)):
                    dst = ((o + j) * n_ch + c0 + i) * khw
                    for e in range(khw):
                        wflat[dst + e] = acc[(e * 4 + j) * nv + i]
