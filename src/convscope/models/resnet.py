"""ResNet-18 and ResNet-34 (He et al., 2016), torchvision's architecture and names.

The state_dict keys are torchvision's (``conv1.weight``, ``layer1.0.conv1.weight``,
``layer2.0.downsample.0.weight``, ``fc.bias``, ...), so a torchvision model's
``state_dict()`` loads one to one. No weights are downloaded: the model starts from
torchvision's initialisation (seeded) and a user's own file loads into it.

>>> import convscope as cs
>>> model = cs.models.resnet18(num_classes=10, seed=0)
>>> sum(p.numel() for p in cs.models.resnet18(seed=0).parameters())
11689512
"""

from __future__ import annotations

from typing import Any

from .. import functional as F
from ..nn import AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Linear, MaxPool2d, Module, ReLU, Sequential
from ..nn.module import make_rng
from ._init import kaiming_fan_out, remember

__all__ = ["ResNet", "BasicBlock", "resnet18", "resnet34"]


def _conv3x3(cin: int, cout: int, stride: int = 1) -> Conv2d:
    return Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(Module):
    """Two 3x3 convs with batch norm; the block's input is added to their output
    (through ``downsample``, a strided 1x1 conv and batch norm, where the volume changes)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = BatchNorm2d(planes)
        self.relu = ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Any) -> Any:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet(Module):
    """A ResNet of :class:`BasicBlock` stages (torchvision's ``ResNet``).

    Shape: input (N, 3, H, W) (224x224 in the paper; any size >= 32 runs, thanks to the
    adaptive average pool), output (N, num_classes).
    """

    fused_inference = True  # inference runs the fused graph (graph/fuse.py)

    def __init__(self, layers: tuple[int, int, int, int], num_classes: int = 1000,
                 in_channels: int = 3, seed: Any = None) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = BatchNorm2d(64)
        self.relu = ReLU(inplace=True)
        self.maxpool = MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = AdaptiveAvgPool2d((1, 1))
        rng = make_rng(seed)
        self.fc = Linear(512, num_classes, seed=rng)
        kaiming_fan_out(self, rng)
        self.input_shape = (in_channels, 224, 224)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = Sequential(Conv2d(self.inplanes, planes, 1, stride=stride, bias=False),
                                    BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return Sequential(*layers)

    def forward(self, x: Any) -> Any:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = F.flatten(self.avgpool(x), 1)
        return self.fc(x)


def resnet18(num_classes: int = 1000, in_channels: int = 3, seed: Any = None) -> ResNet:
    """ResNet-18: 11,689,512 parameters with 1000 classes; 1.81 G multiply-adds at 224x224x3."""
    return remember(ResNet((2, 2, 2, 2), num_classes, in_channels, seed), "resnet18",
                    num_classes=num_classes, in_channels=in_channels)


def resnet34(num_classes: int = 1000, in_channels: int = 3, seed: Any = None) -> ResNet:
    """ResNet-34: 21,797,672 parameters with 1000 classes."""
    return remember(ResNet((3, 4, 6, 3), num_classes, in_channels, seed), "resnet34",
                    num_classes=num_classes, in_channels=in_channels)
