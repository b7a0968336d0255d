"""Datasets: images with labels, read from folders or built in.

A :class:`Dataset` is three aligned things: ``images`` of shape (N, C, H, W) float32 in
[0, 1], ``labels`` of shape (N,) int64, and the ``classes`` names that labels index.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, DataError, message
from .images import (
    IMAGE_EXTENSIONS,
    as_path,
    check_channels,
    image_size,
    load_image,
    normalize_size,
)

__all__ = ["Dataset", "ImageFolder", "digits", "load_dataset", "scan_class_folders"]


@dataclass(repr=False, eq=False)
class Dataset:
    """Images and their labels.

    Parameters
    ----------
    images : ndarray of shape (N, C, H, W), float32
        Values in [0, 1].
    labels : ndarray of shape (N,), int64
        Class indices in ``[0, len(classes))``.
    classes : list of str
        Class names; ``classes[labels[i]]`` names image ``i``.
    name : str
        Where the data came from, for messages and reprs.

    Examples
    --------
    >>> import numpy as np
    >>> ds = Dataset(np.zeros((4, 1, 8, 8), np.float32), np.array([0, 1, 0, 1]), ["a", "b"])
    >>> ds, len(ds)
    (Dataset(4 images of 8x8x1, 2 classes), 4)
    >>> [len(part) for part in ds.split((0.5, 0.5))]
    [2, 2]
    """

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    name: str = field(default="")

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        labels = np.asarray(self.labels)
        where = f"Dataset {self.name!r}" if self.name else "Dataset"
        if images.ndim != 4 or images.dtype.kind not in "biuf":
            raise DataError(
                message(
                    where,
                    "images must be a numeric array of shape (N, C, H, W)",
                    "stack the images along a first axis; add a channel axis to grayscale",
                    f"shape {images.shape}, dtype {images.dtype}",
                )
            )
        if labels.ndim != 1 or len(labels) != len(images) or labels.dtype.kind not in "iu":
            raise DataError(
                message(
                    where,
                    "labels must be integers of shape (N,), one per image",
                    "pass one integer class index per image",
                    f"{len(images)} images, labels shape {labels.shape} dtype {labels.dtype}",
                )
            )
        self.classes = [str(c) for c in self.classes]
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self.classes)):
            raise DataError(
                message(
                    where,
                    f"labels must lie in [0, {len(self.classes)}) to index the classes",
                    "pass one class name per label value",
                    f"labels in [{labels.min()}, {labels.max()}], {len(self.classes)} classes",
                )
            )
        self.images = np.ascontiguousarray(images, dtype=np.float32)
        self.labels = labels.astype(np.int64, copy=False)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        """Image ``index`` (C, H, W) and its label, as a map-style dataset of PyTorch's."""
        return self.images[index], int(self.labels[index])

    def __repr__(self) -> str:
        _, c, h, w = self.images.shape
        name = f"{self.name!r}, " if self.name else ""
        return f"Dataset({name}{len(self)} images of {h}x{w}x{c}, {len(self.classes)} classes)"

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, indices: np.ndarray | Sequence[int], name: str | None = None) -> Dataset:
        """A new Dataset of the images at ``indices`` (copied), same classes."""
        idx = np.asarray(indices, dtype=np.int64)
        return Dataset(
            self.images[idx],
            self.labels[idx],
            list(self.classes),
            self.name if name is None else name,
        )

    def counts(self) -> np.ndarray:
        """Images per class, shape (len(classes),)."""
        return np.bincount(self.labels, minlength=len(self.classes))

    def split(
        self, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
    ) -> tuple[Dataset, ...]:
        """Split into disjoint parts (train, val, test by default), class by class.

        Part sizes are ``round(cumsum(fractions) * N)`` differences, exactly; each class
        is shuffled with ``np.random.default_rng(seed)`` and shared out among the parts in
        proportion (to within one image). Each part keeps the images in their original
        order (shuffle when batching). Same seed, same split.

        Parameters
        ----------
        fractions : sequence of float
            Positive shares summing to 1, one per part.
        seed : int

        Returns
        -------
        tuple of Dataset, one per fraction; together they hold every image exactly once.
        """
        f = np.asarray(fractions, dtype=np.float64)
        if f.ndim != 1 or len(f) < 1 or np.any(~np.isfinite(f)) or np.any(f < 0):
            raise ArgumentError(
                message(
                    "Dataset.split",
                    "fractions must be non-negative numbers, one per part",
                    "pass e.g. fractions=(0.8, 0.1, 0.1)",
                    f"fractions={tuple(fractions)!r}",
                )
            )
        if abs(f.sum() - 1.0) > 1e-6:
            raise ArgumentError(
                message(
                    "Dataset.split",
                    f"fractions must sum to 1, not {f.sum():g}",
                    "pass e.g. fractions=(0.8, 0.1, 0.1)",
                    f"fractions={tuple(fractions)!r}",
                )
            )
        rng = np.random.default_rng(seed)
        # Rank each image within its class at random, as a fraction q in (0, 1); sorting
        # all images by q spreads every class evenly along one line, which is then cut
        # at the fractions: exact part sizes, and each class shared out in proportion.
        n = len(self)
        q = np.empty(n, np.float64)
        for label in range(len(self.classes)):
            members = np.flatnonzero(self.labels == label)
            q[rng.permutation(members)] = (np.arange(len(members)) + 0.5) / max(len(members), 1)
        order = np.lexsort((rng.random(n), q))
        bounds = np.rint(np.cumsum(f)[:-1] * n).astype(np.int64)
        names = ("train", "val", "test") if len(f) == 3 else [f"part{k}" for k in range(len(f))]
        out = []
        for k, idx in enumerate(np.split(order, bounds)):
            idx.sort()  # keep the original order within each part
            out.append(self.subset(idx, f"{self.name}:{names[k]}" if self.name else names[k]))
        return tuple(out)


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _image_files(folder: str, valid: Callable[[str], bool] | None = None) -> list[str]:
    found = []
    for here, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not _is_hidden(d))
        for name in sorted(files):
            path = os.path.join(here, name)
            if _is_hidden(name):
                continue
            if valid(path) if valid is not None else _has_image_extension(name):
                found.append(path)
    return found


def _has_image_extension(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def scan_class_folders(
    root: str,
    where: str,
    valid: Callable[[str], bool] | None = None,
    allow_empty: bool = False,
) -> tuple[list[str], list[str], list[int]]:
    """The classes, image files and labels of a folder with one subfolder per class.

    Classes are the subfolder names in sorted order (hidden folders skipped); the files of
    each class are searched recursively, in sorted order, hidden files skipped, keeping
    those with an image extension (or those ``valid(path)`` accepts).

    Returns
    -------
    classes : list of str
    files : list of str
        One path per image, class after class.
    labels : list of int
        The class index of each file.

    Raises
    ------
    DataError
        Root missing or not a folder, no class folders, a class folder without images
        (unless ``allow_empty``).
    """
    if not os.path.exists(root):
        raise DataError(
            message(where, "the folder does not exist", "check the path and working folder")
        )
    if not os.path.isdir(root):
        raise DataError(
            message(
                where,
                "the path is a file, not a folder",
                "give the folder that holds one subfolder per class",
            )
        )
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not _is_hidden(e.name))
    if not classes:
        loose = [f for f in os.listdir(root) if _has_image_extension(f)]
        hint = f"; {len(loose)} images lie directly in it" if loose else ""
        raise DataError(
            message(
                where,
                f"the folder has no class subfolders{hint}",
                "put each class's images in its own subfolder, e.g. root/cat/*.png",
            )
        )
    files: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        found = _image_files(os.path.join(root, name), valid)
        if not found and not allow_empty:
            raise DataError(
                message(
                    where,
                    f"class folder {name!r} holds no images",
                    "add images (" + ", ".join(sorted(IMAGE_EXTENSIONS)) + ") or remove it",
                    f"folder {os.path.join(root, name)!r}",
                )
            )
        files += found
        labels += [label] * len(found)
    return classes, files, labels


class ImageFolder(Dataset):
    """A Dataset read from one subfolder per class, as torchvision's ImageFolder.

    ::

        root/
            cat/   001.png  002.jpg ...
            dog/   a.png ...

    Classes are the subfolder names in sorted order (hidden folders skipped); images are
    the files with an image extension (see ``IMAGE_EXTENSIONS``), searched recursively.

    Parameters
    ----------
    root : str or PathLike
    size : int or (int, int), optional
        Resize every image to this; required when the images differ in size.
    channels : {3, 1}
    max_pixels : int, optional
        Per-image limit passed to :func:`load_image`.

    Attributes
    ----------
    root : str
    files : list of str
        The file of each image, aligned with ``images`` and ``labels``.

    Raises
    ------
    DataError
        Root missing or not a folder, no class folders, a class folder without images,
        images of different sizes without ``size``.
    ImageError
        An image that cannot be read (the message names it).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        size: int | tuple[int, int] | None = None,
        channels: int = 3,
        max_pixels: int | None = None,
    ) -> None:
        root = as_path(root, "ImageFolder", "data/train")
        where = f"ImageFolder({root!r})"
        target = normalize_size(size, where)
        channels = check_channels(channels, where)
        classes, files, labels = scan_class_folders(root, where)
        if target is None:
            target = self._common_size(files, where, max_pixels)
        images = np.empty((len(files), channels, *target), np.float32)
        for i, file in enumerate(files):
            images[i] = load_image(file, size=target, channels=channels, max_pixels=max_pixels)
        super().__init__(images, np.array(labels, np.int64), classes, name=os.path.basename(root))
        self.root = root
        self.files = files

    @staticmethod
    def _common_size(files: list[str], where: str, max_pixels: int | None) -> tuple[int, int]:
        first = image_size(files[0], max_pixels)
        for file in files[1:]:
            other = image_size(file, max_pixels)
            if other != first:
                raise DataError(
                    message(
                        where,
                        f"images differ in size: {files[0]!r} is {first[0]}x{first[1]} but "
                        f"{file!r} is {other[0]}x{other[1]} (height x width)",
                        f"pass size= to resize them all, e.g. size={first[0]} or "
                        f"size=({first[0]}, {first[1]})",
                    )
                )
        return first


def digits() -> Dataset:
    """scikit-learn's 8x8 handwritten digits: 1797 images of shape (1, 8, 8), 10 classes.

    Pixel values 0..16 are divided by 16 into [0, 1]. Needs scikit-learn (an optional
    extra: ``pip install convscope[digits]``); the data ships inside it, no download.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError(
            message(
                "digits()",
                "the digits dataset needs scikit-learn, which is not installed",
                "pip install convscope[digits]  (or: pip install scikit-learn)",
            )
        ) from None
    bunch = load_digits()
    images = (np.asarray(bunch.images, np.float32) / 16.0)[:, None, :, :]
    return Dataset(
        images, np.asarray(bunch.target, np.int64), [str(d) for d in range(10)], "digits"
    )


def load_dataset(
    name_or_path: str | os.PathLike[str],
    size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Resolve ``'digits'``, ``'shapes'`` or a folder path to a Dataset.

    Parameters
    ----------
    name_or_path : str or PathLike
        ``'digits'`` (8x8x1), ``'shapes'`` (64x64x3, generated from ``seed``), or a
        folder with one subfolder per class (see :class:`ImageFolder`). The names win
        over folders: write ``'./shapes'`` for a folder called ``shapes``.
    size : int or (int, int), optional
        For folders: resize to this. For ``'shapes'``: the (square) image side. For
        ``'digits'`` only 8 (or ``None``) is possible.
    channels : {None, 1, 3}
        For folders: defaults to 3. The built-in sets have fixed channels; asking for
        others is an error.
    seed : int
        Seed of the generated ``'shapes'`` set.

    Examples
    --------
    >>> load_dataset("shapes", size=32, seed=1).images.shape[1:]
    (3, 32, 32)
    """
    from .synthetic import shapes

    builtin = {"digits": (1, 8), "shapes": (3, 64)}
    key = os.fspath(name_or_path)
    if not isinstance(key, str):
        raise ArgumentTypeError(
            message("load_dataset", "give a name or a folder path", received=f"{key!r}")
        )
    if key in builtin:
        fixed_c, default = builtin[key]
        if channels is not None and channels != fixed_c:
            raise ArgumentError(
                message(
                    f"load_dataset({key!r})",
                    f"the {key} images have {fixed_c} channel(s)",
                    f"leave channels unset or pass channels={fixed_c}",
                    f"channels={channels!r}",
                )
            )
        side = normalize_size(size, f"load_dataset({key!r})")
        if key == "digits":
            if side not in (None, (8, 8)):
                raise ArgumentError(
                    message(
                        "load_dataset('digits')",
                        "the digits images are 8x8",
                        "leave size unset",
                        f"size={size!r}",
                    )
                )
            return digits()
        if side is not None and side[0] != side[1]:
            raise ArgumentError(
                message(
                    "load_dataset('shapes')",
                    "the shapes images are square",
                    "pass one int, e.g. size=64",
                    f"size={size!r}",
                )
            )
        return shapes(size=default if side is None else side[0], seed=seed)
    if not os.path.exists(key):
        raise DataError(
            message(
                "load_dataset",
                f"{key!r} is neither a built-in dataset nor an existing folder",
                "use 'digits', 'shapes', or the path of a folder with one subfolder per class",
                f"name_or_path={key!r}",
            )
        )
    return ImageFolder(key, size=size, channels=3 if channels is None else channels)
