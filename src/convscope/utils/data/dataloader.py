"""``DataLoader``: batches from a map-style dataset, as ``torch.utils.data.DataLoader``.

Batches are loaded in the main process (``num_workers=0``, the only value convscope takes):
a training step's convolutions already use every core through the kernels' threads.

>>> import numpy as np, convscope as cs
>>> from convscope.utils.data import DataLoader, TensorDataset
>>> ds = TensorDataset(np.zeros((10, 1, 4, 4), np.float32), np.arange(10))
>>> loader = DataLoader(ds, batch_size=4, shuffle=True, generator=cs.Generator().manual_seed(0))
>>> [labels.tolist() for _, labels in loader]
[[4, 6, 2, 7], [3, 5, 9, 0], [8, 1]]
>>> len(loader)
3
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator
from typing import Any

from ...errors import ArgumentError, ArgumentTypeError, message
from ...random import Generator
from .collate import default_collate, default_convert
from .dataset import _check_generator, _length
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler

__all__ = ["DataLoader"]

_WHERE = "DataLoader"


def _refuse(what: str, fix: str, received: str) -> ArgumentError:
    return ArgumentError(message(_WHERE, what, fix, received))


def _check_workers(
    num_workers: Any,
    timeout: Any,
    prefetch_factor: Any,
    persistent_workers: Any,
    multiprocessing_context: Any,
) -> None:
    if not isinstance(num_workers, numbers.Integral) or isinstance(num_workers, bool):
        raise ArgumentTypeError(
            message(_WHERE, "num_workers must be an int", "pass num_workers=0",
                    f"num_workers={num_workers!r}")
        )
    if num_workers != 0:
        raise _refuse(
            f"num_workers={num_workers} is not supported: convscope loads every batch in the "
            "main process (its kernels already use all cores for the training step)",
            "pass num_workers=0 (the default); for slow image decoding, decode once and keep "
            "the arrays (e.g. convscope.data.ImageFolder, which loads a folder into memory)",
            f"num_workers={num_workers}",
        )
    if not isinstance(timeout, numbers.Real) or timeout < 0:
        raise _refuse("timeout option should be non-negative", "leave timeout=0",
                      f"timeout={timeout!r}")
    if prefetch_factor is not None:
        raise _refuse("prefetch_factor only applies to worker processes (num_workers > 0)",
                      "leave prefetch_factor=None", f"prefetch_factor={prefetch_factor!r}")
    if persistent_workers:
        raise _refuse("persistent_workers needs worker processes (num_workers > 0)",
                      "leave persistent_workers=False",
                      f"persistent_workers={persistent_workers!r}")
    if multiprocessing_context is not None:
        raise _refuse("multiprocessing_context needs worker processes (num_workers > 0)",
                      "leave multiprocessing_context=None",
                      f"multiprocessing_context={multiprocessing_context!r}")


class DataLoader:
    """Iterate over a dataset in mini-batches, as ``torch.utils.data.DataLoader``.

    Parameters
    ----------
    dataset : map-style dataset
        Anything with ``__getitem__`` and ``__len__``: a :class:`Dataset`,
        :class:`TensorDataset`, :class:`ImageFolder`, a :class:`convscope.data.Dataset`.
    batch_size : int or None
        Samples per batch (default 1). ``None`` turns batching off: each sample comes
        alone, converted by :func:`default_convert`.
    shuffle : bool
        A new random order every epoch, drawn from ``generator``.
    sampler : Sampler or iterable of indices, optional
        The order of the indices (excludes ``shuffle``).
    batch_sampler : iterable of lists of indices, optional
        Whole batches of indices (excludes ``batch_size``, ``shuffle``, ``sampler`` and
        ``drop_last``).
    num_workers : int
        Only 0: batches are loaded in the main process (anything else is refused).
    collate_fn : callable, optional
        Merges a list of samples into a batch; :func:`default_collate` by default (images
        become a convscope Tensor, integer labels a NumPy int64 array).
    pin_memory : bool
        Accepted and ignored (there is no GPU memory to pin).
    drop_last : bool
        Skip a last batch smaller than ``batch_size``.
    generator : convscope.Generator, optional
        Draws the shuffling order; the default generator (seeded by
        :func:`convscope.manual_seed`) when not given.
    timeout, worker_init_fn, multiprocessing_context, prefetch_factor, persistent_workers,
    pin_memory_device, in_order
        PyTorch's worker options, accepted at the values that mean "no workers".

    Raises
    ------
    ArgumentError
        ``num_workers`` other than 0, ``shuffle`` with a ``sampler``, ``batch_sampler``
        with another batching option, ``batch_size=None`` with ``drop_last``.

    Examples
    --------
    >>> import numpy as np
    >>> from convscope.utils.data import TensorDataset
    >>> ds = TensorDataset(np.zeros((5, 3), np.float32), np.arange(5))
    >>> [y.tolist() for _, y in DataLoader(ds, batch_size=2, drop_last=True)]
    [[0, 1], [2, 3]]
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler: Sampler[Any] | Any = None,
        batch_sampler: Sampler[list[int]] | Any = None,
        num_workers: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Callable[[int], None] | None = None,
        multiprocessing_context: Any = None,
        generator: Generator | None = None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        pin_memory_device: str = "",
        in_order: bool = True,
    ) -> None:
        if not hasattr(dataset, "__getitem__"):
            raise ArgumentTypeError(
                message(
                    _WHERE,
                    "dataset must be a map-style dataset (a class with __getitem__ and "
                    "__len__)",
                    "wrap arrays as TensorDataset(images, labels), or subclass "
                    "convscope.utils.data.Dataset",
                    f"dataset of type {type(dataset).__name__}",
                )
            )
        _check_workers(num_workers, timeout, prefetch_factor, persistent_workers,
                       multiprocessing_context)
        if shuffle not in (None, False, True):
            raise ArgumentTypeError(
                message(_WHERE, "shuffle must be True or False", "pass shuffle=True",
                        f"shuffle={shuffle!r}")
            )
        if not isinstance(drop_last, bool):
            raise ArgumentTypeError(
                message(_WHERE, "drop_last must be True or False", "pass drop_last=True",
                        f"drop_last={drop_last!r}")
            )
        if collate_fn is not None and not callable(collate_fn):
            raise ArgumentTypeError(
                message(_WHERE, "collate_fn must be callable",
                        "pass a function that takes a list of samples",
                        f"collate_fn={collate_fn!r:.60}")
            )
        generator = _check_generator(generator, _WHERE)
        if sampler is not None and shuffle:
            raise _refuse("the sampler option is mutually exclusive with shuffle",
                          "shuffle in the sampler (e.g. RandomSampler), or drop sampler=",
                          "shuffle=True and a sampler")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise _refuse(
                    "batch_sampler option is mutually exclusive with batch_size, shuffle, "
                    "sampler, and drop_last",
                    "leave those at their defaults; the batch sampler decides the batches",
                    f"batch_size={batch_size!r}, shuffle={shuffle!r}, "
                    f"sampler={'given' if sampler is not None else None}, "
                    f"drop_last={drop_last!r}",
                )
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise _refuse(
                "batch_size=None turns automatic batching off and is mutually exclusive "
                "with drop_last",
                "pass a batch_size, or drop_last=False",
                "batch_size=None, drop_last=True",
            )
        if sampler is None:
            if not hasattr(dataset, "__len__"):
                _length(dataset, _WHERE)  # raises: the default samplers need a length
            sampler = (
                RandomSampler(dataset, generator=generator) if shuffle
                else SequentialSampler(dataset)
            )
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = 0
        self.generator = generator
        self.pin_memory = bool(pin_memory)
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        if collate_fn is None:
            collate_fn = default_collate if batch_sampler is not None else default_convert
        self.collate_fn = collate_fn

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None

    def _fetch(self, indices: list[int]) -> list[Any]:
        getitems = getattr(self.dataset, "__getitems__", None)
        if callable(getitems):
            return list(getitems(indices))
        return [self.dataset[i] for i in indices]

    def __iter__(self) -> Iterator[Any]:
        """A new pass over the data (a new order when shuffling)."""
        if self._auto_collation:
            for indices in self.batch_sampler:
                yield self.collate_fn(self._fetch(list(indices)))
        else:
            for index in self.sampler:
                yield self.collate_fn(self.dataset[index])

    def __len__(self) -> int:
        """Batches per epoch: ``ceil(N / batch_size)``, or ``floor`` with ``drop_last``."""
        source = self.batch_sampler if self._auto_collation else self.sampler
        return _length(source, _WHERE)

    def __repr__(self) -> str:
        try:
            count = f", {len(self)} batches"
        except (TypeError, ValueError):  # a sampler without a length
            count = ""
        return f"DataLoader({type(self.dataset).__name__}, batch_size={self.batch_size}{count})"
