"""The ``torch.*`` functions that take tensors: ``cs.max(x, 1)``, ``cs.sum``, ``cs.where``...

Each is the Tensor method of the same name (``cs.max(outputs, 1)`` is
``outputs.max(1)``), so the two spellings of a PyTorch script give the same values and
gradients. NumPy arrays and lists are accepted and converted as :func:`convscope.tensor`
does. ``cs.cat``, ``cs.stack``, ``cs.flatten`` and ``cs.add`` live in
:mod:`convscope.functional.join`.

>>> import convscope as cs
>>> outputs = cs.tensor([[0.1, 2.0, 0.3], [1.5, 0.2, 0.1]])
>>> _, predicted = cs.max(outputs, 1)
>>> predicted.tolist(), cs.where(outputs > 1, outputs, 0.0).sum().item()
([1, 0], 3.5)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .autograd import _unbroadcast
from .dtypes import bool_, result_type, scalar_type
from .errors import ArgumentTypeError, ShapeError, message
from .tensor import Tensor, make, tensor
from .tracing import traced

__all__ = ["max", "min", "argmax", "argmin", "sum", "mean", "std", "var", "all", "any",
           "exp", "log", "sqrt", "abs", "clamp", "clip", "pow", "sigmoid", "tanh", "relu",
           "softmax", "log_softmax", "maximum", "minimum", "where", "allclose", "isclose",
           "equal", "is_tensor", "is_floating_point", "numel", "reshape", "squeeze",
           "unsqueeze", "permute", "transpose", "matmul"]


def _t(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else tensor(x)


def max(input: Any, dim: Any = None, keepdim: bool = False) -> Any:  # noqa: A001
    """``input.max(dim, keepdim)``: the largest value, ``(values, indices)`` along ``dim``,
    or the elementwise larger of two tensors."""
    return _t(input).max(dim, keepdim)


def min(input: Any, dim: Any = None, keepdim: bool = False) -> Any:  # noqa: A001
    """``input.min(dim, keepdim)`` (see :func:`max`)."""
    return _t(input).min(dim, keepdim)


def argmax(input: Any, dim: Any = None, keepdim: bool = False) -> Tensor:
    return _t(input).argmax(dim, keepdim)


def argmin(input: Any, dim: Any = None, keepdim: bool = False) -> Tensor:
    return _t(input).argmin(dim, keepdim)


def sum(input: Any, dim: Any = None, keepdim: bool = False) -> Tensor:  # noqa: A001
    return _t(input).sum(dim, keepdim)


def mean(input: Any, dim: Any = None, keepdim: bool = False) -> Tensor:
    return _t(input).mean(dim, keepdim)


def std(input: Any, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *,
        correction: Any = None) -> Tensor:
    return _t(input).std(dim, unbiased, keepdim, correction=correction)


def var(input: Any, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *,
        correction: Any = None) -> Tensor:
    return _t(input).var(dim, unbiased, keepdim, correction=correction)


def all(input: Any, dim: Any = None, keepdim: bool = False) -> Tensor:  # noqa: A001
    return _t(input).all(dim, keepdim)


def any(input: Any, dim: Any = None, keepdim: bool = False) -> Tensor:  # noqa: A001
    return _t(input).any(dim, keepdim)


def exp(input: Any) -> Tensor:
    return _t(input).exp()


def log(input: Any) -> Tensor:
    return _t(input).log()


def sqrt(input: Any) -> Tensor:
    return _t(input).sqrt()


def abs(input: Any) -> Tensor:  # noqa: A001
    return _t(input).abs()


def clamp(input: Any, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
    return _t(input).clamp(min, max)


clip = clamp


def pow(input: Any, exponent: Any) -> Tensor:  # noqa: A001
    if not isinstance(input, Tensor):  # a number to a tensor's power
        return _t(exponent).__rpow__(input)
    return input ** exponent


def sigmoid(input: Any) -> Tensor:
    return _t(input).sigmoid()


def tanh(input: Any) -> Tensor:
    return _t(input).tanh()


def relu(input: Any) -> Tensor:
    return _t(input).relu()


def softmax(input: Any, dim: int) -> Tensor:
    return _t(input).softmax(dim)


def log_softmax(input: Any, dim: int) -> Tensor:
    return _t(input).log_softmax(dim)


def maximum(input: Any, other: Any) -> Tensor:
    return _t(input).max(_t(other))


def minimum(input: Any, other: Any) -> Tensor:
    return _t(input).min(_t(other))


def reshape(input: Any, shape: Any) -> Tensor:
    return _t(input).reshape(shape)


def squeeze(input: Any, dim: Any = None) -> Tensor:
    return _t(input).squeeze(dim)


def unsqueeze(input: Any, dim: int) -> Tensor:
    return _t(input).unsqueeze(dim)


def permute(input: Any, dims: Any) -> Tensor:
    return _t(input).permute(dims)


def transpose(input: Any, dim0: int, dim1: int) -> Tensor:
    return _t(input).transpose(dim0, dim1)


def matmul(input: Any, other: Any) -> Tensor:
    return _t(input) @ other


def _operand(value: Any) -> tuple[Tensor, np.dtype, bool]:
    """(tensor, dtype, is a plain number) for ``where``'s two value arguments."""
    if isinstance(value, Tensor):
        return value, value.dtype, False
    if isinstance(value, (bool, int, float, np.number, np.bool_)):
        return Tensor._wrap(np.asarray(value)), np.asarray(value).dtype, True
    t = tensor(value)
    return t, t.dtype, False


@traced("where")
def where(condition: Any, input: Any = None, other: Any = None) -> Any:
    """``input`` where ``condition`` is true, else ``other`` (broadcast together); the
    gradient goes to the side that was picked. ``where(condition)`` alone gives the indices
    of the true values, one int64 tensor per dim.

    >>> import convscope as cs
    >>> x = cs.tensor([-1.0, 2.0, -3.0])
    >>> cs.where(x > 0, x, cs.zeros(3)).tolist(), cs.where(x > 0)[0].tolist()
    ([0.0, 2.0, 0.0], [1])
    """
    cond = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    if input is None and other is None:
        return tuple(Tensor._wrap(i.astype(np.int64)) for i in np.nonzero(cond))
    if input is None or other is None:
        raise ArgumentTypeError(
            message("where", "pass both `input` and `other` (or neither)",
                    "use cs.where(cond, x, y)", "one of them is None")
        )
    if cond.dtype.kind != "b":
        raise ArgumentTypeError(
            message("where", "the condition must be a bool tensor", "compare first: x > 0",
                    f"dtype={cond.dtype}")
        )
    a, da, a_num = _operand(input)
    b, db, b_num = _operand(other)
    if a_num and not b_num:
        dt = scalar_type(db, input)
    elif b_num and not a_num:
        dt = scalar_type(da, other)
    elif a_num and b_num:
        dt = result_type(scalar_type(bool_, input), scalar_type(bool_, other))
    else:
        dt = result_type(da, db)
    try:
        shape = np.broadcast_shapes(cond.shape, a.shape, b.shape)
    except ValueError:
        raise ShapeError(
            message("where", "condition, input and other cannot be broadcast together",
                    "make the sizes equal, or 1 where they differ",
                    f"shapes {cond.shape}, {a.shape}, {b.shape}")
        ) from None
    out = np.where(cond, a.data.astype(dt, copy=False), b.data.astype(dt, copy=False))
    a_shape, b_shape = a.shape, b.shape

    def backward(g: np.ndarray) -> tuple:
        zero = np.zeros((), g.dtype)
        g = np.broadcast_to(g, shape)
        return (_unbroadcast(np.where(cond, g, zero), a_shape),
                _unbroadcast(np.where(cond, zero, g), b_shape))

    return make(out, (a, b), backward, "where")


def isclose(input: Any, other: Any, rtol: float = 1e-05, atol: float = 1e-08,
            equal_nan: bool = False) -> Tensor:
    """Elementwise ``|input - other| <= atol + rtol * |other|`` (a bool tensor)."""
    a, b = _t(input).data, _t(other).data
    return Tensor._wrap(np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


def allclose(input: Any, other: Any, rtol: float = 1e-05, atol: float = 1e-08,
             equal_nan: bool = False) -> bool:
    """Whether every value of ``input`` is close to ``other``'s (see :func:`isclose`)."""
    return bool(np.all(isclose(input, other, rtol, atol, equal_nan).data))


def equal(input: Any, other: Any) -> bool:
    """Whether both have the same shape and the same values."""
    a, b = _t(input).data, _t(other).data
    return a.shape == b.shape and bool(np.array_equal(a, b))


def is_tensor(obj: Any) -> bool:
    return isinstance(obj, Tensor)


def is_floating_point(input: Tensor) -> bool:
    return input.is_floating_point()


def numel(input: Tensor) -> int:
    return input.numel()
