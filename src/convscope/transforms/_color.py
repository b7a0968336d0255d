"""Colour adjustments (brightness, contrast, saturation, hue), as torchvision's functions.

On PIL images they call Pillow (``ImageEnhance`` and an HSV round trip), as torchvision
does. On arrays and Tensors they compute torchvision's tensor formulas:

- ``blend(a, b, r) = clamp(r * a + (1 - r) * b, 0, bound)`` with bound 1 for floats and
  255 for uint8 (cast back by truncation, as ``Tensor.to(torch.uint8)``);
- brightness ``f``: ``blend(img, 0, f)``;
- contrast ``f``: ``blend(img, mean(grey(img)), f)``, one mean over the whole image;
- saturation ``f``: ``blend(img, grey(img), f)``;
- grey: ``0.2989 R + 0.587 G + 0.114 B``;
- hue ``f``: RGB -> HSV, ``h = (h + f) mod 1``, HSV -> RGB, in float32.

>>> import numpy as np
>>> img = np.array([[[0.2]], [[0.4]], [[0.6]]], np.float32)
>>> adjust_brightness(img, 2.0).ravel().tolist()
[0.4000000059604645, 0.800000011920929, 1.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ArgumentError, ShapeError, message
from . import _image

__all__ = ["adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue",
           "rgb_to_grayscale"]


def _channels_ok(arr: np.ndarray, where: str) -> int:
    c = 1 if arr.ndim == 2 else arr.shape[-3]
    if c not in (1, 3):
        raise ShapeError(message(where, f"colour adjustments need 1 or 3 channels, not {c}",
                                 "pass a grey (1, H, W) or RGB (3, H, W) image",
                                 f"shape {arr.shape}"))
    return int(c)


def _colour_values(img: Any, where: str) -> np.ndarray:
    arr = _image.values(img, where)
    if arr.dtype.kind != "f" and arr.dtype != np.uint8:
        raise ArgumentError(message(where, "colour adjustments take float images in [0, 1] or "
                                    "uint8 images", "convert with transforms.ToTensor()",
                                    f"dtype {arr.dtype}"))
    _channels_ok(arr, where)
    return arr


def _factor(value: Any, name: str, where: str) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        f = float("nan")
    if not f >= 0:
        raise ArgumentError(message(where, f"{name} must be a number >= 0", f"pass e.g. {name}=1.2",
                                    f"{name}={value!r:.40}"))
    return f


def _blend(img1: np.ndarray, img2: np.ndarray | float, ratio: float) -> np.ndarray:
    """torchvision's ``_blend`` in the image's compute precision."""
    dtype = _image.compute_dtype(img1)
    bound = 1.0 if img1.dtype.kind == "f" else 255.0
    r = dtype(ratio)
    out = r * img1.astype(dtype, copy=False) + dtype(1.0 - ratio) * np.asarray(img2, dtype)
    return np.clip(out, 0.0, bound).astype(img1.dtype)


def _grey(arr: np.ndarray) -> np.ndarray:
    """One grey channel (..., 1, H, W) in the image's dtype (truncated for uint8)."""
    if (1 if arr.ndim == 2 else arr.shape[-3]) == 1:
        return arr.copy() if arr.ndim > 2 else arr[None].copy()
    dtype = _image.compute_dtype(arr)
    r, g, b = (arr[..., k, :, :].astype(dtype, copy=False) for k in range(3))
    grey = dtype(0.2989) * r + dtype(0.587) * g + dtype(0.114) * b
    return grey.astype(arr.dtype)[..., None, :, :]


def rgb_to_grayscale(img: Any, num_output_channels: int = 1) -> Any:
    """``0.2989 R + 0.587 G + 0.114 B`` (Pillow's ``convert("L")`` for PIL images)."""
    where = "rgb_to_grayscale"
    if num_output_channels not in (1, 3):
        raise ArgumentError(message(where, "num_output_channels must be 1 or 3",
                                    "pass 1 or 3", f"num_output_channels={num_output_channels!r}"))
    if _image.is_pil(img):
        grey = img.convert("L")
        return grey if num_output_channels == 1 else _image.pil().merge("RGB", [grey] * 3)
    arr = _colour_values(img, where)
    if arr.ndim < 3:
        arr = arr[None]
    grey = _grey(arr)
    if num_output_channels == 3:
        grey = np.repeat(grey, 3, axis=-3)
    return _image.like(img, grey)


def adjust_brightness(img: Any, brightness_factor: float) -> Any:
    """Multiply by ``brightness_factor`` (0 black, 1 unchanged), clipped."""
    where = "adjust_brightness"
    f = _factor(brightness_factor, "brightness_factor", where)
    if _image.is_pil(img):
        from PIL import ImageEnhance

        return ImageEnhance.Brightness(img).enhance(f)
    arr = _colour_values(img, where)
    return _image.like(img, _blend(arr, 0.0, f))


def adjust_contrast(img: Any, contrast_factor: float) -> Any:
    """Blend with the mean grey level of the image (0 flat grey, 1 unchanged)."""
    where = "adjust_contrast"
    f = _factor(contrast_factor, "contrast_factor", where)
    if _image.is_pil(img):
        from PIL import ImageEnhance

        return ImageEnhance.Contrast(img).enhance(f)
    arr = _colour_values(img, where)
    dtype = _image.compute_dtype(arr)
    grey = _grey(arr if arr.ndim > 2 else arr[None]).astype(dtype)
    mean = grey.mean(axis=(-3, -2, -1), keepdims=True, dtype=dtype)
    if arr.ndim == 2:
        mean = mean[0]
    return _image.like(img, _blend(arr, mean, f))


def adjust_saturation(img: Any, saturation_factor: float) -> Any:
    """Blend with the grey image (0 grey, 1 unchanged); grey images are returned as is."""
    where = "adjust_saturation"
    f = _factor(saturation_factor, "saturation_factor", where)
    if _image.is_pil(img):
        from PIL import ImageEnhance

        return ImageEnhance.Color(img).enhance(f)
    arr = _colour_values(img, where)
    if _channels_ok(arr, where) == 1:
        return img
    return _image.like(img, _blend(arr, _grey(arr), f))


def _rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    r, g, b = rgb[..., 0, :, :], rgb[..., 1, :, :], rgb[..., 2, :, :]
    maxc, minc = rgb.max(axis=-3), rgb.min(axis=-3)
    eqc = maxc == minc
    cr = maxc - minc
    ones = np.ones_like(maxc)
    s = cr / np.where(eqc, ones, maxc)
    divisor = np.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / divisor, (maxc - g) / divisor, (maxc - b) / divisor
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (np.float32(2.0) + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (np.float32(4.0) + gc - rc)
    h = np.fmod((hr + hg + hb) / np.float32(6.0) + np.float32(1.0), np.float32(1.0))
    return np.stack((h, s, maxc), axis=-3)


def _hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    h, s, v = hsv[..., 0, :, :], hsv[..., 1, :, :], hsv[..., 2, :, :]
    one = np.float32(1.0)
    i = np.floor(h * np.float32(6.0))
    f = h * np.float32(6.0) - i
    i = i.astype(np.int32) % 6
    p = np.clip(v * (one - s), 0.0, 1.0)
    q = np.clip(v * (one - s * f), 0.0, 1.0)
    t = np.clip(v * (one - s * (one - f)), 0.0, 1.0)
    table = (
        np.stack((v, q, p, p, t, v)),
        np.stack((t, v, v, q, p, p)),
        np.stack((p, p, t, v, v, q)),
    )
    picked = [np.take_along_axis(tab, i[None], axis=0)[0] for tab in table]
    return np.stack(picked, axis=-3).astype(np.float32)


def adjust_hue(img: Any, hue_factor: float) -> Any:
    """Turn the hue by ``hue_factor`` of a full turn, in [-0.5, 0.5].

    PIL images: torchvision's HSV round trip in 8 bits (``h += int(f * 255)`` wrapping).
    Arrays: torchvision's float32 HSV conversion (uint8 is scaled to [0, 1] and back).
    Grey images are returned as they are.
    """
    where = "adjust_hue"
    try:
        f = float(hue_factor)
    except (TypeError, ValueError):
        f = float("nan")
    if not -0.5 <= f <= 0.5:
        raise ArgumentError(message(where, "hue_factor must lie in [-0.5, 0.5]",
                                    "pass e.g. hue_factor=0.1", f"hue_factor={hue_factor!r:.40}"))
    if _image.is_pil(img):
        if img.mode in ("L", "1", "I", "F"):
            return img
        image = _image.pil()
        h, s, v = img.convert("HSV").split()
        hue = np.array(h, dtype=np.uint8)
        with np.errstate(over="ignore"):
            hue += np.int32(f * 255).astype(np.uint8)
        shifted = image.merge("HSV", (image.fromarray(hue), s, v))
        return shifted.convert(img.mode)
    arr = _colour_values(img, where)
    if _channels_ok(arr, where) == 1:
        return img
    x = arr.astype(np.float32) / np.float32(255) if arr.dtype == np.uint8 else arr.astype(
        np.float32)
    hsv = _rgb_to_hsv(x)
    hsv[..., 0, :, :] = np.mod(hsv[..., 0, :, :] + np.float32(f), np.float32(1.0))
    rgb = _hsv_to_rgb(hsv)
    if arr.dtype == np.uint8:
        out = (rgb * np.float32(255 + 1 - 1e-3)).astype(np.uint8)
    else:
        out = rgb.astype(arr.dtype)
    return _image.like(img, out)
