"""Arithmetic, elementwise functions, comparisons and in-place updates of a Tensor.

Operators follow PyTorch's types: the higher category of the two operands wins (bool <
int < float: an int tensor times 0.5 is float32, ``int / int`` is float32), floats keep
their width (float32 with a Python float stays float32). Comparisons give bool tensors
without gradient, so ``(pred == labels).sum().item()`` counts as in PyTorch. Broadcasting
is NumPy's and PyTorch's; shapes that do not broadcast are refused with both shapes.

>>> import convscope as cs
>>> pred, labels = cs.tensor([0, 2, 1]), cs.tensor([0, 1, 1])
>>> (pred == labels).sum().item(), (cs.tensor([1, 2]) / 2).tolist()
(2, [0.5, 1.0])
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any

import numpy as np

from . import tensor as _t  # the class and `make` (this module is part of the class)
from .autograd import is_grad_enabled
from .dtypes import float32, result_type, scalar_type
from .errors import ArgumentError, ArgumentTypeError, ShapeError, message
from .kernels import elementwise as _ew
from .tensor_reduce import ReduceMethods
from .tensor_shape import check_inplace
from .tracing import traced

if TYPE_CHECKING:
    from .tensor import Tensor

__all__ = ["MathMethods"]

_QUIET = dict(over="ignore", invalid="ignore", divide="ignore", under="ignore")
_RANK = {"b": 0, "u": 1, "i": 1, "f": 2}


def _refuse_operand(other: Any, where: str) -> None:
    raise ArgumentTypeError(
        message(where, "the other operand must be a number, a tensor or an array of numbers",
                "convert it first", f"{type(other).__name__}")
    )


def _pair(x: Tensor, other: Any, where: str) -> tuple[Tensor, np.ndarray, np.ndarray]:
    """``other`` as a Tensor, and both operands' arrays converted to the result type."""
    if isinstance(other, _t.Tensor):
        o = other
        dt = x.data.dtype if o.data.dtype == x.data.dtype else result_type(x.dtype, o.dtype)
    elif isinstance(other, (numbers.Real, np.bool_, np.number)):
        dt = scalar_type(x.data.dtype, other)
        o = _t.Tensor._wrap(np.asarray(other, dtype=dt))
    else:
        if other is None or isinstance(other, (str, bytes)):
            _refuse_operand(other, where)
        arr = np.asarray(other)
        if arr.dtype.kind not in "biuf":
            _refuse_operand(other, where)
        xd = x.data.dtype  # arrays like numbers: the tensor's width unless of a higher kind
        dt = xd if _RANK[arr.dtype.kind] <= _RANK[xd.kind] else result_type(xd, arr.dtype)
        o = _t.Tensor._wrap(arr.astype(dt, copy=False))
    a = x.data if x.data.dtype == dt else x.data.astype(dt)
    b = o.data if o.data.dtype == dt else o.data.astype(dt)
    return o, a, b


def _mismatch(where: str, a: Any, b: Any) -> ShapeError:
    return ShapeError(
        message(where, f"shapes {np.shape(a)} and {np.shape(b)} cannot be broadcast together",
                "make the sizes equal, or 1 where they differ (t.unsqueeze / t.view add "
                "dims of size 1)", f"shapes {np.shape(a)} and {np.shape(b)}")
    )


def _apply(where: str, fn: Any, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        with np.errstate(**_QUIET):
            return fn(a, b)
    except ValueError:
        raise _mismatch(where, a, b) from None
    except TypeError as exc:  # bool - bool, ~float...: NumPy's own refusal
        raise ArgumentTypeError(
            message(where, f"not defined for these types ({exc})".replace(".)", ")"),
                    "convert first, e.g. t.float() or t.int()", f"dtypes {a.dtype}, {b.dtype}")
        ) from None


def _no_bool_sub(x: Tensor, other: Any) -> None:
    if x.data.dtype.kind == "b" or isinstance(other, (bool, np.bool_)) or (
            isinstance(other, _t.Tensor) and other.data.dtype.kind == "b"):
        raise ArgumentTypeError(
            message("sub", "subtraction with a bool operand is not defined (as in PyTorch)",
                    "invert a mask with ~mask, or convert first: mask.int()", "a bool operand")
        )


def _integral(where: str, fn: Any, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``//`` and ``%``: refused for bools and, for integers, by zero (as PyTorch)."""
    if a.dtype.kind == "b":
        raise ArgumentTypeError(
            message(where, f"{where} of two bools is not defined", "convert first: t.int()",
                    "dtype=bool")
        )
    if a.dtype.kind in "iu" and not np.all(b):
        raise ArgumentError(
            message(where, "integer division by zero", "divide by nonzero values, or use "
                    "floats (x.float() // y gives inf)", f"divisor {b!r:.60}")
        )
    return _apply(where, fn, a, b)


def _floating(x: Tensor) -> np.ndarray:
    """The values as floats (integer tensors compute float32 results, as PyTorch)."""
    return x.data if x.data.dtype.kind == "f" else x.data.astype(float32)


def _activation(name: str) -> Any:
    from .functional import activation

    return getattr(activation, name)


class MathMethods(ReduceMethods):
    """Arithmetic, elementwise functions, comparisons, in-place updates (part of Tensor)."""

    __slots__ = ()
    __hash__ = object.__hash__  # == compares values, but a tensor is its own dict key

    # ----------------------------------------------------------------- arithmetic
    @traced("add", key="Tensor.add")
    def __add__(self: Tensor, other: Any) -> Tensor:
        o, a, b = _pair(self, other, "add")
        out = _apply("add", _ew.add, a, b)  # one compiled pass for large float arrays
        return _t.make(out, (self, o), lambda g: (g, g), "add")

    __radd__ = __add__

    @traced("neg", key="Tensor.neg")
    def __neg__(self: Tensor) -> Tensor:
        if self.data.dtype.kind == "b":
            raise ArgumentTypeError(
                message("neg", "negating a bool tensor is not defined",
                        "invert a mask with ~mask", "dtype=bool")
            )
        return _t.make(-self.data, (self,), lambda g: (-g,), "neg")

    def __pos__(self: Tensor) -> Tensor:
        return self

    @traced("sub", key="Tensor.sub")
    def __sub__(self: Tensor, other: Any) -> Tensor:
        _no_bool_sub(self, other)
        o, a, b = _pair(self, other, "sub")
        return _t.make(_apply("sub", np.subtract, a, b), (self, o), lambda g: (g, -g), "sub")

    @traced("rsub", key="Tensor.rsub")
    def __rsub__(self: Tensor, other: Any) -> Tensor:
        _no_bool_sub(self, other)
        o, a, b = _pair(self, other, "rsub")
        return _t.make(_apply("rsub", np.subtract, b, a), (self, o), lambda g: (-g, g), "rsub")

    @traced("mul", key="Tensor.mul")
    def __mul__(self: Tensor, other: Any) -> Tensor:
        o, a, b = _pair(self, other, "mul")
        return _t.make(_apply("mul", np.multiply, a, b), (self, o),
                       lambda g: (g * b, g * a), "mul")

    __rmul__ = __mul__

    @traced("div", key="Tensor.div")
    def __truediv__(self: Tensor, other: Any) -> Tensor:
        o, a, b = _pair(self, other, "div")
        if a.dtype.kind != "f":  # int / int is a float32 quotient, as PyTorch
            a, b = a.astype(float32), b.astype(float32)

        def backward(g: np.ndarray) -> tuple:
            with np.errstate(**_QUIET):
                return g / b, -g * a / (b * b)

        return _t.make(_apply("div", np.true_divide, a, b), (self, o), backward, "div")

    @traced("rdiv", key="Tensor.rdiv")
    def __rtruediv__(self: Tensor, other: Any) -> Tensor:
        o, _, _ = _pair(self, other, "rdiv")
        return o / self

    def __floordiv__(self: Tensor, other: Any) -> Tensor:
        _, a, b = _pair(self, other, "floor_divide")
        return _t.Tensor._wrap(_integral("floor_divide", np.floor_divide, a, b))

    def __rfloordiv__(self: Tensor, other: Any) -> Tensor:
        _, a, b = _pair(self, other, "floor_divide")
        return _t.Tensor._wrap(_integral("floor_divide", np.floor_divide, b, a))

    def __mod__(self: Tensor, other: Any) -> Tensor:
        _, a, b = _pair(self, other, "remainder")
        return _t.Tensor._wrap(_integral("remainder", np.remainder, a, b))

    @traced("pow", key="Tensor.pow")
    def __pow__(self: Tensor, exponent: Any) -> Tensor:
        if isinstance(exponent, (str, bytes)) or exponent is None:
            raise ArgumentTypeError(
                message("Tensor.__pow__", "the exponent must be a number or a tensor",
                        "use t ** 2", f"{type(exponent).__name__}")
            )
        o, a, b = _pair(self, exponent, "pow")
        if a.dtype.kind == "b" and isinstance(exponent, (bool, np.bool_)):
            return _t.Tensor._wrap(a.copy() if exponent else np.ones_like(a))
        if a.dtype.kind == "b":
            raise ArgumentTypeError(
                message("pow", "a bool to a bool power is not defined", "convert first: t.int()",
                        "dtype=bool")
            )
        if a.dtype.kind in "iu" and (b < 0).any():
            if not isinstance(exponent, _t.Tensor):
                raise ArgumentError(
                    message("pow", "integers to negative integer powers are not allowed",
                            "use a float tensor: t.float() ** -1", f"exponent {exponent!r:.40}")
                )
            # PyTorch's integer rule: 1 ** -n is 1, (-1) ** -n is +-1, anything else 0
            ones = np.where(b % 2 == 0, 1, a)
            pos = _apply("pow", np.power, a, np.maximum(b, 0))
            return _t.Tensor._wrap(np.where(b >= 0, pos, np.where(np.abs(a) == 1, ones, 0))
                                   .astype(a.dtype))
        out = _apply("pow", np.power, a, b)
        need_b = o.requires_grad

        def backward(g: np.ndarray) -> tuple:
            with np.errstate(**_QUIET):
                ga = np.where(b == 0, 0, g * b * a ** (b - 1))  # x ** 0: 0 even at x = 0
                gb = g * np.where((a == 0) & (b >= 0), 0, out * np.log(a)) if need_b else None
            return ga, gb

        return _t.make(out, (self, o), backward, "pow")

    def __rpow__(self: Tensor, base: Any) -> Tensor:
        o, _, _ = _pair(self, base, "pow")
        return o ** self

    pow = __pow__

    @traced("matmul", key="Tensor.matmul")
    def __matmul__(self: Tensor, other: Any) -> Tensor:
        o, a, b = _pair(self, other, "matmul")
        if self.ndim != 2 or o.ndim != 2 or self.shape[1] != o.shape[0]:
            raise ShapeError(
                message("matmul", "expected (n, k) @ (k, m)", "check the inner sizes",
                        f"{self.shape} @ {o.shape}")
            )
        return _t.make(a @ b, (self, o), lambda g: (g @ b.T, a.T @ g), "matmul")

    add, sub, mul, div, matmul, mm = __add__, __sub__, __mul__, __truediv__, __matmul__, \
        __matmul__
    neg, true_divide, floor_divide, remainder = __neg__, __truediv__, __floordiv__, __mod__

    # ----------------------------------------------------------------- logic (masks)
    def _logic(self: Tensor, other: Any, fn: Any, where: str) -> Tensor:
        _, a, b = _pair(self, other, where)
        if a.dtype.kind == "f":
            raise ArgumentTypeError(
                message(where, "only bool and integer tensors have logical/bitwise operators",
                        "compare first (x > 0) to get a mask", f"dtype={a.dtype}")
            )
        return _t.Tensor._wrap(_apply(where, fn, a, b))

    def __and__(self: Tensor, other: Any) -> Tensor:
        return self._logic(other, np.bitwise_and, "and")

    def __or__(self: Tensor, other: Any) -> Tensor:
        return self._logic(other, np.bitwise_or, "or")

    def __xor__(self: Tensor, other: Any) -> Tensor:
        return self._logic(other, np.bitwise_xor, "xor")

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__

    def __invert__(self: Tensor) -> Tensor:
        if self.data.dtype.kind == "f":
            raise ArgumentTypeError(
                message("invert", "~ inverts bool masks and integer bits, not floats",
                        "use (x == 0) or 1 - x", f"dtype={self.dtype}")
            )
        return _t.Tensor._wrap(~self.data)

    def logical_not(self: Tensor) -> Tensor:
        return _t.Tensor._wrap(self.data == 0)

    # ----------------------------------------------------------------- comparisons
    def _compare(self: Tensor, other: Any, fn: Any, where: str) -> Tensor:
        if isinstance(other, _t.Tensor):
            b = other.data
        elif other is None or isinstance(other, (str, bytes)):
            return NotImplemented
        else:
            b = np.asarray(other)
            if b.dtype.kind not in "biuf":
                return NotImplemented
        return _t.Tensor._wrap(_apply(where, fn, self.data, b))

    @traced("eq", key="Tensor.eq")
    def __eq__(self: Tensor, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, np.equal, "eq")

    @traced("ne", key="Tensor.ne")
    def __ne__(self: Tensor, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, np.not_equal, "ne")

    @traced("lt", key="Tensor.lt")
    def __lt__(self: Tensor, other: Any) -> Tensor:
        return self._compare(other, np.less, "lt")

    @traced("le", key="Tensor.le")
    def __le__(self: Tensor, other: Any) -> Tensor:
        return self._compare(other, np.less_equal, "le")

    @traced("gt", key="Tensor.gt")
    def __gt__(self: Tensor, other: Any) -> Tensor:
        return self._compare(other, np.greater, "gt")

    @traced("ge", key="Tensor.ge")
    def __ge__(self: Tensor, other: Any) -> Tensor:
        return self._compare(other, np.greater_equal, "ge")

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__

    # ----------------------------------------------------------------- elementwise
    @traced("exp", key="Tensor.exp")
    def exp(self: Tensor) -> Tensor:
        with np.errstate(**_QUIET):
            out = np.exp(_floating(self))
        return _t.make(out, (self,), lambda g: (g * out,), "exp")

    @traced("log", key="Tensor.log")
    def log(self: Tensor) -> Tensor:
        a = _floating(self)
        with np.errstate(**_QUIET):
            out = np.log(a)

        def backward(g: np.ndarray) -> tuple:
            with np.errstate(**_QUIET):
                return (g / a,)

        return _t.make(out, (self,), backward, "log")

    @traced("sqrt", key="Tensor.sqrt")
    def sqrt(self: Tensor) -> Tensor:
        with np.errstate(**_QUIET):
            out = np.sqrt(_floating(self))

        def backward(g: np.ndarray) -> tuple:
            with np.errstate(**_QUIET):
                return (g * 0.5 / out,)

        return _t.make(out, (self,), backward, "sqrt")

    @traced("abs", key="Tensor.abs")
    def abs(self: Tensor) -> Tensor:
        a = self.data
        if a.dtype.kind == "b":
            raise ArgumentTypeError(message("abs", "abs() is not defined for bool tensors",
                                            "convert first: t.int().abs()", "dtype=bool"))
        return _t.make(np.abs(a), (self,), lambda g: (g * np.sign(a),), "abs")

    __abs__ = abs

    @traced("clamp", key="Tensor.clamp")
    def clamp(self: Tensor, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
        """Values below ``min`` raised to it, above ``max`` lowered to it (either may be
        None, not both). The gradient passes where ``min <= x <= max``, as PyTorch."""
        lo, hi = min, max
        if lo is None and hi is None:
            raise ArgumentError(
                message("clamp", "at least one of `min` and `max` must be given",
                        "pass e.g. clamp(min=0)", "min=None, max=None")
            )
        a, bounds = self.data, []
        for bound in (lo, hi):  # the result's type: a float bound makes an int tensor float
            if bound is not None:
                _, a, b = _pair(_t.Tensor._wrap(a), bound, "clamp")
            bounds.append(None if bound is None else b)
        out, keep = a, np.ones(a.shape, bool)
        try:
            if bounds[0] is not None:
                out, keep = np.maximum(out, bounds[0]), keep & (a >= bounds[0])
            if bounds[1] is not None:
                out, keep = np.minimum(out, bounds[1]), keep & (a <= bounds[1])
        except ValueError:
            raise _mismatch("clamp", a, bounds[0] if bounds[0] is not None else bounds[1]) \
                from None
        return _t.make(out, (self,), lambda g: (g * keep,), "clamp")

    clip = clamp

    def sigmoid(self: Tensor) -> Tensor:
        """``1 / (1 + e^-x)`` (:func:`convscope.functional.sigmoid`); float32 for integers."""
        return _activation("sigmoid")(self if self.data.dtype.kind == "f" else self.float())

    def tanh(self: Tensor) -> Tensor:
        """:func:`convscope.functional.tanh`; float32 for integer tensors."""
        return _activation("tanh")(self if self.data.dtype.kind == "f" else self.float())

    def relu(self: Tensor) -> Tensor:
        """``max(x, 0)`` (:func:`convscope.functional.relu`)."""
        from .functional import relu

        return relu(self)

    def softmax(self: Tensor, dim: int) -> Tensor:
        """Probabilities along ``dim`` (:func:`convscope.functional.softmax`)."""
        return _activation("softmax")(self, dim)

    def log_softmax(self: Tensor, dim: int) -> Tensor:
        """:func:`convscope.functional.log_softmax` along ``dim``."""
        return _activation("log_softmax")(self, dim)

    def maximum(self: Tensor, other: Any) -> Tensor:
        """The larger of two values, elementwise (``torch.maximum``)."""
        return self.max(other)

    def minimum(self: Tensor, other: Any) -> Tensor:
        """The smaller of two values, elementwise (``torch.minimum``)."""
        return self.min(other)

    # ----------------------------------------------------------------- in place
    def _inplace(self: Tensor, other: Any, fn: Any, where: str) -> Tensor:
        check_inplace(self, where, other)
        b = other.data if isinstance(other, _t.Tensor) else other
        try:
            with np.errstate(**_QUIET):
                fn(self.data, b, out=self.data, casting="same_kind")
        except ValueError:
            raise _mismatch(where, self.data, b) from None
        except TypeError:
            raise ArgumentTypeError(
                message(where, f"the result cannot be stored in this {self.dtype} tensor",
                        "convert first (t = t.float()), or compute a new tensor",
                        f"dtype={self.dtype}, other={type(other).__name__}")
            ) from None
        return self

    def add_(self: Tensor, other: Any, alpha: Any = 1) -> Tensor:
        """``self += alpha * other`` in place; returns self."""
        if alpha != 1:
            other = (other.data if isinstance(other, _t.Tensor) else np.asarray(other)) * alpha
        return self._inplace(other, np.add, "add_")

    def sub_(self: Tensor, other: Any, alpha: Any = 1) -> Tensor:
        """``self -= alpha * other`` in place; returns self."""
        if alpha != 1:
            other = (other.data if isinstance(other, _t.Tensor) else np.asarray(other)) * alpha
        return self._inplace(other, np.subtract, "sub_")

    def mul_(self: Tensor, other: Any) -> Tensor:
        return self._inplace(other, np.multiply, "mul_")

    def div_(self: Tensor, other: Any) -> Tensor:
        return self._inplace(other, np.true_divide, "div_")

    def clamp_(self: Tensor, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
        check_inplace(self, "clamp_")
        with _t.no_grad():
            self.data[...] = self.clamp(min, max).data
        return self

    def zero_(self: Tensor) -> Tensor:
        """Set every value to 0 in place; returns self."""
        check_inplace(self, "zero_")
        self.data[...] = 0
        return self

    def fill_(self: Tensor, value: Any) -> Tensor:
        """Set every value to ``value`` in place; returns self."""
        check_inplace(self, "fill_", value)
        self.data[...] = value.data if isinstance(value, _t.Tensor) else value
        return self

    def copy_(self: Tensor, src: Any) -> Tensor:
        """Copy ``src``'s values in (broadcast and converted to this tensor's type)."""
        check_inplace(self, "copy_", src)
        b = src.data if isinstance(src, _t.Tensor) else np.asarray(src)
        try:
            np.copyto(self.data, b, casting="unsafe")
        except ValueError:
            raise _mismatch("copy_", self.data, b) from None
        return self

    def _update(self: Tensor, other: Any, op: str) -> Tensor:
        """``t += x``: in place, as PyTorch, except inside a recorded graph, where the
        result is a new tensor (the same values; other references keep the old ones)."""
        recorded = is_grad_enabled() and (
            (self.requires_grad and not self.is_leaf)
            or (isinstance(other, _t.Tensor) and other.requires_grad))
        if recorded:
            return getattr(self, f"__{op}__")(other)
        return getattr(self, {"add": "add_", "sub": "sub_", "mul": "mul_",
                              "truediv": "div_"}[op])(other)

    def __iadd__(self: Tensor, other: Any) -> Tensor:
        return self._update(other, "add")

    def __isub__(self: Tensor, other: Any) -> Tensor:
        return self._update(other, "sub")

    def __imul__(self: Tensor, other: Any) -> Tensor:
        return self._update(other, "mul")

    def __itruediv__(self: Tensor, other: Any) -> Tensor:
        return self._update(other, "truediv")
