"""Initial weights of the zoo, as torchvision draws them, from an explicit generator."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..nn import BatchNorm2d, Conv2d, Linear, Module


def kaiming_fan_out(model: Module, rng: np.random.Generator, zero_bias: bool = False) -> None:
    """torchvision's ResNet and MobileNetV2 initialisation.

    Convs: ``kaiming_normal_(mode="fan_out")`` (gain sqrt(2)); batch norms: weight 1, bias 0;
    MobileNetV2's linear layers: normal(0, 0.01) and zero bias (``zero_bias``); ResNet's
    linear layer keeps PyTorch's default initialisation.
    """
    for m in model.modules():
        if isinstance(m, Conv2d):
            fan_out = m.out_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            std = math.sqrt(2.0) / math.sqrt(fan_out)
            m.weight.data = rng.normal(0.0, std, m.weight.shape).astype(np.float32)
            if m.bias is not None:
                m.bias.data = np.zeros(m.bias.shape, np.float32)
        elif isinstance(m, BatchNorm2d) and m.affine:
            m.weight.data = np.ones(m.weight.shape, np.float32)
            m.bias.data = np.zeros(m.bias.shape, np.float32)
        elif isinstance(m, Linear) and zero_bias:
            m.weight.data = rng.normal(0.0, 0.01, m.weight.shape).astype(np.float32)
            if m.bias is not None:
                m.bias.data = np.zeros(m.bias.shape, np.float32)


def remember(model: Module, name: str, **kwargs: Any) -> Module:
    """Note how a zoo model was built (kept in model files) and its usual input volume."""
    model.zoo = (name, {k: v for k, v in kwargs.items() if k != "seed"})
    return model
