"""Convolution, padding and pooling: the sliding-window operations."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import kernels, shapes
from ..errors import ArgumentError, ShapeError, message
from ..tensor import Tensor, is_grad_enabled, make
from ..tracing import traced
from ._common import _PAD_MODES, _arr, _batched, _dtype, _unbatch, as_tensor


# --------------------------------------------------------------------------- convolution
@traced("conv2d")
def conv2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """2-D convolution: every kernel slides over the volume; each position gives one value.

    Parameters
    ----------
    input : array_like of shape (N, C_in, H, W) or (C_in, H, W)
    weight : array_like of shape (C_out, C_in / groups, kH, kW)
        ``C_out`` kernels, each as deep as the input (per group).
    bias : array_like of shape (C_out,), optional
    stride, dilation : int or (int, int)
    padding : int, (int, int), ((top, bottom), (left, right)), 'valid' or 'same'
        Zero padding. 'same' puts an odd extra row/column at the end, as PyTorch.
    groups : int

    Returns
    -------
    Tensor of shape (N, C_out, H_out, W_out)

    Shape:
        ``H_out = floor((H + pad_top + pad_bottom - dilation[0] * (kH - 1) - 1) / stride[0]) + 1``,
        the same for ``W_out`` (see :func:`convscope.shapes.conv_out`).
    """
    return conv2d_at(input, weight, bias, stride, padding, dilation, groups, "conv2d")


@traced("conv2d_relu")
def conv2d_relu(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """``relu(conv2d(input, weight, bias, ...))`` as one fused operation.

    The same values as the two operations (bit for bit) and the same gradients, with less
    memory and time: the ReLU is applied as the convolution writes its output, so the
    convolution's own output is never stored, and the backward applies the ReLU's rule
    while it reads the gradient. ``nn.Sequential`` uses it for every ``Conv2d`` followed
    by a ``ReLU``. Arguments as :func:`conv2d`.
    """
    return conv2d_at(input, weight, bias, stride, padding, dilation, groups, "conv2d_relu", True)


def conv2d_at(
    input: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: Any,
    where: str,
    relu: bool = False,
    relu_input: bool = False,
    premasked: bool = False,
    pool: bool = False,
) -> Tensor:
    """:func:`conv2d` with the caller's name in its error messages (used by layers).

    ``relu=True``: ``relu(conv2d(...))`` as one fused node (:func:`conv2d_relu`).
    For ``nn.Sequential``, which knows what feeds what: ``relu_input``, the input is the
    output of a ReLU whose only consumer is this op, and the input gradient is taken on
    through that ReLU here (as it is written); ``premasked``, this op's ReLU gets its
    gradient already taken through it that way by its only consumer; ``pool`` (with
    ``relu``, an output of at least 2 x 2), a 2 x 2 stride-2 max pooling of the ReLU's
    output in the same pass (:func:`kernels.fast.conv2d_relu_maxpool`): the result is the
    pooled volume, and neither the conv's nor the ReLU's output is ever stored.
    """
    x, unbatched = _batched(as_tensor(input, where), where)
    w = as_tensor(weight, where, "weight")
    if w.ndim != 4:
        raise ShapeError(
            message(
                where,
                f"weight must be 4-D (C_out, C_in/groups, kH, kW), got {w.ndim}-D",
                "pass one kernel per output channel",
                f"weight shape {w.shape}",
            )
        )
    geo = shapes.conv_geometry(x.shape, w.shape, stride, padding, dilation, groups, where)
    b = None if bias is None else as_tensor(bias, where, "bias")
    if b is not None and b.shape != (w.shape[0],):
        raise ShapeError(
            message(
                where,
                f"bias must have one value per kernel ({w.shape[0]})",
                f"pass a bias of shape ({w.shape[0]},) or bias=None",
                f"bias shape {b.shape}",
            )
        )
    shapes.check_size((x.shape[0], w.shape[0]) + geo.out_hw, where)
    dt = _dtype(x, w, b)
    xd, wd, bd = _arr(x, dt), _arr(w, dt), _arr(b, dt)
    args = (geo.stride, geo.padding, geo.dilation, geo.groups)
    parents = (x, w) if b is None else (x, w, b)
    need = (x.requires_grad, w.requires_grad, b is not None and b.requires_grad)
    k = len(parents)
    if pool:
        py, winners = kernels.conv2d_relu_maxpool(xd, wd, bd, *args)
        conv_hw = geo.out_hw

        def backward_pooled(g: np.ndarray) -> tuple:
            # the pool's gradient, through the ReLU by the pooled values (the winners'),
            # then the conv's
            gy = kernels.max_pool2d_grad(
                np.ascontiguousarray(g), winners, conv_hw, py, kernels.fast.POOL_2X2
            )
            return kernels.conv2d_grads(gy, xd, wd, need, *args, input_mask=relu_input)[:k]

        node = make(py, parents, backward_pooled, "conv2d+relu+max_pool2d")
        return _unbatch(node, unbatched)
    y = kernels.conv2d_relu(xd, wd, bd, *args) if relu else kernels.conv2d(xd, wd, bd, *args)
    mask = y if relu and not premasked else None  # a ReLU's backward keeps its output only

    def backward(g: np.ndarray) -> tuple:
        grads = kernels.conv2d_grads(g, xd, wd, need, *args, mask=mask, input_mask=relu_input)
        return grads[:k]

    return _unbatch(make(y, parents, backward, "conv2d+relu" if relu else "conv2d"), unbatched)


@traced("pad")
def pad(input: Any, padding: Any, mode: str = "zeros") -> Tensor:
    """Pad the last two axes; ``padding`` as in :func:`conv2d`, ``mode`` as ``Conv2d.padding_mode``.

    'reflect' mirrors without repeating the edge, 'replicate' repeats the edge, 'circular'
    wraps around (PyTorch's meanings).
    """
    where = "pad"
    x, unbatched = _batched(as_tensor(input, where), where)
    if mode not in _PAD_MODES:
        raise ArgumentError(
            message(
                where,
                f"unknown padding mode {mode!r}",
                f"use one of {', '.join(_PAD_MODES)}",
                f"mode={mode!r}",
            )
        )
    p = shapes.conv_padding(padding, (1, 1), (1, 1), where)
    assert not isinstance(p, str)
    (pt, pb), (pl, pr) = p
    h, w = x.shape[2:]
    if mode in ("reflect", "circular") and (
        max(pt, pb) > h - (mode == "reflect") or max(pl, pr) > w - (mode == "reflect")
    ):
        limit = "smaller than" if mode == "reflect" else "at most"
        raise ShapeError(
            message(
                where,
                f"{mode} padding must be {limit} the input size",
                "use less padding or padding_mode='zeros'",
                f"input {h}x{w}, padding {p}",
            )
        )
    y = kernels.pad2d(np.ascontiguousarray(x.data), p, mode)
    return _unbatch(
        make(y, (x,), lambda g: (kernels.pad2d_grad(g, p, mode),), "pad"), unbatched
    )


# --------------------------------------------------------------------------- pooling
@traced("max_pool2d")
def max_pool2d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """Max over each ``kernel_size`` window (padding counts as -inf).

    Shape:
        ``H_out = floor((H + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1``
        (``ceil`` with ``ceil_mode``, dropping a last window that starts in the padding).
    """
    return max_pool2d_at(
        input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, "max_pool2d"
    )


def max_pool2d_at(
    input: Any,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: bool,
    return_indices: bool,
    where: str,
    relu_input: bool = False,
) -> Any:
    """:func:`max_pool2d` with the caller's name in its errors. ``relu_input`` (for
    ``nn.Sequential``): the input is the output of a ReLU whose only consumer is this pool,
    and the gradient is taken on through that ReLU here (a window whose maximum is <= 0
    credits nothing)."""
    x, unbatched = _batched(as_tensor(input, where), where)
    k, s, p, d, out_hw = shapes.pool_geometry(
        x.shape[2:], kernel_size, stride, padding, dilation, bool(ceil_mode), where
    )
    shapes.check_size(x.shape[:2] + out_hw, where, itemsize=x.dtype.itemsize + 8)  # + indices
    xd = np.ascontiguousarray(x.data)
    indices = return_indices or (x.requires_grad and is_grad_enabled())  # else: no backward
    y, idx = kernels.max_pool2d(xd, k, s, p, d, bool(ceil_mode), indices)
    hw = x.shape[2:]
    mask = y if relu_input else None
    windows = (k, s, p, d)
    out = _unbatch(
        make(
            y,
            (x,),
            lambda g: (kernels.max_pool2d_grad(np.ascontiguousarray(g), idx, hw, mask, windows),),
            "max_pool2d",
        ),
        unbatched,
    )
    if return_indices:  # int64, as PyTorch's (the kernels keep int32 when it fits)
        idx = idx.astype(np.int64)
        return out, (idx[0] if unbatched else idx)
    return out


@traced("avg_pool2d")
def avg_pool2d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:
    """Mean over each ``kernel_size`` window.

    Explicit zero padding counts toward the mean only with ``count_include_pad``; the overhang
    of a ``ceil_mode`` window never counts (PyTorch's rule).

    Shape:
        ``H_out = floor((H + 2 * padding - kernel_size) / stride) + 1`` (``ceil`` with ceil_mode).
    """
    return avg_pool2d_at(
        input, kernel_size, stride, padding, ceil_mode, count_include_pad, "avg_pool2d"
    )


def avg_pool2d_at(
    input: Any,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    ceil_mode: bool,
    count_include_pad: bool,
    where: str,
) -> Tensor:
    x, unbatched = _batched(as_tensor(input, where), where)
    k, s, p, _, out_hw = shapes.pool_geometry(
        x.shape[2:], kernel_size, stride, padding, 1, bool(ceil_mode), where
    )
    shapes.check_size(x.shape[:2] + out_hw, where, itemsize=x.dtype.itemsize)
    args = (k, s, p, bool(ceil_mode), bool(count_include_pad))
    y = kernels.avg_pool2d(np.ascontiguousarray(x.data), *args)
    hw = x.shape[2:]
    return _unbatch(
        make(
            y,
            (x,),
            lambda g: (kernels.avg_pool2d_grad(np.ascontiguousarray(g), hw, *args),),
            "avg_pool2d",
        ),
        unbatched,
    )
