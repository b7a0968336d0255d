"""Convolution as a cache-blocked matrix product: plain-Python wrappers around the loops
of :mod:`convscope.kernels._jit.panel` (read its docstring for the algorithm).

Any stride, padding, dilation and groups. Compared with :mod:`.gemm` (NumPy's im2col +
BLAS) the im2col matrix is never stored (a task packs the panel it needs in cache), the
result is written in its final layout by the loop that computes it, and everything runs
in Numba's thread pool (a BLAS call leaves its own threads spinning, which then slow the
next compiled loop 2-6x on two cores, and the compiled loop's idle threads slow BLAS:
measured). Compared with the direct loops (:mod:`.direct`), no position is computed for
nothing: positions run over the whole batch, so small planes (ResNet's 7 x 7 and 2 x 2)
fill the vectors, and strided convolutions read only the cells they use. Layers with many
channels (one group, >= 16 input channels, >= 128 kernel entries, output channels in
blocks of 4 vectors) take the forward with the output channels as the lanes and no
packing at all (:func:`_nhwc_forward`, ``_jit.panel.nhwc_forward``).

Numba is imported on the first call, not before.
"""

from __future__ import annotations

import numpy as np

from .direct import _run
from .gemm import _pad_const

PANEL_ROWS = 64  # kernel entries per packed panel (forward): the panel's block stays in L1
WGRAD_ROWS = 64  # kernel entries per weight-gradient task
WGRAD_POSITIONS = 256  # positions per weight-gradient panel
WGRAD_TASKS = 16  # weight gradient: split the work into at least this many tasks
TASKS = 16  # aim for at least this many tasks (two threads taking them on demand)
MANY_BLOCKS = 16  # positions in this many blocks of 4 vectors and up: tasks split them
MAX_BLOCKS = 8  # few positions: up to this many blocks of 4 vectors of them per task
PREPACK_BYTES = 32 << 20  # few positions: the whole im2col matrix, packed once, up to this
TABLE_BELOW = 8  # output rows narrower than this are packed through a table of cells
TABLE_POSITIONS = 4096  # ... for planes of at most this many positions
POINTWISE_POSITIONS = 32  # 1 x 1 convolutions on planes of this size and up: no packing
PAD_FIRST = True  # stride 1: pad the input once, then pack runs as plain copies
BATCH_COLS_BELOW = 16  # strided input gradient over the whole batch: planes up to this size
TINY_POSITIONS = 16  # output planes up to this size: images as the lanes (`_jit.tiny`) ...
TINY_FILL = 0.75  # ... when the batch fills at least this share of its vectors
PHASE_CHANNELS = 16  # strided input gradient (dilation 1), this many channels a group and up
PHASE_POSITIONS = 128  # and an image's phase this many positions and up (rows padded) ...
PHASE_FILL = 0.75  # ... filling this share of its blocks: one product per phase of the input
PHASE_ROWS = 64  # gy's planes in one panel of the phase product
NHWC = True  # forward: output channels as the lanes, input channels last (no packing) ...
NHWC_CHANNELS = 16  # ... for one group of this many input channels and up ...
NHWC_ENTRIES = 128  # ... and kernel entries (1 x 1, 64 channels: the packed product was faster)
NHWC_POSITIONS = 128  # ... this many positions and up (also the positions of a task)
POINTWISE_WGRAD = True  # 1 x 1 weight gradient as GY @ Xs, Xs channels last ...
POINTWISE_WGRAD_STRIDES = (1, 2)  # ... for these strides ...
POINTWISE_WGRAD_POSITIONS = 64  # ... and output planes of this many positions and up
POINTWISE_WGRAD_OUT = 128  # ... and output channels (64 out of 192 in: 1.06x slower)
POINTWISE_WGRAD_TASKS = 8  # split the output channels into at least this many tasks
POINTWISE_WGRAD_RUN = 64  # positions of Xs in L1 at a time

_LOOPS = None
_TINY = None


def _jit():
    global _LOOPS
    if _LOOPS is None:
        from ._heap import keep_heap
        from ._jit import panel

        keep_heap()
        _LOOPS = panel
    return _LOOPS


def _tiny_jit():
    global _TINY
    if _TINY is None:
        from ._jit import tiny

        _jit()
        _TINY = tiny
    return _TINY


def _lanes(dtype) -> int:
    return 64 // np.dtype(dtype).itemsize


def _up(n: int, m: int) -> int:
    return -(-n // m) * m


def _geo(kernel, stride, dilation, padding, out_hw):
    return (int(kernel[0]), int(kernel[1]), int(stride[0]), int(stride[1]), int(dilation[0]),
            int(dilation[1]), int(padding[0][0]), int(padding[1][0]), int(out_hw[0]),
            int(out_hw[1]))


def _out_hw(hw, kernel, stride, padding, dilation):
    return tuple((n + sum(p) - d * (k - 1) - 1) // s + 1
                 for n, k, s, p, d in zip(hw, kernel, stride, padding, dilation, strict=True))


def _table(hw, kernel, stride, padding, dilation, out_hw):
    """The input cell under each kernel entry at each output position of an image, -1 on
    the padding (see ``_jit.panel._pack_table``); an empty table where rows are wide enough
    for the runs of ``_pack_cols`` (8 values and more)."""
    (h, w), (kh, kw), (oh, ow) = hw, kernel, out_hw
    if ow >= TABLE_BELOW or oh * ow > TABLE_POSITIONS:
        return np.empty((1, 0), np.int64)
    u, v = np.arange(kh)[:, None], np.arange(kw)[None, :]
    r, q = np.arange(oh)[:, None], np.arange(ow)[None, :]
    ih = (r * stride[0] - padding[0][0])[None, None] + (u * dilation[0])[:, :, None, None]
    iw = (q * stride[1] - padding[1][0])[None, None] + (v * dilation[1])[:, :, None, None]
    inside = (ih >= 0) & (ih < h) & (iw >= 0) & (iw < w)
    return np.where(inside, ih * w + iw, -1).reshape(kh * kw, oh * ow).astype(np.int64)


def _plain_input(x, tab, stride, padding):
    """``(x, padding)`` for the packing loops: for stride 1 (rows packed by runs, not by the
    table) the input zero-padded once, so that every run of a panel row is a plain copy
    (``_jit.panel._pack_plain``: 2.5-2.8x faster than runs cut at the padding); the padded
    copy costs ~1.3 input volumes, packing reads ~9 for 3 x 3 kernels."""
    (pt, pb), (pl, pr) = padding
    if not PAD_FIRST or tab.size or tuple(stride) != (1, 1) or not (pt or pb or pl or pr):
        return x, padding
    return _pad_const(x, padding, 0), ((0, 0), (0, 0))


def _row_stride(positions, dtype):
    """Row stride of the shared im2col matrix (``pack_all``): the positions and a vector of
    slack. A row's last run is written by whole vectors and spills up to a vector past its
    end; without the slack that spill landed in the next row, which another task may have
    written already (a race: 9 values of a row overwritten, seen with one task run alone)."""
    return positions + _lanes(dtype)


def conv2d(x, w, b, stride, padding, dilation, groups, relu=False, hi=np.inf):
    """Convolution (see :func:`convscope.kernels.fast.conv2d`); ``relu``: ReLU applied as
    the result is written; ``hi``: values above it set to it there too (ReLU6)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    og = o // groups
    dtype = x.dtype
    oh, ow = _out_hw((h, wd), (kh, kw), stride, padding, dilation)
    y = np.empty((n, o, oh, ow), dtype)
    if y.size == 0:
        return y
    k = cg * kh * kw
    og4 = _up(og, 4)
    bias = np.zeros(o, dtype) if b is None else b.astype(dtype)
    p = n * oh * ow
    block = 4 * _lanes(dtype)
    blocks = -(-p // block)  # blocks of 4 vectors of positions
    x = np.ascontiguousarray(x)
    if ((kh, kw) == (1, 1) and tuple(stride) == (1, 1) and not any(map(any, padding))
            and h * wd >= POINTWISE_POSITIONS):
        return _pointwise(x, np.ascontiguousarray(w), bias, groups, relu, hi, y)
    if _tiny(groups, (oh, ow), n, 2 * _lanes(dtype)):
        return _tiny_forward(x, w, bias, stride, padding, dilation, relu, hi, y)
    if _lanes_out(groups, c, k, o, p, dtype):
        return _nhwc_forward(x, w, bias, stride, padding, dilation, relu, hi, y)
    pp, packed = 0, np.empty(0, dtype)
    tab = _table((h, wd), (kh, kw), stride, padding, dilation, (oh, ow))
    x, padding = _plain_input(x, tab, stride, padding)
    geo = _geo((kh, kw), stride, dilation, padding, (oh, ow))
    if groups * blocks >= MANY_BLOCKS:  # many positions: up to 4 blocks, every channel a task
        nb = max(1, min(4, groups * blocks // TASKS))
        nc, oc = nb * block, og4
        n_pc = -(-blocks // nb)
    else:  # few: more blocks a task (weights reused), the channels split, panels shared
        nc = block * min(blocks, MAX_BLOCKS)
        n_pc = -(-blocks // (nc // block))
        split = max(1, -(-TASKS // (groups * n_pc)))
        oc = max(4, _up(-(-og4 // split), 4))
        if split > 1 and groups * k * n_pc * nc * dtype.itemsize <= PREPACK_BYTES:
            pp = _row_stride(n_pc * nc, dtype)
            packed = np.empty(groups * k * pp + _lanes(dtype), dtype)
            _run(_jit().pack_all, groups * -(-k // PANEL_ROWS), 4 * packed.size, x, geo, groups,
                 PANEL_ROWS, pp, tab, packed, threads=True)
    _run(_jit().panel_forward, groups * n_pc * -(-og4 // oc), y.size * k, x,
         np.ascontiguousarray(w), bias, geo, PANEL_ROWS, nc, oc, relu, float(hi), packed, pp,
         tab, y, threads=True)
    return y


def _lanes_out(groups, c, k, o, positions, dtype):
    """Whether the forward product takes the channels-last loop (``_jit.panel.nhwc_forward``:
    output channels as the lanes, no packing): one group, ``NHWC_CHANNELS`` input channels
    and ``NHWC_ENTRIES`` kernel entries and up, output channels in whole blocks of 4
    vectors, ``NHWC_POSITIONS`` positions and up."""
    return (NHWC and groups == 1 and c >= NHWC_CHANNELS and k >= NHWC_ENTRIES
            and o % (4 * _lanes(dtype)) == 0 and positions >= NHWC_POSITIONS)


def _nhwc_forward(x, w, bias, stride, padding, dilation, relu, hi, y):
    """The product with the output channels as the lanes (``_jit.panel.nhwc_forward``),
    each task copying the input rows it reads channels last; the weights of each block
    of ``4L`` channels transposed by tiles. A 1 x 1 kernel with stride 2 and no padding
    reads every other row and column, as stride 1."""
    n, c = x.shape[:2]
    o, _, kh, kw = w.shape
    oh, ow = y.shape[2:]
    block = 4 * _lanes(x.dtype)
    step = 1
    if (kh, kw) == (1, 1) and tuple(stride) == (2, 2) and not any(map(any, padding)):
        step, stride = 2, (1, 1)
    k = c * kh * kw
    wt = np.empty((o // block, k, block), x.dtype)
    _run(_jit().transpose_planes, o // block * (block // _lanes(x.dtype)), w.size,
         np.ascontiguousarray(w, dtype=x.dtype).reshape(o // block, block, k), wt,
         threads=True)
    geo = _geo((kh, kw), stride, dilation, padding, (oh, ow))
    nr = max(1, min(oh, -(-NHWC_POSITIONS // ow)))
    ni = max(1, min(n, NHWC_POSITIONS // (oh * ow))) if nr == oh else 1
    _run(_jit().nhwc_forward, -(-n // ni) * -(-oh // nr), y.size * k, x, wt.ravel(), bias,
         geo, step, nr, ni, relu, float(hi), y, threads=True)
    return y


def _pointwise_wgrad(groups, kernel_hw, stride, padding, c, o, positions, dtype):
    """Whether a weight gradient takes ``_jit.panel.pointwise_grad_weight``: a 1 x 1 kernel
    with stride 1 or 2 and no padding, one group, input channels in blocks of 4 vectors,
    ``POINTWISE_WGRAD_OUT`` output channels and up in blocks of 4, planes of
    ``POINTWISE_WGRAD_POSITIONS`` and up."""
    return (POINTWISE_WGRAD and groups == 1 and tuple(kernel_hw) == (1, 1)
            and stride[0] == stride[1] and stride[0] in POINTWISE_WGRAD_STRIDES
            and not any(map(any, padding)) and c % (4 * _lanes(dtype)) == 0 and o % 4 == 0
            and o >= POINTWISE_WGRAD_OUT and positions >= POINTWISE_WGRAD_POSITIONS)


def _pointwise_grad_weight(gy, x, step, bias):
    """The 1 x 1 weight gradient as ``GY @ Xs`` with ``Xs`` the cells read, channels last
    (``_jit.panel.channels_last``: a quarter of the input for stride 2) and ``gy`` read in
    place: no transposed ``gy``, no packing; the bias gradient a NumPy sum."""
    n, o, oh, ow = gy.shape
    c = x.shape[1]
    dtype = gy.dtype
    x = np.ascontiguousarray(x, dtype=dtype)
    xs = np.empty(n * oh * ow * c, dtype)
    nr = max(1, min(oh, -(-NHWC_POSITIONS // ow)))
    _run(_jit().channels_last, n * -(-oh // nr), xs.size, x, step, oh, ow, nr, xs,
         threads=True)
    gw = np.empty((o, c), dtype)
    n_cb = c // (4 * _lanes(dtype))
    ot = max(4, _up(-(-o // max(1, -(-POINTWISE_WGRAD_TASKS // n_cb))), 4))
    gy = np.ascontiguousarray(gy)
    _run(_jit().pointwise_grad_weight, n_cb * -(-o // ot), gy.size * c, xs, gy,
         POINTWISE_WGRAD_RUN, ot, gw, threads=True)
    gw = gw.reshape(o, c, 1, 1)
    if bias:
        return gw, gy.sum(axis=(0, 2, 3), dtype=dtype)
    return gw


def _tiny(groups, out_hw, count, block):
    """Whether a product takes the tiny-plane loops (:mod:`._jit.tiny`): one group, at most
    ``TINY_POSITIONS`` output positions an image, and ``count`` (images in the forward
    product, input channels in the weight gradient: the vector lanes) filling
    ``TINY_FILL`` of its blocks of ``block`` (32 images, 64 channels in float32)."""
    return (groups == 1 and out_hw[0] * out_hw[1] <= TINY_POSITIONS and count > 0
            and count >= TINY_FILL * _up(count, block))


def _tiny_forward(x, w, bias, stride, padding, dilation, relu, hi, y, flip=False):
    """The product on tiny planes with the images as the vector lanes and the kernel
    entries on the padding skipped (``_jit.tiny.tiny_forward``); ``flip``: the input
    gradient's product, ``x`` being ``gy`` and ``w`` the layer's own weights, read
    transposed and flipped in place (no copy)."""
    n, c, h, wd = x.shape
    o, kh, kw = y.shape[1], w.shape[2], w.shape[3]
    kk = kh * kw
    nv = 2 * _lanes(x.dtype)
    n_pad = _up(n, nv)
    xt = np.empty((c, h, wd, n_pad), x.dtype)
    xt[..., :n] = x.transpose(1, 2, 3, 0)
    xt[..., n:] = 0
    so, sc = (kk, o * kk) if flip else (w.shape[1] * kk, kk)
    blocks = n_pad // nv
    oc = max(8, _up(-(-o // max(1, -(-TASKS // blocks))), 8))
    geo = _geo((kh, kw), stride, dilation, padding, y.shape[2:])
    _run(_tiny_jit().tiny_forward, blocks * -(-o // oc), y.size * c * kk, xt,
         np.ascontiguousarray(w), so, sc, flip, bias, geo, oc, PANEL_ROWS, relu, float(hi), y)
    return y


def _tiny_grad_weight(gy, x, kernel_hw, stride, padding, dilation, bias):
    """The weight gradient on tiny planes (``_jit.tiny.tiny_grad_weight``): channels as the
    lanes, positions whose cell is on the padding skipped; the bias gradient a NumPy sum."""
    n, o = gy.shape[:2]
    _, c, h, wd = x.shape
    kh, kw = kernel_hw
    nv = 4 * _lanes(gy.dtype)
    c_pad = _up(c, nv)
    xr = np.empty((h, wd, n, c_pad), gy.dtype)
    xr[..., :c] = x.transpose(2, 3, 0, 1)
    xr[..., c:] = 0
    gt = np.ascontiguousarray(gy.transpose(1, 2, 3, 0))
    blocks = c_pad // nv
    ob = max(4, _up(-(-o // max(1, -(-WGRAD_TASKS // blocks))), 4))
    gw = np.empty((o, c, kh, kw), gy.dtype)
    _run(_tiny_jit().tiny_grad_weight, blocks * -(-o // ob), gy.size * c * kh * kw, xr, gt,
         _geo((kh, kw), stride, dilation, padding, gy.shape[2:]), ob, gw)
    if bias:
        return gw, gy.sum(axis=(0, 2, 3), dtype=gy.dtype)
    return gw


def _pointwise(x, w, bias, groups, relu, hi, y):
    """1 x 1 kernels, stride 1, no padding: the product read from the input planes where
    they lie (``_jit.panel.pointwise_forward``), positions a task within one image."""
    n, o, oh, ow = y.shape
    og4 = _up(o // groups, 4)
    block = 4 * _lanes(x.dtype)
    nc = min(4 * block, _up(oh * ow, block))
    tasks = n * groups * -(-(oh * ow) // nc)
    split = max(1, -(-TASKS // tasks))
    oc = max(4, _up(-(-og4 // split), 4))
    _run(_jit().pointwise_forward, tasks * -(-og4 // oc), y.size * w.shape[1], x, w, bias,
         PANEL_ROWS, nc, oc, relu, float(hi), y, threads=True)
    return y


def conv2d_grad_input(gy, w, input_hw, stride, padding, dilation, groups):
    """Input gradient (see :func:`convscope.kernels.fast.conv2d_grad_input`).

    Stride 1: the forward product on ``gy`` padded by ``d(k-1) - padding`` with the kernels
    flipped and transposed (positions over the whole batch: on 2 x 2 planes the scatter
    below computed 16 positions for each real one). Larger strides: ``W^T @ GY`` per image,
    scattered back onto the input (col2im).
    """
    n, o, oh, ow = gy.shape
    _, cg, kh, kw = w.shape
    dtype = gy.dtype
    if tuple(stride) == (1, 1):
        og = o // groups
        full = [dilation[0] * (kh - 1) - padding[0][0], dilation[0] * (kh - 1) - padding[0][1],
                dilation[1] * (kw - 1) - padding[1][0], dilation[1] * (kw - 1) - padding[1][1]]
        cut = [max(0, -p) for p in full]  # rows of gy that only saw padding
        g = gy[:, :, cut[0] : oh - cut[1], cut[2] : ow - cut[3]]
        pads = ((max(0, full[0]), max(0, full[1])), (max(0, full[2]), max(0, full[3])))
        if min(full) >= 0 and _tiny(groups, input_hw, n, 2 * _lanes(dtype)):
            gx = np.empty((n, cg, *input_hw), dtype)
            return _tiny_forward(np.ascontiguousarray(gy), w, np.zeros(cg, dtype), (1, 1),
                                 pads, dilation, False, np.inf, gx, flip=True)
        wf = w.reshape(groups, og, cg, kh, kw)[:, :, :, ::-1, ::-1].transpose(0, 2, 1, 3, 4)
        gx = conv2d(g, np.ascontiguousarray(wf.reshape(groups * cg, og, kh, kw)), None, (1, 1),
                    pads, dilation, groups)
        assert gx.shape[2:] == tuple(input_hw)
        return gx
    gx = np.empty((n, cg * groups, *input_hw), dtype)
    if gx.size == 0:
        return gx
    if gy.size == 0:
        gx[...] = 0
        return gx
    if tuple(dilation) == (1, 1) and cg >= PHASE_CHANNELS and _phase_grad_input(
            np.ascontiguousarray(gy), np.ascontiguousarray(w), stride, padding, gx) is not None:
        return gx
    k = cg * kh * kw
    limg = oh * ow
    if limg <= BATCH_COLS_BELOW and n * groups * k * limg * dtype.itemsize <= PREPACK_BYTES:
        # tiny planes: the loop below works on 4 vectors of one image's positions (on
        # 2 x 2 planes, 60 of 64 computed for nothing); instead ``W^T @ GY`` over the
        # whole batch, as the forward product of ``gy`` with 1 x 1 kernels, then col2im
        # (2 x 2 planes: 22.8 -> 4.7 ms; from 7 x 7 on, the loop below is faster)
        og = o // groups
        wt = w.reshape(groups, og, k).transpose(0, 2, 1).reshape(groups * k, og, 1, 1)
        cols = conv2d(gy, np.ascontiguousarray(wt), None, (1, 1), ((0, 0), (0, 0)), (1, 1),
                      groups)
        cols = cols.reshape(n, groups * cg, kh, kw, oh, ow)
        _run(_jit().col2im, n * groups * cg, cols.size, cols,
             _geo((kh, kw), stride, dilation, padding, (oh, ow)), gx, threads=True)
        return gx
    # input channels per task: a multiple of 4 (whole blocks of kernel entries), about
    # TASKS tasks in all
    per_image = max(1, TASKS // max(1, n * groups))
    cc = max(4, _up(-(-cg // per_image), 4))
    tasks = n * groups * -(-cg // cc)
    _run(_jit().panel_grad_input, tasks, gy.size * k, np.ascontiguousarray(gy),
         np.ascontiguousarray(w),
         _geo((kh, kw), stride, dilation, padding, (oh, ow)), cc, gx, threads=True)
    return gx


def _phases(size, kernel, stride, pad):
    """Along one axis, for each phase ``a < stride`` of the input (cells ``stride * m + a -
    pad``): its kernel entries (``a``, ``a + stride``, ...: how many), the first ``m`` and
    the number of its cells inside the input: ``(count, m0, cells)``."""
    out = []
    for a in range(stride):
        m0 = -((a - pad) // stride)
        m1 = (size - 1 + pad - a) // stride + 1
        out.append((max(0, -(-(kernel - a) // stride)), m0, max(0, m1 - m0)))
    return out


def _phase_grad_input(gy, w, stride, padding, gx):
    """The strided input gradient, one product per phase of the input, ``gx`` written in
    place (``_jit.panel.phase_grad_input``); ``gy`` zero-padded first where a phase reads
    past it; None (nothing done) on planes too small for it. Tasks planned as
    :func:`conv2d`'s, in whole rows."""
    n, o, oh, ow = gy.shape
    cg, kh, kw = w.shape[1:]
    groups = gx.shape[1] // cg
    (sh, sw), pt, pl = stride, padding[0][0], padding[1][0]
    pads = []
    for size, k, s, p, out in ((gx.shape[2], kh, sh, pt, oh), (gx.shape[3], kw, sw, pl, ow)):
        ph = _phases(size, k, s, p)
        lo = min([m0 - k + 1 for k, m0, m in ph if k and m] + [0])  # gy cells read
        hi = max([m0 + m - 1 for k, m0, m in ph if k and m] + [out - 1])
        pads.append((np.array([(*row, -lo) for row in ph], np.int64), hi - lo + 1))
    (rph, hp), (cph, wp) = pads
    block = 4 * _lanes(gy.dtype)
    rows = int(rph[:, 2].max())
    grid = rows * wp  # positions of one image's phase, rows wp apart
    if grid < PHASE_POSITIONS or grid < PHASE_FILL * _up(grid, block):
        return None  # small planes: mostly empty blocks; the scatter is faster there
    # in place when nothing is padded and no row's dropped columns read past the array
    if hp == oh and wp == ow and not any(k and m and l0 for k, l0, m, _ in cph):
        gp = gy.ravel()
    else:  # one padded plane more at the end: the last row's dropped columns read past it
        gp = np.empty((n * o + 1) * hp * wp, gy.dtype)
        _run(_jit().pad_planes, n * o // 16 + 1, gp.size, gy, int(rph[0, 3]), int(cph[0, 3]),
             hp, wp, gp, threads=True)
    cg4 = _up(cg, 4)
    blocks = groups * n * sh * sw * -(-rows * wp // block)
    if blocks >= MANY_BLOCKS:
        nr, oc = max(1, min(rows, max(1, min(4, blocks // TASKS)) * block // wp)), cg4
    else:
        nr = rows
        split = max(1, -(-TASKS // (groups * n * sh)))
        oc = max(4, _up(-(-cg4 // split), 4))
    # image-major: each thread starts on its own contiguous strand of the tasks
    # (`_jit.tasks`), so that every strand holds every phase's kind of task
    tasks = np.array([(a, g, i, r0, c0) for i in range(n) for g in range(groups)
                      for a, mh in enumerate(rph[:, 2]) for r0 in range(0, int(mh), nr)
                      for c0 in range(0, cg4, oc)], np.int64)
    og = o // groups  # the weights as (G, cg * kh * kw, og): each sum's weights in a row
    wt = np.empty((groups, cg * kh * kw, og), w.dtype)
    _run(_jit().transpose_planes, groups * cg * kh * kw // 16, w.size, w.reshape(groups, og, -1),
         wt, threads=True)
    _run(_jit().phase_grad_input, len(tasks), gy.size * cg * kh * kw, gp, hp, wp, wt, kw, rph, cph,
         tasks, sh, sw, pt, pl, PHASE_ROWS, nr, _up(nr * wp, block), oc, gx, threads=True)
    return gx


def conv2d_grad_weight(gy, x, kernel_hw, stride, padding, dilation, groups, bias=False):
    """Weight gradient (see :func:`convscope.kernels.fast.conv2d_grad_weight`); ``bias``:
    return ``(grad_weight, grad_bias)``, the bias gradient summed as ``gy`` is laid out."""
    n, o, oh, ow = gy.shape
    cg = x.shape[1] // groups
    kh, kw = kernel_hw
    og = o // groups
    dtype = gy.dtype
    k = cg * kh * kw
    if gy.size == 0 or x.size == 0:
        gw = np.zeros((o, cg, kh, kw), dtype)
        return (gw, np.zeros(o, dtype)) if bias else gw
    if _tiny(groups, (oh, ow), cg, 4 * _lanes(dtype)):
        return _tiny_grad_weight(np.ascontiguousarray(gy), np.ascontiguousarray(x, dtype=dtype),
                                 kernel_hw, stride, padding, dilation, bias)
    block = 4 * _lanes(dtype)
    if _pointwise_wgrad(groups, kernel_hw, stride, padding, cg, o, oh * ow, dtype):
        return _pointwise_grad_weight(gy, x, stride[0], bias)
    p = n * oh * ow
    nc = min(_up(p, 4), WGRAD_POSITIONS)
    gt = np.empty((groups, _up(p, nc), _up(og, block)), dtype)
    gbp = np.empty((n, o), dtype)
    _run(_jit().transpose_grad, groups * (n + 1), 4 * gy.size, np.ascontiguousarray(gy), groups,
         gt.shape[2], gt, gbp, threads=True)
    gw = np.empty((o, k), dtype)
    # a task packs its kernel entries' panels once for all its channel blocks; fewer
    # entries a task, then the channel blocks split, while the tasks are too few
    kc = min(_up(k, 4), WGRAD_ROWS)
    while groups * -(-k // kc) < WGRAD_TASKS and kc > 16:
        kc = _up(kc // 2, 4)
    n_ob = gt.shape[2] // block
    split = min(n_ob, -(-WGRAD_TASKS // (groups * -(-k // kc))))
    obs = -(-n_ob // split)
    tasks = groups * -(-k // kc) * -(-n_ob // obs)
    x = np.ascontiguousarray(x, dtype=dtype)
    tab = _table(x.shape[2:], (kh, kw), stride, padding, dilation, (oh, ow))
    x, padding = _plain_input(x, tab, stride, padding)
    _run(_jit().panel_grad_weight, tasks, gy.size * k, x, gt,
         _geo((kh, kw), stride, dilation, padding, (oh, ow)), kc, nc, obs, tab, gw, threads=True)
    gw = gw.reshape(o, cg, kh, kw)
    if bias:
        gb = gbp[0].copy()
        for i in range(1, n):  # image order: deterministic
            gb += gbp[i]
        return gw, gb
    return gw
