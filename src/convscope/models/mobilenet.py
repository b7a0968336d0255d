"""MobileNetV2 (Sandler et al., 2018), torchvision's architecture and names.

Inverted residual blocks: a 1x1 conv expands the depth (x6), a 3x3 depthwise conv filters
each channel on its own, a 1x1 conv projects back; the block's input is added where the
volume is unchanged. The state_dict keys are torchvision's (``features.0.0.weight``,
``features.1.conv.0.0.weight``, ``classifier.1.weight``), so its weights load one to one.

>>> import convscope as cs
>>> sum(p.numel() for p in cs.models.mobilenet_v2(seed=0).parameters())
3504872
"""

from __future__ import annotations

from typing import Any

from .. import functional as F
from ..nn import BatchNorm2d, Conv2d, Dropout, Linear, Module, ReLU6, Sequential
from ..nn.module import make_rng
from ._init import kaiming_fan_out, remember

__all__ = ["MobileNetV2", "InvertedResidual", "ConvBNActivation", "mobilenet_v2"]

# expansion t, output depth c, repeats n, first stride s (the paper's Table 2)
SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
           (6, 160, 3, 2), (6, 320, 1, 1))


def make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's ``_make_divisible``: round to a multiple of ``divisor``, never below 90 %."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class ConvBNActivation(Sequential):
    """Conv (no bias), batch norm, ReLU6: torchvision's ``Conv2dNormActivation``."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1) -> None:
        padding = (kernel_size - 1) // 2
        super().__init__(Conv2d(cin, cout, kernel_size, stride, padding, groups=groups,
                                bias=False), BatchNorm2d(cout), ReLU6(inplace=True))


class InvertedResidual(Module):
    """Expand (1x1), depthwise 3x3, project (1x1); plus the input when stride 1 and the
    depth is unchanged."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        self.stride = stride
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNActivation(inp, hidden, kernel_size=1))
        layers += [ConvBNActivation(hidden, hidden, stride=stride, groups=hidden),
                   Conv2d(hidden, oup, 1, 1, 0, bias=False), BatchNorm2d(oup)]
        self.conv = Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: Any) -> Any:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(Module):
    """torchvision's ``MobileNetV2`` (``width_mult``, ``round_nearest``, ``dropout``)."""

    fused_inference = True  # inference runs the fused graph (graph/fuse.py)

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0,
                 round_nearest: int = 8, dropout: float = 0.2, in_channels: int = 3,
                 seed: Any = None) -> None:
        super().__init__()
        cin = make_divisible(32 * width_mult, round_nearest)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features: list[Module] = [ConvBNActivation(in_channels, cin, stride=2)]
        for t, c, n, s in SETTING:
            cout = make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(ConvBNActivation(cin, self.last_channel, kernel_size=1))
        self.features = Sequential(*features)
        rng = make_rng(seed)
        self.classifier = Sequential(Dropout(p=dropout), Linear(self.last_channel, num_classes))
        kaiming_fan_out(self, rng, zero_bias=True)
        self.input_shape = (in_channels, 224, 224)

    def forward(self, x: Any) -> Any:
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, (1, 1))
        x = F.flatten(x, 1)
        return self.classifier(x)


def mobilenet_v2(num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2,
                 in_channels: int = 3, seed: Any = None) -> MobileNetV2:
    """MobileNetV2: 3,504,872 parameters with 1000 classes (width 1.0)."""
    return remember(MobileNetV2(num_classes, width_mult, 8, dropout, in_channels, seed),
                    "mobilenet_v2", num_classes=num_classes, width_mult=width_mult,
                    dropout=dropout, in_channels=in_channels)
