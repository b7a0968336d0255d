"""Making tensors, with PyTorch's names, arguments and default types.

``zeros``/``ones``/``full``/``empty``, ``rand``/``randn``/``randint``/``randperm``,
``arange``/``linspace``/``eye``, the ``*_like`` forms, and ``tensor``/``as_tensor``/
``from_numpy``. Sizes are given as ``zeros(2, 3)`` or ``zeros((2, 3))``; floats default to
float32, ``arange`` of ints and ``randint`` give int64, ``full`` takes the type of its value,
as PyTorch. Random values come from the default generator that :func:`convscope.manual_seed`
seeds, or from ``generator=`` (they are not PyTorch's numbers: the generators differ).

>>> import convscope as cs
>>> cs.zeros(2, 3).shape, cs.arange(5).dtype, cs.full((2,), 7).tolist()
((2, 3), dtype('int64'), [7, 7])
>>> _ = cs.manual_seed(0); a = cs.randn(3)
>>> _ = cs.manual_seed(0); bool((a == cs.randn(3)).all())
True
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

import numpy as np

from .device import as_device
from .dtypes import data_array, float32, int64, to_dtype
from .errors import ArgumentError, ArgumentTypeError, message
from .random import numpy_rng
from .shapes import check_size
from .tensor import Tensor, tensor

__all__ = ["tensor", "as_tensor", "from_numpy", "zeros", "ones", "full", "empty", "rand",
           "randn", "randint", "randperm", "arange", "linspace", "eye", "zeros_like",
           "ones_like", "full_like", "empty_like", "rand_like", "randn_like"]


def _shape(size: tuple, where: str) -> tuple[int, ...]:
    """``f(2, 3)``, ``f((2, 3))`` or ``f([2, 3])`` as a tuple of sizes >= 0."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    try:
        if any(isinstance(n, bool) for n in size):
            raise TypeError
        shape = tuple(operator.index(n) for n in size)
    except TypeError:
        raise ArgumentTypeError(
            message(where, "sizes must be ints", f"pass e.g. cs.{where}(2, 3) or "
                    f"cs.{where}((2, 3))", f"size {size!r:.60}")
        ) from None
    if any(n < 0 for n in shape):
        raise ArgumentError(
            message(where, "sizes must be >= 0", "pass the number of values along each dim",
                    f"size {shape}")
        )
    return shape


def _new(arr: np.ndarray, requires_grad: bool, device: Any, where: str) -> Tensor:
    if device is not None:
        as_device(device, where)
    out = Tensor._wrap(arr)
    return out.requires_grad_() if requires_grad else out


def _dtype(dtype: Any, where: str, default: np.dtype = float32) -> np.dtype:
    return default if dtype is None else to_dtype(dtype, where)


def _filled(size: tuple, value: Any, dtype: Any, requires_grad: bool, device: Any,
            where: str) -> Tensor:
    shape = _shape(size, where)
    dt = _dtype(dtype, where)
    check_size(shape, where, itemsize=dt.itemsize, what="the tensor")
    return _new(np.full(shape, value, dtype=dt), requires_grad, device, where)


def zeros(*size: Any, dtype: Any = None, device: Any = None,
          requires_grad: bool = False) -> Tensor:
    """A tensor of zeros (float32 unless ``dtype`` says otherwise)."""
    return _filled(size, 0, dtype, requires_grad, device, "zeros")


def ones(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones (float32 unless ``dtype`` says otherwise)."""
    return _filled(size, 1, dtype, requires_grad, device, "ones")


def empty(*size: Any, dtype: Any = None, device: Any = None,
          requires_grad: bool = False) -> Tensor:
    """A tensor whose values are not meant to be read (here: zeros, so runs repeat)."""
    return _filled(size, 0, dtype, requires_grad, device, "empty")


def _fill_type(value: Any, where: str) -> np.dtype:
    if isinstance(value, Tensor):
        return value.dtype
    if isinstance(value, (bool, np.bool_)):
        return np.dtype(np.bool_)
    if isinstance(value, numbers.Integral):
        return int64
    if isinstance(value, numbers.Real):
        return float32
    raise ArgumentTypeError(
        message(where, "the fill value must be a number", "pass e.g. 0.5", f"{value!r:.40}")
    )


def full(size: Any, fill_value: Any, *, dtype: Any = None, device: Any = None,
         requires_grad: bool = False) -> Tensor:
    """A tensor of ``size`` filled with ``fill_value``; its type follows the value (int64 for
    an int, bool for a bool, float32 for a float) unless ``dtype`` is given."""
    dt = _fill_type(fill_value, "full") if dtype is None else dtype
    value = fill_value.item() if isinstance(fill_value, Tensor) else fill_value
    return _filled((size,), value, dt, requires_grad, device, "full")


def _random(size: tuple, draw: Any, dtype: Any, generator: Any, requires_grad: bool,
            device: Any, where: str) -> Tensor:
    shape = _shape(size, where)
    dt = _dtype(dtype, where)
    if dt.kind != "f":
        raise ArgumentTypeError(
            message(where, f"{where} draws floating-point values", "pass dtype=cs.float32 or "
                    "cs.float64 (cs.randint draws integers)", f"dtype={dt}")
        )
    check_size(shape, where, itemsize=dt.itemsize, what="the tensor")
    rng = numpy_rng(generator, "generator")
    return _new(draw(rng, shape, dt), requires_grad, device, where)


def rand(*size: Any, generator: Any = None, dtype: Any = None, device: Any = None,
         requires_grad: bool = False) -> Tensor:
    """Values drawn uniformly from [0, 1)."""
    return _random(size, lambda r, s, d: r.random(s, dtype=d), dtype, generator, requires_grad,
                   device, "rand")


def randn(*size: Any, generator: Any = None, dtype: Any = None, device: Any = None,
          requires_grad: bool = False) -> Tensor:
    """Values drawn from the standard normal distribution (mean 0, variance 1)."""
    return _random(size, lambda r, s, d: r.standard_normal(s, dtype=d), dtype, generator,
                   requires_grad, device, "randn")


def randint(low: int, high: Any = None, size: Any = None, *, generator: Any = None,
            dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Integers drawn uniformly from [low, high) (int64): ``randint(high, size)`` or
    ``randint(low, high, size)``, ``size`` a tuple."""
    if size is None:
        low, high, size = 0, low, high
    if size is None or not isinstance(size, (tuple, list)):
        raise ArgumentTypeError(
            message("randint", "size must be a tuple", "pass e.g. cs.randint(0, 10, (3,))",
                    f"size={size!r:.40}")
        )
    shape = _shape(tuple(size), "randint")
    lo, hi = (operator.index(v) for v in (low, high))
    if lo >= hi:
        raise ArgumentError(
            message("randint", "low must be below high", "pass e.g. randint(0, 10, (3,))",
                    f"low={lo}, high={hi}")
        )
    dt = _dtype(dtype, "randint", int64)
    check_size(shape, "randint", itemsize=8, what="the tensor")
    values = numpy_rng(generator, "generator").integers(lo, hi, shape, dtype=np.int64)
    return _new(values.astype(dt, copy=False), requires_grad, device, "randint")


def randperm(n: int, *, generator: Any = None, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> Tensor:
    """A random order of 0 .. n-1 (int64)."""
    (count,) = _shape((n,), "randperm")
    values = numpy_rng(generator, "generator").permutation(count)
    return _new(values.astype(_dtype(dtype, "randperm", int64)), requires_grad, device,
                "randperm")


def arange(start: Any, end: Any = None, step: Any = 1, *, dtype: Any = None,
           device: Any = None, requires_grad: bool = False) -> Tensor:
    """``start, start + step, ...`` below ``end`` (``arange(end)`` counts from 0); int64 when
    every argument is an int, else float32."""
    if end is None:
        start, end = 0, start
    values = [v.item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
        raise ArgumentTypeError(
            message("arange", "start, end and step must be numbers", "pass e.g. arange(0, 10, 2)",
                    f"start={start!r:.20}, end={end!r:.20}, step={step!r:.20}")
        )
    lo, hi, by = values
    if by == 0 or (hi - lo) * by < 0 or not all(math.isfinite(v) for v in values):
        raise ArgumentError(
            message("arange", "the step must be nonzero, finite, and lead from start to end",
                    "pass e.g. arange(0, 10, 2) or arange(10, 0, -1)",
                    f"start={lo}, end={hi}, step={by}")
        )
    ints = all(isinstance(v, numbers.Integral) for v in values)
    dt = _dtype(dtype, "arange", int64 if ints else float32)
    count = math.ceil((hi - lo) / by)
    check_size((count,), "arange", itemsize=dt.itemsize, what="the tensor")
    exact = np.arange(count, dtype=np.int64 if ints else np.float64) * by + lo
    return _new(exact.astype(dt), requires_grad, device, "arange")


def linspace(start: float, end: float, steps: int, *, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end``, both included."""
    (n,) = _shape((steps,), "linspace")
    dt = _dtype(dtype, "linspace")
    calc = dt.type if dt.kind == "f" else np.float64  # PyTorch computes in the result type
    lo, hi = calc(start), calc(end)
    step = (hi - lo) / calc(max(n - 1, 1))
    i = np.arange(n).astype(calc)
    half = n // 2  # PyTorch's formula: from the start for the first half, from the end after
    values = np.where(i < half, lo + step * i, hi - step * (calc(n - 1) - i))
    if n == 1:
        values = np.full(1, lo)
    return _new(values.astype(dt), requires_grad, device, "linspace")


def eye(n: int, m: int | None = None, *, dtype: Any = None, device: Any = None,
        requires_grad: bool = False) -> Tensor:
    """The identity matrix, n x m (m = n by default)."""
    rows, cols = _shape((n, n if m is None else m), "eye")
    dt = _dtype(dtype, "eye")
    check_size((rows, cols), "eye", itemsize=dt.itemsize, what="the tensor")
    return _new(np.eye(rows, cols, dtype=dt), requires_grad, device, "eye")


def _like(input: Any, dtype: Any, where: str) -> tuple[tuple[int, ...], Any]:
    """The shape and type (``dtype`` if given) of the tensor to make like ``input``."""
    if not isinstance(input, Tensor):
        raise ArgumentTypeError(
            message(where, "expected a Tensor", "pass a tensor (cs.tensor(x) converts)",
                    type(input).__name__)
        )
    return input.shape, input.dtype if dtype is None else dtype


def zeros_like(input: Tensor, *, dtype: Any = None, device: Any = None,
               requires_grad: bool = False) -> Tensor:
    shape, dt = _like(input, dtype, "zeros_like")
    return zeros(shape, dtype=dt, device=device, requires_grad=requires_grad)


def ones_like(input: Tensor, *, dtype: Any = None, device: Any = None,
              requires_grad: bool = False) -> Tensor:
    shape, dt = _like(input, dtype, "ones_like")
    return ones(shape, dtype=dt, device=device, requires_grad=requires_grad)


def empty_like(input: Tensor, *, dtype: Any = None, device: Any = None,
               requires_grad: bool = False) -> Tensor:
    shape, dt = _like(input, dtype, "empty_like")
    return empty(shape, dtype=dt, device=device, requires_grad=requires_grad)


def full_like(input: Tensor, fill_value: Any, *, dtype: Any = None, device: Any = None,
              requires_grad: bool = False) -> Tensor:
    shape, dt = _like(input, dtype, "full_like")
    return full(shape, fill_value, dtype=dt, device=device, requires_grad=requires_grad)


def rand_like(input: Tensor, *, generator: Any = None, dtype: Any = None, device: Any = None,
              requires_grad: bool = False) -> Tensor:
    shape, dt = _like(input, dtype, "rand_like")
    return rand(shape, generator=generator, dtype=dt, device=device, requires_grad=requires_grad)


def randn_like(input: Tensor, *, generator: Any = None, dtype: Any = None, device: Any = None,
               requires_grad: bool = False) -> Tensor:
    shape, dt = _like(input, dtype, "randn_like")
    return randn(shape, generator=generator, dtype=dt, device=device,
                 requires_grad=requires_grad)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """``data`` as a tensor, sharing memory when it can (a tensor or a NumPy array of the
    wanted type is not copied), as ``torch.as_tensor``.

    >>> import numpy as np, convscope as cs
    >>> a = np.zeros(3, np.float32); t = cs.as_tensor(a); a[0] = 5; t[0].item()
    5.0
    """
    if device is not None:
        as_device(device, "as_tensor")
    target = None if dtype is None else to_dtype(dtype, "as_tensor")
    if isinstance(data, Tensor):
        return data if target is None else data.to(target)
    if isinstance(data, np.ndarray):
        arr = data_array(data, "as_tensor", target)
        return Tensor._wrap(arr)
    return tensor(data, dtype=target)


def from_numpy(ndarray: np.ndarray) -> Tensor:
    """A tensor sharing ``ndarray``'s memory: writing one changes the other, as PyTorch.

    >>> import numpy as np, convscope as cs
    >>> a = np.arange(3); t = cs.from_numpy(a); t[0] = 7; a.tolist(), t.dtype
    ([7, 1, 2], dtype('int64'))
    """
    if not isinstance(ndarray, np.ndarray):
        raise ArgumentTypeError(
            message("from_numpy", "expected a NumPy array", "pass an np.ndarray, or use "
                    "cs.tensor(data) for lists", type(ndarray).__name__)
        )
    if ndarray.dtype.kind not in "biuf" or ndarray.dtype == np.float16:
        raise ArgumentTypeError(
            message("from_numpy", f"arrays of dtype {ndarray.dtype} cannot become tensors",
                    "convert first, e.g. a.astype(np.float32)", f"dtype={ndarray.dtype}")
        )
    return Tensor._wrap(ndarray)
