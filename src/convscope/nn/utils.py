"""Gradient clipping, as ``torch.nn.utils``: ``clip_grad_norm_`` and ``clip_grad_value_``.

Both change the ``.grad`` of the parameters in place, between ``loss.backward()`` and
``optimizer.step()``.

>>> import convscope as cs
>>> w = cs.nn.Parameter([0.0, 0.0])
>>> w.grad = cs.tensor([3.0, 4.0])
>>> cs.nn.utils.clip_grad_norm_([w], max_norm=1.0).item()      # the norm before clipping
5.0
>>> w.grad.numpy().round(4)
array([0.6, 0.8], dtype=float32)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, GradError, message
from ..tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters: Any, where: str) -> list[Tensor]:
    """The gradients of ``parameters`` (a Tensor or an iterable of them) that exist."""
    from .module import Module

    if isinstance(parameters, Tensor):
        parameters = [parameters]
    if isinstance(parameters, Module) or not isinstance(parameters, Iterable):
        raise ArgumentTypeError(message(where, "parameters must be a Tensor or an iterable of "
                                        "Tensors", "pass model.parameters()",
                                        f"{type(parameters).__name__}"))
    params = list(parameters)
    bad = next((p for p in params if not isinstance(p, Tensor)), None)
    if bad is not None:
        raise ArgumentTypeError(message(where, "parameters must be Tensors",
                                        "pass model.parameters()",
                                        f"an item of type {type(bad).__name__}"))
    return [p.grad for p in params if p.grad is not None]


def _limit(value: Any, name: str, where: str) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (ok and value >= 0 and not math.isnan(value)):
        raise ArgumentError(message(where, f"{name} must be a number >= 0",
                                    f"use e.g. {name}=1.0", f"{name}={value!r}"))
    return float(value)


def _vector_norm(x: np.ndarray, p: float) -> float:
    """The p-norm of all the values of ``x``, computed in float64."""
    a = np.abs(np.asarray(x, dtype=np.float64)).reshape(-1)
    if a.size == 0:
        return 0.0
    if p == math.inf:
        return float(a.max())
    if p == 0:
        return float(np.count_nonzero(a))
    if p == 2:
        return math.sqrt(float(np.dot(a, a)))
    if p == 1:
        return float(a.sum())
    with np.errstate(over="ignore"):
        return float(np.sum(a**p) ** (1.0 / p))


def _write(grad: Tensor, values: np.ndarray) -> None:
    if grad.data.flags.writeable:
        grad.data[...] = values
    else:
        grad.data = np.array(values, dtype=grad.dtype)


def clip_grad_norm_(parameters: Any, max_norm: float, norm_type: float | str = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """Scale the gradients so that their joint norm is at most ``max_norm``.

    The total norm is the ``norm_type``-norm of all gradients together (of the vector of
    the per-parameter norms); every gradient is multiplied by
    ``min(1, max_norm / (total_norm + 1e-6))``, as PyTorch does.

    Parameters
    ----------
    parameters : Tensor or iterable of Tensor
        ``model.parameters()``; those without a gradient are skipped.
    max_norm : float
        The largest norm allowed.
    norm_type : float or 'inf'
        The p of the p-norm (>= 0), or infinity (the largest absolute value).
    error_if_nonfinite : bool
        Raise a :class:`GradError` when the norm is NaN or infinite, instead of clipping.
    foreach : bool or None
        Accepted for PyTorch code; has no effect.

    Returns
    -------
    Tensor
        The total norm before clipping, 0-d, in the gradients' dtype.
    """
    where = "clip_grad_norm_"
    grads = _grads(parameters, where)
    limit = _limit(max_norm, "max_norm", where)
    p = norm_type
    if isinstance(p, str) and p.strip().lower() in ("inf", "infinity"):
        p = math.inf
    if not isinstance(p, numbers.Real) or isinstance(p, bool) or not p >= 0:
        raise ArgumentError(message(where, "norm_type must be a number >= 0 or 'inf'",
                                    "use norm_type=2.0", f"norm_type={norm_type!r}"))
    if not grads:
        return Tensor._wrap(np.asarray(0.0, np.float32))
    dtype = np.result_type(*(g.dtype for g in grads))
    total = dtype.type(_vector_norm(np.array([_vector_norm(g.data, p) for g in grads]), p))
    if error_if_nonfinite and not np.isfinite(total):
        raise GradError(message(where, f"the total norm of order {norm_type} of the gradients "
                                "is not finite, so it cannot be clipped",
                                "find the NaN or inf in the loss or the model, or pass "
                                "error_if_nonfinite=False", f"total norm {float(total)}"))
    with np.errstate(invalid="ignore", over="ignore"):
        coef = np.minimum(dtype.type(limit) / (total + dtype.type(1e-6)), dtype.type(1.0))
        for g in grads:
            _write(g, g.data * coef.astype(g.dtype))
    return Tensor._wrap(np.asarray(total, dtype))


def clip_grad_value_(parameters: Any, clip_value: float, foreach: bool | None = None) -> None:
    """Clamp every gradient value to ``[-clip_value, clip_value]`` in place.

    >>> import convscope as cs
    >>> w = cs.nn.Parameter([0.0, 0.0]); w.grad = cs.tensor([3.0, -0.5])
    >>> clip_grad_value_([w], 1.0); w.grad.numpy()
    array([ 1. , -0.5], dtype=float32)
    """
    where = "clip_grad_value_"
    grads = _grads(parameters, where)
    v = _limit(clip_value, "clip_value", where)
    for g in grads:
        _write(g, np.clip(g.data, -v, v))
