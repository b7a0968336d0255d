"""Transposed convolution, built from the convolution kernels (no loops of its own).

A transposed convolution is the input gradient of a convolution: every input value
spreads ``value x kernel`` over an output window, and the windows of neighbouring values
overlap where ``stride < kernel``. So its forward pass is :func:`conv2d_grad_input`, its
input gradient is a plain :func:`conv2d` and its weight gradient is
:func:`conv2d_grad_weight` with the roles of input and output gradient swapped.

``impl`` chooses the kernels: :mod:`.fast` (default) or :mod:`.reference`, the plain
loops, which is how the tests hold the two to each other. Arguments are already checked
(:func:`convscope.shapes.conv_transpose_geometry`); ``padding`` is symmetric ``(ph, pw)``.
"""

from __future__ import annotations

import numpy as np

from .. import shapes
from . import fast

__all__ = ["conv_transpose2d", "conv_transpose2d_grads"]


def _conv_padding(padding):
    return ((padding[0], padding[0]), (padding[1], padding[1]))


def _out_hw(x_hw, kernel_hw, stride, padding, output_padding, dilation):
    return tuple(
        shapes.conv_transpose_out(*args)
        for args in zip(x_hw, kernel_hw, stride, padding, dilation, output_padding, strict=True)
    )


def _as_conv_output(x, stride, output_padding):
    """``x`` with the zero rows/columns the matching convolution would produce at the end.

    With ``output_padding >= stride`` (allowed when dilation is larger) that convolution
    reaches ``output_padding // stride`` more positions per axis than ``x`` has; they carry
    no value.
    """
    extra = [o // s for o, s in zip(output_padding, stride, strict=True)]
    if not any(extra):
        return x
    return np.pad(x, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])))


def conv_transpose2d(x, w, b, stride, padding, output_padding, dilation, groups, impl=fast):
    """Transposed convolution: ``y = conv2d_grad_input(x, w)`` (+ bias).

    Parameters
    ----------
    x : ndarray of shape (N, C_in, H, W)
    w : ndarray of shape (C_in, C_out // groups, kH, kW)
    b : ndarray of shape (C_out,) or None
    stride, padding, output_padding, dilation : (int, int)
    groups : int

    Returns
    -------
    y : ndarray of shape (N, C_out, H_out, W_out), dtype of ``x``
        ``H_out = (H - 1) * stride - 2 * padding + dilation * (kH - 1) + output_padding + 1``.
    """
    out_hw = _out_hw(x.shape[2:], w.shape[2:], stride, padding, output_padding, dilation)
    gy = _as_conv_output(x, stride, output_padding)
    y = impl.conv2d_grad_input(gy, w, out_hw, stride, _conv_padding(padding), dilation, groups)
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1).astype(y.dtype, copy=False)
    return y


def conv_transpose2d_grads(gy, x, w, need, stride, padding, output_padding, dilation, groups,
                           impl=fast):
    """``(grad_x, grad_w, grad_b)`` of :func:`conv_transpose2d` for output gradient ``gy``;
    an entry is None where ``need`` (three bools) says it is not wanted. ``x`` is read only
    for ``grad_w`` and ``w`` only for ``grad_x`` (None is fine otherwise)."""
    pads = _conv_padding(padding)
    gx = gw = gb = None
    if need[0]:
        gx = impl.conv2d(gy, w, None, stride, pads, dilation, groups)
        eh, ew = (o // s for o, s in zip(output_padding, stride, strict=True))
        gx = np.ascontiguousarray(gx[:, :, : gx.shape[2] - eh, : gx.shape[3] - ew])
    if need[1]:
        xs = _as_conv_output(x, stride, output_padding)
        gw = impl.conv2d_grad_weight(xs, gy, w.shape[2:], stride, pads, dilation, groups)
    if need[2]:
        gb = gy.sum(axis=(0, 2, 3))
    return gx, gw, gb
