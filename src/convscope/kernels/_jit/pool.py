"""Max pooling and ReLU loops (one plane or one run of values per task, deterministic)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .simd import (
    lanes,
    veven,
    vfma,
    vload,
    vload_index,
    vpick,
    vsplat,
    vstore,
    vstore_index,
    vziphi,
    vziplo,
)

_OPTS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


@njit(**_OPTS)
def _window(x, t, top, left, kh, kw, dh, dw, h, w):
    """One window, bounds checked: ``(best, at)`` by the reference's rule.

    The window's cells inside the input are scanned in row-major order; a larger value or
    a NaN takes over (so the first maximum wins, or the last NaN); the winner starts as
    the first real cell, so a window of -inf values points at a real cell; ``at = -1``
    when the window holds no input cell.
    """
    best = -np.inf
    at = -1
    for u in range(kh):
        hi = top + u * dh
        if hi < 0 or hi >= h:
            continue
        for v in range(kw):
            wi = left + v * dw
            if wi < 0 or wi >= w:
                continue
            value = x[t, hi, wi]
            # Written as selects, not branches: random data mispredicts them.
            take = (value > best) | (value != value) | (at < 0)
            at = hi * w + wi if take else at
            best = value if (value > best) | (value != value) else best
    return best, at


@njit(inline="always", **_OPTS)
def _max_lanes(a, b0, offs, track, sw):
    """The maxima of ``lanes`` windows side by side, ``sw`` (1 or 2) columns apart.

    Window ``l``'s cells are ``a[b0 + l * sw + offs[j]]``; they are scanned in order with
    the reference's rule (a larger value or a NaN takes over: the first maximum wins, or
    the last NaN). Returns ``(m, kv)``: the maxima and, per lane, ``track[j]`` of the
    winning cell (an offset, small enough to be exact in floats).
    """
    L = lanes(a)
    if sw == 1:
        m = vload(a, b0)
    else:
        m = veven(vload(a, b0), vload(a, b0 + L))
    kv = vsplat(a, track[0])
    for j in range(1, offs.size):
        at = b0 + offs[j]
        if sw == 1:
            cell = vload(a, at)
        else:
            cell = veven(vload(a, at), vload(a, at + L))
        kv = vpick(cell, m, vsplat(a, track[j]), kv)
        m = vpick(cell, m, cell, m)
    return m, kv


@njit(parallel=True, **_OPTS)
def max_pool(x, kernel, stride, padding, dilation, with_idx, y, idx):
    """``y``/``idx`` (N*C, H_out, W_out) from ``x`` (N*C, H, W): the reference's rule.

    ``with_idx`` false: the winners are not recorded (no gradient will be asked for, as
    PyTorch's forward without grad); ``idx`` is then not touched.

    Windows that lie wholly inside the input (interior rows and columns) scan their cells
    by a table of flat offsets and record the winner's cell number, turned into the flat
    index at the end: with stride 1 or 2, a vector of output columns at a time (stride 2
    takes the even lanes of two loads), then four columns at a time (four independent
    compare-select chains instead of one); the other windows take :func:`_window`, with bounds
    checks. Both scan the cells in row-major order with the same rule, so the results are
    those of the reference.
    """
    planes, h, w = x.shape
    oh, ow = y.shape[1], y.shape[2]
    kh, kw = kernel
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    kk = kh * kw
    offs = np.empty(kk, np.int64)
    for u in range(kh):
        for v in range(kw):
            offs[u * kw + v] = u * dh * w + v * dw
    qa = min(ow, (pw + sw - 1) // sw)  # first column whose window starts inside
    reach = w - 1 + pw - (kw - 1) * dw  # interior columns: q * sw <= reach
    qb = max(qa, min(ow, reach // sw + 1)) if reach >= 0 else qa
    L = lanes(x)
    # vector columns: stride 1 or 2, the window (and, for stride 2, one more cell) inside
    reach_v = reach - (sw - 1)
    qv = max(qa, min(qb, reach_v // sw + 1)) if reach_v >= 0 and sw <= 2 else qa
    yflat, iflat = y.ravel(), idx.ravel()
    xall = x.ravel()
    reach_read = offs[kk - 1] + (2 * L if sw == 2 else L)  # a vector's reads past its start
    for t in prange(planes):
        xt = x[t].ravel()
        lane = np.empty(L, x.dtype)
        klane = np.empty(L, x.dtype)
        for r in range(oh):
            top = r * sh - ph
            edge = top < 0 or top + (kh - 1) * dh >= h  # window rows leave the input
            for q in range(ow):
                if edge or q < qa or q >= qb:
                    best, at = _window(x, t, top, q * sw - pw, kh, kw, dh, dw, h, w)
                    y[t, r, q] = best
                    if with_idx:
                        idx[t, r, q] = at
            if edge:
                continue
            q = qa
            b0 = top * w + q * sw - pw
            if 0 < qv - qa < L and t * h * w + b0 + reach_read <= planes * h * w:
                # Rows narrower than a vector (small planes): one vector whose lanes past
                # the interior columns read on into the next rows (inside the array) and
                # are dropped; the others are those of the loop below.
                m, kv = _max_lanes(xall, t * h * w + b0, offs, offs, sw)
                vstore(lane, 0, m)
                vstore(klane, 0, kv)
                for j in range(qv - qa):
                    y[t, r, qa + j] = lane[j]
                    if with_idx:
                        idx[t, r, qa + j] = b0 + j * sw + int(klane[j])
                q = qv
            while q < qv and qv - qa >= L:  # L columns per step (stride 2: even lanes)
                q = min(q, qv - L)  # the last vector overlaps the one before: same values
                b0 = top * w + q * sw - pw
                m, kv = _max_lanes(xt, b0, offs, offs, sw)  # kv: the winner's offset from b0
                vstore(yflat, (t * oh + r) * ow + q, m)
                if with_idx:
                    vstore_index(iflat, (t * oh + r) * ow + q, kv, b0, sw)
                q += L
            while q + 4 <= qb:
                b0 = top * w + q * sw - pw
                b1, b2, b3 = b0 + sw, b0 + 2 * sw, b0 + 3 * sw
                m0, m1, m2, m3 = xt[b0], xt[b1], xt[b2], xt[b3]
                k0, k1, k2, k3 = 0, 0, 0, 0
                for j in range(1, kk):
                    o = offs[j]
                    v0, v1, v2, v3 = xt[b0 + o], xt[b1 + o], xt[b2 + o], xt[b3 + o]
                    t0 = (v0 > m0) | (v0 != v0)
                    t1 = (v1 > m1) | (v1 != v1)
                    t2 = (v2 > m2) | (v2 != v2)
                    t3 = (v3 > m3) | (v3 != v3)
                    k0 = j if t0 else k0
                    k1 = j if t1 else k1
                    k2 = j if t2 else k2
                    k3 = j if t3 else k3
                    m0 = v0 if t0 else m0
                    m1 = v1 if t1 else m1
                    m2 = v2 if t2 else m2
                    m3 = v3 if t3 else m3
                y[t, r, q], y[t, r, q + 1], y[t, r, q + 2], y[t, r, q + 3] = m0, m1, m2, m3
                if with_idx:
                    idx[t, r, q], idx[t, r, q + 1] = b0 + offs[k0], b1 + offs[k1]
                    idx[t, r, q + 2], idx[t, r, q + 3] = b2 + offs[k2], b3 + offs[k3]
                q += 4
            for col in range(q, qb):
                base = top * w + col * sw - pw
                best = xt[base]
                k = 0
                for j in range(1, kk):
                    value = xt[base + offs[j]]
                    take = (value > best) | (value != value)
                    k = j if take else k
                    best = value if take else best
                y[t, r, col] = best
                if with_idx:
                    idx[t, r, col] = base + offs[k]


@njit(parallel=True, **_OPTS)
def max_pool_grad(gy, idx, y, masked, gx):
    """``gx[t].flat[idx[t, r, q]] += gy[t, r, q]``, one plane per task, in output order.

    ``gx`` need not be zeroed: each task zeroes its plane first (in cache, the same pass
    that the scatter then finds there). ``idx = -1`` marks a window with no input cell:
    nothing to credit. ``masked``: the pool's input was a ReLU's output, whose gradient
    rule is applied here: a window whose maximum ``y[t, r, q]`` (its winner's value) is
    ``<= 0`` credits nothing.
    """
    planes, oh, ow = gy.shape
    n = oh * ow
    L = lanes(gy)
    gyflat, yflat = gy.ravel(), y.ravel()
    for t in prange(planes):
        flat = gx[t].ravel()
        flat[:] = 0
        g = gyflat[t * n : (t + 1) * n]
        if masked:  # the plane's gradient masked first, by vectors (in cache); a test
            m = np.empty(n, gy.dtype)  # inside the scatter loop made it 2x slower
            zero = vsplat(m, 0)
            j = 0
            while j + L <= n:
                vstore(m, j, vpick(vload(yflat, t * n + j), zero, vload(gyflat, t * n + j), zero))
                j += L
            for k in range(j, n):
                m[k] = 0 if yflat[t * n + k] <= 0 else gyflat[t * n + k]
            g = m
        at = idx[t].ravel()
        for k in range(n):
            if at[k] >= 0:
                flat[at[k]] += g[k]


@njit(parallel=True, **_OPTS)
def max_pool_padded(x, kernel, stride, padding, dilation, with_idx, hb, wb, per_task, y, idx):
    """:func:`max_pool` for padded pooling with stride 1 or 2 and rows of a vector or more.

    A task fills a buffer of ``hb x wb`` cells with -inf once (the padding, and the
    overhang of ceil mode) and copies each of its ``per_task`` planes into it in turn, so
    every window, the edge ones too, takes the
    vector path (:func:`max_pool`'s bounds-checked scalar windows made a 3 x 3, stride 2,
    padding 1 pool of 56 x 56 planes twice PyTorch's time). Winners are tracked as offsets
    in the input plane, not the buffer. A padding cell can only stay the winner of a
    window whose real cells are all -inf (or absent): the lanes whose maximum is -inf are
    redone by :func:`_window`, which keeps the reference's rule for them.
    """
    planes, h, w = x.shape
    oh, ow = y.shape[1], y.shape[2]
    kh, kw = kernel
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    kk = kh * kw
    offs_b = np.empty(kk, np.int64)  # a cell's offset in the buffer
    offs_x = np.empty(kk, np.int64)  # and in the input plane
    for u in range(kh):
        for v in range(kw):
            offs_b[u * kw + v] = u * dh * wb + v * dw
            offs_x[u * kw + v] = u * dh * w + v * dw
    L = lanes(x)
    yflat, iflat, xflat = y.ravel(), idx.ravel(), x.ravel()
    for task in prange((planes + per_task - 1) // per_task):
        buf = np.empty(hb * wb + wb + 2 * L, x.dtype)  # + slack for the stride-2 loads
        buf[:] = -np.inf
        lane = np.empty(L, x.dtype)
        for t in range(task * per_task, min(planes, (task + 1) * per_task)):
            _pool_plane_padded(x, xflat, t, buf, lane, offs_b, offs_x, kernel, stride, padding,
                               dilation, with_idx, wb, yflat, iflat, oh, ow)


@njit(inline="always", **_OPTS)
def _pool_plane_padded(x, xflat, t, buf, lane, offs_b, offs_x, kernel, stride, padding,
                       dilation, with_idx, wb, yflat, iflat, oh, ow):
    """One plane of :func:`max_pool_padded`: copy it into ``buf``, pool it by vectors."""
    h, w = x.shape[1], x.shape[2]
    kh, kw = kernel
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    L = lanes(x)
    for r in range(h):
        at = (r + ph) * wb + pw
        buf[at : at + w] = xflat[(t * h + r) * w : (t * h + r + 1) * w]
    for r in range(oh):
        q = 0
        while q < ow:
            q = min(q, ow - L)  # the last vector overlaps the one before: same values
            m, kv = _max_lanes(buf, r * sh * wb + q * sw, offs_b, offs_x, sw)
            o = (t * oh + r) * ow + q
            vstore(yflat, o, m)
            if with_idx:
                vstore_index(iflat, o, kv, (r * sh - ph) * w + q * sw - pw, sw)
            vstore(lane, 0, m)
            for j in range(L):
                if lane[j] == -np.inf:  # only padding won, or every real cell is -inf
                    best, at = _window(x, t, r * sh - ph, (q + j) * sw - pw, kh, kw, dh,
                                       dw, h, w)
                    yflat[o + j] = best
                    if with_idx:
                        iflat[o + j] = at
            q += L


@njit(inline="always", **_OPTS)
def _where_equal(rel, c, g, zero):
    """Per lane ``g`` where ``rel == c`` (small whole numbers, exact in floats), else 0."""
    return vpick(rel, vsplat(rel, c - 0.5), vpick(rel, vsplat(rel, c + 0.5), zero, g), zero)


@njit(parallel=True, **_OPTS)
def max_pool_grad_2x2(gy, idx, y, masked, gx):
    """:func:`max_pool_grad` for 2 x 2 windows, stride 2, no padding (windows side by side).

    Every input cell belongs to at most one window, so each is written once, no zeroing
    pass and no scatter: for a vector of windows, the winner's place in its window
    (``idx`` minus the window's first cell: 0, 1, W or W + 1) picks which of the four
    cell vectors gets ``gy``, and the cells go back in row order by interleaving (the
    last vector of a row overlaps the one before: the same values written twice). Cells
    in a last odd row or column (no window) get 0. Needs ``W_out >= lanes`` and planes
    under 2**24 cells (the offsets exact in float32).
    """
    planes, oh, ow = gy.shape
    h, w = gx.shape[1], gx.shape[2]
    L = lanes(gy)
    gyf, yf, idf, gxf = gy.ravel(), y.ravel(), idx.ravel(), gx.ravel()
    steps = np.empty(L, gy.dtype)
    for k in range(L):
        steps[k] = 2 * k  # the lanes' windows start 2 columns apart
    for t in prange(planes):
        zero, one, minus = vsplat(gyf, 0), vsplat(gyf, 1), vsplat(gyf, -1)
        two = vload(steps, 0)
        for r in range(oh):
            q = 0
            while q < ow:
                q = min(q, ow - L)
                o = (t * oh + r) * ow + q
                g = vload(gyf, o)
                if masked:  # the input was a ReLU's output: its rule, read from y
                    g = vpick(vload(yf, o), zero, g, zero)
                start = vfma(two, one, vsplat(gyf, 2 * r * w + 2 * q))  # each window's cell 0
                rel = vfma(start, minus, vload_index(idf, o, gyf))  # exact: small integers
                top, bottom = (t * h + 2 * r) * w + 2 * q, (t * h + 2 * r + 1) * w + 2 * q
                c0, c1 = _where_equal(rel, 0, g, zero), _where_equal(rel, 1, g, zero)
                vstore(gxf, top, vziplo(c0, c1))
                vstore(gxf, top + L, vziphi(c0, c1))
                c0, c1 = _where_equal(rel, w, g, zero), _where_equal(rel, w + 1, g, zero)
                vstore(gxf, bottom, vziplo(c0, c1))
                vstore(gxf, bottom + L, vziphi(c0, c1))
                q += L
            if 2 * ow < w:
                gx[t, 2 * r, w - 1] = 0
                gx[t, 2 * r + 1, w - 1] = 0
        if 2 * oh < h:
            for j in range(w):
                gx[t, h - 1, j] = 0


@njit(**_OPTS)
def _avg_window(x, t, top, left, kh, kw, h, w, y, r, q):
    """``y[t, r, q]`` = the sum of the window's cells inside the input (row-major, from 0)."""
    y[t, r, q] = 0  # accumulated in y: the input's precision, as the NumPy version
    for u in range(kh):
        hi = top + u
        if 0 <= hi < h:
            for v in range(kw):
                wi = left + v
                if 0 <= wi < w:
                    y[t, r, q] += x[t, hi, wi]


@njit(parallel=True, **_OPTS)
def avg_pool(x, kernel, stride, padding, div, y):
    """``y`` (N*C, H_out, W_out) = window sums of ``x`` (N*C, H, W) / ``div`` (H_out, W_out).

    Padding cells add nothing (they are zeros). Interior windows with stride 1 or 2 go a
    vector of output columns at a time (the last vector overlapping the one before), the
    cells added in row-major order from zero as everywhere else; the division follows.
    """
    planes, h, w = x.shape
    oh, ow = y.shape[1], y.shape[2]
    kh, kw = kernel
    sh, sw = stride
    ph, pw = padding
    kk = kh * kw
    offs = np.empty(kk, np.int64)
    for u in range(kh):
        for v in range(kw):
            offs[u * kw + v] = u * w + v
    qa = min(ow, (pw + sw - 1) // sw)
    reach = w - 1 + pw - (kw - 1)
    qb = max(qa, min(ow, reach // sw + 1)) if reach >= 0 else qa
    L = lanes(x)
    reach_v = reach - (sw - 1)
    qv = max(qa, min(qb, reach_v // sw + 1)) if reach_v >= 0 and sw <= 2 else qa
    yflat = y.ravel()
    for t in prange(planes):
        xt = x[t].ravel()
        one = vsplat(xt, 1)
        for r in range(oh):
            top = r * sh - ph
            q = 0
            if top >= 0 and top + kh - 1 < h:
                q = qa
                while q < qv and qv - qa >= L:
                    q = min(q, qv - L)
                    b0 = top * w + q * sw - pw
                    acc = vsplat(xt, 0)
                    for j in range(kk):
                        at = b0 + offs[j]
                        if sw == 1:
                            cell = vload(xt, at)
                        else:
                            cell = veven(vload(xt, at), vload(xt, at + L))
                        acc = vfma(one, cell, acc)  # 1 * cell + acc: an exact product
                    vstore(yflat, (t * oh + r) * ow + q, acc)
                    q += L
            for col in range(ow):
                if col < qa or col >= q:
                    _avg_window(x, t, top, col * sw - pw, kh, kw, h, w, y, r, col)
                y[t, r, col] = y[t, r, col] / div[r, col]


@njit(parallel=True, **_OPTS)
def avg_pool_grad(gy, kernel, stride, padding, div, gx):
    """``gx`` (N*C, H, W): each ``gy[t, r, q] / div[r, q]`` added to its window's cells.

    One plane per task: the plane is zeroed (in cache), then the outputs are taken in
    row-major order and each adds its share to its window's cells inside the input (a
    fixed order: deterministic; padding cells take nothing).
    """
    planes, h, w = gx.shape
    oh, ow = gy.shape[1], gy.shape[2]
    kh, kw = kernel
    sh, sw = stride
    ph, pw = padding
    gyflat, gflat = gy.ravel(), gx.ravel()
    for t in prange(planes):
        at = t * h * w
        for j in range(at, at + h * w):
            gflat[j] = 0
        share = np.empty(ow * kw, gx.dtype)
        for r in range(oh):
            top = r * sh - ph
            if sw == kw and pw == 0 and ow * kw <= w:  # columns do not overlap: rows of shares
                for q in range(ow):
                    value = gyflat[(t * oh + r) * ow + q] / div[r, q]
                    for v in range(kw):
                        share[q * kw + v] = value
                for u in range(max(0, -top), min(kh, h - top)):
                    row = at + (top + u) * w
                    for j in range(ow * kw):
                        gflat[row + j] += share[j]
                continue
            for q in range(ow):
                share[q] = gyflat[(t * oh + r) * ow + q] / div[r, q]
            for u in range(max(0, -top), min(kh, h - top)):
                row = at + (top + u) * w  # flat indices: no negative-index checks
                for q in range(ow):
                    left = q * sw - pw
                    for v in range(max(0, -left), min(kw, w - left)):
                        gflat[row + left + v] += share[q]


RUN = 4096  # values per task of the elementwise loops


@njit(**_OPTS)
def _relu_run(x, y):
    for i in range(x.size):
        value = x[i]
        y[i] = 0 if value <= 0 else value


@njit(**_OPTS)
def _relu_grad_run(gy, x, gx):
    for i in range(x.size):
        gx[i] = 0 if x[i] <= 0 else gy[i]


@njit(parallel=True, **_OPTS)
def relu(x, y):
    """``y = 0 where x <= 0 else x`` on flat arrays (NaN passes through), runs of RUN values.

    Each run is a call on slices: written inline, the loop over ``lo..hi`` of the whole
    array is not vectorised (measured 10x slower).
    """
    n = x.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        _relu_run(x[lo:hi], y[lo:hi])


@njit(parallel=True, **_OPTS)
def relu_grad(gy, x, gx):
    """``gx = 0 where x <= 0 else gy`` on flat arrays, runs of RUN values."""
    n = x.size
    for t in prange((n + RUN - 1) // RUN):
        lo, hi = t * RUN, min(n, (t + 1) * RUN)
        _relu_grad_run(gy[lo:hi], x[lo:hi], gx[lo:hi])
