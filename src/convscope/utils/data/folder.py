"""``ImageFolder``: one subfolder of images per class, read lazily, as torchvision's.

::

    root/
        cat/   001.png  002.jpg ...
        dog/   a.png ...

Each sample is ``(image, class_index)``: the image is a PIL image in RGB (or what
``transform`` makes of it, e.g. a Tensor after ``transforms.ToTensor()``), read when it is
asked for. Images go through convscope's safe reader (:func:`convscope.data.load_pil_image`):
only image formats are tried, and a file claiming more than ``max_pixels`` pixels is
refused before it is decoded. (For a whole folder loaded into memory at once, resized to
one size, see :class:`convscope.data.ImageFolder`, which ``cs.fit`` uses.)
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from ...data.datasets import scan_class_folders
from ...data.images import IMAGE_EXTENSIONS, as_path, load_pil_image
from ...errors import ArgumentTypeError, message
from .dataset import Dataset

__all__ = ["ImageFolder"]


def _callable(value: Any, name: str, where: str) -> Any:
    if value is not None and not callable(value):
        raise ArgumentTypeError(
            message(
                where,
                f"{name} must be callable (or None)",
                f"pass e.g. {name}=transforms.ToTensor()"
                if "transform" in name
                else f"pass a function, or leave {name}=None",
                f"{name} of type {type(value).__name__}",
            )
        )
    return value


class ImageFolder(Dataset[tuple[Any, int]]):
    """Images in class subfolders, as ``torchvision.datasets.ImageFolder``.

    Classes are the subfolder names in sorted order; the images of a class are the files
    with an image extension found in its folder and below, in sorted order. Unlike
    torchvision, hidden folders and files (``.name``) are skipped (a ``.ipynb_checkpoints``
    folder is not a class), and ``.gif`` and ``.pbm`` files count as images too, so that
    this class and :class:`convscope.data.ImageFolder` see the same samples.

    Parameters
    ----------
    root : str or PathLike
    transform : callable, optional
        Applied to each PIL image, e.g. ``transforms.Compose([...])``.
    target_transform : callable, optional
        Applied to each class index.
    loader : callable, optional
        ``loader(path)`` returns a sample; by default convscope's safe PIL reader,
        converting to RGB as torchvision's ``pil_loader``.
    is_valid_file : callable, optional
        ``is_valid_file(path)`` decides which files are samples (instead of extensions).
    allow_empty : bool
        Accept class folders without any image.
    max_pixels : int, optional
        Refuse images claiming more pixels than this before decoding (default:
        :data:`convscope.data.DEFAULT_MAX_PIXELS`).

    Attributes
    ----------
    classes : list of str
    class_to_idx : dict of str to int
    samples : list of (str, int)
        (path, class index) of every image; ``imgs`` is the same list.
    targets : list of int

    Raises
    ------
    DataError
        Root missing or not a folder, no class folders, a class folder without images.
    ImageError
        When a sample is read: an unreadable, damaged or too large image (names the file).

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> from convscope.data import save_image
    >>> root = tempfile.mkdtemp()
    >>> for name in ("cat", "dog"):
    ...     os.mkdir(os.path.join(root, name))
    ...     save_image(os.path.join(root, name, "a.png"), np.zeros((3, 4, 5)))
    >>> ds = ImageFolder(root)
    >>> ds.classes, ds.class_to_idx, len(ds)
    (['cat', 'dog'], {'cat': 0, 'dog': 1}, 2)
    >>> image, label = ds[1]
    >>> image.mode, image.size, label
    ('RGB', (5, 4), 1)
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        loader: Callable[[str], Any] | None = None,
        is_valid_file: Callable[[str], bool] | None = None,
        allow_empty: bool = False,
        *,
        max_pixels: int | None = None,
    ) -> None:
        self.root = as_path(root, "ImageFolder", "data/train")
        where = f"ImageFolder({self.root!r})"
        self.transform = _callable(transform, "transform", where)
        self.target_transform = _callable(target_transform, "target_transform", where)
        _callable(loader, "loader", where)
        _callable(is_valid_file, "is_valid_file", where)
        self.loader = loader or functools.partial(load_pil_image, mode="RGB",
                                                  max_pixels=max_pixels)
        self.extensions = None if is_valid_file is not None else tuple(sorted(IMAGE_EXTENSIONS))
        classes, files, labels = scan_class_folders(
            self.root, where, valid=is_valid_file, allow_empty=bool(allow_empty)
        )
        self.classes = classes
        self.class_to_idx = {name: i for i, name in enumerate(classes)}
        self.samples = list(zip(files, labels, strict=True))
        self.imgs = self.samples
        self.targets = list(labels)

    def find_classes(self, directory: str | os.PathLike[str]) -> tuple[list[str], dict[str, int]]:
        """The class names of ``directory`` and their indices (torchvision's method)."""
        path = as_path(directory, "ImageFolder.find_classes", "data/train")
        classes = scan_class_folders(path, f"ImageFolder({path!r})", allow_empty=True)[0]
        return classes, {name: i for i, name in enumerate(classes)}

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        path, target = self.samples[index]
        sample = self.loader(path)
        if self.transform is not None:
            sample = self.transform(sample)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return sample, target

    def __repr__(self) -> str:
        lines = [f"Dataset {type(self).__name__}", f"    Number of datapoints: {len(self)}",
                 f"    Root location: {self.root}"]
        if self.transform is not None:
            lines.append("    Transform: " + repr(self.transform).replace("\n", "\n    "))
        if self.target_transform is not None:
            lines.append(f"    Target transform: {self.target_transform!r}")
        return "\n".join(lines)
