"""Turning a list of samples into one batch: ``default_collate`` and ``default_convert``.

PyTorch's rules, with convscope's types:

- convscope Tensors and float NumPy arrays are stacked into one :class:`convscope.Tensor`
  (float32 stays float32, float64 stays float64);
- Python floats become a float64 Tensor, NumPy float scalars a Tensor of their dtype;
- integers (Python ints, NumPy integer scalars and arrays) and booleans become an integer or
  bool Tensor (int64 for Python ints, the NumPy dtype otherwise), so ``labels.size(0)`` and
  ``(predicted == labels).sum()`` work as in PyTorch;
- strings stay as they are (the list, or tuple, of them); dicts, tuples and lists are
  collated field by field (a tuple sample gives a list, as in PyTorch; a namedtuple keeps
  its type).

>>> import numpy as np
>>> images, labels = default_collate([(np.zeros((1, 2, 2)), 3), (np.ones((1, 2, 2)), 5)])
>>> type(images).__name__, images.shape, labels
('Tensor', (2, 1, 2, 2), tensor([3, 5], dtype=int64))
"""

from __future__ import annotations

import collections.abc
import numbers
from typing import Any

import numpy as np

from ...errors import ArgumentTypeError, ShapeError, message
from ...tensor import Tensor

__all__ = ["default_collate", "default_convert"]

_WHERE = "default_collate"
_KINDS = "convscope Tensors, NumPy arrays, numbers, strings, dicts, tuples or lists"


def _integers(values: np.ndarray) -> Tensor:
    """Integer or boolean batch data: a Tensor of that type (labels), as PyTorch."""
    return Tensor._wrap(values)


def _is_pil(value: Any) -> bool:
    module = type(value).__module__
    return module.startswith("PIL.") and hasattr(value, "mode") and hasattr(value, "size")


def _refuse(elem: Any) -> ArgumentTypeError:
    if _is_pil(elem):
        return ArgumentTypeError(
            message(
                _WHERE,
                "the samples are PIL images, which cannot be stacked into a batch",
                "convert them in the dataset's transform, e.g. "
                "transforms.Compose([..., transforms.ToTensor()])",
                f"a {type(elem).__name__} of mode {elem.mode} and size {elem.size}",
            )
        )
    return ArgumentTypeError(
        message(
            _WHERE,
            f"a batch must contain {_KINDS}",
            "return one of those from the dataset's __getitem__, or pass collate_fn=",
            f"a sample of type {type(elem).__name__}",
        )
    )


def _stack(arrays: list[np.ndarray], what: str) -> np.ndarray:
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        listed = ", ".join(str(s) for s in sorted(shapes)[:4])
        raise ShapeError(
            message(
                _WHERE,
                f"the {what} of one batch must all have the same shape to be stacked",
                "resize them to one size in the dataset's transform (e.g. "
                "transforms.Resize((h, w))), or pass a collate_fn that keeps them in a list",
                f"shapes {listed}",
            )
        )
    return np.stack(arrays)


def _numeric_array(arr: np.ndarray, elem: Any) -> np.ndarray:
    if arr.dtype.kind not in "biuf":
        raise ArgumentTypeError(
            message(
                _WHERE,
                f"NumPy arrays of dtype {arr.dtype} cannot be put into a batch",
                "return numbers from the dataset (e.g. arr.astype(np.float32))",
                f"a sample array of dtype {arr.dtype}",
            )
        )
    return arr


def _to_batch(arr: np.ndarray) -> Any:
    """A stacked NumPy array -> a float Tensor, or an integer or bool one."""
    if arr.dtype.kind == "f":
        return Tensor(arr if arr.dtype in (np.float32, np.float64) else arr.astype(np.float32))
    return _integers(arr)


def default_collate(batch: list[Any]) -> Any:
    """Merge a list of samples into a batch, as ``torch.utils.data.default_collate``.

    Parameters
    ----------
    batch : list
        Samples as a dataset's ``__getitem__`` returns them.

    Returns
    -------
    The same structure as one sample, each leaf stacked along a new first axis (see the
    module's rules for the types).

    Raises
    ------
    ArgumentTypeError
        A sample that cannot be batched (a PIL image: add ``ToTensor()``; None; objects).
    ShapeError
        Arrays of different shapes in one batch, or sequences of different lengths.

    Examples
    --------
    >>> default_collate([{"x": 1.5, "name": "a"}, {"x": 2.5, "name": "b"}])["x"]
    tensor([1.5, 2.5], dtype=float64)
    """
    if not isinstance(batch, collections.abc.Sequence) or not batch:
        raise ArgumentTypeError(
            message(
                _WHERE,
                "batch must be a non-empty list of samples",
                "pass e.g. [dataset[0], dataset[1]]",
                f"{type(batch).__name__} {batch!r:.60}",
            )
        )
    elem = batch[0]
    if isinstance(elem, Tensor):
        arrays = [np.asarray(_tensor_values(b, elem)) for b in batch]
        return _to_batch(_stack(arrays, "tensors"))
    if isinstance(elem, np.ndarray):
        arrays = [_numeric_array(np.asarray(b), elem) for b in batch]
        return _to_batch(_stack(arrays, "arrays"))
    if isinstance(elem, np.generic) and elem.dtype.kind in "biuf":
        return _to_batch(np.array(batch))
    if isinstance(elem, bool):
        return _integers(np.array(batch, dtype=bool))
    if isinstance(elem, numbers.Integral):
        return _integers(np.array(batch, dtype=np.int64))
    if isinstance(elem, float):
        return Tensor(np.array(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        return {key: default_collate([d[key] for d in batch]) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return type(elem)(*(default_collate(samples) for samples in zip(*batch, strict=True)))
    if isinstance(elem, collections.abc.Sequence):
        sizes = {len(b) for b in batch}
        if len(sizes) > 1:
            raise ShapeError(
                message(
                    _WHERE,
                    "each sample of the batch must have the same number of fields",
                    "return the same structure from every __getitem__ call",
                    "lengths " + ", ".join(map(str, sorted(sizes))),
                )
            )
        return [default_collate(samples) for samples in zip(*batch, strict=True)]
    raise _refuse(elem)


def _tensor_values(value: Any, elem: Tensor) -> np.ndarray:
    if not isinstance(value, Tensor):
        raise ArgumentTypeError(
            message(
                _WHERE,
                "a batch mixes convscope Tensors with other types",
                "return the same types from every __getitem__ call",
                f"{type(elem).__name__} and {type(value).__name__}",
            )
        )
    return np.asarray(value.numpy())


def default_convert(data: Any) -> Any:
    """One sample, not batched: float NumPy arrays become Tensors, the rest is kept.

    Used by :class:`DataLoader` with ``batch_size=None`` (no automatic batching), as
    ``torch.utils.data.default_convert``.

    >>> import numpy as np
    >>> default_convert((np.zeros(2), 7))
    [tensor([0., 0.], dtype=float64), 7]
    """
    if isinstance(data, Tensor):
        return data
    if isinstance(data, np.ndarray):
        return _to_batch(data) if data.dtype.kind in "biuf" else data
    if isinstance(data, (str, bytes)):
        return data
    if isinstance(data, collections.abc.Mapping):
        return {key: default_convert(value) for key, value in data.items()}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, collections.abc.Sequence):
        return [default_convert(d) for d in data]
    return data
