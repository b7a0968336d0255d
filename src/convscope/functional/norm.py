"""Batch normalisation and dropout."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ArgumentError, ShapeError, message
from ..kernels import elementwise
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
    as PyTorch does. One graph node, the affine ``weight`` and ``bias`` inside: the forward
    is one pass ``(x - mean) * (weight / sqrt(var + eps)) + bias`` (plus one pass for the
    batch statistics in training), the backward one pass for the per-channel sums and one
    for the input gradient (:mod:`convscope.kernels.elementwise`). Statistics and
    gradient sums accumulate in float64, as PyTorch's CPU kernel; the node keeps the input
    and the per-channel mean and ``1 / sqrt(var + eps)``, as PyTorch does.
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
    count = x.shape[0] * x.shape[2] * x.shape[3]
    if training and count <= 1:
        raise ShapeError(
            message(
                where,
                "training needs more than one value per channel",
                "use a batch larger than 1 or call model.eval()",
                f"input shape {x.shape}",
            )
        )
    w = None if weight is None else as_tensor(weight, where, "weight")
    b = None if bias is None else as_tensor(bias, where, "bias")
    dtype = np.result_type(x.dtype, *(t.dtype for t in (w, b) if t is not None))
    xd = x.data if x.dtype == dtype else x.data.astype(dtype)
    if training:
        mean, var = elementwise.batch_norm_stats(xd)  # float64, biased variance
        if running_mean is not None and running_var is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += momentum * var * count / (count - 1)
    else:
        mean = np.asarray(running_mean, dtype=np.float64)
        var = np.asarray(running_var, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        invstd = 1.0 / np.sqrt(var + eps)
    wv = np.ones(c) if w is None else w.data.astype(np.float64)
    mean_d = mean.astype(dtype)
    scale = (wv * invstd).astype(dtype)
    y = elementwise.batch_norm_normalize(
        xd, mean_d, scale, np.zeros(c, dtype) if b is None else b.data.astype(dtype)
    )
    need_x = x.requires_grad
    need_w = w is not None and w.requires_grad
    need_b = b is not None and b.requires_grad

    def backward(g: np.ndarray) -> tuple:
        g = np.asarray(g, dtype=dtype)
        sg = sgd = None
        if (training and need_x) or need_w or need_b:
            sg, sgd = elementwise.batch_norm_grad_sums(g, xd, mean)  # float64
        gx = None
        if need_x and training:
            k = (sgd * invstd * invstd / count).astype(dtype)
            gx = elementwise.batch_norm_grad_input(g, xd, mean_d, k, (sg / count).astype(dtype),
                                                   scale)
        elif need_x:
            gx = elementwise.scale_channels(g, scale)
        grads: list = [gx]
        if w is not None:
            grads.append((sgd * invstd).astype(w.dtype) if need_w else None)
        if b is not None:
            grads.append(sg.astype(b.dtype) if need_b else None)
        return tuple(grads)

    parents = (x,) + tuple(t for t in (w, b) if t is not None)
    return make(y, parents, backward, "batch_norm")


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
