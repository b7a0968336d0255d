"""Map-style datasets as in ``torch.utils.data``: Dataset, TensorDataset, ConcatDataset,
Subset and random_split.

A map-style dataset is anything with ``__getitem__(index)`` and ``__len__()``; the classes
here are the usual building blocks, with PyTorch's names, arguments and semantics.

>>> import numpy as np
>>> from convscope.utils.data import TensorDataset, random_split
>>> ds = TensorDataset(np.arange(10.0).reshape(5, 2), np.arange(5))
>>> x, y = ds[1]
>>> x, y
(array([2., 3.]), np.int64(1))
>>> [len(part) for part in random_split(ds, [0.6, 0.4])]
[3, 2]
"""

from __future__ import annotations

import bisect
import itertools
import math
import numbers
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, Generic, TypeVar

import numpy as np

from ...errors import ArgumentError, ArgumentTypeError, ShapeError, message
from ...random import Generator, numpy_rng
from ...tensor import Tensor

__all__ = ["Dataset", "TensorDataset", "ConcatDataset", "Subset", "random_split"]

T_co = TypeVar("T_co", covariant=True)


class Dataset(Generic[T_co]):
    """The base class of map-style datasets: subclasses define ``__getitem__`` and ``__len__``.

    ``a + b`` concatenates two datasets (a :class:`ConcatDataset`), as in PyTorch.

    Examples
    --------
    >>> class Squares(Dataset):
    ...     def __len__(self):
    ...         return 4
    ...     def __getitem__(self, i):
    ...         return i * i
    >>> both = Squares() + Squares()
    >>> len(both), both[5]
    (8, 1)
    """

    def __getitem__(self, index: Any) -> T_co:
        raise NotImplementedError(
            message(
                type(self).__name__,
                "a Dataset subclass must define __getitem__(self, index)",
                "return one sample for an index in [0, len(self))",
            )
        )

    def __add__(self, other: Dataset[T_co]) -> ConcatDataset[T_co]:
        return ConcatDataset([self, other])


def _length(dataset: Any, where: str) -> int:
    try:
        return len(dataset)
    except TypeError:
        raise ArgumentTypeError(
            message(
                where,
                "the dataset has no length (no __len__)",
                "give a map-style dataset: a class with __getitem__ and __len__",
                f"{type(dataset).__name__}",
            )
        ) from None


def _index_error(where: str, index: Any, n: int) -> IndexError:
    return IndexError(
        message(
            where,
            f"index {index} is out of range for a dataset of {n} samples",
            f"use an index in [-{n}, {n})" if n else "the dataset is empty",
        )
    )


class TensorDataset(Dataset[tuple[Any, ...]]):
    """Samples made of the i-th row of each given tensor, as ``torch.utils.data.TensorDataset``.

    Parameters
    ----------
    *tensors : Tensor or ndarray
        All with the same first dimension N. NumPy arrays are accepted too (their rows come
        back as arrays; convscope Tensors hold float values only, so keep integer labels
        as an int array).

    Examples
    --------
    >>> import numpy as np, convscope as cs
    >>> ds = TensorDataset(cs.tensor(np.zeros((3, 1, 4, 4))), np.array([0, 2, 1]))
    >>> len(ds), ds[2][0].shape, int(ds[2][1])
    (3, (1, 4, 4), 1)
    """

    def __init__(self, *tensors: Any) -> None:
        where = "TensorDataset"
        if not tensors:
            raise ArgumentError(
                message(where, "give at least one tensor", "e.g. TensorDataset(images, labels)")
            )
        for k, t in enumerate(tensors):
            if not isinstance(t, (Tensor, np.ndarray)):
                raise ArgumentTypeError(
                    message(
                        where,
                        "each argument must be a convscope Tensor or a NumPy array",
                        "wrap lists with cs.tensor(...) or np.asarray(...)",
                        f"argument {k} of type {type(t).__name__}",
                    )
                )
            if t.ndim == 0:
                raise ShapeError(
                    message(
                        where,
                        "each tensor needs a first dimension to index samples by",
                        "pass arrays of shape (N, ...)",
                        f"argument {k} is 0-d",
                    )
                )
        sizes = [int(t.shape[0]) for t in tensors]
        if len(set(sizes)) != 1:
            raise ShapeError(
                message(
                    where,
                    "size mismatch between tensors: they must have the same first dimension",
                    "pass one row per sample in every tensor",
                    "first dimensions " + ", ".join(map(str, sizes)),
                )
            )
        self.tensors = tuple(tensors)

    def __getitem__(self, index: Any) -> tuple[Any, ...]:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return int(self.tensors[0].shape[0])


class ConcatDataset(Dataset[T_co]):
    """Several datasets one after the other, as ``torch.utils.data.ConcatDataset``.

    Attributes
    ----------
    datasets : list
    cumulative_sizes : list of int
        ``cumulative_sizes[k]`` is the number of samples in datasets ``0..k``.

    Examples
    --------
    >>> import numpy as np
    >>> ds = ConcatDataset([TensorDataset(np.arange(3)), TensorDataset(np.arange(10, 12))])
    >>> len(ds), ds.cumulative_sizes, int(ds[3][0]), int(ds[-1][0])
    (5, [3, 5], 10, 11)
    """

    def __init__(self, datasets: Iterable[Any]) -> None:
        if not isinstance(datasets, Iterable) or isinstance(datasets, (str, bytes)):
            raise ArgumentTypeError(
                message(
                    "ConcatDataset",
                    "datasets must be a list of datasets",
                    "pass e.g. ConcatDataset([train_a, train_b])",
                    f"{type(datasets).__name__}",
                )
            )
        self.datasets = list(datasets)
        if not self.datasets:
            raise ArgumentError(
                message(
                    "ConcatDataset",
                    "datasets should not be an empty iterable",
                    "pass at least one dataset",
                )
            )
        sizes = [_length(d, "ConcatDataset") for d in self.datasets]
        self.cumulative_sizes = list(itertools.accumulate(sizes))

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index: int) -> T_co:
        n = len(self)
        if not isinstance(index, numbers.Integral) or isinstance(index, bool):
            raise ArgumentTypeError(
                message(
                    "ConcatDataset",
                    "an index must be an int",
                    "index one sample at a time",
                    f"index of type {type(index).__name__}",
                )
            )
        if not -n <= index < n:
            raise _index_error("ConcatDataset", index, n)
        index = int(index) + n if index < 0 else int(index)
        k = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[k - 1] if k else 0
        return self.datasets[k][index - start]


class Subset(Dataset[T_co]):
    """The samples of ``dataset`` at ``indices``, in that order (``torch.utils.data.Subset``).

    Examples
    --------
    >>> import numpy as np
    >>> part = Subset(TensorDataset(np.arange(10, 15)), [4, 0])
    >>> len(part), int(part[0][0]), part.indices
    (2, 14, [4, 0])
    """

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        if not hasattr(dataset, "__getitem__"):
            raise ArgumentTypeError(
                message(
                    "Subset",
                    "dataset must be a map-style dataset (with __getitem__)",
                    "pass a Dataset",
                    f"{type(dataset).__name__}",
                )
            )
        if not hasattr(indices, "__len__") or not hasattr(indices, "__getitem__"):
            raise ArgumentTypeError(
                message(
                    "Subset",
                    "indices must be a sequence of ints",
                    "pass e.g. indices=[0, 5, 7]",
                    f"{type(indices).__name__}",
                )
            )
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, index: Any) -> T_co:
        if isinstance(index, list):
            return self.dataset[[self.indices[i] for i in index]]
        return self.dataset[self.indices[index]]

    def __getitems__(self, indices: list[int]) -> list[T_co]:
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__([self.indices[i] for i in indices])
        return [self.dataset[self.indices[i]] for i in indices]

    def __len__(self) -> int:
        return len(self.indices)


def _split_lengths(n: int, lengths: Sequence[Any]) -> list[int]:
    """PyTorch's rule: fractions summing to 1 -> floor(n * f) each, the remainder shared
    one by one from the first split on; otherwise integer lengths summing to n."""
    where = "random_split"
    values = list(lengths)
    if not values or not all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values
    ):
        raise ArgumentTypeError(
            message(
                where,
                "lengths must be a non-empty list of ints (or of fractions summing to 1)",
                "pass e.g. [800, 200] or [0.8, 0.2]",
                f"lengths={lengths!r:.80}",
            )
        )
    total = sum(values)
    if math.isclose(total, 1) and total <= 1:  # PyTorch: a sum just above 1 is refused
        for i, frac in enumerate(values):
            if not 0 <= frac <= 1:
                raise ArgumentError(
                    message(
                        where,
                        f"fraction at index {i} is not between 0 and 1",
                        "pass fractions in [0, 1] summing to 1",
                        f"lengths={values!r}",
                    )
                )
        out = [int(math.floor(n * frac)) for frac in values]
        for i in range(n - sum(out)):
            out[i % len(out)] += 1
        for i, length in enumerate(out):
            if length == 0:
                warnings.warn(
                    f"random_split: length of split at index {i} is 0; this might result in "
                    "an empty dataset",
                    UserWarning,
                    stacklevel=3,
                )
        return out
    if not all(isinstance(v, numbers.Integral) and v >= 0 for v in values):
        raise ArgumentError(
            message(
                where,
                "lengths must be ints >= 0 (or fractions summing to 1)",
                "pass e.g. [800, 200] or [0.8, 0.2]",
                f"lengths={values!r}",
            )
        )
    if total != n:
        raise ArgumentError(
            message(
                where,
                f"the lengths sum to {total}, not to the dataset's length {n}",
                "make the lengths add up to len(dataset), or pass fractions such as [0.8, 0.2]",
                f"lengths={values!r}",
            )
        )
    return [int(v) for v in values]


def random_split(
    dataset: Any, lengths: Sequence[float], generator: Generator | None = None
) -> list[Subset[Any]]:
    """Split ``dataset`` at random into non-overlapping :class:`Subset` s of given lengths.

    Parameters
    ----------
    dataset : map-style dataset
    lengths : sequence of int, or of float summing to 1
        Fractions give ``floor(len(dataset) * f)`` samples each, and the remaining samples
        go one by one to the first splits (PyTorch's rule).
    generator : convscope.Generator, optional
        Draws the permutation; the default generator (:func:`convscope.manual_seed`) if
        not given.

    Returns
    -------
    list of Subset

    Examples
    --------
    >>> import numpy as np, convscope as cs
    >>> ds = TensorDataset(np.arange(10))
    >>> a, b = random_split(ds, [0.7, 0.3], generator=cs.Generator().manual_seed(0))
    >>> len(a), len(b), sorted(a.indices + b.indices) == list(range(10))
    (7, 3, True)
    """
    n = _length(dataset, "random_split")
    sizes = _split_lengths(n, lengths)
    order = numpy_rng(_check_generator(generator, "random_split")).permutation(n).tolist()
    ends = itertools.accumulate(sizes)
    return [Subset(dataset, order[end - size : end]) for end, size in zip(ends, sizes, strict=True)]


def _check_generator(generator: Any, where: str) -> Any:
    """``generator`` if it is None, a convscope.Generator or a np.random.Generator."""
    if generator is None or isinstance(generator, (Generator, np.random.Generator)):
        return generator
    raise ArgumentTypeError(
        message(
            where,
            "generator must be a convscope.Generator (or a np.random.Generator)",
            "pass generator=cs.Generator().manual_seed(0), or leave it out to use the default "
            "generator that cs.manual_seed seeds",
            f"generator={generator!r:.60}",
        )
    )
