"""``torch.cuda``'s questions, answered for a library without GPUs: there is none.

Scripts ask ``torch.cuda.is_available()`` to choose a device and call
``torch.cuda.manual_seed_all(seed)`` beside ``torch.manual_seed(seed)``; both run here and
do nothing harmful.

>>> import convscope as cs
>>> cs.cuda.is_available(), cs.cuda.device_count()
(False, 0)
"""

from __future__ import annotations

__all__ = ["is_available", "device_count", "manual_seed", "manual_seed_all", "synchronize"]


def is_available() -> bool:
    """False: convscope computes on the CPU."""
    return False


def device_count() -> int:
    """0: no GPUs."""
    return 0


def manual_seed(seed: int) -> None:
    """Nothing to seed (as PyTorch without a GPU): ``cs.manual_seed`` seeds the CPU."""


def manual_seed_all(seed: int) -> None:
    """Nothing to seed (as PyTorch without a GPU)."""


def synchronize(device: object = None) -> None:
    """Nothing to wait for: CPU work is finished when a call returns."""
