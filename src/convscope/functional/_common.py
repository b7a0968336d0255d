"""Argument handling shared by the operations: tensors from arrays, batch axes, dims."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import shapes
from ..errors import ArgumentError, ArgumentTypeError, ShapeError, message
from ..tensor import Tensor, as_array

_PAD_MODES = ("zeros", "reflect", "replicate", "circular")


def as_tensor(value: Any, where: str, name: str = "input", keep_type: bool = False) -> Tensor:
    """A float Tensor as is; anything else converted to a float32 tensor (checked): integer
    tensors as integer arrays are, bool ones refused as bool arrays are. ``keep_type``
    keeps a tensor of any type (operations that only move values: ``cat``, ``flatten``)."""
    if isinstance(value, Tensor):
        if keep_type or value.data.dtype.kind == "f":
            return value
        return Tensor._wrap(as_array(value, where, np.float32))
    if value is None:
        raise ArgumentTypeError(message(where, f"`{name}` is None", f"pass an array as `{name}`"))
    arr = as_array(value, where, np.float32)
    if not arr.flags.c_contiguous:  # e.g. a np.broadcast_to view: the copy is real memory
        shapes.check_size(
            arr.shape,
            where,
            what=f"the contiguous copy of `{name}`",
            fix="pass less data at a time (a smaller batch or image)",
        )
    return Tensor._wrap(np.ascontiguousarray(arr))


def _batched(x: Tensor, where: str, what: str = "input") -> tuple[Tensor, bool]:
    """Accept (N, C, H, W) or an unbatched (C, H, W) volume; refuse every other rank."""
    if x.ndim == 4:
        return x, False
    if x.ndim == 3:
        return x.reshape((1,) + x.shape), True
    raise ShapeError(
        message(
            where,
            f"expected a 4-D {what} (N, C, H, W) or a 3-D volume (C, H, W), got {x.ndim}-D",
            "images read as H x W x C need x.transpose(2, 0, 1); add a batch axis with x[None]",
            f"{what} shape {x.shape}",
        )
    )


def _dtype(*ts: Tensor | None) -> np.dtype:
    return np.result_type(*(t.dtype for t in ts if t is not None))


def _arr(t: Tensor | None, dtype: np.dtype) -> np.ndarray | None:
    return None if t is None else np.ascontiguousarray(t.data, dtype=dtype)


def _unbatch(y: Tensor, unbatched: bool) -> Tensor:
    return y.reshape(y.shape[1:]) if unbatched else y


def _check_dim(dim: Any, ndim: int, name: str, where: str, shape: tuple[int, ...]) -> None:
    """An axis argument: an int in ``[-ndim, ndim)`` (PyTorch's rule)."""
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise ArgumentTypeError(
            message(
                where,
                f"`{name}` must be an int (an axis)",
                f"pass e.g. {name}=1",
                f"{name}={dim!r}",
            )
        )
    if not -ndim <= dim < ndim:
        raise ArgumentError(
            message(
                where,
                f"`{name}` must be in [{-ndim}, {ndim - 1}] for a {ndim}-D input",
                f"pass e.g. {name}=-1",
                f"{name}={dim}, input shape {shape}",
            )
        )
