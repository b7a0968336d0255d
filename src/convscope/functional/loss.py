"""Losses with PyTorch's options: class weights, ``ignore_index``, label smoothing, soft targets.

``cross_entropy`` and ``nll_loss`` take logits (or log-probabilities) of shape ``(N, C)``,
``(N, C, d1, ...)`` (a class per pixel) or ``(C,)`` (one example), with class indices of
shape ``(N,)``, ``(N, d1, ...)`` or ``()``; ``cross_entropy`` also takes class
probabilities of the input's shape. With weights, ``'mean'`` divides by the sum of the
weights of the counted targets, as PyTorch does. Each loss is one graph node whose backward
is written out (the gradients are tested against float64 finite differences and PyTorch).

>>> import numpy as np, convscope.functional as F
>>> logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
>>> round(F.cross_entropy(logits, np.array([0, -100])).item(), 4)     # the second is ignored
0.2395
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, ShapeError, message
from ..tensor import Tensor, as_array, make
from ..tracing import traced
from . import dense
from ._common import as_tensor

_REDUCTIONS = ("mean", "sum", "none")
_QUIET = dict(invalid="ignore", divide="ignore", over="ignore", under="ignore")


def _reduction(reduction: Any, size_average: Any, reduce: Any, where: str) -> str:
    """PyTorch's ``reduction``, or the old ``size_average``/``reduce`` pair (with its warning)."""
    if size_average is not None or reduce is not None:
        average = True if size_average is None else bool(size_average)
        summed = True if reduce is None else bool(reduce)
        reduction = "mean" if average and summed else "sum" if summed else "none"
        warnings.warn(f"{where}: size_average and reduce are deprecated (as in PyTorch); use "
                      f"reduction={reduction!r}", UserWarning, stacklevel=3)
    if reduction not in _REDUCTIONS:
        raise ArgumentError(message(where, f"unknown reduction {reduction!r}",
                                    "use 'mean', 'sum' or 'none'", f"reduction={reduction!r}"))
    return reduction


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` back to ``shape`` over the axes broadcasting added or stretched."""
    if grad.shape == shape:
        return grad
    grad = grad.sum(axis=tuple(range(grad.ndim - len(shape)))) if grad.ndim > len(shape) else grad
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return (grad.sum(axis=axes, keepdims=True) if axes else grad).reshape(shape)


def _like(value: Any, x: Tensor, where: str, name: str) -> Tensor:
    """A target or weight: a Tensor as is; an array in the input's dtype (a float64 target of
    a float64 input keeps its precision)."""
    if isinstance(value, Tensor):
        return value
    return Tensor._wrap(np.ascontiguousarray(as_array(value, f"{where} ({name})", x.dtype)))


def _logits(input: Any, where: str) -> tuple[Tensor, int]:
    x = as_tensor(input, where)
    if x.ndim == 0:
        raise ShapeError(message(where, "expected logits of shape (N, classes), got a scalar",
                                 "pass one row of class scores per example",
                                 f"input shape {x.shape}"))
    classes = x.shape[1] if x.ndim > 1 else x.shape[0]
    if classes == 0:
        raise ShapeError(message(where, "the logits have 0 classes",
                                 "end the model with one output per class, e.g. linear(10)",
                                 f"input shape {x.shape}"))
    return x, classes


def _rows(a: np.ndarray, classes: int) -> np.ndarray:
    """(N, C, d1, ...) or (C,) -> (M, C): one row of class scores per counted position."""
    return a.reshape(1, classes) if a.ndim == 1 else np.moveaxis(a, 1, -1).reshape(-1, classes)


def _unrows(rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if len(shape) == 1:
        return rows.reshape(shape)
    moved = (shape[0],) + shape[2:] + (shape[1],)
    return np.ascontiguousarray(np.moveaxis(rows.reshape(moved), -1, 1))


def _labels(x: Tensor, classes: int, target: Any, ignore_index: int, where: str
            ) -> tuple[np.ndarray, np.ndarray]:
    """Class indices, checked: the flat labels and the mask of those that count."""
    t = np.asarray(target.data if isinstance(target, Tensor) else target)
    if t.dtype.kind not in "iu" and not (
        t.dtype.kind == "f" and t.size and np.all(t == np.round(t))
    ):
        raise ArgumentTypeError(message(where, "target must hold integer class indices",
                                        "pass labels as an int array, e.g. np.array([3, 1, 0])",
                                        f"target dtype {t.dtype}"))
    want = () if x.ndim == 1 else x.shape[:1] + x.shape[2:]
    if t.shape != want:
        if x.ndim == 2:
            raise ShapeError(message(where, f"target must have one label per example "
                                            f"({x.shape[0]})", "pass a 1-D array of labels",
                                     f"target shape {t.shape}"))
        raise ShapeError(message(where, f"expected logits of shape (N, classes), got "
                                        f"{x.ndim}-D with a target of shape {t.shape}",
                                 f"for {x.ndim}-D logits pass one label per position, a target "
                                 f"of shape {want}", f"input shape {x.shape}"))
    flat = t.astype(np.int64).reshape(-1)
    counted = flat != ignore_index
    used = flat[counted]
    if used.size and (used.min() < 0 or used.max() >= classes):
        raise ArgumentError(message(where, f"labels must be in [0, {classes - 1}]",
                                    f"the model has {classes} outputs; fix the labels or the "
                                    f"last layer", f"labels from {used.min()} to {used.max()}"))
    return np.where(counted, flat, 0), counted


def _class_weight(weight: Any, classes: int, x: Tensor, where: str) -> np.ndarray | None:
    if weight is None:
        return None
    w = np.asarray(_like(weight, x, where, "weight").data, dtype=x.dtype)
    if w.shape != (classes,):
        raise ShapeError(message(where, f"weight must have one value per class ({classes})",
                                 f"pass a weight of shape ({classes},)",
                                 f"weight shape {w.shape}"))
    return w


def _ignore(ignore_index: Any, where: str) -> int:
    if not isinstance(ignore_index, numbers.Integral) or isinstance(ignore_index, bool):
        raise ArgumentTypeError(message(where, "ignore_index must be an int",
                                        "use ignore_index=-100", f"ignore_index={ignore_index!r}"))
    return int(ignore_index)


def _finish(per_row: np.ndarray, reduction: str, denom: Any, out_shape: tuple[int, ...]
            ) -> tuple[np.ndarray, np.ndarray]:
    """The reduced loss, and the factor each row's gradient is scaled by (per row)."""
    if reduction == "none":
        return per_row.reshape(out_shape), np.ones_like(per_row)
    if reduction == "sum":
        return np.asarray(per_row.sum(), per_row.dtype), np.ones_like(per_row)
    denom = per_row.dtype.type(denom)
    with np.errstate(**_QUIET):  # nothing counted: a NaN loss and zero gradients, as PyTorch
        return (np.asarray(per_row.sum() / denom, per_row.dtype),
                np.full_like(per_row, 1 / denom if denom else 0))


@traced("cross_entropy")
def cross_entropy(input: Any, target: Any, weight: Any = None, size_average: Any = None,
                  ignore_index: int = -100, reduce: Any = None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of logits against class indices or class probabilities, as PyTorch's.

    Parameters
    ----------
    input : array_like of shape (N, C), (N, C, d1, ...) or (C,)
        Unnormalised scores (logits).
    target : array_like
        Class indices of shape (N,), (N, d1, ...) or (); or probabilities of ``input``'s
        shape (a float array).
    weight : array_like of shape (C,), optional
        A weight per class (no gradient flows to it).
    ignore_index : int
        Positions with this label count for nothing (indices only).
    reduction : {'mean', 'sum', 'none'}
    label_smoothing : float
        In [0, 1]: the target is mixed with the uniform distribution by this much.

    Returns
    -------
    Tensor
        0-d, or of the target's shape (indices) or the input's without the class axis
        (``'none'``).
    """
    where = "cross_entropy"
    reduction = _reduction(reduction, size_average, reduce, where)
    eps = label_smoothing
    if not isinstance(eps, numbers.Real) or isinstance(eps, bool) or not 0.0 <= eps <= 1.0:
        raise ArgumentError(message(where, "label_smoothing must be a number in [0, 1]",
                                    "use label_smoothing=0.1", f"label_smoothing={eps!r}"))
    ignore_index = _ignore(ignore_index, where)
    x, classes = _logits(input, where)
    t = target.data if isinstance(target, Tensor) else np.asarray(target)
    soft = t.dtype.kind == "f" and t.shape == x.shape
    if (weight is None and eps == 0 and x.ndim == 2 and not soft
            and not (t.dtype.kind in "iuf" and np.any(t == ignore_index))):
        return dense.cross_entropy(x, target, reduction)  # the plain case: fit's own path
    w = _class_weight(weight, classes, x, where)
    rows = _rows(x.data, classes)
    with np.errstate(**_QUIET):
        shifted = rows - rows.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    p = np.exp(logp)
    out_shape = () if x.ndim == 1 else x.shape[:1] + x.shape[2:]
    if soft:
        return _soft_cross_entropy(x, target, logp, p, w, eps, classes, reduction, out_shape)
    labels, counted = _labels(x, classes, target, ignore_index, where)
    idx = np.arange(labels.size)
    wc = np.ones(classes, x.dtype) if w is None else w
    wt = np.where(counted, wc[labels], 0).astype(x.dtype)
    per_row = -wt * logp[idx, labels]
    if eps:
        smooth = -(logp * wc).sum(axis=1) * counted
        per_row = (1 - eps) * per_row + eps / classes * smooth
    loss, scale = _finish(per_row, reduction, wt.sum(), out_shape)
    total_w = wc.sum()

    def backward(g: np.ndarray) -> tuple:
        grad = (1 - eps) * wt[:, None] * p
        grad[idx, labels] -= (1 - eps) * wt
        if eps:
            grad += eps / classes * counted[:, None] * (p * total_w - wc)
        with np.errstate(**_QUIET):
            grad *= (np.broadcast_to(g, out_shape).reshape(-1) * scale)[:, None]
        return (_unrows(grad.astype(x.dtype, copy=False), x.shape),)

    return make(loss, (x,), backward, where)


def _soft_cross_entropy(x: Tensor, target: Any, logp: np.ndarray, p: np.ndarray,
                        w: np.ndarray | None, eps: float, classes: int, reduction: str,
                        out_shape: tuple[int, ...]) -> Tensor:
    """Cross-entropy against class probabilities (the target has the input's shape)."""
    tt = _like(target, x, "cross_entropy", "target")
    q = _rows(np.asarray(tt.data, dtype=x.dtype), classes)
    if eps:
        q = q * (1 - eps) + eps / classes
    wc = np.ones(classes, x.dtype) if w is None else w
    per_row = -(logp * q * wc).sum(axis=1)
    loss, scale = _finish(per_row, reduction, per_row.size, out_shape)

    def backward(g: np.ndarray) -> tuple:
        with np.errstate(**_QUIET):
            gr = (np.broadcast_to(g, out_shape).reshape(-1) * scale)[:, None]
        qw = q * wc
        gx = gr * (p * qw.sum(axis=1, keepdims=True) - qw)
        gq = gr * (-(1 - eps) * wc * logp)
        return (_unrows(gx.astype(x.dtype, copy=False), x.shape),
                _unrows(gq.astype(tt.dtype, copy=False), tt.shape))

    return make(loss, (x, tt), backward, "cross_entropy")


@traced("nll_loss")
def nll_loss(input: Any, target: Any, weight: Any = None, size_average: Any = None,
             ignore_index: int = -100, reduce: Any = None, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities ``input`` at the class indices ``target``.

    ``loss_i = -weight[t_i] * input[i, t_i]``; ``'mean'`` divides by the sum of the counted
    targets' weights. Shapes as :func:`cross_entropy` with indices;
    ``nll_loss(log_softmax(x, 1), t) == cross_entropy(x, t)``.

    >>> import numpy as np, convscope.functional as F
    >>> logp = np.log([[0.5, 0.5], [0.25, 0.75]])
    >>> F.nll_loss(logp, np.array([0, 1]), reduction="none").numpy().round(4)
    array([0.6931, 0.2877], dtype=float32)
    """
    where = "nll_loss"
    reduction = _reduction(reduction, size_average, reduce, where)
    ignore_index = _ignore(ignore_index, where)
    x, classes = _logits(input, where)
    w = _class_weight(weight, classes, x, where)
    labels, counted = _labels(x, classes, target, ignore_index, where)
    idx = np.arange(labels.size)
    wc = np.ones(classes, x.dtype) if w is None else w
    wt = np.where(counted, wc[labels], 0).astype(x.dtype)
    out_shape = () if x.ndim == 1 else x.shape[:1] + x.shape[2:]
    per_row = -wt * _rows(x.data, classes)[idx, labels]
    loss, scale = _finish(per_row, reduction, wt.sum(), out_shape)

    def backward(g: np.ndarray) -> tuple:
        grad = np.zeros((labels.size, classes), x.dtype)
        with np.errstate(**_QUIET):
            grad[idx, labels] = -wt * np.broadcast_to(g, out_shape).reshape(-1) * scale
        return (_unrows(grad, x.shape),)

    return make(loss, (x,), backward, where)


def _same_shape(x: Tensor, y: Tensor, where: str) -> None:
    if x.shape != y.shape:
        raise ShapeError(message(where, "input and target must have the same shape",
                                 "reshape one of them", f"input {x.shape}, target {y.shape}"))


def _reduce_elementwise(loss: np.ndarray, reduction: str) -> tuple[np.ndarray, float]:
    """An elementwise loss reduced, and the gradient's scale (1, or 1/n for the mean)."""
    if reduction == "none":
        return loss, 1.0
    if reduction == "sum":
        return np.asarray(loss.sum(), loss.dtype), 1.0
    with np.errstate(**_QUIET):  # the mean of nothing: NaN, as PyTorch
        n = loss.dtype.type(loss.size)
        return np.asarray(loss.sum() / n, loss.dtype), 1.0 / loss.size if loss.size else math.nan


@traced("l1_loss")
def l1_loss(input: Any, target: Any, size_average: Any = None, reduce: Any = None,
            reduction: str = "mean") -> Tensor:
    """Mean absolute error ``|input - target|``; the gradient at 0 is 0, as PyTorch's.

    >>> import convscope.functional as F
    >>> F.l1_loss([1.0, 2.0], [0.0, 4.0]).item()
    1.5
    """
    where = "l1_loss"
    reduction = _reduction(reduction, size_average, reduce, where)
    x = as_tensor(input, where)
    y = _like(target, x, where, "target")
    _same_shape(x, y, where)
    diff = x.data - y.data
    loss, scale = _reduce_elementwise(np.abs(diff), reduction)
    sign = np.sign(diff)

    def backward(g: np.ndarray) -> tuple:
        gs = g * sign * scale
        return gs.astype(x.dtype, copy=False), (-gs).astype(y.dtype, copy=False)

    return make(loss, (x, y), backward, where)


@traced("binary_cross_entropy_with_logits")
def binary_cross_entropy_with_logits(input: Any, target: Any, weight: Any = None,
                                     size_average: Any = None, reduce: Any = None,
                                     reduction: str = "mean", pos_weight: Any = None) -> Tensor:
    """Binary cross-entropy of logits, computed stably (no sigmoid then log).

    ``loss = weight * ((1 - t) * x + (1 + (pos_weight - 1) * t) * log(1 + exp(-x)))``;
    ``weight`` and ``pos_weight`` broadcast against the input (``pos_weight`` of shape
    ``(C,)`` weighs the positives of each of C classes along the last axis).

    >>> import convscope.functional as F
    >>> round(F.binary_cross_entropy_with_logits([0.0], [1.0]).item(), 6)
    0.693147
    """
    where = "binary_cross_entropy_with_logits"
    reduction = _reduction(reduction, size_average, reduce, where)
    x = as_tensor(input, where)
    t = _like(target, x, where, "target")
    if x.shape != t.shape:
        raise ShapeError(message(where, "target must have the input's shape",
                                 "pass one 0/1 (or probability) target per logit",
                                 f"input {x.shape}, target {t.shape}"))
    extras = []
    for name, value in (("weight", weight), ("pos_weight", pos_weight)):
        if value is None:
            extras.append(None)
            continue
        e = _like(value, x, where, name)
        try:
            fits = np.broadcast_shapes(e.shape, x.shape) == x.shape
        except ValueError:
            fits = False
        if not fits:
            raise ShapeError(message(where, f"{name} does not broadcast against the input",
                                     f"pass a {name} of shape {x.shape} or one that broadcasts "
                                     f"to it (e.g. ({x.shape[-1] if x.ndim else 1},))",
                                     f"{name} shape {e.shape}, input shape {x.shape}"))
        extras.append(e)
    wt, pw = extras
    dt = x.dtype
    xd, td = x.data, np.asarray(t.data, dt)
    with np.errstate(**_QUIET):
        e = np.exp(-np.abs(xd))
        softplus_neg = np.log1p(e) + np.maximum(-xd, 0)  # log(1 + exp(-x))
        sig_neg = np.where(xd >= 0, e / (1 + e), 1 / (1 + e))  # sigmoid(-x)
    pwd = None if pw is None else np.asarray(pw.data, dt)
    lw = 1 if pwd is None else 1 + (pwd - 1) * td
    raw = (1 - td) * xd + lw * softplus_neg
    wd = None if wt is None else np.asarray(wt.data, dt)
    per = raw if wd is None else raw * wd
    loss, scale = _reduce_elementwise(np.asarray(np.broadcast_to(per, x.shape), dt), reduction)

    def backward(g: np.ndarray) -> tuple:
        gs = np.broadcast_to(g * scale, x.shape).astype(dt, copy=False)
        gw = gs if wd is None else gs * wd
        gx = gw * ((1 - td) - lw * sig_neg)
        gt = gw * (-xd + (0 if pwd is None else (pwd - 1) * softplus_neg))
        out = [gx, gt.astype(t.dtype, copy=False)]
        if wt is not None:
            out.append(_unbroadcast(gs * raw, wt.shape).astype(wt.dtype, copy=False))
        if pw is not None:
            out.append(_unbroadcast(gw * td * softplus_neg, pw.shape).astype(pw.dtype,
                                                                                copy=False))
        return tuple(out)

    parents = tuple(p for p in (x, t, wt, pw) if p is not None)
    return make(loss, parents, backward, where)
