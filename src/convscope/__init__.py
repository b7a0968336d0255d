"""convscope: a convolutional neural network library you can read, trust, see and use.

>>> import numpy as np, convscope as cs
>>> x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
>>> model = cs.nn.Sequential(cs.nn.Conv2d(3, 8, 5, padding=2, seed=0), cs.nn.ReLU())
>>> model(x).shape
(1, 8, 64, 64)
"""

from __future__ import annotations

import importlib
from typing import Any

from . import cuda as cuda
from . import errors as errors
from . import functional as functional
from . import nn as nn
from . import optim as optim
from . import shapes as shapes
from .device import device as device
from .dtypes import DType as dtype
from .dtypes import bool_ as bool
from .dtypes import float32 as float
from .dtypes import float32 as float32
from .dtypes import float64 as double
from .dtypes import float64 as float64
from .dtypes import int8 as int8
from .dtypes import int16 as int16
from .dtypes import int16 as short
from .dtypes import int32 as int
from .dtypes import int32 as int32
from .dtypes import int64 as int64
from .dtypes import int64 as long
from .dtypes import uint8 as uint8
from .explain import explain as explain  # noqa: E402  (the function, not the module)
from .factories import arange as arange
from .factories import as_tensor as as_tensor
from .factories import empty as empty
from .factories import empty_like as empty_like
from .factories import eye as eye
from .factories import from_numpy as from_numpy
from .factories import full as full
from .factories import full_like as full_like
from .factories import linspace as linspace
from .factories import ones as ones
from .factories import ones_like as ones_like
from .factories import rand as rand
from .factories import rand_like as rand_like
from .factories import randint as randint
from .factories import randn as randn
from .factories import randn_like as randn_like
from .factories import randperm as randperm
from .factories import zeros as zeros
from .factories import zeros_like as zeros_like
from .functional.join import add as add
from .functional.join import cat as cat
from .functional.join import flatten as flatten
from .functional.join import stack as stack
from .random import Generator as Generator
from .random import initial_seed as initial_seed
from .random import manual_seed as manual_seed
from .random import seed as seed
from .spec import parse as parse
from .tensor import Tensor as Tensor
from .tensor import enable_grad as enable_grad
from .tensor import inference_mode as inference_mode
from .tensor import is_grad_enabled as is_grad_enabled
from .tensor import no_grad as no_grad
from .tensor import set_grad_enabled as set_grad_enabled
from .tensor import tensor as tensor
from .tensor_functions import abs as abs
from .tensor_functions import all as all
from .tensor_functions import allclose as allclose
from .tensor_functions import any as any
from .tensor_functions import argmax as argmax
from .tensor_functions import argmin as argmin
from .tensor_functions import clamp as clamp
from .tensor_functions import clip as clip
from .tensor_functions import equal as equal
from .tensor_functions import exp as exp
from .tensor_functions import is_floating_point as is_floating_point
from .tensor_functions import is_tensor as is_tensor
from .tensor_functions import isclose as isclose
from .tensor_functions import log as log
from .tensor_functions import log_softmax as log_softmax
from .tensor_functions import matmul as matmul
from .tensor_functions import max as max
from .tensor_functions import maximum as maximum
from .tensor_functions import mean as mean
from .tensor_functions import min as min
from .tensor_functions import minimum as minimum
from .tensor_functions import numel as numel
from .tensor_functions import permute as permute
from .tensor_functions import pow as pow
from .tensor_functions import relu as relu
from .tensor_functions import reshape as reshape
from .tensor_functions import sigmoid as sigmoid
from .tensor_functions import softmax as softmax
from .tensor_functions import sqrt as sqrt
from .tensor_functions import squeeze as squeeze
from .tensor_functions import std as std
from .tensor_functions import sum as sum
from .tensor_functions import tanh as tanh
from .tensor_functions import transpose as transpose
from .tensor_functions import unsqueeze as unsqueeze
from .tensor_functions import var as var
from .tensor_functions import where as where
from .tensor_shape import Size as Size

__version__ = "0.1.0"

# Heavier parts load on first use, so that `import convscope` stays fast.
_LAZY_MODULES = {"data", "viz", "io", "train", "safetensors", "kernels", "cli", "filters", "demo",
                 "interop", "graph", "models"}
_LAZY_MODULES |= {"utils", "transforms", "metrics"}  # torch.utils.data, torchvision.transforms
_LAZY_MODULES |= {"batch", "dask"}  # many images: streamed, and on Dask
_LAZY_NAMES = {
    "save": ("io", "save"),
    "load": ("io", "load"),
    "fit": ("train", "fit"),
    "explain_value": ("viz.why", "why"),
    "compile": ("graph", "compile"),
}

__all__ = [
    "Tensor", "tensor", "no_grad", "enable_grad", "is_grad_enabled", "set_grad_enabled",
    "inference_mode", "nn", "functional", "optim",
    "shapes", "errors", "parse", "explain", "save", "load", "fit", "data", "viz", "io",
    "explain_value", "manual_seed", "seed", "initial_seed", "Generator",
    "cat", "stack", "add", "flatten",
]

__all__ += ["utils", "transforms", "metrics"]

# PyTorch's top level: types, devices, factories and functions on tensors (some names, such as
# `max`, `sum` and `bool`, shadow Python's builtins in this module, as in `torch`)
__all__ += [
    "cuda", "device", "Size", "dtype", "bool", "double", "float", "float32", "float64", "int16",
    "int", "int32", "int64", "int8", "long", "short", "uint8", "arange", "as_tensor", "empty",
    "empty_like", "eye", "from_numpy", "full", "full_like", "linspace", "ones", "ones_like",
    "rand", "rand_like", "randint", "randn", "randn_like", "randperm", "zeros", "zeros_like",
    "abs", "all", "allclose", "any", "argmax", "argmin", "clamp", "clip", "equal", "exp",
    "is_floating_point", "is_tensor", "isclose", "log", "log_softmax", "matmul", "max", "maximum",
    "mean", "min", "minimum", "numel", "permute", "pow", "relu", "reshape", "sigmoid", "softmax",
    "sqrt", "squeeze", "std", "sum", "tanh", "transpose", "unsqueeze", "var", "where",
]
__all__ += ["batch", "dask"]


def __getattr__(name: str) -> Any:
    if name in _LAZY_NAMES:
        module, attr = _LAZY_NAMES[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'convscope' has no attribute {name!r}")
