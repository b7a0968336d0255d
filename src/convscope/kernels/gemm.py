"""Convolution as matrix products: ``im2col`` + one BLAS product per group.

The idea is the slides' one, done for every position at once. ``im2col`` lays every patch
out as a column of a matrix (a strided *view* of the padded input, copied once into a
contiguous block); the kernels are the rows of another matrix; one matrix product then
computes every dot product of every kernel with every patch. The backward passes are the
same product transposed, and ``col2im`` folds columns back onto the input with ``kh * kw``
strided additions (one per kernel offset).

Handles every stride, padding, dilation and group count; :mod:`convscope.kernels.fast`
uses it where the direct loops (:mod:`.direct`, stride 1) do not apply.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import shapes

# --------------------------------------------------------------------------- helpers


def _pad_const(x, padding, value):
    """Pad the last two axes of ``(N, C, H, W)`` with a constant, ``((t, b), (l, r))``."""
    (pt, pb), (pl, pr) = padding
    if pt == pb == pl == pr == 0:
        return x
    n, c, h, w = x.shape
    out = np.full((n, c, h + pt + pb, w + pl + pr), value, dtype=x.dtype)
    out[:, :, pt : pt + h, pl : pl + w] = x
    return out


def _windows(xp, kernel, stride, dilation, out_hw):
    """Read-only view of every window: shape ``(N, C, H_out, W_out, kh, kw)``.

    ``xp`` is the already padded input; ``[..., r, q, u, v]`` is the cell at
    ``(r * sh + u * dh, q * sw + v * dw)``.
    """
    sn, sc, sh_, sw_ = xp.strides
    shape = (*xp.shape[:2], *out_hw, *kernel)
    strides = (sn, sc, sh_ * stride[0], sw_ * stride[1], sh_ * dilation[0], sw_ * dilation[1])
    return as_strided(xp, shape=shape, strides=strides, writeable=False)


def _im2col(x, kernel, stride, padding, dilation, groups, out_hw):
    """Patches as columns: ``(G, K, N * L)`` with ``K = C/G * kh * kw``, ``L = H_out * W_out``.

    Column ``i * L + r * W_out + q`` holds the patch under output ``(r, q)`` of image ``i``,
    flattened in the weight's ``(channel, u, v)`` order.
    """
    n, c = x.shape[:2]
    win = _windows(_pad_const(x, padding, 0), kernel, stride, dilation, out_hw)
    win = win.reshape(n, groups, c // groups, *out_hw, *kernel)  # view: splits C only
    cols = win.transpose(1, 2, 5, 6, 0, 3, 4)  # (G, C/G, kh, kw, N, H_out, W_out)
    k = (c // groups) * kernel[0] * kernel[1]
    return cols.reshape(groups, k, n * out_hw[0] * out_hw[1])  # the one copy


def _col2im(cols, input_hw, kernel, stride, padding, dilation):
    """Adjoint of the window view: add ``(N, C, kh, kw, H_out, W_out)`` back onto the input.

    One strided addition per kernel offset ``(u, v)``; what lands on padding is dropped.
    """
    n, c, kh, kw, oh, ow = cols.shape
    (pt, pb), (pl, pr) = padding
    h, w = input_hw
    out = np.zeros((n, c, h + pt + pb, w + pl + pr), dtype=cols.dtype)
    for u in range(kh):
        for v in range(kw):
            rows = _steps(u * dilation[0], oh, stride[0])
            columns = _steps(v * dilation[1], ow, stride[1])
            out[:, :, rows, columns] += cols[:, :, u, v]
    return out[:, :, pt : pt + h, pl : pl + w]


def _steps(first, count, step):
    """``count`` positions ``first, first + step, ...`` as a slice."""
    return slice(first, first + step * (count - 1) + 1, step)


def _conv_out_hw(input_hw, kernel, stride, padding, dilation):
    (pt, pb), (pl, pr) = padding
    return (
        shapes.conv_out(input_hw[0], kernel[0], stride[0], pt + pb, dilation[0]),
        shapes.conv_out(input_hw[1], kernel[1], stride[1], pl + pr, dilation[1]),
    )


def conv2d(x, w, b, stride, padding, dilation, groups):
    """Convolution as one matrix product per group: kernels (rows) x patches (columns).

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
    y : ndarray of shape (N, O, H_out, W_out), dtype of ``x``
        ``H_out = shapes.conv_out(H, kh, sh, top + bottom, dh)``, likewise ``W_out``.

    Examples
    --------
    The slides' first layer: a 64x64x3 volume, 8 kernels of 5x5x3, padding 2. In the
    corner only 3x3x3 = 27 cells of the patch are real, the rest is padding.

    >>> x = np.ones((1, 3, 64, 64), dtype=np.float32)
    >>> w = np.ones((8, 3, 5, 5), dtype=np.float32)
    >>> y = conv2d(x, w, None, (1, 1), ((2, 2), (2, 2)), (1, 1), 1)
    >>> y.shape, y.dtype, float(y[0, 0, 32, 32]), float(y[0, 0, 0, 0])
    ((1, 8, 64, 64), dtype('float32'), 75.0, 27.0)
    """
    n = x.shape[0]
    o, cg, kh, kw = w.shape
    assert x.shape[1] == cg * groups and o % groups == 0
    out_hw = _conv_out_hw(x.shape[2:], (kh, kw), stride, padding, dilation)
    cols = _im2col(x, (kh, kw), stride, padding, dilation, groups, out_hw)  # (G, K, N*L)
    y = np.matmul(w.reshape(groups, o // groups, -1).astype(x.dtype, copy=False), cols)
    y = y.reshape(o, n, *out_hw).transpose(1, 0, 2, 3)  # (G*O/G, N, ...) -> (N, O, ...)
    y = np.ascontiguousarray(y)
    if b is not None:
        y += b.astype(x.dtype, copy=False)[:, None, None]
    return y


def conv2d_grad_input(gy, w, input_hw, stride, padding, dilation, groups):
    """Gradient of :func:`conv2d` with respect to ``x``: ``col2im(W^T @ gy)``.

    Parameters
    ----------
    gy : ndarray of shape (N, O, H_out, W_out)
    w : ndarray of shape (O, C // groups, kh, kw)
    input_hw : (H, W)

    Returns
    -------
    gx : ndarray of shape (N, C, H, W), dtype of ``gy``
    """
    n, o, oh, ow = gy.shape
    _, cg, kh, kw = w.shape
    og = o // groups
    w_t = w.reshape(groups, og, cg * kh * kw).transpose(0, 2, 1).astype(gy.dtype, copy=False)
    g = gy.reshape(n, groups, og, oh * ow)
    cols = np.matmul(w_t, g)  # (N, G, K, L): each output's gradient spread over its patch
    cols = cols.reshape(n, groups * cg, kh, kw, oh, ow)
    gx = _col2im(cols, input_hw, (kh, kw), stride, padding, dilation)
    return np.ascontiguousarray(gx)


def conv2d_grad_weight(gy, x, kernel_hw, stride, padding, dilation, groups):
    """Gradient of :func:`conv2d` with respect to ``w``: ``gy @ im2col(x)^T`` per group.

    Parameters
    ----------
    gy : ndarray of shape (N, O, H_out, W_out)
    x : ndarray of shape (N, C, H, W)
    kernel_hw : (kh, kw)

    Returns
    -------
    gw : ndarray of shape (O, C // groups, kh, kw), dtype of ``gy``
    """
    n, o, oh, ow = gy.shape
    cg = x.shape[1] // groups
    cols = _im2col(
        x.astype(gy.dtype, copy=False), kernel_hw, stride, padding, dilation, groups, (oh, ow)
    )  # (G, K, N*L)
    g = gy.reshape(n, groups, o // groups, oh * ow).transpose(1, 2, 0, 3)
    g = g.reshape(groups, o // groups, n * oh * ow)  # (G, O/G, N*L)
    gw = np.matmul(g, cols.transpose(0, 2, 1))  # (G, O/G, K)
    return gw.reshape(o, cg, *kernel_hw)
