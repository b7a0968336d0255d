"""Layers and containers with PyTorch's names: ``cs.nn.Conv2d(3, 8, 5, padding=2)``."""

from .layers import (
    AvgPool2d as AvgPool2d,
    BatchNorm2d as BatchNorm2d,
    Conv2d as Conv2d,
    Dropout as Dropout,
    Flatten as Flatten,
    Identity as Identity,
    Linear as Linear,
    MaxPool2d as MaxPool2d,
    ReLU as ReLU,
)
from .module import Module as Module, Parameter as Parameter, Sequential as Sequential

__all__ = ["Module", "Parameter", "Sequential", "Conv2d", "ReLU", "MaxPool2d", "AvgPool2d",
           "Flatten", "Linear", "BatchNorm2d", "Dropout", "Identity"]
