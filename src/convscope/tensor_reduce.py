"""Reductions of a Tensor: ``sum``, ``mean``, ``var``/``std``, ``max``/``min``,
``argmax``/``argmin``, ``all``/``any``, over everything or along ``dim``.

``dim`` is an int or a tuple of ints (negative counts from the end), ``keepdim=True``
keeps the reduced dims with size 1; the NumPy spellings ``axis=`` and ``keepdims=`` are
accepted too. ``max(dim)`` returns the pair ``(values, indices)``, also as ``.values`` and
``.indices``, as PyTorch; a whole-tensor ``max()`` shares its gradient among tied winners,
``max(dim)`` gives it to the index it returns (the first), as PyTorch does.

>>> import convscope as cs
>>> x = cs.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
>>> x.max(), x.sum(dim=1).tolist(), x.mean(0, keepdim=True).shape
(tensor(7., dtype=float32), [8.0, 10.0], (1, 3))
>>> values, indices = x.max(1)
>>> values.tolist(), indices.tolist(), x.argmax().item()
([5.0, 7.0], [1, 0], 3)
"""

from __future__ import annotations

import math
from collections import namedtuple
from typing import TYPE_CHECKING, Any

import numpy as np

from . import tensor as _t  # the class and `make` (this module is part of the class)
from .errors import ArgumentTypeError, ShapeError, message
from .tensor_shape import dim_index, dim_tuple
from .tracing import traced

if TYPE_CHECKING:
    from .tensor import Tensor

__all__ = ["ReduceMethods", "max_result", "min_result"]

_QUIET = dict(over="ignore", invalid="ignore", divide="ignore", under="ignore")

max_result = namedtuple("max", ["values", "indices"])
"""What ``max(dim)`` returns (``torch.return_types.max``): ``values`` and ``indices``."""
min_result = namedtuple("min", ["values", "indices"])
"""What ``min(dim)`` returns: ``values`` and ``indices``."""


def _dims(x: Tensor, dim: Any, alias: Any, where: str) -> tuple[int, ...] | None:
    """``dim`` (or NumPy's ``axis``) as sorted dims, None for all; a 0-d tensor reduces as
    a whole (its only dims, 0 and -1, are checked)."""
    if alias is not None:
        dim = alias
    if dim is None or (isinstance(dim, (tuple, list)) and not dim):
        return None
    dims = dim_tuple(dim, x.data.ndim, where, x.shape)
    return dims if x.data.ndim else None


def _count(shape: tuple[int, ...], dims: tuple[int, ...] | None) -> int:
    return math.prod(shape) if dims is None else math.prod(shape[d] for d in dims)


def _expand(g: np.ndarray, dims: tuple[int, ...] | None, keep: bool) -> np.ndarray:
    """A reduced gradient with its reduced dims back (size 1), ready to broadcast."""
    return g if dims is None or keep else np.expand_dims(g, dims)


def _floats_only(x: Tensor, where: str) -> None:
    if x.data.dtype.kind != "f":
        raise ArgumentTypeError(
            message(where, f"{where}() needs a floating-point tensor", f"convert first: "
                    f"t.float().{where}()", f"dtype={x.dtype}")
        )


def _not_empty(x: Tensor, d: int | None, where: str) -> None:
    size = x.data.size if d is None else (x.shape[d] if x.data.ndim else 1)
    if size == 0:
        raise ShapeError(
            message(where, f"{where}() of no values is undefined" + ("" if d is None else
                    f" (dim {d} has size 0)"), "reduce a non-empty tensor, or along another "
                    "dim", f"shape {x.shape}")
        )


def _whole_extreme(x: Tensor, pick: Any, where: str) -> Tensor:
    _not_empty(x, None, where)
    a = x.data
    out = pick(a)

    def backward(g: np.ndarray) -> tuple:  # shared among ties, as PyTorch
        winners = (a == out) | (np.isnan(a) & np.isnan(out))
        return (g * winners / winners.sum(),)

    return _t.make(out, (x,), backward, where)


def _dim_extreme(x: Tensor, dim: Any, keepdim: bool, arg: Any, where: str) -> Any:
    d = dim_index(dim, x.data.ndim, where, x.shape)
    result = max_result if where == "max" else min_result
    if not x.data.ndim:
        return result(_t.make(x.data.copy(), (x,), lambda g: (g,), where),
                      _t.Tensor._wrap(np.zeros((), np.int64)))
    _not_empty(x, d, where)
    idx = arg(x.data, axis=d, keepdims=True)  # the first winner (a NaN if any), as PyTorch
    values = np.take_along_axis(x.data, idx, axis=d)
    shape, dtype = x.shape, x.dtype

    def backward(g: np.ndarray) -> tuple:
        full = np.zeros(shape, dtype)
        np.put_along_axis(full, idx, g if keepdim else np.expand_dims(g, d), axis=d)
        return (full,)

    if not keepdim:
        values, idx_out = values.squeeze(d), idx.squeeze(d)
    else:
        idx_out = idx
    return result(_t.make(values, (x,), backward, where),
                  _t.Tensor._wrap(idx_out.astype(np.int64)))


def _pairwise(x: Tensor, other: Tensor, where: str) -> Tensor:
    """``torch.maximum`` / ``minimum``: ties share the gradient equally, as PyTorch."""
    from .tensor_math import _apply, _pair

    o, a, b = _pair(x, other, where)
    out = _apply(where, np.maximum if where == "max" else np.minimum, a, b)

    def backward(g: np.ndarray) -> tuple:
        first, second = (a > b, b > a) if where == "max" else (a < b, b < a)
        tie = (a == b) * 0.5
        return g * (first + tie), g * (second + tie)

    return _t.make(out, (x, o), backward, where)


class ReduceMethods:
    """Reductions (part of :class:`~convscope.Tensor`)."""

    __slots__ = ()

    @traced("sum", key="Tensor.sum")
    def sum(self: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None,
            keepdims: bool | None = None) -> Tensor:
        """The sum of all values, or along ``dim`` (bool and int tensors sum to int64)."""
        dims = _dims(self, dim, axis, "sum")
        keep = keepdim if keepdims is None else keepdims
        kind = self.data.dtype.kind
        out = self.data.sum(axis=dims, keepdims=keep, dtype=np.int64 if kind in "biu" else None)
        shape = self.shape
        return _t.make(out, (self,), lambda g: (np.broadcast_to(_expand(g, dims, keep), shape),),
                       "sum")

    @traced("mean", key="Tensor.mean")
    def mean(self: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None,
             keepdims: bool | None = None) -> Tensor:
        """The mean of all values, or along ``dim`` (floating-point tensors only, as PyTorch;
        NaN for no values)."""
        _floats_only(self, "mean")
        dims = _dims(self, dim, axis, "mean")
        keep = keepdim if keepdims is None else keepdims
        count, shape = _count(self.shape, dims), self.shape
        with np.errstate(**_QUIET):
            out = self.data.sum(axis=dims, keepdims=keep) / count

        def backward(g: np.ndarray) -> tuple:
            with np.errstate(**_QUIET):
                return (np.broadcast_to(_expand(g, dims, keep) / count, shape),)

        return _t.make(out, (self,), backward, "mean")

    @traced("var", key="Tensor.var")
    def var(self: Tensor, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False,
            *, correction: float | None = None) -> Tensor:
        """The variance, by default unbiased (divided by n - 1) as PyTorch; ``correction=0``
        (or ``unbiased=False``) divides by n."""
        return _spread(self, dim, unbiased, keepdim, correction, "var")

    @traced("std", key="Tensor.std")
    def std(self: Tensor, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False,
            *, correction: float | None = None) -> Tensor:
        """The standard deviation, by default unbiased as PyTorch (see :meth:`var`)."""
        return _spread(self, dim, unbiased, keepdim, correction, "std")

    @traced("max", key="Tensor.max")
    def max(self: Tensor, dim: Any = None, keepdim: bool = False) -> Any:
        """The largest value (a 0-d tensor); along ``dim``, the pair ``(values, indices)``;
        given a tensor instead of a dim, the larger of the two elementwise."""
        if isinstance(dim, _t.Tensor):
            return _pairwise(self, dim, "max")
        if dim is None:
            return _whole_extreme(self, np.max, "max")
        return _dim_extreme(self, dim, keepdim, np.argmax, "max")

    @traced("min", key="Tensor.min")
    def min(self: Tensor, dim: Any = None, keepdim: bool = False) -> Any:
        """The smallest value; along ``dim`` the pair ``(values, indices)`` (see :meth:`max`)."""
        if isinstance(dim, _t.Tensor):
            return _pairwise(self, dim, "min")
        if dim is None:
            return _whole_extreme(self, np.min, "min")
        return _dim_extreme(self, dim, keepdim, np.argmin, "min")

    @traced("argmax", key="Tensor.argmax")
    def argmax(self: Tensor, dim: Any = None, keepdim: bool = False, *,
               axis: Any = None) -> Tensor:
        """The index (int64) of the largest value: in the flattened tensor, or along ``dim``."""
        return _arg(self, dim if axis is None else axis, keepdim, np.argmax, "argmax")

    @traced("argmin", key="Tensor.argmin")
    def argmin(self: Tensor, dim: Any = None, keepdim: bool = False, *,
               axis: Any = None) -> Tensor:
        """The index (int64) of the smallest value (see :meth:`argmax`)."""
        return _arg(self, dim if axis is None else axis, keepdim, np.argmin, "argmin")

    @traced("all", key="Tensor.all")
    def all(self: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
        """Whether every value is nonzero (a bool tensor), overall or along ``dim``."""
        dims = _dims(self, dim, None, "all")
        return _t.Tensor._wrap(np.all(self.data, axis=dims, keepdims=keepdim))

    @traced("any", key="Tensor.any")
    def any(self: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
        """Whether some value is nonzero (a bool tensor), overall or along ``dim``."""
        dims = _dims(self, dim, None, "any")
        return _t.Tensor._wrap(np.any(self.data, axis=dims, keepdims=keepdim))


def _arg(x: Tensor, dim: Any, keepdim: bool, fn: Any, where: str) -> Tensor:
    if dim is None:
        _not_empty(x, None, where)
        out = np.asarray(fn(x.data))
        if keepdim:
            out = out.reshape((1,) * x.data.ndim)
    else:
        d = dim_index(dim, x.data.ndim, where, x.shape)
        if not x.data.ndim:
            return _t.Tensor._wrap(np.zeros((), np.int64))
        _not_empty(x, d, where)
        out = fn(x.data, axis=d, keepdims=keepdim)
    return _t.Tensor._wrap(out.astype(np.int64))


def _spread(x: Tensor, dim: Any, unbiased: Any, keepdim: bool, correction: Any,
            where: str) -> Tensor:
    """``var`` and ``std``: sum((x - mean)^2) / (n - correction), square-rooted for std."""
    _floats_only(x, where)
    if isinstance(dim, bool):  # x.var(False): PyTorch's (unbiased) overload
        dim, unbiased = None, dim
    c = correction if correction is not None else (1 if unbiased is None else int(unbiased))
    dims = _dims(x, dim, None, where)
    a = x.data
    count = _count(x.shape, dims)
    denom = max(count - c, 0)
    with np.errstate(**_QUIET):
        diff = a - a.sum(axis=dims, keepdims=True) / np.asarray(count, a.dtype)
        var = (diff * diff).sum(axis=dims, keepdims=keepdim) / np.asarray(denom, a.dtype)
        out = np.sqrt(var) if where == "std" else var
    shape = x.shape

    def backward(g: np.ndarray) -> tuple:
        with np.errstate(**_QUIET):
            gs = g if where == "var" else np.where(out == 0, 0, g / (2 * out))  # PyTorch's 0
            gv = _expand(gs, dims, keepdim)
            return (np.broadcast_to(gv * 2 * diff / np.asarray(denom, a.dtype), shape),)

    return _t.make(out, (x,), backward, where)
