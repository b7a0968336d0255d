"""Image files in, volumes out: reading and writing pictures safely.

An image file holds an H×W×D volume (``64x64x3`` for a small colour picture); convscope
works in C×H×W (channels first), float32 in [0, 1]. This module is the one place that
converts between the two, and the one place that opens image files, so its rules are:

- Only image formats are tried (PNG, JPEG, BMP, GIF, TIFF, WebP, PPM), decided by the
  content, not the extension.
- The pixel count a file *claims* is checked against ``max_pixels`` before anything is
  decoded: a 100-byte PNG can claim 20000x20000 pixels (a "decompression bomb").
- Every failure is an :class:`~convscope.errors.ImageError` naming the file.

Colour rules, following ``PIL.Image.convert`` as torchvision uses it: alpha is dropped
(not composited), palette images take their palette colours (transparency ignored), CMYK
uses Pillow's conversion, 16-bit images keep their precision (divided by 65535), and
``channels=1`` gives ITU-R 601-2 luma ``0.299 R + 0.587 G + 0.114 B`` computed in float.
"""

from __future__ import annotations

import os
import re
import stat
import warnings
from collections.abc import Sequence

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, ImageError, message

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "load_image",
    "load_pil_image",
    "save_image",
    "image_size",
]

DEFAULT_MAX_PIXELS = 40_000_000
"""Largest width*height decoded when ``max_pixels`` is not given (40 megapixels).

Read at call time: set ``convscope.data.images.DEFAULT_MAX_PIXELS`` to change it for the
whole program. Pillow's own hard limit (``2 * PIL.Image.MAX_IMAGE_PIXELS``, about 179 M)
still applies above that.
"""

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
"""File name endings that folder readers treat as images (case-insensitive)."""

_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
_FORMAT_LIST = "PNG, JPEG, BMP, GIF, TIFF, WebP or PPM"


def _pil():  # noqa: ANN202  (the PIL.Image module)
    from PIL import Image

    return Image


def _formats() -> list[str]:
    """The allowed formats this Pillow build can read (WebP may be compiled out)."""
    image = _pil()
    image.init()
    return [f for f in _FORMATS if f in image.OPEN]


def normalize_size(size: object, where: str) -> tuple[int, int] | None:
    """``None``, an int ``s`` or a pair ``(h, w)`` -> ``None`` or ``(h, w)``, validated."""
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int) and not isinstance(size, bool) else size
    if (
        not isinstance(pair, Sequence)
        or isinstance(pair, str)
        or len(pair) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
    ):
        raise ArgumentTypeError(
            message(
                where,
                "size must be an int or a pair (height, width) of ints",
                "pass e.g. size=64 or size=(48, 64)",
                f"size={size!r}",
            )
        )
    if min(pair) < 1:
        raise ArgumentError(
            message(where, "size must be at least 1 pixel", "pass e.g. size=64", f"size={size!r}")
        )
    return int(pair[0]), int(pair[1])


def check_channels(channels: object, where: str) -> int:
    """Validate ``channels`` (1 for grayscale, 3 for RGB)."""
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ArgumentError(
            message(
                where,
                "channels must be 1 (grayscale) or 3 (RGB)",
                "pass channels=1 or channels=3",
                f"channels={channels!r}",
            )
        )
    return int(channels)  # type: ignore[call-overload]


def _limit(max_pixels: object) -> int:
    """``max_pixels`` or, for ``None``, the module's current DEFAULT_MAX_PIXELS."""
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ArgumentError(
            message(
                "load_image",
                "max_pixels must be a positive int",
                "pass e.g. max_pixels=40_000_000",
                f"max_pixels={max_pixels!r}",
            )
        )
    return limit


def as_path(path: object, where: str, example: str = "photo.png") -> str:
    """``os.fspath(path)`` for a str or PathLike; an ArgumentTypeError for anything else."""
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(
            message(
                where,
                "the path must be a str or a pathlib.Path",
                f"pass e.g. {example!r}",
                f"path of type {type(path).__name__}",
            )
        )
    out = os.fspath(path)
    if not isinstance(out, str):  # a PathLike of bytes
        out = os.fsdecode(out)
    return out


def _where(path: str) -> str:
    return f"image {path!r}"


def _open(path: str, max_pixels: int):  # noqa: ANN202  (a PIL image, header read only)
    """Open ``path`` lazily and check its claimed size; nothing is decoded yet."""
    image = _pil()
    if not os.path.exists(path):
        raise ImageError(
            message(_where(path), "the file does not exist", "check the path and working folder")
        )
    if os.path.isdir(path):
        raise ImageError(
            message(_where(path), "the path is a directory", "give the path of an image file")
        )
    if not stat.S_ISREG(os.stat(path).st_mode):  # a named pipe would block Pillow forever
        raise ImageError(
            message(
                _where(path),
                "the path is not a regular file (a pipe, socket or device)",
                "give the path of an image file",
            )
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", image.DecompressionBombWarning)
            img = image.open(path, formats=_formats())
    except image.DecompressionBombError as exc:  # Pillow refuses > 2 * MAX_IMAGE_PIXELS
        found = re.search(r"\((\d+) pixels\)", str(exc))
        claim = found.group(1) if found else "too many"
        hard = 2 * (image.MAX_IMAGE_PIXELS or 0)
        raise ImageError(
            message(
                _where(path),
                f"the image claims {claim} pixels, more than Pillow's hard limit of {hard} "
                f"(and max_pixels={max_pixels}); it was not decoded",
                "this file is not safe to decode; if you trust it, raise both "
                "PIL.Image.MAX_IMAGE_PIXELS and max_pixels",
            )
        ) from None
    except image.UnidentifiedImageError:
        raise ImageError(
            message(
                _where(path),
                f"the file is not a readable {_FORMAT_LIST} image",
                "check that it is an image (its content decides, not its extension) "
                "and that it is not damaged",
            )
        ) from None
    except Exception as exc:  # Pillow's parsers raise many types on hostile headers
        raise ImageError(
            message(_where(path), f"the image header cannot be read ({exc})", "re-save the image")
        ) from None
    width, height = img.size
    if width * height > max_pixels:
        img.close()
        raise ImageError(
            message(
                _where(path),
                f"the image claims {width}x{height} = {width * height} pixels, more than "
                f"max_pixels={max_pixels}; it was not decoded",
                "shrink the image, or pass a larger max_pixels if you trust the file",
                f"size {width}x{height}",
            )
        )
    if width < 1 or height < 1:
        img.close()
        raise ImageError(message(_where(path), "the image has no pixels", "re-save the image"))
    return img


def image_size(path: str | os.PathLike[str], max_pixels: int | None = None) -> tuple[int, int]:
    """Height and width an image file claims, read from its header only.

    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> save_image(p, np.zeros((3, 20, 30)))
    >>> image_size(p)
    (20, 30)
    """
    img = _open(as_path(path, "image_size"), _limit(max_pixels))
    with img:
        return img.size[1], img.size[0]


def _to_array(img) -> np.ndarray:  # noqa: ANN001  (a decoded PIL image)
    """Decoded PIL image -> float32 array (H, W, C) in [0, 1] with C in {1, 3}."""
    mode = img.mode
    if mode == "1":
        return np.asarray(img, dtype=np.float32)[:, :, None]
    if mode.startswith("I;16"):
        return (np.asarray(img).astype(np.float32) / 65535.0)[:, :, None]
    if mode == "I":  # 32-bit ints: Pillow's form of 16-bit PNG/TIFF; values over 65535 clip
        a = np.asarray(img).astype(np.float64) / 65535.0
        return np.clip(a, 0.0, 1.0).astype(np.float32)[:, :, None]
    if mode == "F":  # float images are taken as already in [0, 1]
        a = np.asarray(img, dtype=np.float32)
        if not np.all(np.isfinite(a)):
            raise ValueError("the float image holds NaN or infinite values")
        return np.clip(a, 0.0, 1.0)[:, :, None]
    if mode == "L":
        return (np.asarray(img, dtype=np.float32) / 255.0)[:, :, None]
    if mode in ("LA", "La"):  # alpha dropped
        return (np.asarray(img)[:, :, :1]).astype(np.float32) / 255.0
    if mode in ("RGB", "RGBA", "RGBX", "RGBa"):  # alpha dropped
        return np.asarray(img)[:, :, :3].astype(np.float32) / 255.0
    if mode in ("P", "PA"):  # palette colours; transparency ignored, as convert("RGB")
        index = np.asarray(img)
        index = index[:, :, 0] if index.ndim == 3 else index
        palette = np.zeros((256, 3), np.uint8)
        colours = np.asarray(img.getpalette("RGB") or [], np.uint8).reshape(-1, 3)[:256]
        palette[: len(colours)] = colours
        return palette[index].astype(np.float32) / 255.0
    # CMYK, YCbCr, LAB, HSV, ... -> Pillow's conversion to 8-bit RGB
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def _resize(hwc: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear, antialiased resize of each channel in float (no 8-bit rounding)."""
    image = _pil()
    h, w = size
    out = np.empty((h, w, hwc.shape[2]), np.float32)
    for c in range(hwc.shape[2]):
        chan = image.fromarray(np.ascontiguousarray(hwc[:, :, c]))
        out[:, :, c] = np.asarray(chan.resize((w, h), image.Resampling.BILINEAR))
    return np.clip(out, 0.0, 1.0, out=out)


def load_image(
    path: str | os.PathLike[str],
    size: int | tuple[int, int] | None = None,
    channels: int = 3,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Read an image file as a float32 volume of shape (C, H, W) in [0, 1].

    Parameters
    ----------
    path : str or PathLike
        A PNG, JPEG, BMP, GIF (first frame), TIFF, WebP or PPM file; the content decides
        the format, not the extension.
    size : int or (int, int), optional
        Resize to ``(size, size)`` or ``(h, w)`` with antialiased bilinear filtering,
        in float so 16-bit images keep their precision. ``None`` keeps the file's size.
    channels : {3, 1}
        3 for RGB (grayscale images are repeated), 1 for ITU-R 601-2 luma.
    max_pixels : int, optional
        Refuse files claiming more than this many pixels, before decoding. Defaults to
        :data:`DEFAULT_MAX_PIXELS`.

    Returns
    -------
    ndarray of shape (channels, H, W), float32, values in [0, 1]

    Raises
    ------
    ImageError
        Missing file, directory, unknown format, too many pixels, truncated or corrupt
        data. The message names the file.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "gray.png")
    >>> save_image(p, np.full((4, 6), 0.5))
    >>> load_image(p).shape, load_image(p, size=2, channels=1).shape
    ((3, 4, 6), (1, 2, 2))
    """
    target = normalize_size(size, "load_image")
    channels = check_channels(channels, "load_image")
    limit = _limit(max_pixels)
    if target is not None and target[0] * target[1] > limit:
        raise ArgumentError(
            message(
                "load_image",
                f"size {target[0]}x{target[1]} has more pixels than max_pixels={limit}",
                "pass a smaller size or a larger max_pixels",
                f"size={size!r}",
            )
        )
    path = as_path(path, "load_image")
    img = _open(path, limit)
    try:
        with img:
            img.load()
            hwc = _to_array(img)
    except Exception as exc:  # truncated data, bad CRC, decoder errors, EOF ...
        raise ImageError(
            message(
                _where(path),
                f"the image data cannot be decoded ({exc})",
                "the file is truncated or damaged; re-save or re-download it",
            )
        ) from None
    if channels == 3 and hwc.shape[2] == 1:
        hwc = np.repeat(hwc, 3, axis=2)
    elif channels == 1 and hwc.shape[2] == 3:
        hwc = (hwc @ np.array([0.299, 0.587, 0.114], np.float32))[:, :, None]
    if target is not None and target != hwc.shape[:2]:
        hwc = _resize(hwc, target)
    return np.ascontiguousarray(hwc.transpose(2, 0, 1), dtype=np.float32)


def load_pil_image(
    path: str | os.PathLike[str], mode: str | None = "RGB", max_pixels: int | None = None
):  # noqa: ANN201  (a PIL.Image.Image)
    """Read an image file as a decoded PIL image, with the checks of :func:`load_image`.

    torchvision's ``pil_loader`` (``Image.open(path).convert("RGB")``) with convscope's
    safety rules: only image formats are tried, and the claimed pixel count is checked
    against ``max_pixels`` before anything is decoded.

    Parameters
    ----------
    path : str or PathLike
    mode : str or None
        Pillow mode to convert to (``"RGB"``, ``"L"``, ...); ``None`` keeps the file's.
    max_pixels : int, optional
        Defaults to :data:`DEFAULT_MAX_PIXELS`.

    Raises
    ------
    ImageError
        As :func:`load_image`.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "gray.png")
    >>> save_image(p, np.full((4, 6), 0.5))
    >>> img = load_pil_image(p)
    >>> img.mode, img.size
    ('RGB', (6, 4))
    """
    limit = _limit(max_pixels)
    path = as_path(path, "load_pil_image")
    img = _open(path, limit)
    try:
        with img:
            img.load()
            return img.convert(mode) if mode is not None else img.copy()
    except Exception as exc:  # truncated data, bad CRC, decoder errors, unknown mode ...
        raise ImageError(
            message(
                _where(path),
                f"the image data cannot be decoded ({exc})",
                "the file is truncated or damaged; re-save or re-download it",
            )
        ) from None


def save_image(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write a (H, W) or (C, H, W) float array in [0, 1] as an 8-bit PNG.

    C may be 1 (gray), 3 (RGB) or 4 (RGBA). Values are clipped to [0, 1] and rounded to
    the nearest of 256 levels. The file is always PNG, whatever its extension says.

    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "red.png")
    >>> save_image(p, np.stack([np.ones((2, 2)), np.zeros((2, 2)), np.zeros((2, 2))]))
    >>> load_image(p)[:, 0, 0]
    array([1., 0., 0.], dtype=float32)
    """
    image = _pil()
    a = np.asarray(array)
    if a.dtype.kind not in "biuf":
        raise ArgumentTypeError(
            message("save_image", "array must be numeric", "pass a float array", f"dtype {a.dtype}")
        )
    if a.ndim == 3 and a.shape[0] in (1, 3, 4):
        hwc = a.transpose(1, 2, 0)
    elif a.ndim == 2:
        hwc = a[:, :, None]
    else:
        raise ArgumentError(
            message(
                "save_image",
                "array must have shape (H, W) or (C, H, W) with C in 1, 3, 4",
                "for a batch, save one image at a time: save_image(path, images[i])",
                f"shape {a.shape}",
            )
        )
    if hwc.shape[0] < 1 or hwc.shape[1] < 1:
        raise ArgumentError(
            message("save_image", "the image has no pixels", received=f"shape {a.shape}")
        )
    if not np.all(np.isfinite(hwc)):
        raise ArgumentError(
            message("save_image", "array holds NaN or infinity", "clean it with np.nan_to_num")
        )
    u8 = np.rint(np.clip(hwc.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
    img = image.fromarray(u8[:, :, 0] if u8.shape[2] == 1 else u8)
    try:
        img.save(os.fspath(path), format="PNG")
    except OSError as exc:
        raise ImageError(
            message(
                _where(os.fspath(path)),
                f"cannot write the file ({exc.strerror or exc})",
                "check that the folder exists and is writable",
            )
        ) from None
