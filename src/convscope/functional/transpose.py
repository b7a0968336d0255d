"""Transposed convolution: the convolution run backwards, to make a volume larger."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import shapes
from ..errors import ShapeError, message
from ..kernels import transpose as kernels
from ..tensor import Tensor, make
from ..tracing import traced
from ._common import _arr, _batched, _dtype, _unbatch, as_tensor


@traced("conv_transpose2d")
def conv_transpose2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> Tensor:
    """2-D transposed convolution: every input value spreads ``value x kernel`` over a window.

    It is the input gradient of :func:`~convscope.functional.conv2d` with the same weight
    and arguments: where a convolution sums a window into one value, this spreads one
    value over a window, ``stride`` cells apart, adding where the windows overlap. A U-Net
    uses it with ``kernel_size=2, stride=2`` to double the height and width.

    Parameters
    ----------
    input : array_like of shape (N, C_in, H, W) or (C_in, H, W)
    weight : array_like of shape (C_in, C_out / groups, kH, kW)
        PyTorch's layout: input channels first.
    bias : array_like of shape (C_out,), optional
    stride, dilation : int or (int, int)
    padding : int or (int, int)
        Cells removed from each side of the output (``dilation * (k - 1) - padding`` zeros
        around the input of the equivalent direct convolution).
    output_padding : int or (int, int)
        Extra cells at the bottom and right, to pick one of the ``stride`` output sizes that
        a stride-``s`` convolution maps to the same input size. Must be smaller than
        ``stride`` or ``dilation``.
    groups : int

    Returns
    -------
    Tensor of shape (N, C_out, H_out, W_out)

    Shape:
        ``H_out = (H - 1) * stride[0] - 2 * padding[0] + dilation[0] * (kH - 1)
        + output_padding[0] + 1``, the same for ``W_out``
        (:func:`convscope.shapes.conv_transpose_out`).

    Examples
    --------
    >>> import numpy as np, convscope as cs
    >>> x = np.ones((1, 128, 28, 28), np.float32)         # a 28x28x128 volume
    >>> w = np.ones((128, 64, 2, 2), np.float32)          # 64 kernels of 2x2x128
    >>> cs.functional.conv_transpose2d(x, w, stride=2).shape
    (1, 64, 56, 56)
    """
    return conv_transpose2d_at(
        input, weight, bias, stride, padding, output_padding, groups, dilation, "conv_transpose2d"
    )


def conv_transpose2d_at(
    input: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    output_padding: Any,
    groups: Any,
    dilation: Any,
    where: str,
) -> Tensor:
    """:func:`conv_transpose2d` with the caller's name in its error messages (for layers)."""
    x, unbatched = _batched(as_tensor(input, where), where)
    w = as_tensor(weight, where, "weight")
    if w.ndim != 4:
        raise ShapeError(
            message(
                where,
                f"weight must be 4-D (C_in, C_out/groups, kH, kW), got {w.ndim}-D",
                "pass one kernel slice per input channel",
                f"weight shape {w.shape}",
            )
        )
    geo = shapes.conv_transpose_geometry(
        x.shape, w.shape, stride, padding, output_padding, groups, dilation, where
    )
    c_out = w.shape[1] * geo.groups
    b = None if bias is None else as_tensor(bias, where, "bias")
    if b is not None and b.shape != (c_out,):
        raise ShapeError(
            message(
                where,
                f"bias must have one value per output channel ({c_out})",
                f"pass a bias of shape ({c_out},) or bias=None",
                f"bias shape {b.shape}",
            )
        )
    shapes.check_size((x.shape[0], c_out) + geo.out_hw, where, itemsize=x.dtype.itemsize)
    dt = _dtype(x, w, b)
    xd, wd, bd = _arr(x, dt), _arr(w, dt), _arr(b, dt)
    args = (geo.stride, geo.padding, geo.output_padding, geo.dilation, geo.groups)
    y = kernels.conv_transpose2d(xd, wd, bd, *args)
    parents = (x, w) if b is None else (x, w, b)
    need = (x.requires_grad, w.requires_grad, b is not None and b.requires_grad)

    xk = xd if need[1] else None  # keep only what the wanted gradients read
    wk = wd if need[0] else None

    def backward(g: np.ndarray) -> tuple:
        grads = kernels.conv_transpose2d_grads(np.ascontiguousarray(g), xk, wk, need, *args)
        return grads[: len(parents)]

    return _unbatch(make(y, parents, backward, "conv_transpose2d"), unbatched)
