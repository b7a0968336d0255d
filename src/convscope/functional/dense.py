"""Element-wise and dense operations, softmax and the losses."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import kernels, shapes
from ..errors import ArgumentError, ArgumentTypeError, ShapeError, message
from ..tensor import Tensor, make
from ..tracing import traced
from ._common import _check_dim, _dtype, as_tensor


# --------------------------------------------------------------------------- activations, dense
@traced("relu")
def relu(input: Any) -> Tensor:
    """``max(x, 0)`` elementwise; the gradient at 0 is 0, as in PyTorch."""
    x = as_tensor(input, "relu")
    y = kernels.relu(x.data)  # its gradient rule read from the output: the input can go
    return make(y, (x,), lambda g: (kernels.relu_grad(g, y),), "relu")


@traced("linear")
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


@traced("flatten", key="F.flatten")
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


@traced("cross_entropy")
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


@traced("mse_loss")
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
