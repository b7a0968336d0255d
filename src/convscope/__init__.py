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

from . import errors as errors
from . import functional as functional
from . import nn as nn
from . import optim as optim
from . import shapes as shapes
from .explain import explain as explain  # noqa: E402  (the function, not the module)
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
from .tensor import is_grad_enabled as is_grad_enabled
from .tensor import inference_mode as inference_mode
from .tensor import no_grad as no_grad
from .tensor import set_grad_enabled as set_grad_enabled
from .tensor import tensor as tensor

__version__ = "0.1.0"

# Heavier parts load on first use, so that `import convscope` stays fast.
_LAZY_MODULES = {"data", "viz", "io", "train", "safetensors", "kernels", "cli", "filters", "demo",
                 "interop", "graph", "models"}
_LAZY_MODULES |= {"utils", "transforms", "metrics"}  # torch.utils.data, torchvision.transforms
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


def __getattr__(name: str) -> Any:
    if name in _LAZY_NAMES:
        module, attr = _LAZY_NAMES[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'convscope' has no attribute {name!r}")
