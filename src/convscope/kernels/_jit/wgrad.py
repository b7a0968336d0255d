"""Weight-gradient loops of the direct convolution (flat padded layout; see :mod:`.conv`).

Two splits: over channel and kernel-entry blocks (:func:`conv_weight_grad`, input packed
for the whole batch, gradient rows laid out by :func:`lay_rows`), and over images
(:func:`conv_weight_grad_images`, each task laying its own images out in cache). Both
keep 4 channels x 4 kernel entries in 16 vector accumulators (:func:`_wgrad4`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .rows import _copy, _copy_where, _nonfinite, _vsum
from .simd import lanes, vfma, vload, vstore

__all__ = ["conv_weight_grad", "conv_weight_grad_images", "lay_rows"]

_OPTS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


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
