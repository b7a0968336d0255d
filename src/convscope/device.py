"""Devices, as PyTorch names them; convscope computes on the CPU only.

PyTorch scripts pick a device once and move everything to it::

    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    net.to(device); inputs, labels = inputs.to(device), labels.to(device)

On convscope ``cs.cuda.is_available()`` is False, so that line picks ``cs.device("cpu")``
and every ``.to(device)`` returns the tensor or module itself. A device other than the
CPU can be named (as in PyTorch, where naming CUDA needs no GPU), but moving anything to it
is refused with a clear error.

>>> import convscope as cs
>>> device = cs.device("cuda:0" if cs.cuda.is_available() else "cpu")
>>> device, cs.tensor([1.0]).to(device).device == device
(device(type='cpu'), True)
"""

from __future__ import annotations

from typing import Any

from .errors import ArgumentError, ArgumentTypeError, message

__all__ = ["device", "as_device", "is_device"]

_KNOWN = ("cpu", "cuda", "mps", "xpu", "meta")


class device:
    """A place where tensors live: ``device("cpu")``, ``device("cuda", 0)``, ``device("cuda:1")``.

    Only ``"cpu"`` holds tensors in convscope; the others exist so that PyTorch code that
    names them runs up to the point where it would move data there.
    """

    __slots__ = ("type", "index")

    def __init__(self, type: Any, index: int | None = None) -> None:  # noqa: A002 (torch's)
        if isinstance(type, device):
            type, index = type.type, type.index if index is None else index
        if not isinstance(type, str):
            raise ArgumentTypeError(
                message("device", "a device is named by a string", "pass device('cpu')",
                        f"{type!r:.60}")
            )
        name, _, number = type.partition(":")
        if name not in _KNOWN or (number and not number.isdigit()):
            raise ArgumentError(
                message("device", f"unknown device {type!r}", "use 'cpu'",
                        f"device={type!r}")
            )
        if number:
            index = int(number)
        self.type: str = name
        self.index: int | None = None if index is None else int(index)

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, str):
            try:
                other = device(other)
            except (ArgumentError, ArgumentTypeError):
                return False
        if not isinstance(other, device):
            return NotImplemented
        return (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        idx = "" if self.index is None else f", index={self.index}"
        return f"device(type={self.type!r}{idx})"


CPU = device("cpu")


def is_device(value: Any) -> bool:
    """Whether ``value`` names a device (a :class:`device` or a string such as 'cpu')."""
    if isinstance(value, device):
        return True
    return isinstance(value, str) and value.partition(":")[0] in _KNOWN


def as_device(value: Any, where: str) -> device:
    """``value`` as the CPU device; naming any other device is refused (convscope has none)."""
    d = value if isinstance(value, device) else device(value)
    if d.type != "cpu":
        raise ArgumentError(
            message(where, f"convscope runs on the CPU only, not {str(d)!r}",
                    "use .to('cpu') (or leave the call out); cs.cuda.is_available() is False",
                    f"device={str(d)!r}")
        )
    return CPU
