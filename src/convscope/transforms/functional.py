"""The transforms as functions, as ``torchvision.transforms.functional``.

Each function takes a PIL image (and then does what torchvision does: calls Pillow), or a
NumPy array / :class:`convscope.Tensor` of shape (..., C, H, W) (and then computes what
torchvision's tensor path computes), and gives back the same kind.

>>> import numpy as np
>>> img = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
>>> hflip(img)[0, 0].tolist()
[3.0, 2.0, 1.0, 0.0]
>>> center_crop(img, 2)[0].tolist()
[[1.0, 2.0], [5.0, 6.0]]
"""

from __future__ import annotations

import enum
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, ShapeError, message
from ..tensor import Tensor
from . import _image
from ._color import adjust_brightness as adjust_brightness
from ._color import adjust_contrast as adjust_contrast
from ._color import adjust_hue as adjust_hue
from ._color import adjust_saturation as adjust_saturation
from ._color import rgb_to_grayscale as rgb_to_grayscale

__all__ = [
    "InterpolationMode", "get_dimensions", "to_tensor", "normalize", "hflip", "vflip", "pad",
    "crop", "center_crop", "resize", "resized_crop", "adjust_brightness", "adjust_contrast",
    "adjust_saturation", "adjust_hue", "rgb_to_grayscale",
]


class InterpolationMode(enum.Enum):
    """Resampling filters, as torchvision's (the values are its strings)."""

    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


def interpolation_mode(value: Any, where: str) -> InterpolationMode:
    try:
        return InterpolationMode(value.value if isinstance(value, enum.Enum) else value)
    except ValueError:
        raise ArgumentError(
            message(where, "interpolation must be nearest, bilinear or bicubic",
                    "pass e.g. interpolation=InterpolationMode.BILINEAR",
                    f"interpolation={value!r}")
        ) from None


def get_dimensions(img: Any) -> list[int]:
    """``[channels, height, width]`` of an image."""
    return list(_image.dimensions(img, "get_dimensions"))


def to_tensor(pic: Any) -> Tensor:
    """A PIL image or an (H, W, C) NumPy array -> a (C, H, W) float Tensor.

    uint8 data (and PIL images of 8-bit modes) are divided by 255 into [0, 1], in float32;
    float arrays keep their values and dtype. Integer data other than uint8 (16- and
    32-bit images) keeps its values, as torchvision, but in a float32 Tensor (convscope's
    Tensor holds floats).

    >>> import numpy as np
    >>> to_tensor(np.full((2, 3, 3), 255, np.uint8)).shape
    (3, 2, 3)
    """
    where = "ToTensor"
    if _image.is_pil(pic):
        mode = pic.mode
        if mode == "1":
            arr = np.asarray(pic, dtype=np.uint8) * np.uint8(255)
        elif mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            arr = np.asarray(pic).astype(np.float32 if mode != "I" else np.int64)
        else:
            arr = np.asarray(pic)
        arr = arr.reshape(pic.height, pic.width, -1)
    elif isinstance(pic, np.ndarray):
        if pic.ndim not in (2, 3):
            raise ShapeError(message(where, "an array must be 2-D (H, W) or 3-D (H, W, C)",
                                     "pass one image in height x width x channels layout",
                                     f"shape {pic.shape}"))
        if pic.dtype.kind not in "iuf":
            raise ArgumentTypeError(message(where, f"cannot convert an array of dtype {pic.dtype}",
                                            "pass uint8 pixels or float values",
                                            f"dtype {pic.dtype}"))
        arr = pic[:, :, None] if pic.ndim == 2 else pic
    else:
        raise _image.refuse(pic, where, "a PIL image or a NumPy array of shape (H, W, C)",
                            "convscope Tensors are already converted; drop ToTensor for them")
    chw = np.ascontiguousarray(arr.transpose(2, 0, 1))
    if chw.dtype == np.uint8:
        return Tensor(chw.astype(np.float32) / np.float32(255))
    if chw.dtype.kind == "f":
        return Tensor(chw if chw.dtype in (np.float32, np.float64) else chw.astype(np.float32))
    return Tensor(chw.astype(np.float32))


def _numbers(value: Any, name: str, where: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf" or arr.ndim > 1 or arr.size == 0:
        raise ArgumentTypeError(message(where, f"{name} must be a number or a sequence of numbers",
                                        f"pass e.g. {name}=(0.5, 0.5, 0.5)",
                                        f"{name}={value!r:.60}"))
    return arr


def normalize(tensor: Any, mean: Sequence[float], std: Sequence[float],
              inplace: bool = False) -> Any:
    """``(image - mean) / std`` per channel of a float (..., C, H, W) image.

    >>> import numpy as np
    >>> normalize(np.ones((2, 1, 1), np.float32), [0.5, 0.0], [0.5, 2.0]).ravel().tolist()
    [1.0, 0.5]
    """
    where = "Normalize"
    if _image.is_pil(tensor):
        raise _image.refuse(tensor, where, "a float Tensor or array image (..., C, H, W)",
                            "convert the PIL image first: transforms.ToTensor() before Normalize")
    arr = _image.values(tensor, where)
    if arr.dtype.kind != "f":
        raise ArgumentTypeError(message(where, "the image must hold floats",
                                        "use transforms.ToTensor() (uint8 -> [0, 1]) first",
                                        f"dtype {arr.dtype}"))
    if arr.ndim < 3:
        raise ShapeError(message(where, "expected an image of shape (..., C, H, W)",
                                 "add a channel axis: img[None]", f"shape {arr.shape}"))
    m = _numbers(mean, "mean", where).astype(arr.dtype)
    s = _numbers(std, "std", where).astype(arr.dtype)
    if (s == 0).any():
        raise ArgumentError(message(where, f"std evaluated to zero after conversion to {arr.dtype}"
                                    ", leading to division by zero", "pass non-zero stds",
                                    f"std={std!r}"))
    channels = arr.shape[-3]
    for v, name in ((m, "mean"), (s, "std")):
        if v.size not in (1, channels):
            raise ShapeError(message(where, f"{name} has {v.size} values but the image has "
                                     f"{channels} channels", f"give one {name} per channel",
                                     f"{name}={v.tolist()}, image shape {arr.shape}"))
    out = (arr - m.reshape(-1, 1, 1)) / s.reshape(-1, 1, 1)
    if inplace and isinstance(tensor, np.ndarray):
        tensor[...] = out
        return tensor
    return _image.like(tensor, out)


def hflip(img: Any) -> Any:
    """Mirror left-right."""
    if _image.is_pil(img):
        return img.transpose(_image.pil().Transpose.FLIP_LEFT_RIGHT)
    return _image.like(img, np.ascontiguousarray(_image.values(img, "hflip")[..., ::-1]))


def vflip(img: Any) -> Any:
    """Mirror top-bottom."""
    if _image.is_pil(img):
        return img.transpose(_image.pil().Transpose.FLIP_TOP_BOTTOM)
    return _image.like(img, np.ascontiguousarray(_image.values(img, "vflip")[..., ::-1, :]))


_PAD_MODES = ("constant", "edge", "reflect", "symmetric")


def parse_padding(padding: Any, where: str) -> tuple[int, int, int, int]:
    """int, (lr, tb) or (left, top, right, bottom) -> (left, top, right, bottom)."""
    seq = padding if isinstance(padding, (tuple, list)) else None
    ok = isinstance(padding, numbers.Integral) and not isinstance(padding, bool)
    ok = ok or (seq is not None and len(seq) in (1, 2, 4) and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in seq))
    if not ok:
        raise ArgumentTypeError(message(where, "padding must be an int or a sequence of 1, 2 or "
                                        "4 ints (left, top, right, bottom)",
                                        "pass e.g. padding=4 or padding=(4, 2)",
                                        f"padding={padding!r:.60}"))
    if seq is None:
        return (int(padding),) * 4
    if len(seq) == 1:
        return (int(seq[0]),) * 4
    if len(seq) == 2:
        return int(seq[0]), int(seq[1]), int(seq[0]), int(seq[1])
    return int(seq[0]), int(seq[1]), int(seq[2]), int(seq[3])


def _fill_values(fill: Any, channels: int, where: str) -> np.ndarray:
    arr = np.asarray(0 if fill is None else fill)
    if arr.dtype.kind not in "iuf" or arr.ndim > 1 or arr.size not in (1, channels):
        raise ArgumentError(message(where, f"fill must be a number or one number per channel "
                                    f"({channels})", "pass e.g. fill=0 or fill=(124, 116, 104)",
                                    f"fill={fill!r:.60}"))
    return arr.astype(np.float64)


def pad(img: Any, padding: Any, fill: Any = 0, padding_mode: str = "constant") -> Any:
    """Pad the borders, as torchvision: ``constant`` (with ``fill``), ``edge``, ``reflect``
    (mirror without repeating the edge) or ``symmetric`` (repeating it). Negative padding
    crops.

    >>> import numpy as np
    >>> pad(np.array([[1.0, 2.0]]), (1, 0), padding_mode="reflect").tolist()
    [[2.0, 1.0, 2.0, 1.0]]
    """
    where = "pad"
    left, top, right, bottom = parse_padding(padding, where)
    if padding_mode not in _PAD_MODES:
        raise ArgumentError(message(where, "padding_mode must be constant, edge, reflect or "
                                    "symmetric", "pass e.g. padding_mode='reflect'",
                                    f"padding_mode={padding_mode!r}"))
    c, h, w = _image.dimensions(img, where)
    cut = [max(-v, 0) for v in (left, top, right, bottom)]
    left, top, right, bottom = (max(v, 0) for v in (left, top, right, bottom))
    fill_values = _fill_values(fill, c, where)
    if _image.is_pil(img):
        if any(cut):
            img = img.crop((cut[0], cut[1], w - cut[2], h - cut[3]))
        return _pad_pil(img, (left, top, right, bottom), fill_values, padding_mode)
    arr = _image.values(img, where)
    arr = arr[..., cut[1]:h - cut[3], cut[0]:w - cut[2]]
    return _image.like(img, _pad_array(arr, (left, top, right, bottom), fill_values,
                                       padding_mode))


def _pad_array(arr: np.ndarray, ltrb: tuple[int, int, int, int], fill: np.ndarray,
               mode: str) -> np.ndarray:
    left, top, right, bottom = ltrb
    if mode != "constant":
        if mode == "reflect" and (max(left, right) >= arr.shape[-1] or
                                  max(top, bottom) >= arr.shape[-2]):
            raise ArgumentError(message("pad", "reflect padding must be smaller than the image",
                                        "pad less, or use padding_mode='symmetric'",
                                        f"padding {ltrb}, image {arr.shape[-2]}x{arr.shape[-1]}"))
        widths = [(0, 0)] * (arr.ndim - 2) + [(top, bottom), (left, right)]
        return np.pad(arr, widths, mode=mode)
    h, w = arr.shape[-2:]
    out = np.empty(arr.shape[:-2] + (h + top + bottom, w + left + right), arr.dtype)
    if fill.size > 1:
        out[...] = fill.reshape(-1, 1, 1).astype(arr.dtype)
    else:
        out[...] = fill.reshape(()).astype(arr.dtype)
    out[..., top:top + h, left:left + w] = arr
    return out


def _pad_pil(img: Any, ltrb: tuple[int, int, int, int], fill: np.ndarray, mode: str) -> Any:
    left, top, right, bottom = ltrb
    image = _image.pil()
    if mode == "constant":
        from PIL import ImageOps

        values = fill.tolist() if fill.size > 1 else [fill.item()] * len(img.getbands())
        values = values if img.mode == "F" else [int(v) for v in values]
        colour = tuple(values) if len(values) > 1 else values[0]
        palette = img.getpalette() if img.mode == "P" else None
        out = ImageOps.expand(img, border=(left, top, right, bottom), fill=colour)
        if palette is not None:
            out.putpalette(palette)
        return out
    palette = img.getpalette() if img.mode == "P" else None
    arr = np.asarray(img)
    widths = [(top, bottom), (left, right)] + [(0, 0)] * (arr.ndim - 2)
    out = image.fromarray(np.pad(arr, widths, mode=mode))
    if palette is not None:
        out.putpalette(palette)
    return out


def crop(img: Any, top: int, left: int, height: int, width: int) -> Any:
    """The ``height x width`` region at (``top``, ``left``); outside the image is zeros."""
    if _image.is_pil(img):
        return img.crop((left, top, left + width, top + height))
    arr = _image.values(img, "crop")
    h, w = arr.shape[-2:]
    if top >= 0 and left >= 0 and top + height <= h and left + width <= w:
        return _image.like(img, np.ascontiguousarray(arr[..., top:top + height,
                                                         left:left + width]))
    out = np.zeros(arr.shape[:-2] + (height, width), arr.dtype)
    y0, y1 = max(top, 0), min(top + height, h)
    x0, x1 = max(left, 0), min(left + width, w)
    if y1 > y0 and x1 > x0:
        out[..., y0 - top:y1 - top, x0 - left:x1 - left] = arr[..., y0:y1, x0:x1]
    return _image.like(img, out)


def pair(size: Any, name: str, where: str) -> tuple[int, int]:
    """int or (h, w) (or (s,)) -> (h, w) of positive ints."""
    seq = size if isinstance(size, (tuple, list)) else None
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        out = (int(size), int(size))
    elif seq is not None and len(seq) in (1, 2) and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in seq):
        out = (int(seq[0]), int(seq[-1]))
    else:
        raise ArgumentTypeError(message(where, f"{name} must be an int or a pair (height, width)",
                                        f"pass e.g. {name}=32 or {name}=(32, 48)",
                                        f"{name}={size!r:.60}"))
    if min(out) < 1:
        raise ArgumentError(message(where, f"{name} must be at least 1 pixel",
                                    f"pass e.g. {name}=32", f"{name}={size!r}"))
    return out


def center_crop(img: Any, output_size: Any) -> Any:
    """The central ``output_size`` region, zero-padded first when the image is smaller.

    The offsets are torchvision's: ``top = int(round((H - h) / 2))`` with Python's
    round (halves to even), likewise ``left``.
    """
    where = "CenterCrop"
    th, tw = pair(output_size, "size", where)
    _, h, w = _image.dimensions(img, where)
    if tw > w or th > h:
        ltrb = ((tw - w) // 2 if tw > w else 0, (th - h) // 2 if th > h else 0,
                (tw - w + 1) // 2 if tw > w else 0, (th - h + 1) // 2 if th > h else 0)
        img = pad(img, list(ltrb), fill=0)
        _, h, w = _image.dimensions(img, where)
        if (th, tw) == (h, w):
            return img
    return crop(img, int(round((h - th) / 2.0)), int(round((w - tw) / 2.0)), th, tw)


def resized_size(h: int, w: int, size: Any, max_size: int | None, where: str) -> tuple[int, int]:
    """torchvision's output size: an int (or (s,)) sets the shorter side to ``s`` and the
    longer to ``int(s * long / short)``; a pair is (h, w); ``max_size`` caps the longer."""
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = [int(size)]
    if not isinstance(size, (list, tuple)) or len(size) not in (1, 2) or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in size):
        raise ArgumentTypeError(message(where, "size must be a positive int (the shorter side) "
                                        "or a pair (height, width)",
                                        "pass e.g. size=256 or size=(224, 224)",
                                        f"size={size!r:.60}"))
    if len(size) == 2:
        if max_size is not None:
            raise ArgumentError(message(where, "max_size only applies when size sets the shorter"
                                        " side (an int)", "drop max_size, or pass size as an int",
                                        f"size={size!r}, max_size={max_size!r}"))
        return int(size[0]), int(size[1])
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = int(size[0]), int(size[0] * long / short)
    if max_size is not None:
        if max_size <= size[0]:
            raise ArgumentError(message(where, "max_size must be larger than the requested size",
                                        f"pass max_size > {size[0]}", f"max_size={max_size}"))
        if new_long > max_size:
            new_short, new_long = int(max_size * new_short / new_long), max_size
    out = (new_long, new_short) if w <= h else (new_short, new_long)
    if min(out) < 1:
        raise ArgumentError(message(where, f"the {h}x{w} image would be resized to "
                                    f"{out[0]}x{out[1]}, which has no pixels",
                                    "pass a larger size or max_size",
                                    f"size={size!r}, max_size={max_size!r}"))
    return out


def resize(img: Any, size: Any, interpolation: Any = InterpolationMode.BILINEAR,
           max_size: int | None = None, antialias: bool = True) -> Any:
    """Resize to ``size`` (see :func:`resized_size`), as torchvision.

    PIL images use Pillow's filters (always antialiased, as torchvision). Arrays and
    Tensors use bilinear interpolation with half-pixel centres, antialiased when
    shrinking (PyTorch's ``interpolate(..., antialias=True)``), or PyTorch's ``nearest``;
    integer images are rounded back. An image already of that size is returned as is.
    """
    where = "Resize"
    mode = interpolation_mode(interpolation, where)
    _, h, w = _image.dimensions(img, where)
    oh, ow = resized_size(h, w, size, max_size, where)
    if (oh, ow) == (h, w):
        return img
    if _image.is_pil(img):
        filters = _image.pil().Resampling
        return img.resize((ow, oh), getattr(filters, mode.name))
    if mode is InterpolationMode.BICUBIC:
        raise ArgumentError(message(where, "bicubic resizing is available for PIL images only",
                                    "use bilinear, or resize the PIL image before ToTensor",
                                    "interpolation=bicubic on an array"))
    arr = _image.values(img, where)
    if mode is InterpolationMode.NEAREST:
        rows, cols = _image.nearest_indices(h, oh), _image.nearest_indices(w, ow)
        return _image.like(img, np.ascontiguousarray(arr[..., rows[:, None], cols[None, :]]))
    dtype = _image.compute_dtype(arr)
    wh = _image.resample_weights(h, oh, bool(antialias)).astype(dtype)
    ww = _image.resample_weights(w, ow, bool(antialias)).astype(dtype)
    out = np.matmul(np.matmul(wh, arr.astype(dtype, copy=False)), ww.T)
    return _image.like(img, _image.cast_back(out, arr.dtype))


def resized_crop(img: Any, top: int, left: int, height: int, width: int, size: Any,
                 interpolation: Any = InterpolationMode.BILINEAR, antialias: bool = True) -> Any:
    """:func:`crop`, then :func:`resize` to ``size``."""
    return resize(crop(img, top, left, height, width), size, interpolation, antialias=antialias)
