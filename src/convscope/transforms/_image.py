"""What the transforms share: the three image kinds and the resampling weights.

An image is one of

- a PIL image (transforms then use Pillow, exactly as torchvision does);
- a NumPy array of shape (..., C, H, W), or (H, W) for one channel, as torchvision's
  tensor images (uint8 in [0, 255] or float in [0, 1]);
- a :class:`convscope.Tensor` of the same layout.

Each transform gives back the kind it was given. A 3-D array whose last axis has 3 or 4
values and whose first has more than 4 is taken for an (H, W, C) picture and refused with
the fix (``ToTensor()``, or ``arr.transpose(2, 0, 1)``): treated as (C, H, W) it would be
cropped and flipped along the wrong axes without a word.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ..errors import ArgumentTypeError, ShapeError, message
from ..tensor import Tensor

KINDS = "a PIL image, a NumPy array or a convscope Tensor of shape (..., C, H, W)"


def is_pil(img: Any) -> bool:
    if "PIL.Image" not in sys.modules:
        return False
    return isinstance(img, sys.modules["PIL.Image"].Image)


def pil():  # noqa: ANN201  (the PIL.Image module)
    from PIL import Image

    return Image


def refuse(img: Any, where: str, expected: str = KINDS, fix: str | None = None) -> Exception:
    return ArgumentTypeError(
        message(
            where,
            f"expected {expected}",
            fix or "convert the image first, e.g. transforms.ToTensor() or np.asarray(...)",
            f"{type(img).__name__}",
        )
    )


def values(img: Any, where: str) -> np.ndarray:
    """The pixels of an array or Tensor image, checked: numeric, at least 2-D."""
    if isinstance(img, Tensor):
        arr = np.asarray(img.numpy())
    elif isinstance(img, np.ndarray):
        arr = img
    else:
        raise refuse(img, where)
    if arr.dtype.kind not in "biuf":
        raise ArgumentTypeError(
            message(
                where,
                f"an image array must hold numbers, not {arr.dtype}",
                "convert it, e.g. arr.astype(np.float32)",
                f"dtype {arr.dtype}",
            )
        )
    looks_hwc = arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.shape[0] > 4
    if isinstance(img, np.ndarray) and looks_hwc:
        raise ShapeError(
            message(
                where,
                f"the array of shape {arr.shape} looks like a picture in height x width x "
                "channels layout; transforms take arrays as (C, H, W), as torchvision's tensors",
                "convert it first: transforms.ToTensor()(arr) (which also scales uint8 to "
                "[0, 1]), or arr.transpose(2, 0, 1), or pass a PIL image",
                f"shape {arr.shape}",
            )
        )
    if arr.ndim < 2:
        raise ShapeError(
            message(
                where,
                "an image array needs at least 2 dimensions (..., C, H, W) or (H, W)",
                "pass an image of shape (C, H, W)",
                f"shape {arr.shape}",
            )
        )
    return arr


def like(img: Any, arr: np.ndarray) -> Any:
    """``arr`` as the same kind as ``img`` (a Tensor for a Tensor, else the array)."""
    return Tensor(arr) if isinstance(img, Tensor) else arr


def dimensions(img: Any, where: str) -> tuple[int, int, int]:
    """(channels, height, width) of any image kind."""
    if is_pil(img):
        return len(img.getbands()), img.height, img.width
    arr = values(img, where)
    channels = 1 if arr.ndim == 2 else arr.shape[-3]
    return int(channels), int(arr.shape[-2]), int(arr.shape[-1])


def compute_dtype(arr: np.ndarray) -> type:
    """float64 for float64 images, float32 for everything else (as torch's promotion)."""
    return np.float64 if arr.dtype == np.float64 else np.float32


def cast_back(out: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Computed float values -> the image's dtype (integers rounded, as torchvision's
    resize does)."""
    if dtype.kind in "iub":
        info = np.iinfo(dtype) if dtype.kind != "b" else None
        out = np.rint(out)
        if info is not None:
            out = np.clip(out, info.min, info.max)
    return out.astype(dtype, copy=False)


def resample_weights(n_in: int, n_out: int, antialias: bool) -> np.ndarray:
    """(n_out, n_in) weights of bilinear resampling with half-pixel centres.

    The algorithm of Pillow's and PyTorch's antialiased resize (``interpolate(...,
    mode="bilinear", antialias=True)``): output pixel ``i`` is centred at
    ``c = scale * (i + 0.5)`` in the input with ``scale = n_in / n_out``; input pixel ``j``
    (centre ``j + 0.5``) gets the triangle weight ``max(0, 1 - |j + 0.5 - c| / s)`` with
    ``s = scale`` when shrinking with antialias, else ``s = 1``; the weights of a row are
    divided by their sum. With ``s = 1`` this is plain bilinear interpolation with the
    edges clamped (``align_corners=False``).

    >>> resample_weights(4, 2, antialias=False).tolist()
    [[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]]
    >>> (resample_weights(4, 2, antialias=True) * 7).round(6).tolist()
    [[3.0, 3.0, 1.0, 0.0], [0.0, 1.0, 3.0, 3.0]]
    """
    scale = n_in / n_out
    shrink = antialias and scale > 1.0
    support = scale if shrink else 1.0
    inv = 1.0 / scale if shrink else 1.0
    w = np.zeros((n_out, n_in), np.float64)
    for i in range(n_out):
        centre = scale * (i + 0.5)
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), n_in)
        j = np.arange(lo, hi)
        row = np.clip(1.0 - np.abs((j - centre + 0.5) * inv), 0.0, None)
        total = row.sum()
        if total > 0:
            w[i, lo:hi] = row / total
    return w


def nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """PyTorch's ``mode="nearest"`` source index: ``min(floor(i * n_in / n_out), n_in - 1)``
    computed in float32, as its CPU kernel."""
    if n_in == n_out:
        return np.arange(n_out)
    scale = np.float32(n_in) / np.float32(n_out)
    idx = np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(idx, n_in - 1)
