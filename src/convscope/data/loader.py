"""Mini-batches: cut a dataset into (images, labels) pieces, optionally shuffled."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, DataError, message
from .datasets import Dataset

__all__ = ["batches"]


def _as_arrays(data: object) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(data, Dataset):
        return data.images, data.labels
    if isinstance(data, (tuple, list)) and len(data) == 2:
        images, labels = np.asarray(data[0]), np.asarray(data[1])
        if images.ndim < 1 or labels.ndim < 1 or len(images) != len(labels):
            raise DataError(
                message(
                    "batches",
                    "images and labels must have the same first dimension N",
                    "pass (images of shape (N, ...), labels of shape (N,))",
                    f"images shape {images.shape}, labels shape {labels.shape}",
                )
            )
        return images, labels
    raise ArgumentTypeError(
        message(
            "batches",
            "expected a Dataset or a pair (images, labels)",
            "pass dataset or (images, labels)",
            f"type {type(data).__name__}",
        )
    )


def batches(
    data: Dataset | tuple[np.ndarray, np.ndarray],
    batch_size: int,
    shuffle: bool = False,
    rng: np.random.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(images, labels)`` mini-batches.

    Parameters
    ----------
    data : Dataset or (ndarray of shape (N, ...), ndarray of shape (N,))
    batch_size : int
        Items per batch; the last batch may be smaller unless ``drop_last``.
    shuffle : bool
        Visit the items in a random order drawn from ``rng`` (a new order each call).
    rng : numpy.random.Generator, optional
        Required when ``shuffle`` is true, so that runs are reproducible by construction.
    drop_last : bool
        Skip a last batch smaller than ``batch_size``.

    Yields
    ------
    images : ndarray of shape (B, ...), a copy
    labels : ndarray of shape (B,)

    Examples
    --------
    >>> import numpy as np
    >>> x, y = np.zeros((5, 1, 2, 2), np.float32), np.arange(5)
    >>> [b[1].tolist() for b in batches((x, y), 2)]
    [[0, 1], [2, 3], [4]]
    >>> [b[1].tolist() for b in batches((x, y), 2, shuffle=True, rng=np.random.default_rng(0))]
    [[2, 4], [3, 0], [1]]
    """
    images, labels = _as_arrays(data)
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool):
        raise ArgumentTypeError(
            message(
                "batches",
                "batch_size must be an int",
                "pass e.g. batch_size=32",
                f"batch_size={batch_size!r}",
            )
        )
    if batch_size < 1:
        raise ArgumentError(
            message(
                "batches",
                "batch_size must be at least 1",
                "pass e.g. batch_size=32",
                f"batch_size={batch_size}",
            )
        )
    if shuffle and not isinstance(rng, np.random.Generator):
        raise ArgumentError(
            message(
                "batches",
                "shuffle=True needs an explicit random generator",
                "pass rng=np.random.default_rng(seed)",
                f"rng={rng!r}",
            )
        )
    n = len(labels)
    order = rng.permutation(n) if shuffle else np.arange(n)  # type: ignore[union-attr]
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        yield images[idx], labels[idx]
