"""Constant folding for ONNX import: the shape arithmetic that exporters leave in graphs.

``torch.onnx.export`` writes the pads of a reflect-padded conv as a small computation on
constants (ConstantOfShape, Concat, Reshape, Slice, Transpose, Cast) and ``x.view(x.size(0),
-1)`` as Shape -> Gather -> Unsqueeze -> Concat -> Reshape. :func:`fold` evaluates such nodes
with NumPy when every input is known, so that the layers after them see plain constants.

The dynamic batch size is unknown at import time; ``Shape`` reports it as :data:`BATCH`, a
number no real graph uses, which survives Gather/Concat/Unsqueeze/Cast unchanged and is read
back as "the batch axis" by Reshape. Arithmetic on it gives some other number, which the
layers then refuse. Every result is size-checked before it is made, so a tiny file cannot
ask for gigabytes (``ConstantOfShape`` of a huge shape, ``Gather`` with many indices).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["FOLD_OPS", "BATCH", "MAX_ELEMENTS", "FoldError", "fold", "slice_positions"]

BATCH = 2**40 + 7
"""Stands for the dynamic batch size inside folded shape arithmetic."""
MAX_ELEMENTS = 2**26
"""Largest folded constant, in elements (256 MB of float32)."""


class FoldError(Exception):
    """A node that cannot be folded; the importer turns it into a FileFormatError."""


def _size(shape: Sequence[int]) -> None:
    if any(int(d) < 0 for d in shape) or math.prod(int(d) for d in shape) > MAX_ELEMENTS:
        raise FoldError(f"it would make a constant of shape {tuple(int(d) for d in shape)}, "
                        f"more than {MAX_ELEMENTS} values or a negative size")


def slice_positions(dim: int, start: int, end: int, step: int) -> np.ndarray:
    """The positions ONNX's Slice takes along an axis of length ``dim`` (ONNX's clamping)."""
    if step == 0:
        raise FoldError("Slice has a step of 0")
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return np.arange(start, end, step, dtype=np.int64)


def _ints(x: np.ndarray | None) -> list[int]:
    return [] if x is None else [int(v) for v in np.asarray(x).reshape(-1)]


def _axes(a: dict[str, Any], inputs: list[Any], i: int) -> list[int]:
    return list(a["axes"]) if "axes" in a else _ints(inputs[i] if len(inputs) > i else None)


def _reshape(x: np.ndarray, shape: list[int], allowzero: int) -> np.ndarray:
    target = [x.shape[i] if d == 0 and not allowzero else d for i, d in enumerate(shape)]
    try:
        return x.reshape(target)
    except ValueError as exc:
        raise FoldError(f"Reshape of {x.shape} to {shape} is impossible ({exc})") from None


def _slice(x: np.ndarray, a: dict[str, Any], inputs: list[Any], opset: int) -> np.ndarray:
    if opset < 10:
        starts, ends = list(a["starts"]), list(a["ends"])
        axes = list(a.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = _ints(inputs[1]), _ints(inputs[2])
        axes = _ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else \
            list(range(len(starts)))
        steps = _ints(inputs[4]) if len(inputs) > 4 and inputs[4] is not None else \
            [1] * len(starts)
    for axis, s, e, st in zip(axes, starts, ends, steps, strict=True):
        axis = axis % max(x.ndim, 1)
        x = np.take(x, slice_positions(x.shape[axis], s, e, st), axis=axis)
    return x


def _unsqueeze(x: np.ndarray, axes: list[int]) -> np.ndarray:
    rank = x.ndim + len(axes)
    for axis in sorted(a % rank for a in axes):
        x = np.expand_dims(x, axis)
    return x


def _divide(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if x.dtype.kind in "iu" and y.dtype.kind in "iu":
        if np.any(y == 0):
            raise FoldError("integer division by zero")
        return (np.trunc(x / y)).astype(np.result_type(x, y))
    return x / y


def _gather(x: np.ndarray, idx: np.ndarray, axis: int) -> np.ndarray:
    axis = axis % max(x.ndim, 1)
    _size(list(x.shape[:axis]) + list(idx.shape) + list(x.shape[axis + 1:]))
    idx = np.where(idx < 0, idx + x.shape[axis], idx)
    if idx.size and (idx.min() < 0 or idx.max() >= x.shape[axis]):
        raise FoldError("Gather indices out of range")
    return np.take(x, idx, axis=axis)


def _constant_of_shape(shape: list[int], a: dict[str, Any], to_array: Callable) -> np.ndarray:
    _size(shape)
    value = to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
    return np.full(shape, value.reshape(-1)[0], dtype=value.dtype)


FOLD_OPS = ("Shape", "ConstantOfShape", "Concat", "Reshape", "Slice", "Transpose", "Cast",
            "Unsqueeze", "Squeeze", "Gather", "Add", "Sub", "Mul", "Div", "Neg", "Identity")


def fold(op: str, a: dict[str, Any], inputs: list[np.ndarray | None], opset: int,
         dtype_of: Callable[[int], Any], to_array: Callable) -> np.ndarray:
    """Evaluate one node whose inputs are all known; raise :class:`FoldError` if it cannot."""
    x = inputs[0] if inputs else None
    if x is None:
        raise FoldError("its first input is empty")
    if op == "Shape":
        dims = np.asarray(x.shape, dtype=np.int64)
        return dims[slice(a.get("start"), a.get("end"))]
    if op == "ConstantOfShape":
        return _constant_of_shape(_ints(x), a, to_array)
    if op == "Concat":
        parts = [np.asarray(v) for v in inputs if v is not None]
        _size([sum(p.size for p in parts)])
        return np.concatenate(parts, axis=int(a.get("axis", 0)))
    if op == "Reshape":
        shape = _ints(inputs[1]) if opset >= 5 else list(a["shape"])
        return _reshape(x, shape, int(a.get("allowzero", 0)))
    if op == "Slice":
        return _slice(x, a, inputs, opset)
    if op == "Transpose":
        return np.transpose(x, a.get("perm"))
    if op == "Cast":
        return x.astype(dtype_of(int(a["to"])))
    if op == "Unsqueeze":
        return _unsqueeze(x, _axes(a, inputs, 1))
    if op == "Squeeze":
        axes = _axes(a, inputs, 1)
        return np.squeeze(x, axis=tuple(axes) if axes else None)
    if op == "Gather":
        return _gather(x, np.asarray(inputs[1]), int(a.get("axis", 0)))
    if op == "Neg":
        return -x
    if op == "Identity":
        return x
    y = inputs[1] if len(inputs) > 1 else None
    if y is None:
        raise FoldError(f"{op} needs two inputs")
    _size(np.broadcast_shapes(x.shape, y.shape))
    if op == "Add":
        return x + y
    if op == "Sub":
        return x - y
    if op == "Mul":
        return x * y
    return _divide(x, y)
