"""Layers and containers with PyTorch's names: ``cs.nn.Conv2d(3, 8, 5, padding=2)``.

``convscope.nn.functional`` is :mod:`convscope.functional` (one module, two names), so
``import convscope.nn.functional as F`` works as in PyTorch.
"""

import sys as _sys

from .. import functional as functional
from . import init as init
from . import utils as utils
from .activation import ELU as ELU
from .activation import GELU as GELU
from .activation import Hardsigmoid as Hardsigmoid
from .activation import Hardswish as Hardswish
from .activation import Hardtanh as Hardtanh
from .activation import LeakyReLU as LeakyReLU
from .activation import LogSoftmax as LogSoftmax
from .activation import ReLU6 as ReLU6
from .activation import Sigmoid as Sigmoid
from .activation import SiLU as SiLU
from .activation import Softmax as Softmax
from .activation import Tanh as Tanh
from .branches import Concat as Concat
from .branches import Residual as Residual
from .containers import ModuleDict as ModuleDict
from .containers import ModuleList as ModuleList
from .layers import (
    AvgPool2d as AvgPool2d,
)
from .layers import (
    BatchNorm2d as BatchNorm2d,
)
from .layers import (
    Conv2d as Conv2d,
)
from .layers import (
    Dropout as Dropout,
)
from .layers import (
    Flatten as Flatten,
)
from .layers import (
    Identity as Identity,
)
from .layers import (
    Linear as Linear,
)
from .layers import (
    MaxPool2d as MaxPool2d,
)
from .layers import (
    ReLU as ReLU,
)
from .loss import BCEWithLogitsLoss as BCEWithLogitsLoss
from .loss import CrossEntropyLoss as CrossEntropyLoss
from .loss import L1Loss as L1Loss
from .loss import MSELoss as MSELoss
from .loss import NLLLoss as NLLLoss
from .module import Module as Module
from .module import Parameter as Parameter
from .module import Sequential as Sequential
from .spatial import AdaptiveAvgPool2d as AdaptiveAvgPool2d
from .spatial import ConvTranspose2d as ConvTranspose2d
from .spatial import Dropout2d as Dropout2d
from .spatial import Upsample as Upsample

__all__ = ["functional", "Module", "Parameter", "Sequential", "Residual", "Concat", "Conv2d",
           "ReLU", "MaxPool2d", "AvgPool2d", "Flatten", "Linear", "BatchNorm2d", "Dropout",
           "Identity"]
__all__ += ["LeakyReLU", "ReLU6", "Hardtanh", "Sigmoid", "Tanh", "GELU", "SiLU", "Hardswish",
            "Hardsigmoid", "ELU", "Softmax", "LogSoftmax", "ConvTranspose2d", "AdaptiveAvgPool2d",
            "Upsample", "Dropout2d"]
__all__ += ["ModuleList", "ModuleDict", "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss",
            "BCEWithLogitsLoss", "init", "utils"]


def layer_for_op(op: str) -> type | None:
    """The layer class whose graph op is ``op`` (``"relu"`` -> ``ReLU``), or None."""
    for value in list(globals().values()):
        if isinstance(value, type) and issubclass(value, Module) and value.__dict__.get(
                "op") == op and value.is_leaf():
            return value
    return None


_sys.modules[__name__ + ".functional"] = functional
