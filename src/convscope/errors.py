"""Every error convscope raises for a bad request, and the one place their wording lives.

A message answers three questions, in Keras's form: what is wrong, how to fix it, and
what was received::

    Conv2d(3 -> 8, 5x5): input depth 4 does not match kernel depth 3. Fix: pass an input
    volume with 3 channels, or build the layer with in_channels=4. Received: input shape
    (1, 4, 64, 64).

All classes subclass ``ConvscopeError`` and a builtin (``ValueError`` or ``TypeError``), so
``except ValueError`` keeps working for code written against NumPy or PyTorch.
"""

from __future__ import annotations

__all__ = [
    "ConvscopeError",
    "ShapeError",
    "ArgumentError",
    "ArgumentTypeError",
    "SpecError",
    "GradError",
    "IndexingError",
    "FileFormatError",
    "ImageError",
    "DataError",
    "message",
]


class ConvscopeError(Exception):
    """Base class of every error convscope raises on purpose."""


class ShapeError(ConvscopeError, ValueError):
    """Volumes that do not fit: wrong depth, kernel bigger than the input, wrong rank."""


class ArgumentError(ConvscopeError, ValueError):
    """An argument with an impossible value: stride 0, negative padding, groups not dividing."""


class ArgumentTypeError(ConvscopeError, TypeError):
    """An argument of the wrong type: a string where a number belongs, an object array."""


class SpecError(ConvscopeError, ValueError):
    """A model spec such as ``"64x64x3 | conv(8, 5)"`` that cannot be parsed."""


class GradError(ConvscopeError, RuntimeError):
    """Autograd misuse: backward on a non-scalar without a gradient, or twice."""


class IndexingError(ConvscopeError, IndexError, ValueError):
    """An index that does not fit a tensor (``t[10]`` of 3 rows, a float index). An
    ``IndexError`` as in PyTorch and NumPy, and a ``ValueError`` as every convscope error."""


class FileFormatError(ConvscopeError, ValueError):
    """A model or weights file that is missing, truncated, corrupt or not ours."""


class ImageError(ConvscopeError, ValueError):
    """An image file that cannot be read, or claims more pixels than allowed."""


class DataError(ConvscopeError, ValueError):
    """A dataset that cannot be used: empty folder, class without images, bad labels."""


def message(where: str, what: str, fix: str | None = None, received: str | None = None) -> str:
    """Build a message in the house form: ``"<where>: <what>. Fix: <fix>. Received: <received>."``.

    >>> message("Conv2d", "stride must be >= 1", "use stride=1", "stride=0")
    'Conv2d: stride must be >= 1. Fix: use stride=1. Received: stride=0.'
    """
    parts = [f"{where}: {what.rstrip('.')}." if where else f"{what.rstrip('.')}."]
    if fix:
        parts.append(f"Fix: {fix.rstrip('.')}.")
    if received:
        parts.append(f"Received: {received.rstrip('.')}.")
    return " ".join(parts)
