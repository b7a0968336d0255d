"""Number types of tensors, with PyTorch's names, and the conversions at the edge.

``cs.float32``, ``cs.int64``, ``cs.bool``... are NumPy dtypes, so they work wherever NumPy
takes a dtype (``np.zeros(3, cs.float32)``, ``t.dtype == cs.float32``). Models compute in
float32 (or float64 for gradient checks); integer and boolean tensors exist for labels,
indices, counts and masks, and never carry a gradient.

Two conversions, for two kinds of callers:

- :func:`float_array` (``tensor.as_array`` for tensors too) is what layers and
  ``functional`` apply to their inputs: numbers become float32 (float64 stays float64),
  booleans and strings are refused (a bool image is a mistake more often than a mask
  meant as 0/1).
- :func:`data_array` is ``cs.tensor``'s: it infers the type as ``torch.tensor`` does
  (Python ints -> int64, bools -> bool, floats -> float32; NumPy arrays keep theirs).

>>> import numpy as np, convscope as cs
>>> np.dtype(cs.float32), cs.tensor([1, 2]).dtype, cs.tensor([True]).dtype
(dtype('float32'), dtype('int64'), dtype('bool'))
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .errors import ArgumentTypeError, message
from .shapes import check_size

__all__ = ["DType", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool_",
           "float_array", "data_array", "to_dtype", "result_type", "scalar_type"]

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int8 = np.dtype(np.int8)
int16 = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
uint8 = np.dtype(np.uint8)
bool_ = np.dtype(np.bool_)
DType = np.dtype  # `cs.dtype`: isinstance(t.dtype, cs.dtype)

_FLOATS = (np.float32, np.float64)
_RANK = {"b": 0, "u": 1, "i": 1, "f": 2}  # PyTorch's categories: bool < integer < floating


def _refuse(where: str, arr: np.ndarray) -> None:
    raise ArgumentTypeError(
        message(
            where,
            f"expected numbers, got an array of dtype {arr.dtype}",
            "convert the data to a float array, e.g. np.asarray(x, dtype=np.float32)",
            f"dtype={arr.dtype}, shape={arr.shape}",
        )
    )


def _numeric(data: Any, where: str) -> np.ndarray:
    """``np.asarray(data)``, refusing None and ragged lists (callers unwrap a Tensor)."""
    if data is None:
        raise ArgumentTypeError(
            message(where, "expected numbers, got None", "pass a numpy array or a list of numbers",
                    "None")
        )
    try:
        return np.asarray(data)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise ArgumentTypeError(
            message(where, "data is not a rectangular array of numbers", "pass a numpy array",
                    f"{type(data).__name__} ({exc})")
        ) from None


def _checked_copy(arr: np.ndarray, target: np.dtype, where: str) -> np.ndarray:
    if arr.dtype != target:  # a converted copy: refuse it before allocating when too big
        check_size(arr.shape, where, itemsize=target.itemsize, what=f"the {target} copy",
                   fix="pass less data at a time (a smaller batch or image)")
    return arr.astype(target, copy=False)


def float_array(data: Any, where: str = "tensor", dtype: Any = None) -> np.ndarray:
    """Convert user data to a float32 (or float64) array, refusing what is not numeric.

    float64 arrays keep their dtype unless ``dtype`` is given; everything else numeric
    (ints, float16, lists) becomes float32. Booleans, strings, objects, None and ragged
    lists are refused with an :class:`ArgumentTypeError`. (``tensor.as_array`` is this
    for Tensors too.)
    """
    arr = _numeric(data, where)
    if arr.dtype.kind == "b":
        raise ArgumentTypeError(
            message(
                where,
                "expected numbers, got an array of booleans",
                "convert it explicitly if 0/1 values are meant: x.astype(np.float32)",
                f"dtype=bool, shape={arr.shape}",
            )
        )
    if arr.dtype.kind not in "iuf":
        _refuse(where, arr)
    if dtype is not None:
        try:
            target = np.dtype(dtype)
        except TypeError:
            target = np.dtype(object)  # refused just below
        if target.type not in _FLOATS:
            raise ArgumentTypeError(
                message(where, "dtype must be float32 or float64", "pass dtype=np.float32",
                        f"dtype={dtype!r}")
            )
    elif arr.dtype.type in _FLOATS and isinstance(data, (np.ndarray, np.generic)):
        target = arr.dtype  # lists and Python floats become float32, as in torch.tensor
    else:
        target = float32
    return _checked_copy(arr, target, where)


def to_dtype(value: Any, where: str, name: str = "dtype") -> np.dtype:
    """A ``dtype=`` argument as a NumPy dtype a tensor may have (float16 and others refused).

    >>> to_dtype("int64", "zeros"), to_dtype(float, "zeros")
    (dtype('int64'), dtype('float64'))
    """
    try:
        dt = np.dtype(value)
    except TypeError:
        dt = None
    if dt is None or dt.kind not in "biuf" or dt == np.float16 or dt.itemsize > 8:
        raise ArgumentTypeError(
            message(
                where,
                f"`{name}` must be one of convscope's tensor types: float32, float64, int64, "
                "int32, int16, int8, uint8 or bool",
                f"pass e.g. {name}=cs.float32",
                f"{name}={value!r}",
            )
        )
    return dt


def data_array(data: Any, where: str = "tensor", dtype: Any = None) -> np.ndarray:
    """``data`` as an array with ``torch.tensor``'s type rules (not copied when it need not be).

    Python bools become bool, ints int64, floats float32; NumPy arrays and tensors keep
    their type (float16 becomes float32: convscope has no half precision). ``dtype``, when
    given, converts (floats to ints truncate, as PyTorch).
    """
    arr = _numeric(data, where)
    kind = arr.dtype.kind
    if kind not in "biuf":
        _refuse(where, arr)
    if dtype is not None:
        target = to_dtype(dtype, where)
    elif isinstance(data, (np.ndarray, np.generic)):
        target = float32 if arr.dtype == np.float16 else arr.dtype
    else:  # Python numbers and lists: PyTorch's defaults
        target = {"b": bool_, "f": float32}.get(kind, int64)
    return _checked_copy(arr, target, where)


def result_type(a: np.dtype, b: np.dtype) -> np.dtype:
    """The type of ``a op b`` for two tensors: the higher category (bool < int < float)
    wins; within one category the wider type (float32 with float64 gives float64).

    >>> result_type(int64, float32), result_type(float32, float64), result_type(bool_, int32)
    (dtype('float32'), dtype('float64'), dtype('int32'))
    """
    if a == b:
        return a
    ra, rb = _RANK[a.kind], _RANK[b.kind]
    if ra != rb:
        return a if ra > rb else b
    return np.promote_types(a, b)


def scalar_type(dt: np.dtype, value: Any) -> np.dtype:
    """The type of ``tensor op number``: the tensor's, unless the number is of a higher
    category (an int tensor times 0.5 is float32, a bool tensor plus 1 is int64).

    >>> scalar_type(float32, 2), scalar_type(int64, 0.5), scalar_type(bool_, 1)
    (dtype('float32'), dtype('float32'), dtype('int64'))
    """
    if isinstance(value, (bool, np.bool_)):
        return dt
    kind = "i" if isinstance(value, numbers.Integral) else "f"
    if _RANK[kind] <= _RANK[dt.kind]:
        return dt
    return int64 if kind == "i" else float32
