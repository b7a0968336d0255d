"""Losses as modules, as in ``torch.nn``: ``loss = nn.CrossEntropyLoss()(logits, labels)``.

Each module holds its options and calls the function of :mod:`convscope.functional` with
them; class weights are buffers (saved in ``state_dict`` as PyTorch saves them).

>>> import numpy as np, convscope as cs
>>> criterion = cs.nn.CrossEntropyLoss(label_smoothing=0.1)
>>> loss = criterion(np.zeros((2, 3)), np.array([0, 2]))
>>> round(loss.item(), 4)
1.0986
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, ShapeError, message
from ..functional.dense import mse_loss
from ..functional.loss import (
    _reduction,
    binary_cross_entropy_with_logits,
    cross_entropy,
    l1_loss,
    nll_loss,
)
from ..tensor import Tensor, as_array
from .module import Module

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "BCEWithLogitsLoss"]


class _Loss(Module):
    def __init__(self, size_average: Any = None, reduce: Any = None,
                 reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _reduction(reduction, size_average, reduce, type(self).__name__)

    def _buffer(self, name: str, value: Any, vector: bool = True) -> None:
        """A weight given as an array: a buffer (in state_dict); None: a plain attribute."""
        if value is None:
            setattr(self, name, None)
            return
        arr = as_array(value.data if isinstance(value, Tensor) else value, type(self).__name__)
        if vector and arr.ndim != 1:
            raise ShapeError(message(type(self).__name__, f"{name} must be 1-D (one value per "
                                     "class)", f"pass a {name} of shape (classes,)",
                                     f"{name} shape {arr.shape}"))
        self.register_buffer(name, np.array(arr, copy=True))

    def extra_repr(self) -> str:
        parts = [] if self.reduction == "mean" else [f"reduction={self.reduction!r}"]
        for name, default in getattr(self, "_options", {}).items():
            if getattr(self, name) != default:
                parts.append(f"{name}={getattr(self, name)!r}")
        return ", ".join(parts)


def _ignore_index(value: Any, where: str) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ArgumentTypeError(message(where, "ignore_index must be an int",
                                        "use ignore_index=-100", f"ignore_index={value!r}"))
    return int(value)


class CrossEntropyLoss(_Loss):
    """Cross-entropy of logits, as ``torch.nn.CrossEntropyLoss`` (see ``F.cross_entropy``).

    Parameters
    ----------
    weight : array_like of shape (C,), optional
        A weight per class.
    ignore_index : int
        Targets with this label count for nothing.
    reduction : {'mean', 'sum', 'none'}
    label_smoothing : float
        In [0, 1].

    Shape: input (N, C), (N, C, d1, ...) or (C,); target (N,), (N, d1, ...) or () class
    indices, or probabilities of the input's shape.
    """

    _options = {"ignore_index": -100, "label_smoothing": 0.0}

    def __init__(self, weight: Any = None, size_average: Any = None, ignore_index: int = -100,
                 reduce: Any = None, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(size_average, reduce, reduction)
        self._buffer("weight", weight)
        self.ignore_index = _ignore_index(ignore_index, "CrossEntropyLoss")
        eps = label_smoothing
        if not isinstance(eps, numbers.Real) or isinstance(eps, bool) or not 0.0 <= eps <= 1.0:
            raise ArgumentError(message("CrossEntropyLoss",
                                        "label_smoothing must be a number in [0, 1]",
                                        "use label_smoothing=0.1", f"label_smoothing={eps!r}"))
        self.label_smoothing = float(eps)

    def forward(self, input: Any, target: Any) -> Tensor:
        return cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities, as ``torch.nn.NLLLoss``.

    ``NLLLoss()(log_softmax(x, 1), t)`` equals ``CrossEntropyLoss()(x, t)``.

    >>> import numpy as np, convscope as cs
    >>> cs.nn.NLLLoss(reduction="sum")(np.log([[0.5, 0.5]]), np.array([1])).item()
    0.6931471824645996
    """

    _options = {"ignore_index": -100}

    def __init__(self, weight: Any = None, size_average: Any = None, ignore_index: int = -100,
                 reduce: Any = None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self._buffer("weight", weight)
        self.ignore_index = _ignore_index(ignore_index, "NLLLoss")

    def forward(self, input: Any, target: Any) -> Tensor:
        return nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class MSELoss(_Loss):
    """Mean squared error, as ``torch.nn.MSELoss``; input and target of the same shape.

    >>> import convscope as cs
    >>> cs.nn.MSELoss()(cs.tensor([1.0, 2.0]), cs.tensor([0.0, 0.0])).item()
    2.5
    """

    def forward(self, input: Any, target: Any) -> Tensor:
        return mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error, as ``torch.nn.L1Loss``; input and target of the same shape.

    >>> import convscope as cs
    >>> cs.nn.L1Loss(reduction="sum")(cs.tensor([1.0, -2.0]), cs.tensor([0.0, 0.0])).item()
    3.0
    """

    def forward(self, input: Any, target: Any) -> Tensor:
        return l1_loss(input, target, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of logits, as ``torch.nn.BCEWithLogitsLoss``.

    Parameters
    ----------
    weight : array_like, optional
        Broadcast against the input: a weight per element.
    pos_weight : array_like, optional
        Broadcast against the input: the weight of the positive targets (per class, along
        the last axis).

    >>> import convscope as cs
    >>> loss = cs.nn.BCEWithLogitsLoss(pos_weight=[2.0])(cs.tensor([0.0]), cs.tensor([1.0]))
    >>> round(loss.item(), 6)
    1.386294
    """

    def __init__(self, weight: Any = None, size_average: Any = None, reduce: Any = None,
                 reduction: str = "mean", pos_weight: Any = None) -> None:
        super().__init__(size_average, reduce, reduction)
        self._buffer("weight", weight, vector=False)
        self._buffer("pos_weight", pos_weight, vector=False)

    def forward(self, input: Any, target: Any) -> Tensor:
        return binary_cross_entropy_with_logits(input, target, weight=self.weight,
                                                reduction=self.reduction,
                                                pos_weight=self.pos_weight)
