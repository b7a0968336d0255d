"""A small U-Net (Ronneberger et al., 2015): an encoder, a decoder, skip concatenations.

Each level of the encoder halves the height and width (max pool) and doubles the depth
(two 3x3 convs with batch norm and ReLU); the decoder doubles the size back with a 2x2
transposed conv of stride 2 and joins the encoder's volume of that size along the depth
(``cat(..., dim=1)``) before its two convs. A 1x1 conv gives one map per class.

>>> import convscope as cs
>>> model = cs.models.unet(in_channels=3, num_classes=2, seed=0)
>>> cs.explain(model).output_shape
(2, 64, 64)
"""

from __future__ import annotations

from typing import Any

from .. import functional as F
from ..nn import BatchNorm2d, Conv2d, ConvTranspose2d, MaxPool2d, Module, ReLU, Sequential
from ..nn.module import make_rng
from ._init import remember

__all__ = ["UNet", "DoubleConv", "Down", "Up", "unet"]


class DoubleConv(Sequential):
    """(3x3 conv, batch norm, ReLU) twice; the size is kept (padding 1)."""

    def __init__(self, cin: int, cout: int, rng: Any = None) -> None:
        super().__init__(Conv2d(cin, cout, 3, padding=1, bias=False, seed=rng), BatchNorm2d(cout),
                         ReLU(inplace=True),
                         Conv2d(cout, cout, 3, padding=1, bias=False, seed=rng),
                         BatchNorm2d(cout), ReLU(inplace=True))


class Down(Sequential):
    """Max pool 2x2 (half the size), then :class:`DoubleConv`."""

    def __init__(self, cin: int, cout: int, rng: Any = None) -> None:
        super().__init__(MaxPool2d(2), DoubleConv(cin, cout, rng))


class Up(Module):
    """Transposed conv 2x2 stride 2 (double the size, half the depth), the skip volume
    joined along the depth, then :class:`DoubleConv`."""

    def __init__(self, cin: int, cout: int, rng: Any = None) -> None:
        super().__init__()
        self.up = ConvTranspose2d(cin, cin // 2, 2, stride=2, seed=rng)
        self.conv = DoubleConv(cin // 2 + cout, cout, rng)

    def forward(self, x: Any, skip: Any) -> Any:
        return self.conv(F.cat([skip, self.up(x)], dim=1))


class UNet(Module):
    """A U-Net of ``depth`` levels starting at ``base`` kernels (16, 32, 64, 128 by default).

    Shape: input (N, in_channels, H, W) with H and W divisible by 2**depth; output
    (N, num_classes, H, W).
    """

    fused_inference = True  # inference runs the fused graph (graph/fuse.py)

    def __init__(self, in_channels: int = 3, num_classes: int = 2, base: int = 16,
                 depth: int = 3, seed: Any = None) -> None:
        super().__init__()
        rng = make_rng(seed)
        widths = [base * 2 ** k for k in range(depth + 1)]
        self.depth = depth
        self.inc = DoubleConv(in_channels, base, rng)
        for k in range(depth):
            setattr(self, f"down{k + 1}", Down(widths[k], widths[k + 1], rng))
        for k in range(depth):
            setattr(self, f"up{k + 1}", Up(widths[depth - k], widths[depth - k - 1], rng))
        self.outc = Conv2d(base, num_classes, 1, seed=rng)
        self.input_shape = (in_channels, 64, 64)

    def forward(self, x: Any) -> Any:
        skips = [self.inc(x)]
        for k in range(self.depth):
            skips.append(getattr(self, f"down{k + 1}")(skips[-1]))
        x = skips.pop()
        for k in range(self.depth):
            x = getattr(self, f"up{k + 1}")(x, skips.pop())
        return self.outc(x)


def unet(in_channels: int = 3, num_classes: int = 2, base: int = 16, depth: int = 3,
         seed: Any = None) -> UNet:
    """A small U-Net for 64x64 inputs (any size divisible by 2**depth runs)."""
    return remember(UNet(in_channels, num_classes, base, depth, seed), "unet",
                    in_channels=in_channels, num_classes=num_classes, base=base, depth=depth)
