"""Default randomness, as in PyTorch: ``cs.manual_seed(0)`` makes a script repeatable.

Every source of randomness that is not given one explicitly (initial weights of a layer
built without ``seed=``, ``cs.randn``, ``DataLoader(shuffle=True)`` without a
``generator``, random transforms, dropout without a generator) draws from one default
:class:`Generator`. :func:`manual_seed` reseeds it. An explicit seed or generator always
wins and never touches the default one, so code written with explicit seeds (the house
style, see ``STYLE.md``) is unaffected.

>>> import convscope as cs
>>> _ = cs.manual_seed(0); a = cs.nn.Conv2d(3, 8, 5).weight.numpy()
>>> _ = cs.manual_seed(0); b = cs.nn.Conv2d(3, 8, 5).weight.numpy()
>>> bool((a == b).all())
True
"""

from __future__ import annotations

import numbers
import threading
from typing import Any

import numpy as np

from .errors import ArgumentError, ArgumentTypeError, message

__all__ = ["Generator", "manual_seed", "seed", "initial_seed", "default_generator", "numpy_rng"]


def _check_seed(seed: Any, where: str) -> int:
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
        raise ArgumentTypeError(
            message(where, "a seed must be an int", "pass e.g. 0", f"seed={seed!r}")
        )
    if seed < 0:
        # PyTorch accepts negative seeds by wrapping them; NumPy refuses them. Wrap as PyTorch.
        seed = int(seed) % (1 << 64)
    if seed >= 1 << 64:
        raise ArgumentError(
            message(where, "a seed must be below 2**64", "pass a smaller int", f"seed={seed}")
        )
    return int(seed)


class Generator:
    """A source of random numbers (``torch.Generator``'s interface over NumPy's PCG64).

    Parameters
    ----------
    device : str
        Only ``"cpu"`` (accepted for PyTorch code that passes it).
    """

    def __init__(self, device: Any = "cpu") -> None:
        if str(device) != "cpu":
            raise ArgumentError(
                message("Generator", "convscope runs on the CPU only", "use device='cpu'",
                        f"device={device!r}")
            )
        self._lock = threading.Lock()
        self.seed()

    def manual_seed(self, seed: int) -> Generator:
        """Reseed; returns the generator (as PyTorch)."""
        value = _check_seed(seed, "Generator.manual_seed")
        with self._lock:
            self._seed = value
            self._rng = np.random.default_rng(value)
        return self

    def seed(self) -> int:
        """Reseed from fresh entropy; returns the new seed."""
        value = int(np.random.SeedSequence().entropy) % (1 << 63)
        with self._lock:
            self._seed = value
            self._rng = np.random.default_rng(value)
        return value

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> dict[str, Any]:
        """The generator's state (NumPy's bit-generator state dict); see :meth:`set_state`."""
        return self._rng.bit_generator.state

    def set_state(self, state: dict[str, Any]) -> Generator:
        self._rng.bit_generator.state = state
        return self

    @property
    def numpy(self) -> np.random.Generator:
        """The NumPy generator that draws the numbers (shared, not a copy)."""
        return self._rng

    def __repr__(self) -> str:
        return f"<convscope.Generator seed={self._seed}>"


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seed the default generator (weights, ``randn``, shuffling, transforms, dropout)."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    """Seed the default generator from fresh entropy; returns the seed."""
    return default_generator.seed()


def initial_seed() -> int:
    return default_generator.initial_seed()


def numpy_rng(source: Any = None, where: str = "generator") -> np.random.Generator:
    """The NumPy generator to draw from: ``source`` if given, else the default one.

    ``source`` may be None (the default generator), a :class:`Generator`, a
    ``np.random.Generator`` (used as is) or an int seed (a new generator from it).
    """
    if source is None:
        return default_generator.numpy
    if isinstance(source, Generator):
        return source.numpy
    if isinstance(source, np.random.Generator):
        return source
    if isinstance(source, numbers.Integral) and not isinstance(source, bool) and source >= 0:
        return np.random.default_rng(int(source))
    cls = ArgumentError if isinstance(source, numbers.Integral) else ArgumentTypeError
    raise cls(
        message(
            where,
            "a seed must be an int >= 0, a np.random.Generator, a convscope.Generator or None",
            "pass e.g. seed=0, or generator=cs.Generator().manual_seed(0)",
            f"{where}={source!r:.60}",
        )
    )
