"""Direct convolution loops on the *flat padded* layout (stride 1), register-blocked.

The layout. Each image is zero-padded and its channel planes laid end to end in one row
``xf[n]``; a plane is ``Hp x Wp``. With stride 1 the output value ``(r, q)`` of a kernel
reads ``xf[n, c * Hp * Wp + (r + u*dh) * Wp + q + v*dw]``: writing ``p = r * Wp + q`` (the
output on a grid as wide as the *padded* input) that is ``xf[n, p + offs[k]]`` with one
fixed offset per kernel entry ``k = (c, u, v)``. So every kernel entry reads a contiguous
run of ``xf`` and consecutive outputs ``p .. p + 15`` are one vector load. The last
``kw - 1`` columns of each output row (``q >= W_out``) are garbage and are dropped by the
caller; ``xf`` has enough zero slack after the last plane that no load leaves the array.

The blocking. The forward loop computes 4 output channels x 4 vectors of ``p`` (64
float32 outputs) in 16 vector accumulators held in registers; each step over ``k`` loads 4
input vectors and 4 weights and does 16 fused multiply-adds. Channels left over (fewer
than 4 in a group) take a 1-channel x 4-vector block. The weight-gradient loop blocks
4 channels x 4 kernel entries the same way, summing over positions in its registers.

Tasks are independent (no two write the same value) and every sum runs in a fixed order,
so results do not depend on the number of threads or on how tasks are handed out.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .simd import lanes, vfma, vload, vsplat, vstore

_OPTS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


@njit(parallel=True, **_OPTS)
def conv_forward(xf, w4, b4, w1, b1, offs, gstride, y):
    """``y[n, g*og + o, p] = bias + sum_k weight[o, k] * xf[n, g*gstride + offs[k] + p]``.

    xf (N, Lx); offs (K,); y (N, G*og, Pp) with ``Pp`` a multiple of ``4 * lanes``.
    Channels ``o < 4B`` of each group: w4 (G, B, K, 4), b4 (G, B, 4), channel ``4b + j``
    is ``w4[g, b, :, j]``. Channels ``4B <= o < og``: w1 (G, og - 4B, K), b1 (G, og - 4B).
    """
    n_img, n_grp, n_b4, n_b1 = xf.shape[0], w4.shape[0], w4.shape[1], w1.shape[1]
    kk = offs.size
    og = y.shape[1] // n_grp
    L = lanes(xf)
    n_p = y.shape[2] // (4 * L)
    for t in prange(n_img * n_p):
        i, p0 = t // n_p, t % n_p * 4 * L
        x = xf[i]
        for g in range(n_grp):
            base = g * gstride + p0
            for b in range(n_b4):
                w = w4[g, b]
                s0, s1 = vsplat(x, b4[g, b, 0]), vsplat(x, b4[g, b, 1])
                s2, s3 = vsplat(x, b4[g, b, 2]), vsplat(x, b4[g, b, 3])
                a00, a01, a02, a03 = s0, s0, s0, s0
                a10, a11, a12, a13 = s1, s1, s1, s1
                a20, a21, a22, a23 = s2, s2, s2, s2
                a30, a31, a32, a33 = s3, s3, s3, s3
                for k in range(kk):
                    at = base + offs[k]
                    x0, x1 = vload(x, at), vload(x, at + L)
                    x2, x3 = vload(x, at + 2 * L), vload(x, at + 3 * L)
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
                o = g * og + 4 * b
                out = y[i, o]
                vstore(out, p0, a00), vstore(out, p0 + L, a01)
                vstore(out, p0 + 2 * L, a02), vstore(out, p0 + 3 * L, a03)
                out = y[i, o + 1]
                vstore(out, p0, a10), vstore(out, p0 + L, a11)
                vstore(out, p0 + 2 * L, a12), vstore(out, p0 + 3 * L, a13)
                out = y[i, o + 2]
                vstore(out, p0, a20), vstore(out, p0 + L, a21)
                vstore(out, p0 + 2 * L, a22), vstore(out, p0 + 3 * L, a23)
                out = y[i, o + 3]
                vstore(out, p0, a30), vstore(out, p0 + L, a31)
                vstore(out, p0 + 2 * L, a32), vstore(out, p0 + 3 * L, a33)
            for j in range(n_b1):
                w = w1[g, j]
                a0 = vsplat(x, b1[g, j])
                a1, a2, a3 = a0, a0, a0
                for k in range(kk):
                    at = base + offs[k]
                    e = vsplat(x, w[k])
                    a0, a1 = vfma(e, vload(x, at), a0), vfma(e, vload(x, at + L), a1)
                    a2, a3 = vfma(e, vload(x, at + 2 * L), a2), vfma(e, vload(x, at + 3 * L), a3)
                out = y[i, g * og + 4 * n_b4 + j]
                vstore(out, p0, a0), vstore(out, p0 + L, a1)
                vstore(out, p0 + 2 * L, a2), vstore(out, p0 + 3 * L, a3)


@njit(parallel=True, **_OPTS)
def conv_weight_grad(xf, gf, offs, gstride, n_b4, kb_per_task, gwv):
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
    L = lanes(xf)
    n_o, n_kb = n_b4 + og - 4 * n_b4, k4 // 4
    n_kc = (n_kb + kb_per_task - 1) // kb_per_task
    chunk = 512
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
                        g0, g1, g2, g3 = gf[i, c], gf[i, c + 1], gf[i, c + 2], gf[i, c + 3]
                        r0, r1, r2, r3 = gwv[g, o], gwv[g, o + 1], gwv[g, o + 2], gwv[g, o + 3]
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
                    else:
                        o = 4 * n_b4 + ob - n_b4
                        g0 = gf[i, g * og + o]
                        r0 = gwv[g, o]
                        a0, a1 = vload(r0[k], 0), vload(r0[k + 1], 0)
                        a2, a3 = vload(r0[k + 2], 0), vload(r0[k + 3], 0)
                        for p in range(p0, p1, L):
                            e = vload(g0, p)
                            a0, a1 = vfma(e, vload(x, d0 + p), a0), vfma(e, vload(x, d1 + p), a1)
                            a2, a3 = vfma(e, vload(x, d2 + p), a2), vfma(e, vload(x, d3 + p), a3)
                        vstore(r0[k], 0, a0), vstore(r0[k + 1], 0, a1)
                        vstore(r0[k + 2], 0, a2), vstore(r0[k + 3], 0, a3)



@njit(parallel=True, **_OPTS)
def depthwise(x, w, bias, top, left, hp, wp, offs, y):
    """Depthwise convolution, one input plane per task, read and written in place.

    x (P, H, W) planes (``P = N * C``); w (C, K) with ``offs`` (K,) into a padded plane
    ``hp x wp`` that holds the plane at ``(top, left)``; bias (C,); y (P, H_out, W_out).
    Each task pads its plane into a private buffer (in cache), runs the 1-channel x
    4-vector block over the flat padded layout, and copies the valid outputs out: the
    input is read once and the output written once.
    """
    planes, h, wd = x.shape
    n_ch, kk = w.shape
    oh, ow = y.shape[1], y.shape[2]
    L = lanes(x)
    pp = (oh * wp + 4 * L - 1) // (4 * L) * 4 * L
    size = hp * wp + pp - oh * wp + wp
    for t in prange(planes):
        c = t % n_ch
        buf = np.zeros(size, x.dtype)
        for r in range(h):
            at = (r + top) * wp + left
            for q in range(wd):
                buf[at + q] = x[t, r, q]
        out = np.empty(pp, x.dtype)
        wc = w[c]
        for p0 in range(0, pp, 4 * L):
            a0 = vsplat(buf, bias[c])
            a1, a2, a3 = a0, a0, a0
            for k in range(kk):
                at = p0 + offs[k]
                e = vsplat(buf, wc[k])
                a0, a1 = vfma(e, vload(buf, at), a0), vfma(e, vload(buf, at + L), a1)
                a2, a3 = vfma(e, vload(buf, at + 2 * L), a2), vfma(e, vload(buf, at + 3 * L), a3)
            vstore(out, p0, a0), vstore(out, p0 + L, a1)
            vstore(out, p0 + 2 * L, a2), vstore(out, p0 + 3 * L, a3)
        for r in range(oh):
            for q in range(ow):
                y[t, r, q] = out[r * wp + q]
