"""Activation layers: thin modules over :mod:`convscope.functional.activation`.

Each applies its function to every value of the volume, so the output volume is the input
volume. They are leaf layers for the graph tools (``op``, ``get_config``, ``output_shape``,
``describe``, ``macs``; see :class:`~convscope.nn.Module`). ``inplace=`` is accepted for
PyTorch code and ignored: convscope never overwrites an input.

>>> import convscope as cs
>>> cs.nn.LeakyReLU(0.1)(cs.tensor([-2.0, 3.0])).numpy()
array([-0.2,  3. ], dtype=float32)
"""

from __future__ import annotations

import numbers
from typing import Any

from ..errors import ArgumentTypeError, message
from ..functional import activation as F
from ..functional._common import _check_dim
from ..tensor import Tensor
from .module import Module

__all__ = [
    "LeakyReLU",
    "ReLU6",
    "Hardtanh",
    "Sigmoid",
    "Tanh",
    "GELU",
    "SiLU",
    "Hardswish",
    "Hardsigmoid",
    "ELU",
    "Softmax",
    "LogSoftmax",
]


class _Elementwise(Module):
    """One function per value: the output volume is the input volume, no multiply-adds."""

    op: str | None = None
    formula = ""  # the explain table's words, e.g. "1/(1+e^-x) per value"

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = bool(inplace)  # accepted and ignored (see the module docstring)

    def _apply(self, x: Any) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Any) -> Tensor:
        return self._apply(x)

    def get_config(self) -> dict[str, Any]:
        return {"inplace": self.inplace}

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(int(n) for n in shape)

    def describe(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> str:
        return f"{self.op}: {self.formula}"

    def macs(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
        return 0


class LeakyReLU(_Elementwise):
    """``x`` where ``x > 0``, else ``negative_slope * x``.

    Shape:
        Any shape; the output has the input's shape.
    """

    op = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__(inplace)
        self.negative_slope = F._number(negative_slope, "negative_slope", "LeakyReLU")

    @property
    def formula(self) -> str:  # type: ignore[override]
        return f"x if x > 0 else {self.negative_slope:g}x, per value"

    def _apply(self, x: Any) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def get_config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope, "inplace": self.inplace}

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Hardtanh(_Elementwise):
    """``x`` clipped to ``[min_val, max_val]``.

    Shape:
        Any shape; the output has the input's shape.
    """

    op = "hardtanh"

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> None:
        super().__init__(inplace)
        self.min_val, self.max_val = F.clip_bounds(min_val, max_val, "Hardtanh")

    @property
    def formula(self) -> str:  # type: ignore[override]
        return f"x clipped to [{self.min_val:g}, {self.max_val:g}], per value"

    def _apply(self, x: Any) -> Tensor:
        return F.hardtanh(x, self.min_val, self.max_val)

    def get_config(self) -> dict[str, Any]:
        return {"min_val": self.min_val, "max_val": self.max_val, "inplace": self.inplace}

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}"


class ReLU6(_Elementwise):
    """``min(max(x, 0), 6)`` (MobileNetV2's activation). Shape: any; unchanged."""

    op = "relu6"
    formula = "min(max(x, 0), 6) per value"

    def _apply(self, x: Any) -> Tensor:
        return F.relu6(x)


class Sigmoid(_Elementwise):
    """``1 / (1 + e^-x)``. Shape: any; unchanged."""

    op = "sigmoid"
    formula = "1/(1+e^-x) per value"

    def __init__(self) -> None:
        super().__init__()

    def _apply(self, x: Any) -> Tensor:
        return F.sigmoid(x)

    def get_config(self) -> dict[str, Any]:
        return {}


class Tanh(_Elementwise):
    """``tanh(x)``. Shape: any; unchanged."""

    op = "tanh"
    formula = "(e^x-e^-x)/(e^x+e^-x) per value"

    def __init__(self) -> None:
        super().__init__()

    def _apply(self, x: Any) -> Tensor:
        return F.tanh(x)

    def get_config(self) -> dict[str, Any]:
        return {}


class GELU(_Elementwise):
    """``x * Phi(x)`` (``approximate='tanh'``: its tanh form). Shape: any; unchanged."""

    op = "gelu"

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        F.check_approximate(approximate, "GELU")
        self.approximate = approximate

    @property
    def formula(self) -> str:  # type: ignore[override]
        if self.approximate == "tanh":
            return "0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3))) per value"
        return "x * Phi(x), Phi the normal CDF, per value"

    def _apply(self, x: Any) -> Tensor:
        return F.gelu(x, self.approximate)

    def get_config(self) -> dict[str, Any]:
        return {"approximate": self.approximate}

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(_Elementwise):
    """``x * sigmoid(x)`` (swish). Shape: any; unchanged."""

    op = "silu"
    formula = "x/(1+e^-x) per value"

    def _apply(self, x: Any) -> Tensor:
        return F.silu(x)


class Hardswish(_Elementwise):
    """``x * relu6(x + 3) / 6`` (MobileNetV3's). Shape: any; unchanged."""

    op = "hardswish"
    formula = "x * min(max(x+3, 0), 6)/6 per value"

    def _apply(self, x: Any) -> Tensor:
        return F.hardswish(x)


class Hardsigmoid(_Elementwise):
    """``relu6(x + 3) / 6``. Shape: any; unchanged."""

    op = "hardsigmoid"
    formula = "min(max(x+3, 0), 6)/6 per value"

    def _apply(self, x: Any) -> Tensor:
        return F.hardsigmoid(x)


class ELU(_Elementwise):
    """``x`` where ``x > 0``, else ``alpha * (e^x - 1)``. Shape: any; unchanged."""

    op = "elu"

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__(inplace)
        self.alpha = F._number(alpha, "alpha", "ELU")

    @property
    def formula(self) -> str:  # type: ignore[override]
        return f"x if x > 0 else {self.alpha:g}(e^x - 1), per value"

    def _apply(self, x: Any) -> Tensor:
        return F.elu(x, self.alpha)

    def get_config(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "inplace": self.inplace}

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Softmax(_Elementwise):
    """``exp(x) / sum(exp(x))`` along ``dim``: each slice becomes probabilities.

    ``dim=None`` (PyTorch's default) picks PyTorch's legacy implicit axis: 1 for 2-D and
    4-D inputs (the classes, the channels), 0 for 0-, 1- and 3-D ones. Pass ``dim`` to be
    explicit.

    Shape:
        Any shape; the output has the input's shape.
    """

    op = "softmax"
    _fn = staticmethod(F.softmax)
    _what = "e^x / sum of e^x (sums to 1)"

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        if dim is not None and (not isinstance(dim, numbers.Integral) or isinstance(dim, bool)):
            raise ArgumentTypeError(message(type(self).__name__, "`dim` must be an int or None",
                                            "pass e.g. dim=1", f"dim={dim!r}"))
        self.dim = None if dim is None else int(dim)

    def _apply(self, x: Any) -> Tensor:
        return self._fn(x, self.dim)

    def get_config(self) -> dict[str, Any]:
        return {"dim": self.dim}

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(int(n) for n in shape)
        if self.dim is not None:
            _check_dim(self.dim, max(len(shape), 1), "dim", self.op, shape)
        return shape

    def describe(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> str:
        dim = self.dim if self.dim is not None else (0 if len(in_shape) in (0, 1, 3) else 1)
        return f"{self.op} over dim {dim}: {self._what}"

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """``x - log(sum(exp(x)))`` along ``dim`` (``dim=None``: as :class:`Softmax`).

    Shape:
        Any shape; the output has the input's shape.
    """

    op = "log_softmax"
    _fn = staticmethod(F.log_softmax)
    _what = "x - log(sum of e^x)"
