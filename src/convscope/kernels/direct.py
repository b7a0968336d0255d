"""Direct convolution for stride 1: plain-Python wrappers around the compiled loops.

These functions lay the arrays out as the compiled loops expect (the *flat padded* layout
described in :mod:`convscope.kernels._jit.conv`), call the loop, and cut the answer back
to ``(N, C, H, W)``. They handle any padding, dilation and groups, but stride 1 only;
:mod:`convscope.kernels.fast` decides when to use them.

* forward: the loop itself, bias folded into the accumulators;
* grad input: for stride 1 the gradient is the same kind of convolution, of ``gy`` padded
  by ``dilation * (k - 1) - padding`` with the kernels flipped and transposed;
* grad weight: a loop that sums ``gy * shifted input`` over images and positions.

Depthwise layers (one kernel per channel) go to the plane-by-plane loops of
:mod:`.depthwise`.

Numba is imported on the first call, not before.
"""

from __future__ import annotations

import numpy as np

from . import loops

BLOCK_VECTORS = 4  # vectors of output positions per task in the compiled loops
VECTOR_BYTES = 64


_LOOPS = None


def _jit():
    """The compiled loops of :mod:`._jit.conv`, :mod:`._jit.wgrad` and :mod:`._jit.depthwise`.

    The first call imports Numba and loads the cached machine code.
    """
    global _LOOPS
    if _LOOPS is None:
        from types import SimpleNamespace

        from ._heap import keep_heap
        from ._jit import conv, depthwise, wgrad

        keep_heap()  # once per process (see :mod:`._heap`)
        _LOOPS = SimpleNamespace(
            **{name: getattr(m, name) for m in (conv, wgrad, depthwise) for name in m.__all__}
        )
    return _LOOPS


SERIAL_WORK = 4_000_000  # multiply-adds; below this one thread beats waking the others
PACK_COMPILED = 1 << 16  # values; packing a larger input runs as a compiled loop
ROW_BUFFER_BYTES = 64 << 10  # forward: output rows per task sized to this much buffer
WGRAD_CHUNK = 512  # weight gradient by channel blocks: positions per pass over a block
IMAGE_TASKS = 16  # weight gradient split over images: at most this many partial sums,
IMAGE_PARTIALS_BYTES = 4 << 20  # taking at most this much memory


def _run(loop, tasks, work, *args, threads=False):
    """Call a parallel loop; small problems (``work`` multiply-adds) on the calling thread.

    ``threads``: the loop hands its tasks out on demand (:mod:`._jit.tasks`) and takes the
    number of threads as its last argument. Numba's own ``prange`` gives each thread one
    contiguous share, fixed in advance: its OpenMP layer ignores the chunk size set here
    (measured Dec 2026: 32 long then 32 short iterations ran as one half per thread, twice
    the time of an even split), so a loop whose tasks differ in cost, or a thread delayed
    by a busy neighbour, leaves the other thread waiting; the loops that matter take their
    tasks from a shared counter instead. Results depend on neither: every task writes its
    own outputs, and every sum runs in a fixed order. (No chunk size is set: it did
    nothing here, and its two calls were ~5 us of a 100 us call. ``tasks`` documents the
    loop's split.)
    """
    import numba

    count = numba.get_num_threads()
    serial = work < SERIAL_WORK
    if serial:
        numba.set_num_threads(1)
    try:
        if threads:
            loop(*args, 1 if serial else count)
        else:
            loop(*args)
    finally:
        if serial:
            numba.set_num_threads(count)


def _block(dtype) -> int:
    return BLOCK_VECTORS * VECTOR_BYTES // np.dtype(dtype).itemsize


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


class _Flat:
    """Geometry of the flat padded layout for one stride-1 convolution."""

    def __init__(self, hw, padding, kernel, dilation, dtype):
        (pt, pb), (pl, pr) = padding
        self.hp, self.wp = hw[0] + pt + pb, hw[1] + pl + pr
        self.oh = self.hp - dilation[0] * (kernel[0] - 1)
        self.ow = self.wp - dilation[1] * (kernel[1] - 1)
        self.plane = self.hp * self.wp
        self.p = self.oh * self.wp
        self.pp = _round_up(self.p, _block(dtype))
        # zeros after the last plane: the forward loop's last block of a task may start
        # anywhere in the last output row and reads 4 vectors past it
        self.slack = self.pp - self.p + dilation[1] * (kernel[1] - 1) + _block(dtype)

    def offsets(self, cg, kernel, dilation, multiple=1):
        """Each kernel entry's cell ``(c, u, v)`` from the window's corner in the packed
        planes, zeros after the last up to a multiple of ``multiple`` (by broadcasting:
        ``np.meshgrid`` was a third of a small call's 100 us)."""
        k = cg * kernel[0] * kernel[1]
        offs = np.zeros(_round_up(k, multiple), np.intp)
        offs[:k] = (np.arange(cg)[:, None, None] * self.plane
                    + np.arange(kernel[0])[:, None] * (dilation[0] * self.wp)
                    + np.arange(kernel[1]) * dilation[1]).ravel()
        return offs

    def pack(self, x, top, left, mask=None, check=False):
        """``x`` (N, C, h, w) into zero-filled rows ``(N, C * plane + slack)`` at (top, left).

        ``mask`` (x's shape): a fused ReLU's output; ``x`` is taken as 0 where it is <= 0.
        ``check``: return ``(xf, finite)``, whether every value of ``x`` is finite.
        """
        n, c = x.shape[:2]
        xf = np.empty((n, c * self.plane + self.slack), dtype=x.dtype)
        compiled = x.size >= PACK_COMPILED and x.flags.c_contiguous
        if mask is not None and not (compiled and mask.flags.c_contiguous):
            x, mask = loops.relu_grad(x, mask), None
        if compiled:  # both cores, one pass
            bad = np.zeros(n * c if check else 0, np.int8)
            _run(_jit().pack, n * c, 4 * xf.size, x, x if mask is None else mask,
                 mask is not None, top, left, self.hp, self.wp, xf, bad)
            return (xf, not bad.any()) if check else xf
        planes = xf[:, : c * self.plane].reshape(n, c, self.hp, self.wp)
        h, w = x.shape[2:]
        planes[:, :, top : top + h, left : left + w] = x  # each value written once:
        planes[:, :, :top] = 0  # the padding and the slack get their zeros apart
        planes[:, :, top + h :] = 0
        planes[:, :, top : top + h, :left] = 0
        planes[:, :, top : top + h, left + w :] = 0
        xf[:, c * self.plane :] = 0
        return (xf, bool(np.isfinite(x).all())) if check else xf


def _conv_flat(xf, geo, w, b, kernel, dilation, groups, relu=False, out_mask=None,
               pool=False):
    """Run the forward loop on packed input ``xf``; returns y (N, O, H_out, W_out).

    A group of 3 channels gets a zero fourth kernel (a block of 4 is faster than three
    1-channel blocks); its outputs are computed and dropped. ``relu``: ReLU applied as
    the loop writes ``y``. ``out_mask`` (y's shape): values where it is <= 0 written as 0.
    ``pool``: ReLU then 2 x 2 max pooling, stride 2, in the same pass; returns
    ``(pooled, winners)`` and never stores the conv's output.
    """
    o, cg = w.shape[:2]
    og, kk = o // groups, cg * kernel[0] * kernel[1]
    dtype = xf.dtype
    wg = w.reshape(groups, og, kk).astype(dtype, copy=False)
    bg = (np.zeros(o, dtype) if b is None else b.astype(dtype)).reshape(groups, og)
    ogc = og
    if og % 4 == 3:
        wg = np.concatenate([wg, np.zeros((groups, 1, kk), dtype)], axis=1)
        bg = np.concatenate([bg, np.zeros((groups, 1), dtype)], axis=1)
        ogc += 1
    nb = ogc // 4
    w4 = np.ascontiguousarray(wg[:, : 4 * nb].reshape(groups, nb, 4, kk).transpose(0, 1, 3, 2))
    b4 = np.ascontiguousarray(bg[:, : 4 * nb].reshape(groups, nb, 4))
    w1, b1 = np.ascontiguousarray(wg[:, 4 * nb :]), np.ascontiguousarray(bg[:, 4 * nb :])
    n = xf.shape[0]
    y = np.empty((n, o, geo.oh, geo.ow) if not pool else (1, o, 1, 1), dtype=dtype)
    py = np.empty((n, o, geo.oh // 2, geo.ow // 2) if pool else (1, 1, 1, 1), dtype=dtype)
    pidx = np.empty(py.shape, dtype=loops.index_dtype(geo.oh, geo.ow))
    # rows per task: a buffer of about ROW_BUFFER_BYTES per task (in L2), at least one row
    # (two with pooling: whole windows)
    rows = max(1, min(geo.oh, ROW_BUFFER_BYTES // (ogc * geo.wp * np.dtype(dtype).itemsize)))
    if pool:
        rows = max(2, rows - rows % 2)
    tasks = n * -(-geo.oh // rows)
    _run(_jit().conv_forward, tasks, n * o * geo.oh * geo.ow * kk, xf, w4, b4, w1, b1,
         geo.offsets(cg, kernel, dilation), cg * geo.plane, geo.wp, rows, (geo.oh, geo.ow),
         relu, y if out_mask is None else out_mask, out_mask is not None, pool, py, pidx, y)
    return (py, pidx) if pool else y


def is_depthwise(w, groups):
    return w.shape[1] == 1 and w.shape[0] == groups


def _depthwise():
    from . import depthwise  # its loops share this module's task runner

    return depthwise


def conv2d(x, w, b, padding, dilation, groups, relu=False, pool=False):
    """Stride-1 convolution (see :func:`convscope.kernels.fast.conv2d`).

    ``relu``: return ``relu(conv)``, applied as the values are written (fused). ``pool``
    (with ``relu``, not depthwise, output at least 2 x 2): ``(pooled, winners)`` of a
    2 x 2 stride-2 max pooling of that, in the same pass (:func:`.fast.conv2d_relu_maxpool`).
    """
    if is_depthwise(w, groups):
        y = _depthwise().conv2d(x, w, b, (1, 1), padding, dilation)
        return loops.relu(y, out=y) if relu else y
    kernel = w.shape[2:]
    geo = _Flat(x.shape[2:], padding, kernel, dilation, x.dtype)
    if x.shape[0] == 0:
        if pool:
            shape = (0, w.shape[0], geo.oh // 2, geo.ow // 2)
            return np.zeros(shape, x.dtype), np.zeros(shape, loops.index_dtype(geo.oh, geo.ow))
        return np.zeros((0, w.shape[0], geo.oh, geo.ow), dtype=x.dtype)
    xf = geo.pack(x, padding[0][0], padding[1][0])
    return _conv_flat(xf, geo, w, b, kernel, dilation, groups, relu, pool=pool)


def conv2d_grad_input(gy, w, input_hw, padding, dilation, groups, mask=None, out_mask=None):
    """Stride-1 input gradient: ``gy`` convolved with the flipped, transposed kernels.

    ``mask``: the output of a fused ``conv + ReLU``; ``gy`` counts as 0 where it is <= 0
    (applied as ``gy`` is packed: no pass of its own). ``out_mask``: the input, when it
    was a ReLU's output; the result is 0 where it is <= 0 (applied as it is written).
    """
    n, o, oh, ow = gy.shape
    _, cg, kh, kw = w.shape
    og = o // groups
    # gx[h] gets gy[h + pad_top - u*dh] * w[u]: a convolution of gy padded by d(k-1) - pad.
    full = [dilation[0] * (kh - 1) - padding[0][0], dilation[0] * (kh - 1) - padding[0][1],
            dilation[1] * (kw - 1) - padding[1][0], dilation[1] * (kw - 1) - padding[1][1]]
    # Padding wider than the dilated kernel: rows of gy that only saw padding are cut off.
    cut = [max(0, -p) for p in full]
    g = gy[:, :, cut[0] : oh - cut[1], cut[2] : ow - cut[3]]
    m = None if mask is None else mask[:, :, cut[0] : oh - cut[1], cut[2] : ow - cut[3]]
    pads = ((max(0, full[0]), max(0, full[1])), (max(0, full[2]), max(0, full[3])))
    wf = w.reshape(groups, og, cg, kh, kw)[:, :, :, ::-1, ::-1].transpose(0, 2, 1, 3, 4)
    wf = wf.reshape(groups * cg, og, kh, kw)
    if is_depthwise(w, groups):
        gx = _depthwise().conv2d_grad_input(gy, w, input_hw, (1, 1), padding, dilation, mask)
        return gx if out_mask is None else loops.relu_grad(gx, out_mask)
    geo = _Flat(g.shape[2:], pads, (kh, kw), dilation, gy.dtype)
    assert (geo.oh, geo.ow) == tuple(input_hw)
    if n == 0:
        return np.zeros((0, groups * cg, *input_hw), dtype=gy.dtype)
    gf = geo.pack(g, pads[0][0], pads[1][0], m)
    if out_mask is not None:
        out_mask = np.ascontiguousarray(out_mask, dtype=gy.dtype)
    return _conv_flat(gf, geo, wf, None, (kh, kw), dilation, groups, out_mask=out_mask)


def conv2d_grad_weight(gy, x, kernel_hw, padding, dilation, groups, mask=None, bias=False):
    """Stride-1 weight gradient: ``sum_{n, p} gy[n, o, p] * x_shifted[n, (c, u, v), p]``.

    ``mask``: the output of a fused ``conv + ReLU``; ``gy`` counts as 0 where it is <= 0.
    ``bias``: return ``(grad_weight, grad_bias)``, the bias gradient summed from the same
    reads of ``gy`` where the loop allows.

    Returns None when ``x`` holds a NaN or an infinity (found as the loops lay the input
    out): the loops also multiply zeros by input cells beside each row's windows, which
    would carry it into the sums; the caller takes the exact path. The depthwise loop
    multiplies each kernel entry's window only, and checks nothing.
    """
    n, o, oh, ow = gy.shape
    cg = x.shape[1] // groups
    og = o // groups
    dtype = gy.dtype
    if n == 0:
        gw = np.zeros((o, cg, *kernel_hw), dtype=dtype)
        return (gw, np.zeros(o, dtype)) if bias else gw
    geo = _Flat(x.shape[2:], padding, kernel_hw, dilation, dtype)
    offs = geo.offsets(cg, kernel_hw, dilation, multiple=4)
    partial = groups * og * offs.size * _block(dtype) // BLOCK_VECTORS * np.dtype(dtype).itemsize
    by_images = min(n, IMAGE_TASKS) > 1 and min(n, IMAGE_TASKS) * partial <= IMAGE_PARTIALS_BYTES
    depthwise = cg == 1 and o == groups
    if mask is not None and (depthwise or not mask.flags.c_contiguous):
        gy, mask = loops.relu_grad(np.ascontiguousarray(gy), mask), None
    if depthwise:
        return _depthwise().conv2d_grad_weight(gy, x, kernel_hw, (1, 1), padding, dilation,
                                               bias)
    done = _weight_grad(gy, x, kernel_hw, padding, dilation, groups, by_images, mask)
    if done is None:
        return None
    gw, gb = done
    return (gw, gb) if bias else gw


def _weight_grad(gy, x, kernel_hw, padding, dilation, groups, by_images, mask):
    """The two compiled weight-gradient splits: ``(gw, gb)``, the bias gradient summed
    from the laid-out gradient rows, or None when ``x`` is not all finite."""
    n, o, oh, ow = gy.shape
    cg = x.shape[1] // groups
    og = o // groups
    dtype = gy.dtype
    geo = _Flat(x.shape[2:], padding, kernel_hw, dilation, dtype)
    offs = geo.offsets(cg, kernel_hw, dilation, multiple=4)
    nb, n_kb = og // 4, offs.size // 4
    lanes = _block(dtype) // BLOCK_VECTORS
    tasks = min(n, IMAGE_TASKS)
    work = n * o * geo.pp * offs.size
    gb = None
    if by_images:
        # Few channels: split over images (each reads the input once), add the partials.
        per_task = -(-n // tasks)
        tasks = -(-n // per_task)
        gwp = np.zeros((tasks, groups, og, offs.size, lanes), dtype=dtype)
        gbp = np.zeros((tasks, o), dtype=dtype)
        bad = np.zeros(tasks, np.int8)
        g = np.ascontiguousarray(gy)
        _run(_jit().conv_weight_grad_images, tasks, work,
             np.ascontiguousarray(x, dtype=dtype), g, g if mask is None else mask,
             mask is not None, padding[0][0], padding[1][0], geo.hp, geo.wp, geo.pp,
             geo.slack, offs, cg * geo.plane, nb, per_task, gwp, gbp, bad)
        if bad.any():
            return None
        gwv, gb = gwp[0], gbp[0]
        for t in range(1, tasks):  # task order: deterministic
            gwv += gwp[t]
            gb += gbp[t]
    else:
        xf, finite = geo.pack(x.astype(dtype, copy=False), padding[0][0], padding[1][0],
                              check=True)
        if not finite:
            return None
        gf = np.empty((n, o, geo.pp), dtype=dtype)
        sums = np.empty(n * o, dtype=dtype)
        g = np.ascontiguousarray(gy)
        _run(_jit().lay_rows, n * o, 4 * gf.size, g, g if mask is None else mask,
             mask is not None, geo.wp, gf, sums)
        gb = sums.reshape(n, o)[0].copy()
        for i in range(1, n):  # image order: deterministic
            gb += sums[i * o : (i + 1) * o]
        kb_per_task = max(1, min(16, n_kb // 8))
        n_tasks = groups * (nb + og - 4 * nb) * -(-n_kb // kb_per_task)
        gwv = np.zeros((groups, og, offs.size, lanes), dtype=dtype)
        _run(_jit().conv_weight_grad, n_tasks, work, xf, gf, offs, cg * geo.plane, nb,
             kb_per_task, WGRAD_CHUNK, gwv)
    gw = gwv.sum(axis=-1)  # the lanes' partial sums (a fixed order: deterministic)
    kk = cg * kernel_hw[0] * kernel_hw[1]
    return np.ascontiguousarray(gw[:, :, :kk]).reshape(o, cg, *kernel_hw), gb
