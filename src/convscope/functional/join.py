"""Where branches meet: concatenation, stacking and addition of volumes, and flattening.

These are the operations of graph-shaped networks: ResNet adds a block's input to its
output (``add``), U-Net joins an upsampled volume with a skip connection along the depth
(``cat(..., dim=1)``). A mismatch names every operand's shape and what to change.

>>> import numpy as np, convscope as cs
>>> a, b = np.ones((1, 64, 56, 56)), np.ones((1, 32, 56, 56))
>>> cs.cat([a, b], dim=1).shape                         # 56x56x64 + 56x56x32 -> 56x56x96
(1, 96, 56, 56)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, ShapeError, message
from ..tensor import Tensor, make
from ..tracing import traced
from ._common import _check_dim, as_tensor


def _volume(shape: tuple[int, ...]) -> str:
    """``(1, 64, 56, 56)`` -> ``'56x56x64'`` (H x W x D, the slides' words); others as is."""
    if len(shape) == 4:
        return f"{shape[2]}x{shape[3]}x{shape[1]}"
    return str(shape)


def _operands(tensors: Any, where: str) -> list[Tensor]:
    if isinstance(tensors, (Tensor, np.ndarray)) or not isinstance(tensors, Sequence):
        raise ArgumentTypeError(
            message(where, "expected a list or tuple of tensors",
                    f"pass e.g. cs.{where}([a, b], dim=1)", f"{type(tensors).__name__}")
        )
    if not tensors:
        raise ArgumentError(
            message(where, "expected at least one tensor, got an empty list",
                    "pass the tensors to join", "[]")
        )
    return [as_tensor(t, where, f"tensors[{i}]", keep_type=True) for i, t in enumerate(tensors)]


def _listing(ts: list[Tensor]) -> str:
    return ", ".join(f"tensor {i} is {t.shape}" for i, t in enumerate(ts))


@traced("cat")
def cat(tensors: Sequence[Any], dim: int = 0) -> Tensor:
    """Join tensors along an existing axis ``dim``; all other axes must match.

    ``cat([a, b], dim=1)`` of two (N, C, H, W) volumes stacks their feature maps: an
    H x W x C1 volume and an H x W x C2 one give H x W x (C1 + C2).

    Parameters
    ----------
    tensors : sequence of array_like, all with the same number of axes
    dim : int

    Returns
    -------
    Tensor whose ``dim`` axis is the sum of the operands' and the others theirs.
    """
    ts = _operands(tensors, "cat")
    nd = ts[0].ndim
    if any(t.ndim != nd for t in ts) or nd == 0:
        raise ShapeError(
            message("cat", "tensors must have the same number of axes (at least 1)",
                    "reshape or add axes so that all have the same rank", _listing(ts))
        )
    _check_dim(dim, nd, "dim", "cat", ts[0].shape)
    d = int(dim) % nd
    rest = [t.shape[:d] + t.shape[d + 1:] for t in ts]
    if any(r != rest[0] for r in rest):
        bad = next(i for i, r in enumerate(rest) if r != rest[0])
        fix = (
            "resize the volumes to the same height and width first (interpolate, pooling, "
            "padding or a strided conv)" if nd == 4 and d == 1 else
            f"make every axis other than {d} equal, or join along another dim"
        )
        raise ShapeError(
            message("cat", f"tensors must match except along dim {d}; tensor 0 is "
                    f"{ts[0].shape}, tensor {bad} is {ts[bad].shape}", fix,
                    f"{_listing(ts)}, dim={dim}")
        )
    y = np.concatenate([t.data for t in ts], axis=d)
    cuts = np.cumsum([t.shape[d] for t in ts])[:-1]

    def backward(g: np.ndarray) -> tuple:
        return tuple(np.split(g, cuts, axis=d))

    return make(y, tuple(ts), backward, "cat")


@traced("stack")
def stack(tensors: Sequence[Any], dim: int = 0) -> Tensor:
    """Join tensors of the same shape along a new axis ``dim``.

    >>> import convscope as cs
    >>> cs.stack([cs.tensor([1.0, 2.0]), cs.tensor([3.0, 4.0])], dim=1).numpy()
    array([[1., 3.],
           [2., 4.]], dtype=float32)
    """
    ts = _operands(tensors, "stack")
    if any(t.shape != ts[0].shape for t in ts):
        bad = next(i for i, t in enumerate(ts) if t.shape != ts[0].shape)
        raise ShapeError(
            message("stack", f"tensors must all have the same shape; tensor 0 is "
                    f"{ts[0].shape}, tensor {bad} is {ts[bad].shape}",
                    "reshape or resize them to one shape, or use cat to join along an axis",
                    _listing(ts))
        )
    nd = ts[0].ndim + 1
    _check_dim(dim, nd, "dim", "stack", ts[0].shape)
    d = int(dim) % nd
    y = np.stack([t.data for t in ts], axis=d)

    def backward(g: np.ndarray) -> tuple:
        return tuple(np.take(g, i, axis=d) for i in range(len(ts)))

    return make(y, tuple(ts), backward, "stack")


@traced("add")
def add(input: Any, other: Any, alpha: float = 1) -> Tensor:
    """``input + alpha * other``, with NumPy/PyTorch broadcasting (a residual connection).

    >>> import convscope as cs
    >>> cs.add(cs.tensor([1.0, 2.0]), cs.tensor([10.0, 20.0]), alpha=2).numpy()
    array([21., 42.], dtype=float32)
    """
    a = as_tensor(input, "add")
    if not isinstance(alpha, numbers.Real) or isinstance(alpha, bool):
        raise ArgumentTypeError(
            message("add", "`alpha` must be a number", "pass e.g. alpha=1", f"alpha={alpha!r}")
        )
    if isinstance(other, numbers.Real) and not isinstance(other, bool):
        b = Tensor._wrap(np.asarray(other, dtype=a.dtype))
    else:
        b = as_tensor(other, "add", "other")
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ShapeError(
            message(
                "add", f"volumes {_volume(a.shape)} and {_volume(b.shape)} cannot be added "
                "(the shapes must be equal, or 1 where they differ)",
                "make both the same shape: a residual shortcut that changes size or depth "
                "needs its own layer (e.g. a 1x1 conv with the block's stride)",
                f"shapes {a.shape} and {b.shape}",
            )
        ) from None
    scale = float(alpha)
    y = a.data + b.data if scale == 1 else a.data + scale * b.data
    return make(y, (a, b), lambda g: (g, g if scale == 1 else g * scale), "add")


@traced("flatten")
def flatten(input: Any, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge axes ``start_dim..end_dim`` into one: ``torch.flatten`` (start_dim=0 by default:
    everything, batch included; ``nn.Flatten`` and ``functional.flatten`` start at 1).

    >>> import convscope as cs, numpy as np
    >>> cs.flatten(np.ones((2, 3, 4))).shape, cs.flatten(np.ones((2, 3, 4)), 1).shape
    ((24,), (2, 12))
    """
    x = as_tensor(input, "flatten", keep_type=True)
    if x.ndim == 0:
        x = x.reshape(1)
    nd = x.ndim
    for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
        _check_dim(value, nd, name, "flatten", x.shape)
    a, b = int(start_dim) % nd, int(end_dim) % nd
    if a > b:
        raise ArgumentError(
            message("flatten", "start_dim must not come after end_dim",
                    "use e.g. flatten(x, 1, -1)", f"start_dim={start_dim}, end_dim={end_dim}")
        )
    return x.reshape(x.shape[:a] + (math.prod(x.shape[a : b + 1]),) + x.shape[b + 1 :])
