"""Branches in one line: a residual block and a concatenation, as containers.

The spec language writes them as ``residual(<chain>)``, ``residual(<chain>; <shortcut>)``
and ``concat(<chain>; <chain>; ...)``; in Python they are ordinary containers that a trace
records through (their ``forward`` is an add or a ``cat`` of their branches):

>>> import numpy as np, convscope as cs
>>> from convscope import nn
>>> block = nn.Residual(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, seed=0), nn.ReLU()))
>>> block(np.zeros((1, 8, 16, 16))).shape
(1, 8, 16, 16)
>>> both = nn.Concat(nn.Identity(), nn.Conv2d(8, 4, 1, seed=0))
>>> both(np.zeros((1, 8, 16, 16))).shape      # 16x16x8 and 16x16x4 -> 16x16x12
(1, 12, 16, 16)
"""

from __future__ import annotations

from typing import Any

from ..errors import ArgumentTypeError, ShapeError, message
from .module import Module

__all__ = ["Residual", "Concat"]


def _volume(shape: tuple[int, ...]) -> str:
    return f"{shape[2]}x{shape[3]}x{shape[1]}" if len(shape) == 4 else str(shape)


class Residual(Module):
    """``body(x) + x``, or ``body(x) + shortcut(x)``: ResNet's skip connection.

    Parameters
    ----------
    body : Module
        The branch that learns what to add (e.g. conv, batch norm, ReLU, conv, batch norm).
    shortcut : Module, optional
        What the input goes through to meet the body's output (e.g. a 1x1 conv with stride 2
        where the body changes the volume); None: the input itself.
    """

    def __init__(self, body: Module, shortcut: Module | None = None) -> None:
        super().__init__()
        for name, value in (("body", body), ("shortcut", shortcut)):
            if value is not None and not isinstance(value, Module):
                raise ArgumentTypeError(message("Residual", f"`{name}` must be a Module",
                                                "pass layers such as nn.Sequential(...)",
                                                type(value).__name__))
        self.body = body
        self.shortcut = shortcut

    def forward(self, x: Any) -> Any:
        y = self.body(x)
        skip = x if self.shortcut is None else self.shortcut(x)
        if tuple(y.shape) != tuple(skip.shape):
            raise ShapeError(message(
                "residual", f"the body gives {_volume(tuple(y.shape))} but the "
                + ("input" if self.shortcut is None else "shortcut") + f" is "
                f"{_volume(tuple(skip.shape))}: they cannot be added",
                "keep the body's height, width and depth, or give the block a shortcut that "
                "matches them, e.g. residual(...; conv(C, 1, stride=2) | batchnorm)"))
        return y + skip


class Concat(Module):
    """The branches' outputs joined along the depth: ``cat([b(x) for b in branches], dim=1)``.

    U-Net's skip connection is ``Concat(Identity(), <down, ..., up>)``: the input's own
    volume beside what the inner path made of it.
    """

    def __init__(self, *branches: Module, dim: int = 1) -> None:
        super().__init__()
        if not branches:
            raise ArgumentTypeError(message("Concat", "needs at least one branch",
                                            "pass e.g. Concat(nn.Identity(), nn.Conv2d(...))"))
        for i, b in enumerate(branches):
            if not isinstance(b, Module):
                raise ArgumentTypeError(message("Concat", f"branch {i} is not a Module",
                                                "pass layers", type(b).__name__))
            setattr(self, str(i), b)
        self.dim = dim

    def __len__(self) -> int:
        return len(self._modules)

    def forward(self, x: Any) -> Any:
        from ..functional import cat

        outs = [b(x) for b in self._modules.values()]
        sizes = {tuple(o.shape[2:]) for o in outs}
        if self.dim == 1 and len(sizes) > 1:
            listing = ", ".join(f"branch {i} gives {_volume(tuple(o.shape))}"
                                for i, o in enumerate(outs))
            raise ShapeError(message("concat", "the branches' maps differ in height or width: "
                                     f"{listing}", "make every branch keep the same height and "
                                     "width (pooling in one branch needs upsampling back)"))
        return cat(outs, dim=self.dim)
