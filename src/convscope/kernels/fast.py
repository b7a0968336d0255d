"""Fast kernels: each convolution computed by the algorithm that suits its shape.

The algorithms (:func:`choose` picks one per call and operation):

``"direct"`` (:mod:`.direct`, stride 1)
    Compiled loops (Numba, explicit 512-bit vectors) that keep a block of 4 kernels x 64
    output positions in registers, reading the padded input in place: no ``im2col`` copy.
``"winograd"`` (:mod:`.winograd`, 3 x 3, stride 1, one group)
    F(2x2, 3x3): 16 multiplications instead of 36 per 2 x 2 outputs, for a rounding
    bound of its own (stated there); inputs with NaN or inf go to the direct loop.
``"panel"`` (:mod:`.panel`, anything)
    The matrix product ``W @ im2col(x)`` blocked for the caches in compiled loops: panels
    of ``im2col`` packed in cache, positions running over the whole batch (small planes
    fill the vectors), strides read only the cells they use.
``"depthwise"`` (:mod:`.depthwise`, one kernel per channel, column stride 1 or 2)
    Plane by plane in cache.
``"phases"`` (:mod:`.phases`, larger strides, dilation 1, not depthwise)
    The strided convolution as a stride-1 one of the input's phase images, on the direct
    loops (non-finite inputs go to gemm).
``"gemm"`` (:mod:`.gemm`, anything)
    ``im2col`` + one BLAS matrix product per group (the fallback).

Every conv function takes ``algo=`` to force one (tests drive each path that way).
Pooling (forward and gradient) and ReLU are compiled loops for large arrays
(:mod:`.loops`), NumPy below; padding is NumPy views and reductions.
A convolution followed by a ReLU can run fused (:func:`conv2d_relu`).
Small matrix products (:func:`matmul`, the linear layer) avoid BLAS's thread pool.

Same signatures and semantics as :mod:`convscope.kernels.reference`, which is the spec.
Arguments are already validated and normalised by the caller. Float32 and float64 inputs
give results of the same dtype; an empty batch (N = 0) gives an empty result.
"""

from __future__ import annotations

import numpy as np

from .. import shapes
from . import depthwise, direct, gemm, loops, panel, phases, winograd
from .gemm import _col2im, _pad_const, _steps, _windows

__all__ = [
    "conv2d",
    "conv2d_grad_input",
    "conv2d_grad_weight",
    "conv2d_relu",
    "conv2d_relu_grads",
    "conv2d_grads",
    "conv2d_relu_maxpool",
    "max_pool2d",
    "max_pool2d_grad",
    "avg_pool2d",
    "avg_pool2d_grad",
    "relu",
    "relu_grad",
    "pad2d",
    "pad2d_grad",
]

ALGORITHMS = ("direct", "winograd", "panel", "depthwise", "phases", "gemm")
_NUMPY_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


# --------------------------------------------------------------------------- conv


WINOGRAD_CHANNELS = 32  # Winograd when input and output channels are at least this many
WINOGRAD_TILES = 0.75  # and this share of the tiles it computes are real (see _tile_use)
DIRECT_PLANE = 400  # direct loop for planes at least this large (20 x 20), else panel
DIRECT_PLANE_WGRAD = 784  # weight gradient: direct from 28 x 28 (reads gy in place)
PANEL_CHANNELS = 16  # with fewer channels than this, stride 1 stays on the direct loop


def _tile_use(h, w):
    """The share of Winograd's computed 2 x 2 tiles that hold outputs, for an output plane
    of about ``h x w``: each image's tile rows are one column wider than the plane's, and
    tasks take 64 tiles (16 x 16: 64 of 128; 14 x 14: 49 of 64; 56 x 56: 784 of 832)."""
    th, tw = -(-h // 2), -(-w // 2)
    return th * tw / (-(-th * (tw + 1) // 64) * 64)


def choose(op, stride, dilation, groups, x_shape, w_shape):
    """The algorithm for one convolution (measured on 2 threads; see benchmarks/README.md).

    ``op`` is ``"forward"``, ``"grad_input"`` or ``"grad_weight"``.

    - one kernel per channel: ``"depthwise"`` (strides its loops take, else ``"gemm"``);
    - 3 x 3, stride 1, one group, at least 32 channels in and out, a plane on which 3/4
      of the tiles computed are real (14 x 14, 28 x 28, 56 x 56; not 7 x 7 or 16 x 16):
      ``"winograd"`` (forward and input gradient);
    - other stride-1 convolutions: ``"direct"`` on large planes (its weight gradient reads
      ``gy`` in place) or with few channels, ``"panel"`` (the blocked matrix product) on
      small planes with many channels and for 1 x 1 kernels;
    - strides: ``"panel"``; the weight gradient of a layer with a few input channels (a
      network's stem) ``"phases"``; with dilation and stride both, ``"gemm"``.
    """
    n, c, h, w = x_shape
    o, cg, kh, kw = w_shape
    if cg == 1 and o == groups:
        return "depthwise" if depthwise.supports(op, stride) else "gemm"
    plane = (h // stride[0]) * (w // stride[1])
    if tuple(stride) == (1, 1):
        few = min(c, o) < PANEL_CHANNELS
        if (op != "grad_weight" and winograd.supports(stride, dilation, groups, w_shape)
                and min(c, o) >= WINOGRAD_CHANNELS and _tile_use(h, w) >= WINOGRAD_TILES):
            return "winograd"
        if op == "grad_weight":
            return "direct" if plane >= DIRECT_PLANE_WGRAD or few else "panel"
        if (kh, kw) == (1, 1):
            return "direct" if op == "grad_input" and o < 4 * PANEL_CHANNELS else "panel"
        return "direct" if plane >= DIRECT_PLANE or few else "panel"
    if tuple(dilation) != (1, 1):
        return "panel"
    if op == "grad_weight" and cg <= 4:
        return "phases"
    return "panel"


def _check(algo, stride, dilation):
    if algo not in ALGORITHMS:
        raise ValueError(f"unknown conv algorithm {algo!r}; use one of {ALGORITHMS}")
    if algo == "direct" and tuple(stride) != (1, 1):
        raise ValueError(f"the direct algorithm needs stride (1, 1), got {tuple(stride)}")
    if algo == "phases" and tuple(dilation) != (1, 1):
        raise ValueError(f"the phases algorithm needs dilation (1, 1), got {tuple(dilation)}")
    return algo


def _depthwise_checked(w_shape, groups):
    if not (w_shape[1] == 1 and w_shape[0] == groups):
        raise ValueError(f"the depthwise algorithm needs one kernel per channel; got weight "
                         f"{tuple(w_shape)} with groups={groups}")
    return True


def conv2d(x, w, b, stride, padding, dilation, groups, algo=None):
    """Convolution: ``y[n, o] = b[o] + sum over (c, u, v) of w[o, c, u, v] * patch``.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    w : ndarray of shape (O, C // groups, kh, kw)
    b : ndarray of shape (O,) or None
    stride, dilation : (int, int)
    padding : ((top, bottom), (left, right)), zeros
    groups : int
    algo : {None, "direct", "phases", "gemm"}
        None chooses by shape (:func:`choose`); "direct" needs stride 1, "phases"
        dilation 1 (:mod:`.phases`: a strided conv as a stride-1 one of phase images).

    Returns
    -------
    y : ndarray of shape (N, O, H_out, W_out), dtype of ``x``
        ``H_out = shapes.conv_out(H, kh, sh, top + bottom, dh)``, likewise ``W_out``.
    """
    algo = _check(algo or choose("forward", stride, dilation, groups, x.shape, w.shape), stride,
                  dilation)
    if algo == "winograd" and winograd.supports(stride, dilation, groups, w.shape):
        y = winograd.conv2d(x, w, b, padding)  # None: x or w not all finite
        if y is not None:
            return y
        algo = "direct"
    if algo == "direct":
        return direct.conv2d(x, w.astype(x.dtype, copy=False), b, padding, dilation, groups)
    if algo == "panel":
        return panel.conv2d(x, w.astype(x.dtype, copy=False), b, stride, padding, dilation,
                            groups)
    if (algo == "depthwise" and _depthwise_checked(w.shape, groups)
            and depthwise.supports("forward", stride)):
        return depthwise.conv2d(x, w.astype(x.dtype, copy=False), b, stride, padding, dilation)
    if algo == "phases" and not direct.is_depthwise(w, groups):
        out_hw = [shapes.conv_out(n, k, s, sum(p), 1)
                  for n, k, s, p in zip(x.shape[2:], w.shape[2:], stride, padding, strict=True)]
        y = phases.conv2d(x, w, b, stride, padding, groups, out_hw)  # None: x not all finite
        if y is not None:
            return y
    return gemm.conv2d(x, w, b, stride, padding, dilation, groups)


def conv2d_grad_input(gy, w, input_hw, stride, padding, dilation, groups, algo=None):
    """Gradient of :func:`conv2d` with respect to ``x``.

    Parameters
    ----------
    gy : ndarray of shape (N, O, H_out, W_out)
    w : ndarray of shape (O, C // groups, kh, kw)
    input_hw : (H, W)
    algo : {None, "direct", "phases", "gemm"}

    Returns
    -------
    gx : ndarray of shape (N, C, H, W), dtype of ``gy``
    """
    x_shape = (gy.shape[0], w.shape[1] * groups, *input_hw)
    algo = _check(algo or choose("grad_input", stride, dilation, groups, x_shape, w.shape),
                  stride, dilation)
    if algo == "winograd" and winograd.supports(stride, dilation, groups, w.shape):
        gx = winograd.conv2d_grad_input(gy, w.astype(gy.dtype, copy=False), input_hw, padding)
        if gx is not None:
            return gx
        algo = "direct"
    if algo == "direct":
        w = w.astype(gy.dtype, copy=False)
        return direct.conv2d_grad_input(gy, w, tuple(input_hw), padding, dilation, groups)
    if algo == "panel":
        return panel.conv2d_grad_input(gy, w.astype(gy.dtype, copy=False), tuple(input_hw),
                                       stride, padding, dilation, groups)
    if (algo == "depthwise" and _depthwise_checked(w.shape, groups)
            and depthwise.supports("grad_input", stride)):
        return depthwise.conv2d_grad_input(gy, w.astype(gy.dtype, copy=False),
                                           tuple(input_hw), stride, padding, dilation)
    if algo == "phases" and not direct.is_depthwise(w, groups) and gy.shape[0]:
        return phases.conv2d_grad_input(gy, w, tuple(input_hw), stride, padding, groups)
    return gemm.conv2d_grad_input(gy, w, input_hw, stride, padding, dilation, groups)


def conv2d_grad_weight(gy, x, kernel_hw, stride, padding, dilation, groups, algo=None):
    """Gradient of :func:`conv2d` with respect to ``w``.

    Parameters
    ----------
    gy : ndarray of shape (N, O, H_out, W_out)
    x : ndarray of shape (N, C, H, W)
    kernel_hw : (kh, kw)
    algo : {None, "direct", "phases", "gemm"}

    Returns
    -------
    gw : ndarray of shape (O, C // groups, kh, kw), dtype of ``gy``
    """
    w_shape = (gy.shape[1], x.shape[1] // groups, *kernel_hw)
    algo = _check(algo or choose("grad_weight", stride, dilation, groups, x.shape, w_shape),
                  stride, dilation)
    # The direct loop also multiplies zeros by the input cells next to each row's valid
    # window; a NaN or inf there would leak into the sum, so such inputs (found by the
    # loop as it lays the input out: None) take the exact path.
    if algo == "direct":
        gw = direct.conv2d_grad_weight(gy, x, tuple(kernel_hw), padding, dilation, groups)
        if gw is not None:
            return gw
    if algo == "panel":
        return panel.conv2d_grad_weight(gy, x, tuple(kernel_hw), stride, padding, dilation,
                                        groups)
    if (algo == "depthwise" and _depthwise_checked(w_shape, groups)
            and depthwise.supports("grad_weight", stride)):
        return depthwise.conv2d_grad_weight(gy, x, tuple(kernel_hw), stride, padding, dilation)
    if algo == "phases" and not (w_shape[1] == 1 and w_shape[0] == groups) and gy.shape[0]:
        gw = phases.conv2d_grad_weight(gy, x, tuple(kernel_hw), stride, padding, groups)
        if gw is not None:  # None: x not all finite
            return gw
    return gemm.conv2d_grad_weight(gy, x, kernel_hw, stride, padding, dilation, groups)


# --------------------------------------------------------------------------- conv + relu
#
# A convolution followed by a ReLU, fused (as oneDNN's post-ops): the forward loop applies
# the ReLU as it writes its output, so the convolution's own output never exists as an
# array and no pass runs over it; the backward applies the ReLU's gradient rule (0 where
# y <= 0) while it lays the gradient out for the input-gradient loop (the pack) and for
# the weight-gradient loop, which also sums the bias gradient from the rows it laid out.
# Paths without such a loop (stride != 1, depthwise, many channels, non-finite inputs)
# compute the masked gradient once and go on as for a plain convolution.


def conv2d_relu(x, w, b, stride, padding, dilation, groups, algo=None, hi=None):
    """``relu(conv2d(x, w, b, ...))`` in one pass (see :func:`conv2d` for the arguments);
    ``hi``: the values above it set to it as well (ReLU6: ``hi=6``), in the same pass where
    the loop has an epilogue (the blocked product, depthwise), else in one more."""
    algo = _check(algo or choose("forward", stride, dilation, groups, x.shape, w.shape), stride,
                  dilation)
    if algo == "panel":
        return panel.conv2d(x, w.astype(x.dtype, copy=False), b, stride, padding, dilation,
                            groups, relu=True, hi=np.inf if hi is None else hi)
    if (algo == "depthwise" and _depthwise_checked(w.shape, groups)
            and depthwise.supports("forward", stride)):
        return depthwise.conv2d(x, w.astype(x.dtype, copy=False), b, stride, padding, dilation,
                                lo=0.0, hi=np.inf if hi is None else hi)
    y = None
    if algo == "winograd" and winograd.supports(stride, dilation, groups, w.shape):
        y = winograd.conv2d(x, w, b, padding, relu=True)  # None: x or w not all finite
        algo = "direct"
    if y is None and algo == "direct":
        y = direct.conv2d(x, w.astype(x.dtype, copy=False), b, padding, dilation, groups,
                          relu=True)
    if y is None:
        y = conv2d(x, w, b, stride, padding, dilation, groups, algo)  # a new array: ours
        y = loops.relu(y, out=y if y.flags.writeable else None)
    if hi is not None:
        np.minimum(y, hi, out=y)
    return y


POOL_2X2 = ((2, 2), (2, 2), (0, 0), (1, 1))  # kernel, stride, padding, dilation


def conv2d_relu_maxpool(x, w, b, stride, padding, dilation, groups, algo=None):
    """``max_pool2d(relu(conv2d(x, w, b, ...)), 2, 2)``: ``(pooled, winners)`` in one pass.

    The pooling is 2 x 2, stride 2, no padding, floor mode (the conv's output must be at
    least 2 x 2); ``winners`` as :func:`max_pool2d`'s indices, into the conv output's
    planes. On the direct path the pooling runs in the loop's copy-out, so the conv's
    (and the ReLU's) output is never stored; elsewhere the three ops run one by one.
    """
    algo = _check(algo or choose("forward", stride, dilation, groups, x.shape, w.shape), stride,
                  dilation)
    depthwise = w.shape[1] == 1 and w.shape[0] == groups
    if algo == "direct" and not depthwise:
        return direct.conv2d(x, w.astype(x.dtype, copy=False), b, padding, dilation, groups,
                             relu=True, pool=True)
    y = conv2d_relu(x, w, b, stride, padding, dilation, groups, algo)
    return max_pool2d(y, *POOL_2X2, False)


def conv2d_relu_grads(gy, y, x, w, need, stride, padding, dilation, groups, algo=None):
    """Gradients of :func:`conv2d_relu` given its output ``y`` (see the reference's).

    ``need``: (input, weight, bias), which to compute; returns ``(gx, gw, gb)``.
    """
    return conv2d_grads(gy, x, w, need, stride, padding, dilation, groups, algo, mask=y)


def conv2d_grads(gy, x, w, need, stride, padding, dilation, groups, algo=None, mask=None,
                 input_mask=False):
    """The gradients of :func:`conv2d` that ``need`` (input, weight, bias) asks for.

    Returns ``(gx, gw, gb)``, None for each one not needed. The bias gradient comes from
    the weight-gradient loop's own reads of ``gy`` where it can. ``mask``: the output of a
    fused ``conv + ReLU`` (:func:`conv2d_relu_grads`): ``gy`` counts as 0 where it is <= 0,
    applied as the loops read ``gy``. ``input_mask``: ``x`` was a ReLU's output and the
    input gradient goes on through that ReLU (0 where ``x <= 0``), applied as it is written.
    """
    args = (stride, padding, dilation, groups)
    x_shape = (gy.shape[0], w.shape[1] * groups, *x.shape[2:])
    algo_w = _check(algo or choose("grad_weight", stride, dilation, groups, x_shape, w.shape),
                    stride, dilation)
    algo_x = _check(algo or choose("grad_input", stride, dilation, groups, x_shape, w.shape),
                    stride, dilation)
    dw = direct.is_depthwise(w, groups)
    gy = np.ascontiguousarray(gy)
    # the direct loops read gy through the mask; elsewhere the masked gradient is made once
    fused_w, fused_x = (a == "direct" and not dw for a in (algo_w, algo_x))
    if mask is not None and not (fused_w and fused_x):
        gy, mask = loops.relu_grad(gy, np.ascontiguousarray(mask)), None
    elif mask is not None:
        mask = np.ascontiguousarray(mask)
    done = None
    if need[1] and fused_w:
        done = direct.conv2d_grad_weight(gy, x, tuple(w.shape[2:]), padding, dilation, groups,
                                         mask=mask, bias=True)  # None: x not all finite
    elif need[1] and dw and algo_w in ("direct", "depthwise") and depthwise.supports(
            "grad_weight", stride):
        done = depthwise.conv2d_grad_weight(gy, x, tuple(w.shape[2:]), stride, padding,
                                            dilation, bias=True)
    elif need[1] and algo_w == "panel":
        done = panel.conv2d_grad_weight(gy, x, tuple(w.shape[2:]), *args, bias=True)
    if done is None and (need[1] or need[2]):
        g = gy if mask is None else loops.relu_grad(gy, mask)
        gw = conv2d_grad_weight(g, x, w.shape[2:], *args, algo=algo_w) if need[1] else None
        done = gw, (g.sum(axis=(0, 2, 3)) if need[2] else None)
    gw, gb = done if done is not None else (None, None)
    gx = None
    if need[0] and algo_x == "winograd" and winograd.supports(stride, dilation, groups, w.shape):
        gx = winograd.conv2d_grad_input(gy, w.astype(gy.dtype, copy=False), x.shape[2:],
                                        padding, out_mask=x if input_mask else None)
        fused_x = gx is None  # None: not all finite; gy is already masked
    if need[0] and fused_x:
        gx = direct.conv2d_grad_input(gy, w.astype(gy.dtype, copy=False), tuple(x.shape[2:]),
                                      padding, dilation, groups, mask=mask,
                                      out_mask=x if input_mask else None)
    elif need[0] and gx is None:
        gx = conv2d_grad_input(gy, w, x.shape[2:], *args, algo=algo_x)
        if input_mask:
            gx = loops.relu_grad(gx, np.ascontiguousarray(x, dtype=gx.dtype))
    return gx, gw, (gb if need[2] else None)


# --------------------------------------------------------------------------- matmul

SMALL_PRODUCT = 1 << 21  # multiply-adds; up to this a product runs without BLAS's threads
COMPILED_PRODUCT = 1 << 28  # up to this, larger products run on the compiled loops


def matmul(a, b):
    """``a @ b`` for 2-D arrays; small products by ``np.einsum`` on the calling thread.

    A BLAS call with two threads leaves its threads spinning for a while afterwards; on two
    cores they then compete with the compiled loops' threads (a 64 x 1690 x 10 product
    before a pooling loop made that loop 8-40x slower, measured). A small product on one
    thread costs a fraction of a millisecond and wakes no thread pool.
    """
    size = a.shape[0] * a.shape[1] * b.shape[1]
    if size <= SMALL_PRODUCT:
        return np.einsum("ij,jk->ik", a, b)
    if size <= COMPILED_PRODUCT and a.dtype == b.dtype and a.dtype.kind == "f":
        # as a 1 x 1 convolution on the blocked-product loops: the compiled loops' own
        # threads, which sleep as soon as they are done (measured: BLAS for ResNet-18's
        # 8 x 512 x 1000 classifier left its threads spinning into the next forward pass,
        # whose first convolutions then took twice their time)
        x = np.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], 1, 1)
        w = np.ascontiguousarray(b.T).reshape(b.shape[1], b.shape[0], 1, 1)
        y = panel.conv2d(x, w, None, (1, 1), ((0, 0), (0, 0)), (1, 1), 1)
        return y.reshape(a.shape[0], b.shape[1])
    return a @ b


# --------------------------------------------------------------------------- pooling


def _pool_padded(x, kernel, stride, padding, dilation, out_hw, value):
    """Pad symmetrically, plus extra cells at the bottom/right for ceil-mode overhang."""
    h, w = x.shape[2:]
    extra = [
        max(0, (o - 1) * s + d * (k - 1) + 1 - (n + 2 * p))
        for o, s, d, k, n, p in zip(out_hw, stride, dilation, kernel, (h, w), padding, strict=True)
    ]
    ph, pw = padding
    return _pad_const(x, ((ph, ph + extra[0]), (pw, pw + extra[1])), value)


def _first_real(out_size, stride, pad, dilation):
    """Per output position along one axis: the first window cell inside the input."""
    start = np.arange(out_size) * stride - pad
    skip = np.where(start < 0, -(start // dilation), 0)  # ceil(-start / d) for start < 0
    return start + skip * dilation


def max_pool2d(x, kernel, stride, padding, dilation, ceil_mode, indices=True):
    """Max pooling with winner indices (PyTorch's tie and NaN rules).

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    kernel, stride, padding, dilation : (int, int)
    ceil_mode : bool

    Returns
    -------
    y : ndarray of shape (N, C, H_out, W_out)
        ``H_out = shapes.pool_out(H, kh, sh, ph, dh, ceil_mode)``.
    idx : ndarray of int32 (int64 for planes of 2**31 cells or more), shape (N, C, H_out, W_out)
        (None with ``indices=False``: for a forward pass that needs no gradient, as
        PyTorch's.) Flat index ``h * W + w`` of the winner in its input plane: the first maximum in
        row-major window order, or the last NaN if the window holds one; ``-1`` for a
        window with no input cell at all (see the reference kernel).

    Examples
    --------
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> y, idx = max_pool2d(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
    >>> y[0, 0].tolist(), idx[0, 0].tolist()
    ([[5.0, 7.0], [13.0, 15.0]], [[5, 7], [13, 15]])
    """
    n, c, h, w = x.shape
    oh = shapes.pool_out(h, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    ow = shapes.pool_out(w, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    if x.size >= loops.SMALL:  # one compiled pass; NumPy below for small inputs
        return loops.max_pool2d(x, kernel, stride, padding, dilation, (oh, ow), indices)
    xp = _pool_padded(x, kernel, stride, padding, dilation, (oh, ow), -np.inf)
    win = _windows(xp, kernel, stride, dilation, (oh, ow))
    win = win.reshape(n, c, oh, ow, kernel[0] * kernel[1])
    best = np.argmax(win, axis=-1)  # first maximum; a NaN counts as the maximum
    y = np.take_along_axis(win, best[..., None], axis=-1)[..., 0]
    nan = np.isnan(y)
    if nan.any():  # PyTorch keeps the *last* NaN of the window
        last = win.shape[-1] - 1 - np.argmax(np.isnan(win[..., ::-1]), axis=-1)
        best = np.where(nan, last, best)
    u, v = np.divmod(best, kernel[1])
    rows = np.arange(oh)[:, None] * stride[0] - padding[0] + u * dilation[0]
    cols = np.arange(ow)[None, :] * stride[1] - padding[1] + v * dilation[1]
    idx = rows * w + cols
    lost = y == -np.inf  # every real cell is -inf: the first real cell wins, not a pad cell
    if lost.any():
        first_row = _first_real(oh, stride[0], padding[0], dilation[0])[:, None]
        first_col = _first_real(ow, stride[1], padding[1], dilation[1])[None, :]
        no_cell = (first_row >= h) | (first_col >= w)  # dilation stepped over the input
        idx = np.where(lost, np.where(no_cell, -1, first_row * w + first_col), idx)
    if not indices:
        return np.ascontiguousarray(y), None
    return np.ascontiguousarray(y), np.broadcast_to(idx, y.shape).astype(loops.index_dtype(h, w))


def max_pool2d_grad(gy, idx, input_hw, y=None, windows=None):
    """Gradient of :func:`max_pool2d`: scatter-add ``gy`` onto the winners at ``idx``.

    Parameters
    ----------
    gy, idx : ndarrays of shape (N, C, H_out, W_out)
    input_hw : (H, W)
    y : the pool's output when its input was a ReLU's (see the reference)
    windows : (kernel, stride, padding, dilation), optional
        The pooling's geometry, a hint: 2 x 2 windows with stride 2 take a faster loop.

    Returns
    -------
    gx : ndarray of shape (N, C, H, W), dtype of ``gy``
    """
    if gy.size >= loops.SMALL:
        return loops.max_pool2d_grad(gy, idx, input_hw, y, windows)
    if y is not None:
        gy = loops.relu_grad(gy, y)
    n, c = gy.shape[:2]
    plane = input_hw[0] * input_hw[1]
    offset = (np.arange(n * c, dtype=np.int64) * plane).reshape(n, c, 1, 1)
    where, weights = idx + offset, gy
    if (idx < 0).any():  # windows without an input cell have no winner to credit
        keep = idx >= 0
        where, weights = where[keep], gy[keep]
    flat = np.bincount(where.ravel(), weights=weights.ravel(), minlength=n * c * plane)
    return flat.astype(gy.dtype).reshape(n, c, *input_hw)


def _avg_divisor(input_hw, kernel, stride, padding, out_hw, count_include_pad):
    """PyTorch's divisor per output position, shape ``(H_out, W_out)``."""
    counts = []
    for n, k, s, p, o in zip(input_hw, kernel, stride, padding, out_hw, strict=True):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)  # ceil-mode overhang never counts
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, n)
        counts.append(end - start)
    return np.outer(counts[0], counts[1])


def _avg_setup(input_hw, kernel, stride, padding, ceil_mode, count_include_pad):
    oh = shapes.pool_out(input_hw[0], kernel[0], stride[0], padding[0], 1, ceil_mode)
    ow = shapes.pool_out(input_hw[1], kernel[1], stride[1], padding[1], 1, ceil_mode)
    divisor = _avg_divisor(input_hw, kernel, stride, padding, (oh, ow), count_include_pad)
    return (oh, ow), divisor


def avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad):
    """Average pooling with PyTorch's divisor rule (see the reference kernel).

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    kernel, stride, padding : (int, int)
    ceil_mode, count_include_pad : bool

    Returns
    -------
    y : ndarray of shape (N, C, H_out, W_out), dtype of ``x``
        ``H_out = shapes.pool_out(H, kh, sh, ph, 1, ceil_mode)``.
    """
    (oh, ow), divisor = _avg_setup(
        x.shape[2:], kernel, stride, padding, ceil_mode, count_include_pad
    )
    if x.size >= loops.SMALL:  # one compiled pass; NumPy below for small inputs
        return loops.avg_pool2d(x, kernel, stride, padding, divisor)
    xp = _pool_padded(x, kernel, stride, padding, (1, 1), (oh, ow), 0)
    total = np.zeros((*x.shape[:2], oh, ow), dtype=x.dtype)
    for u in range(kernel[0]):
        for v in range(kernel[1]):
            total += xp[:, :, _steps(u, oh, stride[0]), _steps(v, ow, stride[1])]
    return total / divisor.astype(x.dtype)


def avg_pool2d_grad(gy, input_hw, kernel, stride, padding, ceil_mode, count_include_pad):
    """Gradient of :func:`avg_pool2d`: ``gy / divisor`` spread over each window.

    Parameters
    ----------
    gy : ndarray of shape (N, C, H_out, W_out)
    input_hw : (H, W)

    Returns
    -------
    gx : ndarray of shape (N, C, H, W), dtype of ``gy``
    """
    (oh, ow), divisor = _avg_setup(input_hw, kernel, stride, padding, ceil_mode, count_include_pad)
    if gy.size >= loops.SMALL and stride[1] == kernel[1] and padding[1] == 0:
        # windows side by side along rows (2x2 stride 2...): one compiled pass of row
        # additions; overlapping windows go faster with NumPy's strided sums (measured)
        return loops.avg_pool2d_grad(gy, input_hw, kernel, stride, padding, divisor)
    share = gy / divisor.astype(gy.dtype)
    cols = np.broadcast_to(share[:, :, None, None], (*gy.shape[:2], *kernel, oh, ow))
    ph, pw = padding
    extra = [
        max(0, (o - 1) * s + k - (n + 2 * p))
        for o, s, k, n, p in zip((oh, ow), stride, kernel, input_hw, padding, strict=True)
    ]
    pads = ((ph, ph + extra[0]), (pw, pw + extra[1]))
    return np.ascontiguousarray(_col2im(cols, input_hw, kernel, stride, pads, (1, 1)))


# --------------------------------------------------------------------------- relu


def relu(x):
    """``max(x, 0)``; NaN passes through. Same shape and dtype as ``x``."""
    return loops.relu(x)


def relu_grad(gy, x):
    """``gy`` where ``x > 0``, zero where ``x <= 0`` (PyTorch's rule at 0)."""
    return loops.relu_grad(gy, x)


# --------------------------------------------------------------------------- padding


def pad2d(x, padding, mode):
    """Pad the last two axes: ``'zeros'``, ``'reflect'``, ``'replicate'`` or ``'circular'``.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    padding : ((top, bottom), (left, right))
    mode : str

    Returns
    -------
    ndarray of shape (N, C, H + top + bottom, W + left + right)
    """
    (pt, pb), (pl, pr) = padding
    return np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), mode=_NUMPY_MODE[mode])


def _fold_axis(g, before, after, size, mode, axis):
    """Adjoint of padding one axis: add each padded slice onto its source slice."""
    g = np.moveaxis(g, axis, 0)
    out = g[before : before + size].copy()
    if mode != "zeros":
        source = np.pad(np.arange(size), (before, after), mode=_NUMPY_MODE[mode])
        for j in (*range(before), *range(before + size, before + size + after)):
            out[source[j]] += g[j]
    return np.moveaxis(out, 0, axis)


def pad2d_grad(gx_padded, padding, mode):
    """Adjoint of :func:`pad2d`: fold padded cells' gradients back onto their sources.

    Parameters
    ----------
    gx_padded : ndarray of shape (N, C, H + top + bottom, W + left + right)
    padding : ((top, bottom), (left, right))
    mode : str

    Returns
    -------
    ndarray of shape (N, C, H, W)
    """
    (pt, pb), (pl, pr) = padding
    h = gx_padded.shape[2] - pt - pb
    w = gx_padded.shape[3] - pl - pr
    g = _fold_axis(gx_padded, pt, pb, h, mode, axis=2)
    g = _fold_axis(g, pl, pr, w, mode, axis=3)
    return np.ascontiguousarray(g)
