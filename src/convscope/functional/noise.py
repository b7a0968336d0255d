"""Channel dropout: whole feature maps switched off at random during training."""

from __future__ import annotations

import numbers
from typing import Any

from ..errors import ArgumentError, ShapeError, message
from ..tensor import Tensor, make
from ..tracing import traced
from ._common import as_tensor


def check_rank(shape: tuple[int, ...], where: str) -> None:
    """Channel dropout needs (N, C, H, W) or (C, H, W)."""
    if len(shape) not in (3, 4):
        raise ShapeError(
            message(where, f"expected a 4-D input (N, C, H, W) or a 3-D volume (C, H, W), got "
                    f"{len(shape)}-D", "use functional.dropout for other shapes",
                    f"input shape {tuple(shape)}")
        )


@traced("dropout2d")
def dropout2d(
    input: Any,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
    *,
    generator: Any = None,
) -> Tensor:
    """Zero each whole channel (feature map) with probability ``p``; scale the rest by
    ``1 / (1 - p)``, so the expected value is unchanged. Identity when not ``training``.

    Parameters
    ----------
    input : array_like of shape (N, C, H, W) or (C, H, W)
        A 3-D input is one unbatched volume (PyTorch 2.x reads it as (N, C, L) with a
        deprecation warning, and will read it as (C, H, W); convscope does so now).
    p : float in [0, 1]
    training : bool
    inplace : bool
        Accepted for PyTorch code and ignored: the input is never overwritten.
    generator : int, np.random.Generator or convscope.Generator, optional
        Where the channel mask comes from; None draws from the default generator that
        ``cs.manual_seed`` seeds.

    Returns
    -------
    Tensor of the input's shape

    Examples
    --------
    >>> import numpy as np, convscope as cs
    >>> y = cs.functional.dropout2d(np.ones((1, 4, 2, 2)), 0.5, generator=0).numpy()
    >>> sorted(set(y.reshape(4, -1).max(axis=1).tolist()))   # whole maps are 0 or 2
    [0.0, 2.0]
    """
    where = "dropout2d"
    x = as_tensor(input, where)
    if (not isinstance(p, numbers.Real) or isinstance(p, bool)
            or not 0.0 <= float(p) <= 1.0):
        raise ArgumentError(
            message(where, "p must be a probability in [0, 1]", "use p=0.5", f"p={p!r}")
        )
    check_rank(x.shape, where)
    if not training or p == 0:
        return x
    from ..random import numpy_rng

    rng = numpy_rng(generator, "generator")
    channels = x.shape[:-2]  # (N, C) or (C,)
    keep = rng.random(channels) >= p
    scale = (keep / (1.0 - p) if p < 1 else keep).astype(x.dtype)[..., None, None]
    return make(x.data * scale, (x,), lambda g: (g * scale,), "dropout2d")
