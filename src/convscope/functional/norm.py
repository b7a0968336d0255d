"""Batch normalisation and dropout."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ArgumentError, ShapeError, message
from ..tensor import Tensor, make
from ..tracing import traced
from ._common import as_tensor


@traced("batch_norm")
def batch_norm(
    input: Any,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each channel of (N, C, H, W) by its batch (training) or running statistics.

    In training the running statistics are updated in place with the unbiased batch variance,
    as PyTorch does.
    """
    where = "batch_norm"
    x = as_tensor(input, where)
    if x.ndim != 4:
        raise ShapeError(
            message(
                where,
                f"expected (N, C, H, W), got {x.ndim}-D",
                "add a batch axis",
                f"input shape {x.shape}",
            )
        )
    c = x.shape[1]
    for name, value in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        if value is None:
            if not training and name.startswith("running"):
                raise ArgumentError(
                    message(
                        where,
                        f"evaluation needs `{name}`",
                        "pass the running statistics, or training=True",
                        f"{name}=None",
                    )
                )
            continue
        got = np.shape(value.data if isinstance(value, Tensor) else value)
        if got != (c,):
            raise ShapeError(
                message(
                    where,
                    f"`{name}` must have one value per channel ({c})",
                    f"pass an array of shape ({c},)",
                    f"{name} shape {got}, input shape {x.shape}",
                )
            )
    axes = (0, 2, 3)
    count = x.shape[0] * x.shape[2] * x.shape[3]
    if training:
        if count <= 1:
            raise ShapeError(
                message(
                    where,
                    "training needs more than one value per channel",
                    "use a batch larger than 1 or call model.eval()",
                    f"input shape {x.shape}",
                )
            )
        mean = x.data.mean(axis=axes)
        var = x.data.var(axis=axes)
        if running_mean is not None and running_var is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += momentum * var * count / (count - 1)
    else:
        mean, var = running_mean, running_var
    inv = (1.0 / np.sqrt(np.asarray(var, dtype=x.dtype) + eps)).astype(x.dtype)
    xhat = (x.data - np.asarray(mean, dtype=x.dtype).reshape(1, c, 1, 1)) * inv.reshape(1, c, 1, 1)
    norm_train = training

    def backward(g: np.ndarray) -> tuple[np.ndarray]:
        if not norm_train:
            return (g * inv.reshape(1, c, 1, 1),)
        gm = g.mean(axis=axes, keepdims=True)
        gxm = (g * xhat).mean(axis=axes, keepdims=True)
        return ((g - gm - xhat * gxm) * inv.reshape(1, c, 1, 1),)

    y = make(xhat, (x,), backward, "batch_norm")
    if weight is not None:
        y = y * as_tensor(weight, where, "weight").reshape(1, c, 1, 1)
    if bias is not None:
        y = y + as_tensor(bias, where, "bias").reshape(1, c, 1, 1)
    return y


@traced("dropout")
def dropout(
    input: Any, p: float = 0.5, training: bool = True, generator: np.random.Generator | None = None
) -> Tensor:
    """Zero each value with probability ``p``, scale the rest by ``1 / (1 - p)`` (training only)."""
    x = as_tensor(input, "dropout")
    if (
        not isinstance(p, (int, float, np.floating, np.integer))
        or isinstance(p, bool)
        or not 0.0 <= p <= 1.0
    ):
        raise ArgumentError(
            message("dropout", "p must be a probability in [0, 1]", "use p=0.5", f"p={p}")
        )
    if not training or p == 0.0:
        return x
    from ..random import numpy_rng

    rng = numpy_rng(generator)
    keep = (rng.random(x.shape) >= p).astype(x.dtype)
    scale = keep / (1.0 - p) if p < 1.0 else keep
    return x * Tensor._wrap(scale.astype(x.dtype))
