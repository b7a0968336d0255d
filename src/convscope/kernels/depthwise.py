"""Depthwise convolution (one kernel per channel): wrappers around :mod:`._jit.depthwise`.

Plane by plane: each task pads a plane into a buffer in cache and writes output rows
straight into the result (no garbage columns, no flat copy of the batch).

* forward: any row stride, column stride 1 or 2 (the buffer split into the padded
  plane's even and odd columns, so every kernel entry reads a contiguous run);
* input gradient: for stride 1 the same loop with the kernels flipped; for column stride 2
  its own loop (:func:`._jit.depthwise.depthwise_grad_input_s2`), which sums a vector of
  the even and one of the odd input columns and interleaves them;
* weight gradient: 3 x 3 kernel entries in vector accumulators per plane, the planes of
  a channel added in image order; the bias gradient from the same reads of ``gy``.

:func:`supports` says which strides these loops take; the rest goes to :mod:`.gemm`.
"""

from __future__ import annotations

import numpy as np

from . import loops
from .direct import _run

DEPTHWISE_TASKS = 128  # planes handed out in about this many tasks


def _jit():
    from .direct import _jit as loops_

    return loops_()


def _lanes(dtype) -> int:
    return 64 // np.dtype(dtype).itemsize


def is_depthwise(w, groups) -> bool:
    return w.shape[1] == 1 and w.shape[0] == groups


def supports(op, stride) -> bool:
    """Whether the loops here compute ``op`` ("forward", "grad_input", "grad_weight")."""
    sh, sw = stride
    if op == "grad_input":
        return (sh, sw) == (1, 1) or sw == 2
    return sw in (1, 2)


PLANE_WORK = 20_000  # a plane's fixed cost (filling its buffer, short rows) in multiply-adds


def _work(macs, planes):
    """What :func:`.direct._run` weighs against one thread's threshold: the multiply-adds
    plus each plane's fixed cost (8 x 960 planes of 7 x 7 are 3.4M multiply-adds but
    1.5 ms on one thread: ~190 ns a plane)."""
    return macs + planes * PLANE_WORK


def _per_task(planes):
    """Planes per task: about DEPTHWISE_TASKS tasks, each zeroing its buffer once."""
    return max(1, -(-planes // DEPTHWISE_TASKS))


class _Plane:
    """The padded plane buffer of one depthwise convolution (see :mod:`._jit.depthwise`)."""

    def __init__(self, hw, kernel, stride, padding, dilation):
        (pt, pb), (pl, pr) = padding
        self.top, self.left = pt, pl
        self.hp, wp = hw[0] + pt + pb, hw[1] + pl + pr
        self.sh, self.sw = stride
        self.wph = -(-wp // self.sw)  # one phase plane's width
        self.plane = self.hp * self.wph
        self.oh = (self.hp - dilation[0] * (kernel[0] - 1) - 1) // self.sh + 1
        self.ow = (wp - dilation[1] * (kernel[1] - 1) - 1) // self.sw + 1

    def col(self, c):
        return c if self.sw == 1 else (c % 2) * self.plane + c // 2

    def offsets(self, kernel, dilation):
        return np.array([u * dilation[0] * self.wph + self.col(v * dilation[1])
                         for u in range(kernel[0]) for v in range(kernel[1])], np.intp)


def conv2d(x, w, b, stride, padding, dilation, lo=-np.inf, hi=np.inf):
    """Depthwise convolution, ``w`` of shape (C, 1, kh, kw); needs :func:`supports`;
    the output clamped to ``[lo, hi]`` as it is written (a fused ReLU: ``lo=0``; ReLU6:
    ``lo=0, hi=6``)."""
    n, c, h, wd = x.shape
    kernel = w.shape[2:]
    geo = _Plane((h, wd), kernel, stride, padding, dilation)
    y = np.empty((n, c, geo.oh, geo.ow), dtype=x.dtype)
    if y.size == 0:
        return y
    bias = np.zeros(c, x.dtype) if b is None else b.astype(x.dtype)
    per_task = _per_task(n * c)
    lanes = _lanes(x.dtype)
    if (tuple(kernel) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)
            and geo.ow >= 2 * lanes):
        wpa = -(-(geo.wph + lanes) // lanes) * lanes  # rows on 64-byte boundaries
        offs = np.array([u * wpa + v for u in range(3) for v in range(3)], np.intp)
        _run(_jit().depthwise3x3, -(-n * c // per_task), _work(y.size * 9, n * c),
             np.ascontiguousarray(x).reshape(n * c, h, wd), w.reshape(c, -1).astype(x.dtype),
             bias, geo.top, geo.left, wpa, offs, per_task, float(lo), float(hi),
             y.reshape(n * c, geo.oh, geo.ow))
        return y
    offs = geo.offsets(kernel, dilation)
    _run(_jit().depthwise, -(-n * c // per_task), _work(y.size * offs.size, n * c),
         np.ascontiguousarray(x).reshape(n * c, h, wd), w.reshape(c, -1).astype(x.dtype),
         bias, geo.top, geo.left, geo.hp, geo.wph, geo.sh, geo.sw, offs, per_task, float(lo),
         float(hi), y.reshape(n * c, geo.oh, geo.ow))
    return y


def conv2d_grad_input(gy, w, input_hw, stride, padding, dilation, mask=None):
    """Input gradient; ``mask``: a fused ReLU's output (``gy`` taken as 0 where <= 0)."""
    n, c, oh, ow = gy.shape
    kh, kw = w.shape[2:]
    if mask is not None:
        gy = loops.relu_grad(np.ascontiguousarray(gy), np.ascontiguousarray(mask))
    if tuple(stride) == (1, 1):
        return _grad_input_flipped(gy, w, input_hw, padding, dilation)
    gx = np.empty((n, c, *input_hw), dtype=gy.dtype)
    if gx.size == 0:
        return gx
    if gy.size == 0:
        gx[...] = 0
        return gx
    per_task = _per_task(n * c)
    _run(_jit().depthwise_grad_input_s2, -(-n * c // per_task), gy.size * kh * kw,
         np.ascontiguousarray(gy).reshape(n * c, oh, ow), w.reshape(c, -1).astype(gy.dtype),
         padding[0][0], padding[1][0], stride[0], dilation[0], dilation[1], kh, kw,
         (kw - 1) * dilation[1] // 2, per_task, gx.reshape(n * c, *input_hw))
    return gx


def _grad_input_flipped(gy, w, input_hw, padding, dilation):
    """Stride 1: the forward loop on ``gy`` padded by ``d(k-1) - pad``, kernels flipped."""
    oh, ow = gy.shape[2:]
    kh, kw = w.shape[2:]
    full = [dilation[0] * (kh - 1) - padding[0][0], dilation[0] * (kh - 1) - padding[0][1],
            dilation[1] * (kw - 1) - padding[1][0], dilation[1] * (kw - 1) - padding[1][1]]
    # Padding wider than the dilated kernel: rows of gy that only saw padding are cut off.
    cut = [max(0, -p) for p in full]
    g = gy[:, :, cut[0] : oh - cut[1], cut[2] : ow - cut[3]]
    pads = ((max(0, full[0]), max(0, full[1])), (max(0, full[2]), max(0, full[3])))
    gx = conv2d(g, w[:, :, ::-1, ::-1], None, (1, 1), pads, dilation)
    assert gx.shape[2:] == tuple(input_hw)
    return gx


def conv2d_grad_weight(gy, x, kernel_hw, stride, padding, dilation, bias=False):
    """Weight gradient (and with ``bias`` the bias gradient): per-plane sums, added over
    the images in order (deterministic for any split of the work)."""
    n, c, oh, ow = gy.shape
    kh, kw = kernel_hw
    dtype = gy.dtype
    if n == 0 or gy.size == 0:
        gw = np.zeros((c, 1, kh, kw), dtype)
        return (gw, np.zeros(c, dtype)) if bias else gw
    geo = _Plane(x.shape[2:], kernel_hw, stride, padding, dilation)
    out = np.empty((n * c, -(-kh // 3) * 3, -(-kw // 3) * 3), dtype=dtype)
    sums = np.empty(n * c, dtype)
    # the 3 x 3 blocks' entries past the kernel's last column read up to 2 * dw further
    slack = geo.col(2 * dilation[1]) + 2 * dilation[1] + 4 * _lanes(dtype)
    per_task = _per_task(n * c)
    _run(_jit().depthwise_weight_grad, -(-n * c // per_task),
         gy.size * out.shape[1] * out.shape[2],
         np.ascontiguousarray(x, dtype=dtype).reshape(n * c, *x.shape[2:]),
         np.ascontiguousarray(gy).reshape(n * c, oh, ow), geo.top, geo.left, geo.hp, geo.wph,
         geo.sh, geo.sw, slack, kh, kw, dilation[0], dilation[1], per_task, out, sums)
    gw, gb = out[:c].copy(), sums[:c].copy()
    for i in range(1, n):  # image order: deterministic
        gw += out[i * c : (i + 1) * c]
        gb += sums[i * c : (i + 1) * c]
    gw = np.ascontiguousarray(gw[:, :kh, :kw]).reshape(c, 1, kh, kw)
    return (gw, gb) if bias else gw
