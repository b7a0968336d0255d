"""Reference kernels: plain loops that read like the slides. The executable spec.

Every function here walks the output one value at a time and says, in code, how that one
value is made: *the kernel's dot product with the patch under it gives one value*. The
convolutions take that dot product with ``np.sum(kernel * patch)``; pooling, ReLU and
padding go cell by cell. They are slow on purpose and exist so that the fast kernels
(:mod:`convscope.kernels.fast`) have an obviously correct twin to be tested against.
Tests call them on small shapes only.

All arguments are already validated and normalised by the caller (see
:mod:`convscope.shapes`); these functions never check user input.

Conventions shared with :mod:`convscope.kernels.fast`:

- ``x`` is ``(N, C, H, W)``; a conv weight is ``(O, C // groups, kh, kw)``.
- ``stride`` and ``dilation`` are ``(h, w)`` pairs; conv ``padding`` is
  ``((top, bottom), (left, right))``; pooling ``padding`` is a symmetric ``(h, w)`` pair.
- Sums are accumulated in float64 and the result takes the input's dtype.
"""

from __future__ import annotations

import math

import numpy as np

from .. import shapes

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


# --------------------------------------------------------------------------- conv


def _zero_padded(x, padding, dtype=np.float64):
    """The input volume with rows and columns of zeros around it."""
    n, c, h, wd = x.shape
    (pt, pb), (pl, pr) = padding
    padded = np.zeros((n, c, h + pt + pb, wd + pl + pr), dtype=dtype)
    padded[:, :, pt : pt + h, pl : pl + wd] = x
    return padded


def _patch(row, col, kernel_hw, stride, dilation):
    """Row and column slices of the padded input under output value ``(row, col)``."""
    top, left = row * stride[0], col * stride[1]
    rows = slice(top, top + dilation[0] * (kernel_hw[0] - 1) + 1, dilation[0])
    cols = slice(left, left + dilation[1] * (kernel_hw[1] - 1) + 1, dilation[1])
    return rows, cols


def conv2d(x, w, b, stride, padding, dilation, groups):
    """Convolution, one output value at a time: kernel . patch (+ bias).

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    w : ndarray of shape (O, C // groups, kh, kw)
    b : ndarray of shape (O,) or None
    stride, dilation : (int, int)
    padding : ((top, bottom), (left, right)), zeros
    groups : int

    Returns
    -------
    y : ndarray of shape (N, O, H_out, W_out)
        ``H_out = shapes.conv_out(H, kh, sh, top + bottom, dh)``, likewise ``W_out``.

    Examples
    --------
    A 2x2 kernel of ones sums each 2x2 patch of a 3x3 input:

    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> conv2d(x, np.ones((1, 1, 2, 2)), None, (1, 1), ((0, 0), (0, 0)), (1, 1), 1)[0, 0].tolist()
    [[8.0, 12.0], [20.0, 24.0]]
    """
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    og = o // groups
    (pt, pb), (pl, pr) = padding
    h_out = shapes.conv_out(h, kh, stride[0], pt + pb, dilation[0])
    w_out = shapes.conv_out(wd, kw, stride[1], pl + pr, dilation[1])
    padded = _zero_padded(x, padding)
    y = np.zeros((n, o, h_out, w_out), dtype=np.float64)
    for i in range(n):  # every image
        for f in range(o):  # every kernel makes one feature map
            kernel = w[f].astype(np.float64)
            group = slice((f // og) * cg, (f // og + 1) * cg)  # the channels it sees
            for row in range(h_out):
                for col in range(w_out):  # every position of the kernel
                    rows, cols = _patch(row, col, (kh, kw), stride, dilation)
                    patch = padded[i, group, rows, cols]  # as deep as the kernel
                    y[i, f, row, col] = np.sum(kernel * patch)  # one dot product, one value
            if b is not None:
                y[i, f] += float(b[f])
    return y.astype(x.dtype)


def conv2d_grad_input(gy, w, input_hw, stride, padding, dilation, groups):
    """Gradient of :func:`conv2d` with respect to ``x``.

    Each output value was a dot product with one patch, so its gradient ``gy`` flows back to
    every cell of that patch, weighted by the kernel entry that touched it. Gradient that
    lands on padding is dropped.

    Parameters
    ----------
    gy : ndarray of shape (N, O, H_out, W_out)
    w : ndarray of shape (O, C // groups, kh, kw)
    input_hw : (H, W)

    Returns
    -------
    gx : ndarray of shape (N, C, H, W)
    """
    n, o, h_out, w_out = gy.shape
    _, cg, kh, kw = w.shape
    og = o // groups
    h, wd = input_hw
    (pt, pb), (pl, pr) = padding
    g_padded = np.zeros((n, cg * groups, h + pt + pb, wd + pl + pr), dtype=np.float64)
    for i in range(n):
        for f in range(o):
            kernel = w[f].astype(np.float64)
            group = slice((f // og) * cg, (f // og + 1) * cg)
            for row in range(h_out):
                for col in range(w_out):
                    rows, cols = _patch(row, col, (kh, kw), stride, dilation)
                    g_padded[i, group, rows, cols] += float(gy[i, f, row, col]) * kernel
    return g_padded[:, :, pt : pt + h, pl : pl + wd].astype(gy.dtype)


def conv2d_grad_weight(gy, x, kernel_hw, stride, padding, dilation, groups):
    """Gradient of :func:`conv2d` with respect to ``w``.

    A kernel met one patch per output value of its feature map; its gradient is the sum of
    those patches, each weighted by that output value's ``gy``.

    Parameters
    ----------
    gy : ndarray of shape (N, O, H_out, W_out)
    x : ndarray of shape (N, C, H, W)
    kernel_hw : (kh, kw)

    Returns
    -------
    gw : ndarray of shape (O, C // groups, kh, kw)
    """
    n, o, h_out, w_out = gy.shape
    c = x.shape[1]
    cg, og = c // groups, o // groups
    padded = _zero_padded(x, padding)
    gw = np.zeros((o, cg, *kernel_hw), dtype=np.float64)
    for i in range(n):
        for f in range(o):
            group = slice((f // og) * cg, (f // og + 1) * cg)
            for row in range(h_out):
                for col in range(w_out):
                    rows, cols = _patch(row, col, kernel_hw, stride, dilation)
                    gw[f] += float(gy[i, f, row, col]) * padded[i, group, rows, cols]
    return gw.astype(gy.dtype)


# --------------------------------------------------------------------------- pooling


def _pool_window(row, col, kernel, stride, padding, dilation):
    """The input cells ``(hi, wi)`` of one pooling window, in row-major order.

    Cells may lie in the padding or (in ceil mode) past its end; callers decide what those
    count for.
    """
    top = row * stride[0] - padding[0]
    left = col * stride[1] - padding[1]
    for u in range(kernel[0]):
        for v in range(kernel[1]):
            yield top + u * dilation[0], left + v * dilation[1]


def max_pool2d(x, kernel, stride, padding, dilation, ceil_mode):
    """Max pooling: each output value is the largest input value under its window.

    Padding cells count as ``-inf`` and never win. On ties the first cell in row-major
    window order wins; a NaN always wins (the last NaN, as in PyTorch's CPU kernel).

    With dilation on a tiny input a window can hold no input cell at all (kernel 2,
    dilation 2, padding 1 on a 1-pixel input: cells -1 and 1). Its value is ``-inf``
    (PyTorch's; ONNX Runtime gives ``-FLT_MAX``) and its index ``-1``: there is no winner,
    and :func:`max_pool2d_grad` credits nobody.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    kernel, stride, padding, dilation : (int, int)
    ceil_mode : bool

    Returns
    -------
    y : ndarray of shape (N, C, H_out, W_out)
        ``H_out = shapes.pool_out(H, kh, sh, ph, dh, ceil_mode)``.
    idx : ndarray of int64, shape (N, C, H_out, W_out)
        Flat index ``h * W + w`` of the winner in its input plane (-1: no input cell).
    """
    n, c, h, wd = x.shape
    h_out = shapes.pool_out(h, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    w_out = shapes.pool_out(wd, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    y = np.zeros((n, c, h_out, w_out), dtype=x.dtype)
    idx = np.zeros((n, c, h_out, w_out), dtype=np.int64)
    for i in range(n):
        for ch in range(c):
            for row in range(h_out):
                for col in range(w_out):
                    cells = [
                        (hi, wi)
                        for hi, wi in _pool_window(row, col, kernel, stride, padding, dilation)
                        if 0 <= hi < h and 0 <= wi < wd  # padding and overhang never win
                    ]
                    best, best_at = -math.inf, cells[0] if cells else None
                    for hi, wi in cells:
                        value = float(x[i, ch, hi, wi])
                        if value > best or math.isnan(value):
                            best, best_at = value, (hi, wi)
                    y[i, ch, row, col] = best
                    idx[i, ch, row, col] = -1 if best_at is None else best_at[0] * wd + best_at[1]
    return y, idx


def max_pool2d_grad(gy, idx, input_hw, y=None):
    """Gradient of :func:`max_pool2d`: each ``gy`` value goes back to its window's winner.

    Parameters
    ----------
    gy, idx : ndarrays of shape (N, C, H_out, W_out)
    input_hw : (H, W)
    y : ndarray of shape (N, C, H_out, W_out), optional
        The pool's output, when its input was a ReLU's output: the gradient through that
        ReLU too. The winner's value is the window's maximum, so the ReLU's rule (0 where
        its output <= 0) reads ``y``: ``gy`` becomes ``relu_grad(gy, y)`` first.

    Returns
    -------
    gx : ndarray of shape (N, C, H, W)
    """
    if y is not None:
        gy = relu_grad(gy, y)
    n, c, h_out, w_out = gy.shape
    h, wd = input_hw
    gx = np.zeros((n, c, h, wd), dtype=np.float64)
    for i in range(n):
        for ch in range(c):
            for row in range(h_out):
                for col in range(w_out):
                    winner = int(idx[i, ch, row, col])
                    if winner >= 0:  # -1: the window held no input cell
                        hi, wi = divmod(winner, wd)
                        gx[i, ch, hi, wi] += float(gy[i, ch, row, col])
    return gx.astype(gy.dtype)


def _avg_window(row, col, input_hw, kernel, stride, padding, count_include_pad):
    """Real cells of one averaging window and the divisor PyTorch uses for it."""
    h, wd = input_hw
    real, in_padded = [], 0
    for hi, wi in _pool_window(row, col, kernel, stride, padding, (1, 1)):
        if -padding[0] <= hi < h + padding[0] and -padding[1] <= wi < wd + padding[1]:
            in_padded += 1  # inside the padded input (ceil-mode overhang is not)
        if 0 <= hi < h and 0 <= wi < wd:
            real.append((hi, wi))
    return real, (in_padded if count_include_pad else len(real))


def avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad):
    """Average pooling with PyTorch's divisor rule.

    The divisor is the number of window cells inside the padded input when
    ``count_include_pad`` (ceil-mode overhang never counts), else the number of real cells.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    kernel, stride, padding : (int, int)
    ceil_mode, count_include_pad : bool

    Returns
    -------
    y : ndarray of shape (N, C, H_out, W_out)
        ``H_out = shapes.pool_out(H, kh, sh, ph, 1, ceil_mode)``.
    """
    n, c, h, wd = x.shape
    h_out = shapes.pool_out(h, kernel[0], stride[0], padding[0], 1, ceil_mode)
    w_out = shapes.pool_out(wd, kernel[1], stride[1], padding[1], 1, ceil_mode)
    y = np.zeros((n, c, h_out, w_out), dtype=x.dtype)
    for i in range(n):
        for ch in range(c):
            for row in range(h_out):
                for col in range(w_out):
                    cells, divisor = _avg_window(
                        row, col, (h, wd), kernel, stride, padding, count_include_pad
                    )
                    total = sum(float(x[i, ch, hi, wi]) for hi, wi in cells)
                    y[i, ch, row, col] = total / divisor
    return y


def avg_pool2d_grad(gy, input_hw, kernel, stride, padding, ceil_mode, count_include_pad):
    """Gradient of :func:`avg_pool2d`: each ``gy`` value is shared equally by its real cells
    (each gets ``gy / divisor``).

    Returns
    -------
    gx : ndarray of shape (N, C, H, W)
    """
    n, c, h_out, w_out = gy.shape
    h, wd = input_hw
    gx = np.zeros((n, c, h, wd), dtype=np.float64)
    for i in range(n):
        for ch in range(c):
            for row in range(h_out):
                for col in range(w_out):
                    cells, divisor = _avg_window(
                        row, col, (h, wd), kernel, stride, padding, count_include_pad
                    )
                    for hi, wi in cells:
                        gx[i, ch, hi, wi] += float(gy[i, ch, row, col]) / divisor
    return gx.astype(gy.dtype)


# --------------------------------------------------------------------------- relu


def relu(x):
    """``max(x, 0)`` element by element; NaN passes through (``NaN <= 0`` is false)."""
    y = np.empty_like(x)
    for i, value in enumerate(x.flat):
        y.flat[i] = 0.0 if value <= 0 else value
    return y


def relu_grad(gy, x):
    """Gradient of :func:`relu`: ``gy`` where ``x > 0``, zero where ``x <= 0`` (as PyTorch)."""
    gx = np.empty_like(gy)
    for i, (g, value) in enumerate(zip(gy.flat, x.flat, strict=True)):
        gx.flat[i] = 0.0 if value <= 0 else g
    return gx


# --------------------------------------------------------------------------- conv + relu


def conv2d_relu(x, w, b, stride, padding, dilation, groups):
    """``relu(conv2d(x, w, b, ...))``: a convolution layer followed by a ReLU, as one op."""
    return relu(conv2d(x, w, b, stride, padding, dilation, groups))


def conv2d_relu_maxpool(x, w, b, stride, padding, dilation, groups):
    """``max_pool2d(relu(conv2d(...)), 2 x 2, stride 2)``: ``(pooled, winners)``."""
    y = conv2d_relu(x, w, b, stride, padding, dilation, groups)
    return max_pool2d(y, (2, 2), (2, 2), (0, 0), (1, 1), False)


def conv2d_relu_grads(gy, y, x, w, need, stride, padding, dilation, groups):
    """Gradients of :func:`conv2d_relu` by the chain rule, given its output ``y``.

    ``gy`` is d(loss)/d(y); the ReLU's gradient comes from ``y`` (``y <= 0`` exactly where
    the convolution was ``<= 0``). ``need`` is (input, weight, bias): which to compute.
    Returns ``(gx, gw, gb)``, ``None`` for each one not needed.
    """
    return conv2d_grads(gy, x, w, need, stride, padding, dilation, groups, mask=y)


def conv2d_grads(gy, x, w, need, stride, padding, dilation, groups, mask=None,
                 input_mask=False):
    """The gradients of :func:`conv2d` that ``need`` (input, weight, bias) asks for.

    ``mask``: a fused ReLU's output; ``gy`` first becomes ``relu_grad(gy, mask)``.
    ``input_mask``: ``x`` was a ReLU's output; the input gradient is taken on through it
    (``relu_grad(gx, x)``). Returns ``(gx, gw, gb)``, ``None`` for each one not needed.
    """
    g = gy if mask is None else relu_grad(gy, mask)
    args = (stride, padding, dilation, groups)
    gx = conv2d_grad_input(g, w, x.shape[2:], *args) if need[0] else None
    if gx is not None and input_mask:
        gx = relu_grad(gx, x)
    gw = conv2d_grad_weight(g, x, w.shape[2:], *args) if need[1] else None
    gb = g.astype(np.float64).sum(axis=(0, 2, 3)).astype(g.dtype) if need[2] else None
    return gx, gw, gb


# --------------------------------------------------------------------------- padding


def _source(i, size, mode):
    """Which input cell a padded position ``i`` (``-pad <= i < size + pad``) copies, or None."""
    if 0 <= i < size:
        return i
    if mode == "zeros":
        return None
    if mode == "replicate":  # the edge cell repeats
        return min(max(i, 0), size - 1)
    if mode == "circular":  # the volume wraps around
        return i % size
    if size == 1:  # reflect of a single cell: only itself
        return 0
    period = 2 * (size - 1)  # reflect: mirror at the edge cells, without repeating them
    j = i % period
    return j if j < size else period - j


def pad2d(x, padding, mode):
    """Pad the last two axes with zeros or copies of the input's own cells.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    padding : ((top, bottom), (left, right))
    mode : {'zeros', 'reflect', 'replicate', 'circular'}

    Returns
    -------
    ndarray of shape (N, C, H + top + bottom, W + left + right)
    """
    n, c, h, wd = x.shape
    (pt, pb), (pl, pr) = padding
    y = np.zeros((n, c, h + pt + pb, wd + pl + pr), dtype=x.dtype)
    for r in range(h + pt + pb):
        for q in range(wd + pl + pr):
            src_h, src_w = _source(r - pt, h, mode), _source(q - pl, wd, mode)
            if src_h is not None and src_w is not None:
                y[:, :, r, q] = x[:, :, src_h, src_w]
    return y


def pad2d_grad(gx_padded, padding, mode):
    """Adjoint of :func:`pad2d`: every padded cell's gradient goes back to its source cell.

    Parameters
    ----------
    gx_padded : ndarray of shape (N, C, H + top + bottom, W + left + right)

    Returns
    -------
    ndarray of shape (N, C, H, W)
    """
    n, c, hp, wp = gx_padded.shape
    (pt, pb), (pl, pr) = padding
    h, wd = hp - pt - pb, wp - pl - pr
    gx = np.zeros((n, c, h, wd), dtype=np.float64)
    for r in range(hp):
        for q in range(wp):
            src_h, src_w = _source(r - pt, h, mode), _source(q - pl, wd, mode)
            if src_h is not None and src_w is not None:
                gx[:, :, src_h, src_w] += gx_padded[:, :, r, q]
    return gx.astype(gx_padded.dtype)
