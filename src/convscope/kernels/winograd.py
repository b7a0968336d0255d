"""Winograd F(2x2, 3x3) convolution: wrappers around :mod:`._jit.winograd` (the algorithm
is described there). 3 x 3 kernels, stride 1, dilation 1, one group.

Fewer multiplications (16 instead of 36 per 2 x 2 outputs and channel pair) for a
different rounding: the sums run over transformed values. The error bound (tested in
``tests/test_winograd.py``): every value of ``y`` is the exact convolution's up to
``gamma_{C + 12} * mag`` with ``gamma_k = k u / (1 - k u)`` (u = 2**-24 in float32) and
``mag`` the same Winograd computation on absolute values, ``|A^T| (sum_c |G| |g_c| |G^T|
* |B^T| |d_c| |B|) |A| + |b|``: along any path a value is rounded at most ``C + 12`` times
(the kernels' transform in float64 then to the dtype, 2 in the input's transform, the
products and the chain of ``C`` additions, 4 in the output's transform, the bias).
``mag`` is 6-8x the direct convolution's ``|x| conv |w|`` on average (up to 27x at
single outputs, measured on random data) while the direct loop's bound is
``gamma_{9C + 1} * (|x| conv |w| + |b|)``: the two are of the same size for many
channels, and on the tests' data the Winograd error used at most 26 % of the direct
loop's bound.

Inputs or weights holding NaN or infinity go to the direct loop (:func:`conv2d` returns
None): a tile mixes 16 input cells, so an infinity would turn neighbouring outputs into
NaN where the direct sum keeps them infinite or finite.
"""

from __future__ import annotations

import numpy as np

from .direct import _run

CHANNELS_PER_PANEL = 32  # input channels transformed into cache at a time
CHANNELS_PER_TASK = 128  # output channels per task (its 16 M blocks stay in L2)

_LOOPS = None


def _jit():
    global _LOOPS
    if _LOOPS is None:
        from ._heap import keep_heap
        from ._jit import winograd

        keep_heap()
        _LOOPS = winograd
    return _LOOPS


def supports(stride, dilation, groups, w_shape) -> bool:
    return (tuple(stride) == (1, 1) and tuple(dilation) == (1, 1) and groups == 1
            and tuple(w_shape[2:]) == (3, 3))


def transform_weights(w, dtype):
    """``U = G g G^T`` for every kernel, laid out (16, O/4, C, 4) for the loop (output
    channels padded with zero kernels to a multiple of 4); computed in float64, rounded
    once (:func:`._jit.winograd.transform_weights`)."""
    o, c = w.shape[:2]
    u4 = np.zeros((16, -(-o // 4), c, 4), dtype)
    _run(_jit().transform_weights, o, 16 * w.size, np.ascontiguousarray(w), u4)
    return u4


def conv2d(x, w, b, padding, relu=False, out_mask=None):
    """``conv2d(x, w, b)`` (stride 1) by F(2x2, 3x3); None when ``x`` or ``w`` is not all
    finite (the caller takes the direct loop). ``relu``: ReLU applied as the result is
    written; ``out_mask`` (the result's shape): 0 written where it is <= 0."""
    n, c, h, wd = x.shape
    o = w.shape[0]
    dtype = x.dtype
    (pt, pb), (pl, pr) = padding
    oh, ow = h + pt + pb - 2, wd + pl + pr - 2
    y = np.empty((n, o, oh, ow), dtype)
    if y.size == 0:
        return y
    if not np.isfinite(w).all():
        return None
    th, tw = -(-oh // 2), -(-ow // 2)
    hph, wph = th + 1, tw + 1
    lanes = 64 // dtype.itemsize
    plane = hph * wph
    xph = np.empty((n, c * 4 * plane + 4 * lanes + lanes), dtype)
    bad = np.zeros(n * c, np.int8)
    _run(_jit().pack_phases, n * c, 4 * xph.size, np.ascontiguousarray(x), pt, pl, hph, wph,
         xph, bad)
    if bad.any():
        return None
    u4 = transform_weights(w, dtype)
    og4 = u4.shape[1] * 4
    oc = min(og4, CHANNELS_PER_TASK)
    blocks = -(-th * wph // (4 * lanes))
    bias = np.zeros(o, dtype) if b is None else b.astype(dtype)
    mask = y if out_mask is None else np.ascontiguousarray(out_mask, dtype)
    _run(_jit().winograd_forward, n * blocks * -(-og4 // oc), n * o * th * tw * c * 4,
         xph, u4, bias, plane, wph, th, tw, CHANNELS_PER_PANEL, oc, relu, mask,
         out_mask is not None, y)
    return y


def conv2d_grad_input(gy, w, input_hw, padding, out_mask=None):
    """Input gradient (stride 1): the same algorithm on ``gy`` padded by ``2 - padding``
    with the kernels flipped and transposed; None as :func:`conv2d`."""
    (pt, pb), (pl, pr) = padding
    if max(pt, pb, pl, pr) > 2:  # rows of gy that only saw padding: the direct loop
        return None
    wf = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    gx = conv2d(gy, wf, None, ((2 - pt, 2 - pb), (2 - pl, 2 - pr)), out_mask=out_mask)
    assert gx is None or gx.shape[2:] == tuple(input_hw)
    return gx
