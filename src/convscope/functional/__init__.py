"""Operations on tensors, with PyTorch's names, arguments and semantics.

Each operation checks its arguments (a convscope error with the numbers and a fix), calls a
forward kernel from :mod:`convscope.kernels`, and attaches the matching backward kernel. The
functions accept NumPy arrays or :class:`~convscope.Tensor` and return a ``Tensor``; plain
arrays become float32.

>>> import numpy as np, convscope as cs
>>> x = np.ones((1, 3, 64, 64), dtype=np.float32)              # one 64x64x3 image
>>> w = np.ones((8, 3, 5, 5), dtype=np.float32)                # 8 kernels of 5x5x3
>>> cs.functional.conv2d(x, w, padding=2).shape                 # 64x64x8
(1, 8, 64, 64)
"""

from __future__ import annotations

from ._common import as_tensor as as_tensor  # for layers: the same argument checks
from .activation import (
    elu,
    gelu,
    hardsigmoid,
    hardswish,
    hardtanh,
    leaky_relu,
    log_softmax,
    relu6,
    sigmoid,
    silu,
    softmax,
    tanh,
)
from .conv import avg_pool2d, conv2d, conv2d_relu, max_pool2d, pad
from .conv import avg_pool2d_at as avg_pool2d_at  # the layers' forms (their names in errors)
from .conv import conv2d_at as conv2d_at
from .conv import max_pool2d_at as max_pool2d_at
from .dense import cross_entropy, flatten, linear, mse_loss, relu
from .join import add, cat, stack
from .loss import (
    binary_cross_entropy_with_logits,
    cross_entropy,  # noqa: F811  (PyTorch's options; plain calls run dense's)
    l1_loss,
    nll_loss,
)
from .noise import dropout2d
from .norm import batch_norm, dropout
from .resample import adaptive_avg_pool2d, interpolate
from .transpose import conv_transpose2d

__all__ = [
    "conv2d",
    "conv2d_relu",
    "max_pool2d",
    "avg_pool2d",
    "relu",
    "linear",
    "flatten",
    "pad",
    "softmax",
    "log_softmax",
    "cross_entropy",
    "mse_loss",
    "batch_norm",
    "dropout",
    "conv_transpose2d",
    "adaptive_avg_pool2d",
    "interpolate",
    "leaky_relu",
    "relu6",
    "hardtanh",
    "sigmoid",
    "tanh",
    "gelu",
    "silu",
    "hardswish",
    "hardsigmoid",
    "elu",
    "dropout2d",
    "cat",
    "stack",
    "add",
]
__all__ += ["nll_loss", "l1_loss", "binary_cross_entropy_with_logits"]
