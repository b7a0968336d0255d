"""RGB picture helpers: an image volume to RGB, nearest-neighbour upscaling, writing PNGs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ShapeError, message

__all__ = ["to_rgb", "upscale", "save_png"]


def to_rgb(volume: np.ndarray) -> np.ndarray:
    """A (C, H, W) float image in [0, 1] (C = 1 or 3) or an (H, W) one -> uint8 (H, W, 3).

    >>> import numpy as np
    >>> to_rgb(np.ones((1, 2, 2))).shape
    (2, 2, 3)
    """
    v = np.asarray(volume, np.float64)
    if v.ndim == 2:
        v = v[None]
    if v.ndim != 3 or v.shape[0] not in (1, 3):
        raise ShapeError(message("to_rgb", "expected an image volume (C, H, W) with C = 1 or 3",
                                 "pass a grey or RGB image", f"shape {v.shape}"))
    if v.shape[0] == 1:
        v = np.repeat(v, 3, axis=0)
    return np.rint(np.clip(np.nan_to_num(v), 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)


def upscale(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement: every pixel becomes a ``factor x factor`` block."""
    f = max(1, int(factor))
    return np.repeat(np.repeat(rgb, f, axis=0), f, axis=1)


def save_png(path: str | os.PathLike[str], rgb: np.ndarray) -> Path:
    """Write a uint8 (H, W, 3) or (H, W) array as a PNG, creating parent folders."""
    from PIL import Image

    arr = np.asarray(rgb)
    rgb_like = arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))
    if arr.dtype != np.uint8 or not rgb_like:
        raise ShapeError(message("save_png", "expected uint8 pixels of shape (H, W, 3)",
                                 "convert with viz.diverging, viz.grey or viz.to_rgb",
                                 f"dtype {arr.dtype}, shape {arr.shape}"))
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(arr)).save(p, format="PNG")
    return p
