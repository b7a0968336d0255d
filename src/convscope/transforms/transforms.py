"""The transform classes, as ``torchvision.transforms``.

Random transforms draw from their ``generator=`` (a :class:`convscope.Generator`, a
``np.random.Generator``, or an int seed for a generator of their own), or, without one,
from the default generator that
:func:`convscope.manual_seed` seeds: ``cs.manual_seed(0)`` makes an augmentation pipeline
repeatable. The sampling algorithms are torchvision's; the random numbers are NumPy's, so
a seed does not give the same crops as in PyTorch.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, message
from ..random import Generator, numpy_rng
from . import _image
from . import functional as F
from .functional import InterpolationMode

__all__ = [
    "Compose", "ToTensor", "Normalize", "Resize", "CenterCrop", "Pad", "RandomCrop",
    "RandomHorizontalFlip", "RandomVerticalFlip", "RandomResizedCrop", "ColorJitter", "Lambda",
]


def _generator(generator: Any, where: str) -> Any:
    if generator is None or isinstance(generator, (Generator, np.random.Generator)):
        return generator
    if isinstance(generator, numbers.Integral) and not isinstance(generator, bool):
        return np.random.default_rng(int(generator)) if generator >= 0 else numpy_rng(
            generator, where)
    raise ArgumentTypeError(message(where, "generator must be a convscope.Generator, a "
                                    "np.random.Generator or an int seed",
                                    "pass generator=cs.Generator().manual_seed(0), or leave it "
                                    "out to draw from the default generator",
                                    f"generator={generator!r:.60}"))


class _Random:
    """Holds the source of random numbers of a random transform."""

    generator: Any = None

    def _rng(self) -> np.random.Generator:
        return numpy_rng(self.generator)  # the default generator is looked up at call time


def _probability(p: Any, where: str) -> float:
    if not isinstance(p, numbers.Real) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
        raise ArgumentError(message(where, "p must be a probability in [0, 1]", "pass e.g. p=0.5",
                                    f"p={p!r:.40}"))
    return float(p)


class Compose:
    """Apply ``transforms`` one after the other.

    >>> import numpy as np
    >>> t = Compose([ToTensor(), Normalize((0.5,), (0.5,))])
    >>> t(np.zeros((2, 2, 1), np.uint8)).numpy().ravel().tolist()
    [-1.0, -1.0, -1.0, -1.0]
    """

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        if not isinstance(transforms, (list, tuple)) or not all(callable(t) for t in transforms):
            raise ArgumentTypeError(message("Compose", "transforms must be a list of callables",
                                            "pass e.g. Compose([ToTensor(), Normalize(m, s)])",
                                            f"{transforms!r:.80}"))
        self.transforms = list(transforms)

    def __call__(self, img: Any) -> Any:
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}" for t in self.transforms)
        return f"{type(self).__name__}({inner}\n)"


class ToTensor:
    """A PIL image or (H, W, C) array -> a (C, H, W) Tensor; uint8 becomes [0, 1] float32."""

    def __call__(self, pic: Any) -> Any:
        return F.to_tensor(pic)

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """``(image - mean) / std`` per channel of a float Tensor or array image."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> None:
        self.mean, self.std, self.inplace = mean, std, bool(inplace)

    def __call__(self, tensor: Any) -> Any:
        return F.normalize(tensor, self.mean, self.std, self.inplace)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class Lambda:
    """Apply a user function."""

    def __init__(self, lambd: Callable[[Any], Any]) -> None:
        if not callable(lambd):
            raise ArgumentTypeError(message("Lambda", "the argument must be callable",
                                            "pass a function", f"{type(lambd).__name__}"))
        self.lambd = lambd

    def __call__(self, img: Any) -> Any:
        return self.lambd(img)

    def __repr__(self) -> str:
        return "Lambda()"


class Resize:
    """Resize: an int sets the shorter side (aspect kept), a pair is (height, width).

    >>> import numpy as np
    >>> Resize(4)(np.zeros((3, 10, 20), np.float32)).shape
    (3, 4, 8)
    """

    def __init__(self, size: Any, interpolation: Any = InterpolationMode.BILINEAR,
                 max_size: int | None = None, antialias: bool = True) -> None:
        F.resized_size(1, 1, size, max_size, "Resize")  # validates size and max_size
        self.size = size
        self.interpolation = F.interpolation_mode(interpolation, "Resize")
        self.max_size, self.antialias = max_size, antialias

    def __call__(self, img: Any) -> Any:
        return F.resize(img, self.size, self.interpolation, self.max_size, self.antialias)

    def __repr__(self) -> str:
        return (f"Resize(size={self.size}, interpolation={self.interpolation.value}, "
                f"max_size={self.max_size}, antialias={self.antialias})")


class CenterCrop:
    """The central region of ``size`` (zero-padded first if the image is smaller)."""

    def __init__(self, size: Any) -> None:
        self.size = F.pair(size, "size", "CenterCrop")

    def __call__(self, img: Any) -> Any:
        return F.center_crop(img, self.size)

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


def _check_pad_options(fill: Any, padding_mode: Any, where: str) -> None:
    if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
        raise ArgumentError(message(where, "padding_mode must be constant, edge, reflect or "
                                    "symmetric", "pass e.g. padding_mode='reflect'",
                                    f"padding_mode={padding_mode!r}"))
    if not isinstance(fill, (numbers.Real, tuple, list)) or isinstance(fill, bool):
        raise ArgumentTypeError(message(where, "fill must be a number or a tuple (one value per "
                                        "channel)", "pass e.g. fill=0",
                                        f"fill={fill!r:.40}"))


class Pad:
    """Pad the borders (see :func:`functional.pad`)."""

    def __init__(self, padding: Any, fill: Any = 0, padding_mode: str = "constant") -> None:
        F.parse_padding(padding, "Pad")
        _check_pad_options(fill, padding_mode, "Pad")
        self.padding, self.fill, self.padding_mode = padding, fill, padding_mode

    def __call__(self, img: Any) -> Any:
        return F.pad(img, self.padding, self.fill, self.padding_mode)

    def __repr__(self) -> str:
        return f"Pad(padding={self.padding}, fill={self.fill}, padding_mode={self.padding_mode})"


class RandomCrop(_Random):
    """A crop of ``size`` at a random place, after optional padding (torchvision's rules).

    ``padding`` pads every image first; ``pad_if_needed`` then pads an image narrower
    (lower) than ``size`` by the missing amount on *both* sides, as torchvision does.
    The top row is drawn uniformly from ``[0, H - h]``, then the left column from
    ``[0, W - w]``.

    >>> import numpy as np, convscope as cs
    >>> crop = RandomCrop(32, padding=4, generator=cs.Generator().manual_seed(0))
    >>> crop(np.ones((3, 32, 32), np.float32)).shape
    (3, 32, 32)
    """

    def __init__(self, size: Any, padding: Any = None, pad_if_needed: bool = False,
                 fill: Any = 0, padding_mode: str = "constant", *,
                 generator: Generator | None = None) -> None:
        where = "RandomCrop"
        self.size = F.pair(size, "size", where)
        if padding is not None:
            F.parse_padding(padding, where)
        _check_pad_options(fill, padding_mode, where)
        self.padding, self.pad_if_needed = padding, bool(pad_if_needed)
        self.fill, self.padding_mode = fill, padding_mode
        self.generator = _generator(generator, where)

    @staticmethod
    def get_params(img: Any, output_size: tuple[int, int],
                   generator: Any = None) -> tuple[int, int, int, int]:
        """(top, left, height, width) of a random crop of ``output_size``."""
        _, h, w = _image.dimensions(img, "RandomCrop")
        th, tw = output_size
        if h < th or w < tw:
            raise ArgumentError(message("RandomCrop", f"required crop size {(th, tw)} is larger "
                                        f"than the input image size {(h, w)}",
                                        "pass padding= or pad_if_needed=True, or a smaller size",
                                        f"image {h}x{w}, size {th}x{tw}"))
        if (h, w) == (th, tw):
            return 0, 0, h, w
        rng = numpy_rng(generator)
        i = int(rng.integers(0, h - th + 1))
        j = int(rng.integers(0, w - tw + 1))
        return i, j, th, tw

    def __call__(self, img: Any) -> Any:
        if self.padding is not None:
            img = F.pad(img, self.padding, self.fill, self.padding_mode)
        _, h, w = _image.dimensions(img, "RandomCrop")
        if self.pad_if_needed and w < self.size[1]:
            img = F.pad(img, [self.size[1] - w, 0], self.fill, self.padding_mode)
        if self.pad_if_needed and h < self.size[0]:
            img = F.pad(img, [0, self.size[0] - h], self.fill, self.padding_mode)
        i, j, th, tw = self.get_params(img, self.size, self._rng())
        return F.crop(img, i, j, th, tw)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip(_Random):
    """Mirror left-right with probability ``p`` (one draw ``u < p`` per image)."""

    def __init__(self, p: float = 0.5, *, generator: Generator | None = None) -> None:
        self.p = _probability(p, type(self).__name__)
        self.generator = _generator(generator, type(self).__name__)

    def _flip(self, img: Any) -> Any:
        return F.hflip(img)

    def __call__(self, img: Any) -> Any:
        if not _image.is_pil(img):
            _image.values(img, type(self).__name__)  # a wrong type is refused, flipped or not
        return self._flip(img) if self._rng().random() < self.p else img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class RandomVerticalFlip(RandomHorizontalFlip):
    """Mirror top-bottom with probability ``p``."""

    def _flip(self, img: Any) -> Any:
        return F.vflip(img)


def _range(value: Any, name: str, where: str) -> tuple[float, float]:
    ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)
    if not ok or not 0 < value[0] <= value[1]:
        raise ArgumentError(message(where, f"{name} must be a pair (min, max) with "
                                    "0 < min <= max", f"pass e.g. {name}=(0.08, 1.0)",
                                    f"{name}={value!r:.60}"))
    return float(value[0]), float(value[1])


class RandomResizedCrop(_Random):
    """A random region of random area and aspect ratio, resized to ``size``.

    torchvision's algorithm: up to 10 tries draw an area fraction ``s ~ U(scale)`` and a
    log aspect ratio ``log r ~ U(log ratio)``, giving ``w = round(sqrt(s * A * r))`` and
    ``h = round(sqrt(s * A / r))``; the first that fits in the image is placed at a
    uniformly drawn top, then left. If none fits: the largest central crop whose aspect
    ratio is clamped into ``ratio``.
    """

    def __init__(self, size: Any, scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
                 interpolation: Any = InterpolationMode.BILINEAR, antialias: bool = True, *,
                 generator: Generator | None = None) -> None:
        where = "RandomResizedCrop"
        self.size = F.pair(size, "size", where)
        self.scale = _range(scale, "scale", where)
        self.ratio = _range(ratio, "ratio", where)
        self.interpolation = F.interpolation_mode(interpolation, where)
        self.antialias = antialias
        self.generator = _generator(generator, where)

    @staticmethod
    def get_params(img: Any, scale: Sequence[float], ratio: Sequence[float],
                   generator: Any = None) -> tuple[int, int, int, int]:
        """(top, left, height, width) of the region to crop."""
        _, height, width = _image.dimensions(img, "RandomResizedCrop")
        area = height * width
        rng = numpy_rng(generator)
        log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
        for _ in range(10):
            target_area = area * rng.uniform(scale[0], scale[1])
            aspect = math.exp(rng.uniform(log_lo, log_hi))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                i = int(rng.integers(0, height - h + 1))
                j = int(rng.integers(0, width - w + 1))
                return i, j, h, w
        in_ratio = width / height
        if in_ratio < min(ratio):
            w, h = width, int(round(width / min(ratio)))
        elif in_ratio > max(ratio):
            w, h = int(round(height * max(ratio))), height
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img: Any) -> Any:
        i, j, h, w = self.get_params(img, self.scale, self.ratio, self._rng())
        return F.resized_crop(img, i, j, h, w, self.size, self.interpolation, self.antialias)

    def __repr__(self) -> str:
        return (f"RandomResizedCrop(size={self.size}, scale={self.scale}, "
                f"ratio={tuple(round(r, 4) for r in self.ratio)})")


def _jitter(value: Any, name: str, where: str, centre: float = 1.0,
            bound: tuple[float, float] = (0.0, math.inf),
            clip_first: bool = True) -> tuple[float, float] | None:
    """torchvision's ``ColorJitter._check_input``: f -> [c - f, c + f] (clipped at 0)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if value < 0:
            raise ArgumentError(message(where, f"if {name} is a single number, it must be "
                                        "non-negative", f"pass e.g. {name}=0.2",
                                        f"{name}={value!r}"))
        lo, hi = centre - float(value), centre + float(value)
        lo = max(lo, 0.0) if clip_first else lo
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value):
        lo, hi = float(value[0]), float(value[1])
    else:
        raise ArgumentTypeError(message(where, f"{name} should be a single number or a pair "
                                        "(min, max)", f"pass e.g. {name}=0.2",
                                        f"{name}={value!r:.40}"))
    if not bound[0] <= lo <= hi <= bound[1]:
        raise ArgumentError(message(where, f"{name} values should be between {bound}",
                                    f"pass e.g. {name}=0.2", f"{name}={[lo, hi]}"))
    return None if lo == hi == centre else (lo, hi)


class ColorJitter(_Random):
    """Random brightness, contrast, saturation and hue changes, in a random order.

    Each number ``f`` means a factor drawn from ``[max(0, 1 - f), 1 + f]`` (hue: a turn
    drawn from ``[-f, f]``, ``f <= 0.5``); a pair gives the range itself. Per image, as
    torchvision: a random order of the four adjustments is drawn, then the factors of the
    enabled ones (brightness, contrast, saturation, hue), then they are applied in that
    order with :func:`functional.adjust_brightness` etc.
    """

    def __init__(self, brightness: Any = 0, contrast: Any = 0, saturation: Any = 0,
                 hue: Any = 0, *, generator: Generator | None = None) -> None:
        where = "ColorJitter"
        self.brightness = _jitter(brightness, "brightness", where)
        self.contrast = _jitter(contrast, "contrast", where)
        self.saturation = _jitter(saturation, "saturation", where)
        self.hue = _jitter(hue, "hue", where, centre=0.0, bound=(-0.5, 0.5), clip_first=False)
        self.generator = _generator(generator, where)

    @staticmethod
    def get_params(brightness: Any, contrast: Any, saturation: Any, hue: Any,
                   generator: Any = None) -> tuple[np.ndarray, Any, Any, Any, Any]:
        """The order (a permutation of 0..3) and the four factors (None when disabled)."""
        rng = numpy_rng(generator)
        order = rng.permutation(4)
        factors = [None if r is None else float(rng.uniform(r[0], r[1]))
                   for r in (brightness, contrast, saturation, hue)]
        return (order, *factors)

    def __call__(self, img: Any) -> Any:
        if not _image.is_pil(img):
            _image.values(img, "ColorJitter")
        order, b, c, s, h = self.get_params(self.brightness, self.contrast, self.saturation,
                                            self.hue, self._rng())
        ops = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue)
        factors = (b, c, s, h)
        for k in order:
            if factors[k] is not None:
                img = ops[k](img, factors[k])
        return img

    def __repr__(self) -> str:
        return (f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation}, hue={self.hue})")
