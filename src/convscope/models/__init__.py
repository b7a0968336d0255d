"""A model zoo without downloads: torchvision's ResNet-18/34 and MobileNetV2, with
torchvision's state_dict names, plus LeNet-5, CNN Explainer's Tiny VGG and a small U-Net.

Every model starts from its paper's (torchvision's) initialisation, seeded; none fetches
weights. ``model.load_state_dict(torchvision_model.state_dict())`` loads PyTorch's weights
one to one, and ``cs.load(path)`` a model file of your own. ``get("resnet18",
num_classes=10)`` builds one by name, as ``convscope train --model resnet18`` does.

>>> import convscope as cs
>>> sorted(cs.models.names())
['lenet5', 'mobilenet_v2', 'resnet18', 'resnet34', 'tiny_vgg', 'unet']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ArgumentError, message
from ..nn import Module, Sequential
from .mobilenet import MobileNetV2 as MobileNetV2
from .mobilenet import mobilenet_v2 as mobilenet_v2
from .resnet import ResNet as ResNet
from .resnet import resnet18 as resnet18
from .resnet import resnet34 as resnet34
from .unet import UNet as UNet
from .unet import unet as unet

__all__ = ["resnet18", "resnet34", "mobilenet_v2", "unet", "lenet5", "tiny_vgg", "get", "names",
           "ResNet", "MobileNetV2", "UNet"]

LENET5 = ("32x32x1 | conv(6, 5) | relu | maxpool(2) | conv(16, 5) | relu | maxpool(2) | flatten"
          " | linear(120) | relu | linear(84) | relu | linear({n})")
TINY_VGG = ("64x64x3 | conv(10, 3) | relu | conv(10, 3) | relu | maxpool(2) | conv(10, 3) | relu"
            " | conv(10, 3) | relu | maxpool(2) | flatten | linear({n})")


def _chain(name: str, text: str, num_classes: int, seed: Any, input_shape: Any) -> Sequential:
    from ..spec import parse
    from ._init import remember

    model = parse(text.format(n=num_classes), seed=seed, input_shape=input_shape)
    remember(model, name, num_classes=num_classes)
    return model


def lenet5(num_classes: int = 10, seed: Any = None, input_shape: Any = None) -> Sequential:
    """LeNet-5 as in PyTorch's tutorials (32x32x1 input, ReLU and max pooling): a spec chain.

    >>> lenet5(seed=0).spec.split(" | ")[:3]
    ['32x32x1', 'conv(6, 5)', 'relu']
    """
    return _chain("lenet5", LENET5, num_classes, seed, input_shape)


def tiny_vgg(num_classes: int = 10, seed: Any = None, input_shape: Any = None) -> Sequential:
    """CNN Explainer's Tiny VGG (64x64x3 input, four 3x3 convs of 10 kernels): a spec chain."""
    return _chain("tiny_vgg", TINY_VGG, num_classes, seed, input_shape)


_ZOO: dict[str, Callable[..., Module]] = {
    "resnet18": resnet18, "resnet34": resnet34, "mobilenet_v2": mobilenet_v2, "unet": unet,
    "lenet5": lenet5, "tiny_vgg": tiny_vgg,
}


def names() -> list[str]:
    """The zoo's model names."""
    return list(_ZOO)


def _key(name: Any) -> Any:
    """``"ResNet-18"``, ``"resnet_18"``, ``"MobileNetV2"`` -> the zoo's spelling."""
    if not isinstance(name, str):
        return name
    key = name.strip().lower().replace("-", "").replace("_", "")
    return {"mobilenetv2": "mobilenet_v2", "tinyvgg": "tiny_vgg"}.get(key, key)


def get(name: str, **kwargs: Any) -> Module:
    """Build a zoo model by name (``"resnet18"``), with its keyword arguments."""
    key = _key(name)
    if key not in _ZOO:
        raise ArgumentError(message("models", f"there is no zoo model {name!r}",
                                    f"use one of {', '.join(_ZOO)}", f"name={name!r}"))
    return _ZOO[key](**kwargs)


def is_zoo_name(text: Any) -> bool:
    """Whether ``text`` names a zoo model (for the command line's MODEL arguments)."""
    return _key(text) in _ZOO
