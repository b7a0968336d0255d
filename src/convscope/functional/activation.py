"""Activation functions: one value in, one value out, for every value of the volume.

Each keeps PyTorch's value and its gradient convention at the kinks (the gradient of
``relu6`` at 0 and 6 is 0, of ``hardswish`` at -3 is 0 and at 3 is 1, ...), and lets NaN
and infinities through as PyTorch does, without NumPy warnings. At a NaN input the
gradient is that of PyTorch's vectorised CPU kernels (NaN for ``hardswish`` and ``elu``, 0
for ``relu6``, ``hardtanh`` and ``hardsigmoid``, the slope for ``leaky_relu``); PyTorch's
scalar loop for the last few values of a tensor differs there for some of them.
``inplace=`` arguments are accepted for PyTorch code and ignored: convscope never
overwrites an input. The piecewise ones and ``sigmoid`` run as one compiled pass each way
for large float arrays (:mod:`convscope.kernels.elementwise`, whose NumPy twins hold the
formulas and the conventions above; results bit for bit the same).

>>> import convscope as cs
>>> cs.functional.relu6(cs.tensor([-1.0, 3.0, 9.0])).numpy()
array([0., 3., 6.], dtype=float32)
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, message
from ..kernels import elementwise as ew
from ..tensor import Tensor, make
from ..tracing import traced
from ._common import _check_dim, as_tensor

_QUIET = dict(over="ignore", invalid="ignore", divide="ignore", under="ignore")


def _number(value: Any, name: str, where: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ArgumentTypeError(
            message(where, f"`{name}` must be a number", f"pass e.g. {name}=0.1",
                    f"{name}={value!r}")
        )
    return float(value)


def _unary(input: Any, where: str, forward: Any, grad: Any, keep: str = "x") -> Tensor:
    """One elementwise node: ``y = forward(x)``; the backward is ``grad(g, kept)`` where the
    node keeps ``x`` or ``y`` (``keep``), whichever its rule reads."""
    x = as_tensor(input, where)
    with np.errstate(**_QUIET):
        y = np.asarray(forward(x.data), dtype=x.dtype)
    kept = x.data if keep == "x" else y

    def backward(g: np.ndarray) -> tuple:
        with np.errstate(**_QUIET):
            return (np.asarray(grad(g, kept), dtype=g.dtype),)

    return make(y, (x,), backward, where)


# --------------------------------------------------------------------------- piecewise linear
@traced("leaky_relu")
def leaky_relu(input: Any, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """``x`` where ``x > 0``, else ``negative_slope * x``; the gradient at 0 is the slope."""
    a = _number(negative_slope, "negative_slope", "leaky_relu")
    return _unary(input, "leaky_relu", lambda x: ew.leaky_relu(x, a),
                  lambda g, x: ew.leaky_relu_grad(g, x, a))


@traced("hardtanh")
def hardtanh(
    input: Any, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False
) -> Tensor:
    """``x`` clipped to ``[min_val, max_val]``; gradient 1 strictly inside, 0 elsewhere.

    >>> import convscope as cs
    >>> cs.functional.hardtanh(cs.tensor([-3.0, 0.5, 2.0])).numpy()
    array([-1. ,  0.5,  1. ], dtype=float32)
    """
    return _hardtanh(input, min_val, max_val, "hardtanh")


def clip_bounds(min_val: Any, max_val: Any, where: str) -> tuple[float, float]:
    """``(min_val, max_val)`` as floats, checked: numbers with ``min_val <= max_val``."""
    lo, hi = _number(min_val, "min_val", where), _number(max_val, "max_val", where)
    if lo > hi:
        raise ArgumentError(
            message(where, "min_val must not be greater than max_val",
                    "swap them, e.g. hardtanh(x, -1.0, 1.0)", f"min_val={lo}, max_val={hi}")
        )
    return lo, hi


def _hardtanh(input: Any, min_val: Any, max_val: Any, where: str) -> Tensor:
    lo, hi = clip_bounds(min_val, max_val, where)
    return _unary(input, where, lambda x: ew.hardtanh(x, lo, hi),
                  lambda g, x: ew.hardtanh_grad(g, x, lo, hi))


@traced("relu6")
def relu6(input: Any, inplace: bool = False) -> Tensor:
    """``min(max(x, 0), 6)`` (MobileNet's); the gradient at 0 and at 6 is 0, as PyTorch."""
    return _hardtanh(input, 0.0, 6.0, "relu6")


@traced("hardsigmoid")
def hardsigmoid(input: Any, inplace: bool = False) -> Tensor:
    """``min(max(x + 3, 0), 6) / 6``, a piecewise linear sigmoid; gradient 1/6 on (-3, 3)."""
    return _unary(input, "hardsigmoid", ew.hardsigmoid, ew.hardsigmoid_grad)


@traced("hardswish")
def hardswish(input: Any, inplace: bool = False) -> Tensor:
    """``x * min(max(x + 3, 0), 6) / 6`` (MobileNetV3's); gradient 0 at -3 and 1 at 3."""
    return _unary(input, "hardswish", ew.hardswish, ew.hardswish_grad)


# --------------------------------------------------------------------------- smooth
@traced("sigmoid")
def sigmoid(input: Any) -> Tensor:
    """``1 / (1 + e^-x)``: any number to (0, 1). Gradient ``y * (1 - y)``."""
    return _unary(input, "sigmoid", ew.sigmoid, ew.sigmoid_grad, keep="y")


@traced("tanh")
def tanh(input: Any) -> Tensor:
    """``tanh(x)``: any number to (-1, 1). Gradient ``1 - y^2``."""
    return _unary(input, "tanh", np.tanh, lambda g, y: g * (1 - y * y), keep="y")


@traced("silu")
def silu(input: Any, inplace: bool = False) -> Tensor:
    """``x * sigmoid(x)`` (also called swish). Gradient ``s * (1 + x * (1 - s))``."""

    def grad(g: np.ndarray, x: np.ndarray) -> np.ndarray:
        s = 1 / (1 + np.exp(-x))
        return g * s * (1 + x * (1 - s))

    return _unary(input, "silu", lambda x: x / (1 + np.exp(-x)), grad)


_SQRT1_2 = math.sqrt(0.5)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_TANH_BETA = math.sqrt(2 / math.pi)
_TANH_KAPPA = 0.044715


def check_approximate(approximate: Any, where: str) -> None:
    """GELU's ``approximate`` must be ``'none'`` or ``'tanh'``."""
    if not isinstance(approximate, str) or approximate not in ("none", "tanh"):
        raise ArgumentError(
            message(where, "`approximate` must be 'none' or 'tanh'",
                    "pass approximate='none' (exact) or 'tanh'", f"approximate={approximate!r}")
        )


@traced("gelu")
def gelu(input: Any, approximate: str = "none") -> Tensor:
    """``x * Phi(x)``, Phi the standard normal CDF: ``0.5 * x * (1 + erf(x / sqrt(2)))``.

    ``approximate='tanh'`` uses ``0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3)))``.
    """
    from ..kernels.special import erf

    check_approximate(approximate, "gelu")
    if approximate == "tanh":

        def forward_tanh(x: np.ndarray) -> np.ndarray:
            inner = _TANH_BETA * (x + _TANH_KAPPA * x * x * x)
            return 0.5 * x * (1 + np.tanh(inner))

        def grad_tanh(g: np.ndarray, x: np.ndarray) -> np.ndarray:
            t = np.tanh(_TANH_BETA * (x + _TANH_KAPPA * x * x * x))
            right = 0.5 * x * (1 - t * t) * _TANH_BETA * (1 + 3 * _TANH_KAPPA * x * x)
            return g * (0.5 * (1 + t) + right)

        return _unary(input, "gelu", forward_tanh, grad_tanh)

    def grad(g: np.ndarray, x: np.ndarray) -> np.ndarray:
        cdf = 0.5 * (1 + erf(x * x.dtype.type(_SQRT1_2)))
        return g * (cdf + x * np.exp(-0.5 * x * x) * _INV_SQRT_2PI)

    return _unary(input, "gelu", lambda x: x * 0.5 * (1 + erf(x * x.dtype.type(_SQRT1_2))), grad)


@traced("elu")
def elu(input: Any, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``x`` where ``x > 0``, else ``alpha * (e^x - 1)``; the gradient at 0 is ``alpha``."""
    a = _number(alpha, "alpha", "elu")
    return _unary(input, "elu", lambda x: np.where(x <= 0, np.expm1(x) * a, x),
                  lambda g, x: np.where(x > 0, g, g * a * np.exp(x)))


# --------------------------------------------------------------------------- softmax
def _softmax_dim(dim: Any, x: Tensor, where: str) -> int:
    """``dim`` checked; None picks PyTorch's legacy implicit axis (0 for 0-, 1- and 3-D
    inputs, else 1)."""
    if dim is None:
        return 0 if x.ndim in (0, 1, 3) else 1
    _check_dim(dim, max(x.ndim, 1), "dim", where, x.shape)
    return int(dim) % max(x.ndim, 1)


def _log_softmax_data(x: np.ndarray, dim: int) -> np.ndarray:
    with np.errstate(**_QUIET):
        shifted = x - x.max(axis=dim, keepdims=True, initial=-np.inf)  # initial: empty axes
        return shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))


@traced("softmax")
def softmax(input: Any, dim: int | None = -1) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``dim``: each slice becomes probabilities (sum 1).

    Computed stably (the maximum is subtracted first). ``dim=None`` picks PyTorch's legacy
    implicit axis (1 for a 2-D or 4-D input).

    >>> import convscope as cs
    >>> cs.functional.softmax(cs.tensor([[0.0, 0.0]]), dim=1).numpy()
    array([[0.5, 0.5]], dtype=float32)
    """
    x = as_tensor(input, "softmax")
    d = _softmax_dim(dim, x, "softmax")
    data = x.data.reshape(x.shape or (1,))
    y = np.exp(_log_softmax_data(data, d)).reshape(x.shape)

    def backward(g: np.ndarray) -> tuple:
        gy = g.reshape(data.shape)
        yy = y.reshape(data.shape)
        return ((yy * (gy - (gy * yy).sum(axis=d, keepdims=True))).reshape(x.shape),)

    return make(y, (x,), backward, "softmax")


@traced("log_softmax")
def log_softmax(input: Any, dim: int | None = -1) -> Tensor:
    """``x - log(sum(exp(x)))`` along ``dim``, computed stably (see :func:`softmax`)."""
    x = as_tensor(input, "log_softmax")
    d = _softmax_dim(dim, x, "log_softmax")
    data = x.data.reshape(x.shape or (1,))
    out = _log_softmax_data(data, d)
    soft = np.exp(out)
    shape = x.shape

    def backward(g: np.ndarray) -> tuple:
        gy = g.reshape(data.shape)
        return ((gy - soft * gy.sum(axis=d, keepdims=True)).reshape(shape),)

    return make(out.reshape(shape), (x,), backward, "log_softmax")
