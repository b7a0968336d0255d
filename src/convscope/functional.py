"""Operations on tensors, with PyTorch's names, arguments and semantics.

Each operation checks its arguments (a convscope error with the numbers and a fix), calls a
forward kernel from :mod:`convscope.kernels`, and attaches the matching backward kernel. The
functions accept NumPy arrays or :class:`~convscope.Tensor` and return a ``Tensor``; plain
arrays become float32.

>>> import numpy as np, convscope as cs
>>> x = np.ones((1, 3, 64, 64), dtype=np.float32)              # one 64x64x3 image
>>> w = np.ones((8, 3, 5, 5), dtype=np.float32)                # 8 kernels of 5x5x3
>>> cs.functional.conv2d(x, w, padding=2).shape                 # 64x64x8
(1, 8, 64, 64)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import kernels, shapes
from .errors import ArgumentError, ArgumentTypeError, ShapeError, message
from .tensor import Tensor, as_array, is_grad_enabled, make

__all__ = [
    "conv2d",
    "conv2d_relu",
    "max_pool2d",
    "avg_pool2d",
    "relu",
    "linear",
    "flatten",
    "pad",
    "softmax",
    "log_softmax",
    "cross_entropy",
    "mse_loss",
    "batch_norm",
    "dropout",
]

_PAD_MODES = ("zeros", "reflect", "replicate", "circular")


def as_tensor(value: Any, where: str, name: str = "input") -> Tensor:
    """A Tensor as is; anything else converted to a float32 tensor (checked)."""
    if isinstance(value, Tensor):
        return value
    if value is None:
        raise ArgumentTypeError(message(where, f"`{name}` is None", f"pass an array as `{name}`"))
    arr = as_array(value, where, np.float32)
    if not arr.flags.c_contiguous:  # e.g. a np.broadcast_to view: the copy is real memory
        shapes.check_size(
            arr.shape,
            where,
            what=f"the contiguous copy of `{name}`",
            fix="pass less data at a time (a smaller batch or image)",
        )
    return Tensor._wrap(np.ascontiguousarray(arr))


def _batched(x: Tensor, where: str, what: str = "input") -> tuple[Tensor, bool]:
    """Accept (N, C, H, W) or an unbatched (C, H, W) volume; refuse every other rank."""
    if x.ndim == 4:
        return x, False
    if x.ndim == 3:
        return x.reshape((1,) + x.shape), True
    raise ShapeError(
        message(
            where,
            f"expected a 4-D {what} (N, C, H, W) or a 3-D volume (C, H, W), got {x.ndim}-D",
            "images read as H x W x C need x.transpose(2, 0, 1); add a batch axis with x[None]",
            f"{what} shape {x.shape}",
        )
    )


def _dtype(*ts: Tensor | None) -> np.dtype:
    return np.result_type(*(t.dtype for t in ts if t is not None))


def _arr(t: Tensor | None, dtype: np.dtype) -> np.ndarray | None:
    return None if t is None else np.ascontiguousarray(t.data, dtype=dtype)


def _unbatch(y: Tensor, unbatched: bool) -> Tensor:
    return y.reshape(y.shape[1:]) if unbatched else y


# --------------------------------------------------------------------------- convolution
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


# --------------------------------------------------------------------------- activations, dense
def relu(input: Any) -> Tensor:
    """``max(x, 0)`` elementwise; the gradient at 0 is 0, as in PyTorch."""
    x = as_tensor(input, "relu")
    y = kernels.relu(x.data)  # its gradient rule read from the output: the input can go
    return make(y, (x,), lambda g: (kernels.relu_grad(g, y),), "relu")


def linear(input: Any, weight: Any, bias: Any = None, where: str = "linear") -> Tensor:
    """``y = x @ weight.T + bias`` over the last axis; ``weight`` is (out_features, in_features)."""
    x = as_tensor(input, where)
    w = as_tensor(weight, where, "weight")
    if w.ndim != 2:
        raise ShapeError(
            message(
                where,
                f"weight must be 2-D (out_features, in_features), got {w.ndim}-D",
                "pass a matrix",
                f"weight shape {w.shape}",
            )
        )
    if x.ndim < 1 or x.shape[-1] != w.shape[1]:
        got = x.shape[-1] if x.ndim else "a scalar"
        raise ShapeError(
            message(
                where,
                f"expects {w.shape[1]} input features, got {got}",
                f"make the previous layer produce {w.shape[1]} values per example (after flatten: "
                f"H x W x D), or build this layer with in_features={got}",
                f"input shape {x.shape}",
            )
        )
    lead = x.shape[:-1]
    shapes.check_size(lead + (w.shape[0],), where, itemsize=_dtype(x, w).itemsize)
    x2 = x.reshape(-1, w.shape[1]) if x.ndim != 2 else x
    b = None
    if bias is not None:
        b = as_tensor(bias, where, "bias")
        if b.shape != (w.shape[0],):
            raise ShapeError(
                message(
                    where,
                    f"bias must have {w.shape[0]} values",
                    f"pass a bias of shape ({w.shape[0]},)",
                    f"bias shape {b.shape}",
                )
            )
    y = _linear(x2, w, b)
    return y.reshape(lead + (w.shape[0],)) if x.ndim != 2 else y


def _linear(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """``x @ w.T + b`` for 2-D ``x`` as one graph node (products by :func:`kernels.fast.matmul`)."""
    y = kernels.fast.matmul(x.data, w.data.T)
    if b is not None:
        y = y + b.data

    xd, wd = x.data, w.data
    need = (x.requires_grad, w.requires_grad, b is not None and b.requires_grad)

    def backward(g: np.ndarray) -> tuple:
        return (
            kernels.fast.matmul(g, wd) if need[0] else None,
            kernels.fast.matmul(g.T, xd) if need[1] else None,
            g.sum(axis=0) if need[2] else None,
        )[: 2 if b is None else 3]

    return make(y, (x, w) if b is None else (x, w, b), backward, "linear")


def flatten(input: Any, start_dim: int = 1, end_dim: int = -1) -> Tensor:
    """Merge axes ``start_dim..end_dim`` into one (C, H, W -> C*H*W by default)."""
    x = as_tensor(input, "flatten")
    nd = max(x.ndim, 1)
    for name, dim in (("start_dim", start_dim), ("end_dim", end_dim)):
        _check_dim(dim, nd, name, "flatten", x.shape)
    a, b = start_dim % nd, end_dim % nd
    if a > b:
        raise ArgumentError(
            message(
                "flatten",
                "start_dim must come before end_dim",
                "use flatten(x, 1, -1)",
                f"start_dim={start_dim}, end_dim={end_dim}",
            )
        )
    shape = x.shape[:a] + (math.prod(x.shape[a : b + 1]),) + x.shape[b + 1 :]
    return x.reshape(shape)


# --------------------------------------------------------------------------- losses
def _check_dim(dim: Any, ndim: int, name: str, where: str, shape: tuple[int, ...]) -> None:
    """An axis argument: an int in ``[-ndim, ndim)`` (PyTorch's rule)."""
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise ArgumentTypeError(
            message(
                where,
                f"`{name}` must be an int (an axis)",
                f"pass e.g. {name}=1",
                f"{name}={dim!r}",
            )
        )
    if not -ndim <= dim < ndim:
        raise ArgumentError(
            message(
                where,
                f"`{name}` must be in [{-ndim}, {ndim - 1}] for a {ndim}-D input",
                f"pass e.g. {name}=-1",
                f"{name}={dim}, input shape {shape}",
            )
        )


def log_softmax(input: Any, dim: int = -1) -> Tensor:
    """``x - logsumexp(x)`` along ``dim``, computed stably (the max is subtracted first)."""
    x = as_tensor(input, "log_softmax")
    _check_dim(dim, max(x.ndim, 1), "dim", "log_softmax", x.shape)
    shifted = x.data - x.data.max(axis=dim, keepdims=True)
    out = shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))
    soft = np.exp(out)
    return make(
        out, (x,), lambda g: (g - soft * g.sum(axis=dim, keepdims=True),), "log_softmax"
    )


def softmax(input: Any, dim: int = -1) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``dim``, computed stably."""
    return log_softmax(input, dim).exp()


def _reduce(loss: Tensor, reduction: str, where: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ArgumentError(
        message(
            where,
            f"unknown reduction {reduction!r}",
            "use 'mean', 'sum' or 'none'",
            f"reduction={reduction!r}",
        )
    )


def cross_entropy(input: Any, target: Any, reduction: str = "mean") -> Tensor:
    """Cross-entropy of logits ``input`` (N, C) with integer class ``target`` (N,)."""
    where = "cross_entropy"
    x = as_tensor(input, where)
    t = np.asarray(target.data if isinstance(target, Tensor) else target)
    if x.ndim != 2:
        raise ShapeError(
            message(
                where,
                f"expected logits of shape (N, classes), got {x.ndim}-D",
                "flatten and add a linear layer before the loss",
                f"input shape {x.shape}",
            )
        )
    if x.shape[1] == 0:
        raise ShapeError(
            message(
                where,
                "the logits have 0 classes",
                "end the model with one output per class, e.g. linear(10)",
                f"input shape {x.shape}",
            )
        )
    if t.dtype.kind not in "iu" and not (
        t.dtype.kind == "f" and t.size and np.all(t == np.round(t))
    ):
        raise ArgumentTypeError(
            message(
                where,
                "target must hold integer class indices",
                "pass labels as an int array, e.g. np.array([3, 1, 0])",
                f"target dtype {t.dtype}",
            )
        )
    t = t.astype(np.int64)
    if t.shape != (x.shape[0],):
        raise ShapeError(
            message(
                where,
                f"target must have one label per example ({x.shape[0]})",
                "pass a 1-D array of labels",
                f"target shape {t.shape}",
            )
        )
    if t.size and (t.min() < 0 or t.max() >= x.shape[1]):
        raise ArgumentError(
            message(
                where,
                f"labels must be in [0, {x.shape[1] - 1}]",
                f"the model has {x.shape[1]} outputs; fix the labels or the last layer",
                f"labels from {t.min()} to {t.max()}",
            )
        )
    logp = log_softmax(x, dim=1)
    picked = logp[np.arange(x.shape[0]), t]
    return _reduce(-picked, reduction, where)


def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error; ``input`` and ``target`` must have the same shape."""
    x, y = as_tensor(input, "mse_loss"), as_tensor(target, "mse_loss", "target")
    if x.shape != y.shape:
        raise ShapeError(
            message(
                "mse_loss",
                "input and target must have the same shape",
                "reshape one of them",
                f"input {x.shape}, target {y.shape}",
            )
        )
    return _reduce((x - y) ** 2, reduction, "mse_loss")


# --------------------------------------------------------------------------- normalisation, noise
def batch_norm(
    input: Any,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each channel of (N, C, H, W) by its batch (training) or running statistics.

    In training the running statistics are updated in place with the unbiased batch variance,
    as PyTorch does.
    """
    where = "batch_norm"
    x = as_tensor(input, where)
    if x.ndim != 4:
        raise ShapeError(
            message(
                where,
                f"expected (N, C, H, W), got {x.ndim}-D",
                "add a batch axis",
                f"input shape {x.shape}",
            )
        )
    c = x.shape[1]
    for name, value in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        if value is None:
            if not training and name.startswith("running"):
                raise ArgumentError(
                    message(
                        where,
                        f"evaluation needs `{name}`",
                        "pass the running statistics, or training=True",
                        f"{name}=None",
                    )
                )
            continue
        got = np.shape(value.data if isinstance(value, Tensor) else value)
        if got != (c,):
            raise ShapeError(
                message(
                    where,
                    f"`{name}` must have one value per channel ({c})",
                    f"pass an array of shape ({c},)",
                    f"{name} shape {got}, input shape {x.shape}",
                )
            )
    axes = (0, 2, 3)
    count = x.shape[0] * x.shape[2] * x.shape[3]
    if training:
        if count <= 1:
            raise ShapeError(
                message(
                    where,
                    "training needs more than one value per channel",
                    "use a batch larger than 1 or call model.eval()",
                    f"input shape {x.shape}",
                )
            )
        mean = x.data.mean(axis=axes)
        var = x.data.var(axis=axes)
        if running_mean is not None and running_var is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += momentum * var * count / (count - 1)
    else:
        mean, var = running_mean, running_var
    inv = (1.0 / np.sqrt(np.asarray(var, dtype=x.dtype) + eps)).astype(x.dtype)
    xhat = (x.data - np.asarray(mean, dtype=x.dtype).reshape(1, c, 1, 1)) * inv.reshape(1, c, 1, 1)
    norm_train = training

    def backward(g: np.ndarray) -> tuple[np.ndarray]:
        if not norm_train:
            return (g * inv.reshape(1, c, 1, 1),)
        gm = g.mean(axis=axes, keepdims=True)
        gxm = (g * xhat).mean(axis=axes, keepdims=True)
        return ((g - gm - xhat * gxm) * inv.reshape(1, c, 1, 1),)

    y = make(xhat, (x,), backward, "batch_norm")
    if weight is not None:
        y = y * as_tensor(weight, where, "weight").reshape(1, c, 1, 1)
    if bias is not None:
        y = y + as_tensor(bias, where, "bias").reshape(1, c, 1, 1)
    return y


def dropout(
    input: Any, p: float = 0.5, training: bool = True, generator: np.random.Generator | None = None
) -> Tensor:
    """Zero each value with probability ``p``, scale the rest by ``1 / (1 - p)`` (training only)."""
    x = as_tensor(input, "dropout")
    if (
        not isinstance(p, (int, float, np.floating, np.integer))
        or isinstance(p, bool)
        or not 0.0 <= p <= 1.0
    ):
        raise ArgumentError(
            message("dropout", "p must be a probability in [0, 1]", "use p=0.5", f"p={p}")
        )
    if not training or p == 0.0:
        return x
    rng = generator if generator is not None else np.random.default_rng()
    keep = (rng.random(x.shape) >= p).astype(x.dtype)
    scale = keep / (1.0 - p) if p < 1.0 else keep
    return x * Tensor._wrap(scale.astype(x.dtype))
