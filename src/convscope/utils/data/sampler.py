"""Samplers: the order in which a DataLoader visits a dataset, as in ``torch.utils.data``.

Random samplers draw from their ``generator`` (a :class:`convscope.Generator`) or, without
one, from the default generator that :func:`convscope.manual_seed` seeds. A new order is
drawn each time iteration starts (each epoch).

>>> import convscope as cs
>>> list(BatchSampler(SequentialSampler(range(5)), batch_size=2, drop_last=False))
[[0, 1], [2, 3], [4]]
>>> g = cs.Generator().manual_seed(0)
>>> sorted(RandomSampler(range(5), generator=g)) == [0, 1, 2, 3, 4]
True
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Sequence
from typing import Any, Generic, TypeVar

from ...errors import ArgumentError, ArgumentTypeError, message
from ...random import Generator, numpy_rng
from .dataset import _check_generator, _length

__all__ = [
    "Sampler",
    "SequentialSampler",
    "RandomSampler",
    "SubsetRandomSampler",
    "BatchSampler",
]

T_co = TypeVar("T_co", covariant=True)


def _positive_int(value: Any, name: str, where: str, example: str) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ArgumentTypeError(
            message(where, f"{name} must be an int", f"pass e.g. {example}", f"{name}={value!r}")
        )
    if value <= 0:
        raise ArgumentError(
            message(
                where,
                f"{name} should be a positive integer value",
                f"pass e.g. {example}",
                f"{name}={value!r}",
            )
        )
    return int(value)


def _bool(value: Any, name: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise ArgumentTypeError(
            message(where, f"{name} must be True or False", f"pass {name}=True", f"{value!r}")
        )
    return value


class Sampler(Generic[T_co]):
    """Base class: an iterable of indices (or of lists of indices, for batch samplers)."""

    def __init__(self, data_source: Any = None) -> None:
        pass

    def __iter__(self) -> Iterator[T_co]:
        raise NotImplementedError(
            message(
                type(self).__name__,
                "a Sampler subclass must define __iter__(self)",
                "yield dataset indices",
            )
        )


class SequentialSampler(Sampler[int]):
    """Indices ``0, 1, ..., len(data_source) - 1`` in order."""

    def __init__(self, data_source: Any) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self)))

    def __len__(self) -> int:
        return _length(self.data_source, "SequentialSampler")


class RandomSampler(Sampler[int]):
    """Indices in a random order, as ``torch.utils.data.RandomSampler``.

    Parameters
    ----------
    data_source : map-style dataset
    replacement : bool
        Draw ``num_samples`` indices independently (with repetition) instead of a
        permutation.
    num_samples : int, optional
        Defaults to ``len(data_source)``. Without replacement and larger than the dataset,
        whole permutations follow each other, the last one cut short (PyTorch's rule).
    generator : convscope.Generator, optional
    """

    def __init__(
        self,
        data_source: Any,
        replacement: bool = False,
        num_samples: int | None = None,
        generator: Generator | None = None,
    ) -> None:
        where = "RandomSampler"
        self.data_source = data_source
        self.replacement = _bool(replacement, "replacement", where)
        self._num_samples = num_samples
        self.generator = _check_generator(generator, where)
        if num_samples is not None:
            _positive_int(num_samples, "num_samples", where, "num_samples=1000")
        elif _length(data_source, where) == 0:  # PyTorch refuses it too
            raise ArgumentError(message(where, "the dataset is empty: there is nothing to shuffle",
                                        "check the dataset (len(dataset) is 0)",
                                        "num_samples=0"))

    @property
    def num_samples(self) -> int:
        if self._num_samples is None:
            return _length(self.data_source, "RandomSampler")
        return int(self._num_samples)

    def __iter__(self) -> Iterator[int]:
        n = _length(self.data_source, "RandomSampler")
        total = self.num_samples
        rng = numpy_rng(self.generator)
        if self.replacement:
            if n == 0:
                return
            yield from rng.integers(0, n, size=total).tolist()
            return
        for _ in range(total // max(n, 1)):
            yield from rng.permutation(n).tolist()
        if n:
            yield from rng.permutation(n)[: total % n].tolist()

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler[int]):
    """The given ``indices`` in a random order (a new one each epoch)."""

    def __init__(self, indices: Sequence[int], generator: Generator | None = None) -> None:
        self.indices = indices
        self.generator = _check_generator(generator, "SubsetRandomSampler")

    def __iter__(self) -> Iterator[int]:
        for i in numpy_rng(self.generator).permutation(len(self.indices)).tolist():
            yield self.indices[i]

    def __len__(self) -> int:
        return len(self.indices)


class BatchSampler(Sampler[list[int]]):
    """Groups the indices of ``sampler`` into lists of ``batch_size``.

    The last batch may be smaller unless ``drop_last``; ``len`` is the number of batches.

    Examples
    --------
    >>> list(BatchSampler(range(7), batch_size=3, drop_last=True))
    [[0, 1, 2], [3, 4, 5]]
    >>> len(BatchSampler(range(7), batch_size=3, drop_last=False))
    3
    """

    def __init__(self, sampler: Any, batch_size: int, drop_last: bool) -> None:
        where = "BatchSampler"
        self.sampler = sampler
        self.batch_size = _positive_int(batch_size, "batch_size", where, "batch_size=32")
        self.drop_last = _bool(drop_last, "drop_last", where)

    def __iter__(self) -> Iterator[list[int]]:
        batch: list[int] = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = _length(self.sampler, "BatchSampler")
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
