"""Layers that change the height and width of a volume, or act on whole feature maps:
``ConvTranspose2d``, ``AdaptiveAvgPool2d``, ``Upsample`` and ``Dropout2d``.

Thin modules over :mod:`convscope.functional`, with PyTorch's arguments; each is a leaf
layer for the graph tools (``op``, ``get_config``, ``output_shape``, ``describe``,
``macs``; see :class:`~convscope.nn.Module`).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .. import shapes
from ..errors import ArgumentError, message
from ..functional import noise as D
from ..functional import resample as R
from ..functional import transpose as T
from ..functional._common import _batched, as_tensor
from ..tensor import Tensor
from .layers import _positive_int
from .module import Module, Parameter, make_rng

__all__ = ["ConvTranspose2d", "AdaptiveAvgPool2d", "Upsample", "Dropout2d"]


def _probe(shape: Any) -> Tensor:
    """A stand-in tensor of ``shape`` that holds no memory (zero strides): the forward pass's
    own argument checks run on it, so ``output_shape`` raises exactly what they raise."""
    return Tensor._wrap(np.broadcast_to(np.zeros((), np.float32), tuple(int(n) for n in shape)))


def _hw(shape: tuple[int, ...]) -> str:
    """``(N, C, H, W)`` -> ``'HxW'``."""
    return f"{shape[-2]}x{shape[-1]}"




def _listed(value: Any) -> Any:
    """Tuples as lists (what JSON gives back), everything else as is."""
    return list(value) if isinstance(value, tuple) else value


class ConvTranspose2d(Module):
    """``out_channels`` kernels of ``kernel_size x in_channels/groups``, run backwards: each
    input value spreads ``value x kernel`` over an output window, ``stride`` cells apart.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, dilation : int or (int, int)
    padding : int or (int, int)
        Cells removed from each side of the output.
    output_padding : int or (int, int)
        Extra cells at the bottom and right (smaller than stride or dilation; checked here,
        where PyTorch checks at the first forward pass).
    groups : int
    bias : bool
    padding_mode : {'zeros'}
        The only mode PyTorch allows for a transposed convolution.
    seed : int or np.random.Generator, optional
        Source of the initial weights; None draws from the default generator
        (``cs.manual_seed``). Weights and bias are uniform in ``+-1/sqrt(fan_in)`` with
        ``fan_in = out_channels / groups * kH * kW``, as PyTorch's initialisation.

    Shape:
        - Input: (N, C_in, H, W) or (C_in, H, W)
        - Output: (N, C_out, H_out, W_out) with
          ``H_out = (H - 1) * stride[0] - 2 * padding[0] + dilation[0] * (kernel_size[0] - 1)
          + output_padding[0] + 1`` and the same for ``W_out``.

    >>> up = ConvTranspose2d(128, 64, 2, stride=2, seed=0)   # a U-Net's upsampling step
    >>> up.weight.shape, up(np.zeros((1, 128, 28, 28), np.float32)).shape
    ((128, 64, 2, 2), (1, 64, 56, 56))
    """

    op = "conv_transpose2d"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: Any = 1,
        padding_mode: str = "zeros",
        seed: int | np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        where = "ConvTranspose2d"
        self.in_channels = _positive_int(in_channels, "in_channels", where)
        self.out_channels = _positive_int(out_channels, "out_channels", where)
        self.kernel_size = shapes.pair(kernel_size, "kernel_size", where)
        self.stride, self.padding, self.output_padding, self.dilation = shapes.conv_transpose_args(
            stride, padding, output_padding, dilation, where
        )
        self.groups = _positive_int(groups, "groups", where)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ArgumentError(
                message(where, "`groups` must divide both in_channels and out_channels",
                        f"choose groups from the common divisors of {self.in_channels} and "
                        f"{self.out_channels}", f"in_channels={self.in_channels}, "
                        f"out_channels={self.out_channels}, groups={self.groups}")
            )
        if padding_mode != "zeros":
            raise ArgumentError(
                message(where, "a transposed convolution pads with zeros only",
                        "use padding_mode='zeros'", f"padding_mode={padding_mode!r}")
            )
        self.padding_mode = padding_mode
        rng = make_rng(seed)
        shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        shapes.check_size(shape, where, what="the weight", fix="use fewer or smaller kernels")
        fan_in = self.out_channels // self.groups * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)
        self.weight = Parameter(rng.uniform(-bound, bound, size=shape).astype(np.float32))
        self.bias = (
            Parameter(rng.uniform(-bound, bound, size=self.out_channels).astype(np.float32))
            if bias else None
        )

    @property
    def label(self) -> str:
        k = self.kernel_size
        return f"ConvTranspose2d({self.in_channels} -> {self.out_channels}, {k[0]}x{k[1]})"

    def forward(self, x: Any, output_size: Any = None) -> Tensor:
        """The transposed convolution of ``x``; ``output_size`` (``(H_out, W_out)`` or a whole
        shape) picks ``output_padding`` for this call, as PyTorch's."""
        output_padding = self.output_padding
        if output_size is not None:
            x = as_tensor(x, self.label)
            _batched(x, self.label)  # the rank check, before the sizes are read
            output_padding = shapes.conv_transpose_output_padding(
                x.shape[-2:], output_size, self.kernel_size, self.stride, self.padding,
                self.dilation, self.label,
            )
        return T.conv_transpose2d_at(
            x, self.weight, self.bias, self.stride, self.padding, output_padding, self.groups,
            self.dilation, self.label,
        )

    def get_config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels, "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size), "stride": list(self.stride),
            "padding": list(self.padding), "output_padding": list(self.output_padding),
            "groups": self.groups, "bias": self.bias is not None,
            "dilation": list(self.dilation), "padding_mode": self.padding_mode,
        }

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        x, unbatched = _batched(_probe(shape), self.label)
        geo = shapes.conv_transpose_geometry(
            x.shape, self.weight.shape, self.stride, self.padding, self.output_padding,
            self.groups, self.dilation, self.label,
        )
        out = (x.shape[0], self.out_channels) + geo.out_hw
        shapes.check_size(out, self.label)  # as the forward pass for a float32 input
        return out[1:] if unbatched else out

    def describe(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> str:
        k, depth = self.kernel_size, self.in_channels // self.groups
        text = f"transposed conv: {self.out_channels} kernels of {k[0]}x{k[1]}x{depth}"
        for name, value, plain in (("stride", self.stride, (1, 1)),
                                   ("padding", self.padding, (0, 0)),
                                   ("output_padding", self.output_padding, (0, 0)),
                                   ("dilation", self.dilation, (1, 1))):
            if value != plain:
                text += f", {name} {value[0] if value[0] == value[1] else value}"
        return text + (f", {self.groups} groups" if self.groups > 1 else "")

    def macs(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
        """torchinfo's convention for every ``Conv`` layer: (weights + biases) x N x H_out x
        W_out (for a transposed conv, more than the multiply-adds it does when stride > 1)."""
        params = self.weight.numel() + (self.bias.numel() if self.bias is not None else 0)
        batch = out_shape[0] if len(out_shape) == 4 else 1
        return int(params * batch * out_shape[-2] * out_shape[-1])

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        for name in ("stride", "padding", "output_padding", "dilation"):
            value, plain = getattr(self, name), (1, 1) if name in ("stride", "dilation") else (0, 0)
            if value != plain:
                s += f", {name}={value}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + (", bias=False" if self.bias is None else "")


class AdaptiveAvgPool2d(Module):
    """Average pooling to ``output_size`` whatever the input size (``1``: global pooling).

    Shape:
        - Input: (N, C, H, W) or (C, H, W)
        - Output: (N, C, H_out, W_out) with ``(H_out, W_out) = output_size``, a None entry
          keeping that input size. Window ``i``: rows ``[floor(i * H / H_out),
          ceil((i + 1) * H / H_out))``.

    >>> AdaptiveAvgPool2d(1)(np.ones((2, 512, 7, 7), np.float32)).shape
    (2, 512, 1, 1)
    """

    op = "adaptive_avg_pool2d"

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        shapes.adaptive_out(output_size, (1, 1), "AdaptiveAvgPool2d")  # type and sign
        self.output_size = tuple(output_size) if isinstance(output_size, list) else output_size

    @property
    def label(self) -> str:
        return f"AdaptiveAvgPool2d({self.output_size!r})"

    def forward(self, x: Any) -> Tensor:
        return R.adaptive_avg_pool2d_at(x, self.output_size, self.label)

    def get_config(self) -> dict[str, Any]:
        return {"output_size": _listed(self.output_size)}

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        x, unbatched = _batched(_probe(shape), self.label)
        out = x.shape[:2] + shapes.adaptive_out(self.output_size, x.shape[2:], self.label)
        shapes.check_size(out, self.label)
        return out[1:] if unbatched else out

    def describe(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> str:
        kind = "global average pool" if tuple(out_shape[-2:]) == (1, 1) else "adaptive average pool"
        return f"{kind} {_hw(in_shape)} -> {_hw(out_shape)}"

    def macs(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
        return 0

    def extra_repr(self) -> str:
        return f"output_size={self.output_size!r}"


class Upsample(Module):
    """Resize the height and width: :func:`convscope.functional.interpolate` as a layer.

    Parameters
    ----------
    size : int or (int, int), optional
    scale_factor : float or (float, float), optional
        Exactly one of ``size`` and ``scale_factor``.
    mode : {'nearest', 'nearest-exact', 'bilinear', 'linear'}
    align_corners : bool, optional
        Linear modes only.
    recompute_scale_factor : bool, optional

    Shape:
        - Input: (N, C, H, W), or (N, C, W) for the 1-D modes
        - Output: (N, C, H_out, W_out) with ``H_out = size[0]`` or
          ``floor(H * scale_factor[0])``, the same for ``W_out``.

    >>> Upsample(scale_factor=2, mode="bilinear")(np.ones((1, 64, 28, 28), np.float32)).shape
    (1, 64, 56, 56)
    """

    op = "interpolate"

    def __init__(
        self,
        size: Any = None,
        scale_factor: Any = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
        recompute_scale_factor: bool | None = None,
    ) -> None:
        super().__init__()
        R.check_mode(mode, align_corners, False, None, "Upsample")
        if (size is None) == (scale_factor is None):
            shapes.interpolate_out((1, 1), size, scale_factor, None, "Upsample")  # raises
        if isinstance(scale_factor, (tuple, list)):
            scale_factor = tuple(float(v) if isinstance(v, numbers.Real) else v
                                 for v in scale_factor)
        elif isinstance(scale_factor, numbers.Real) and not isinstance(scale_factor, bool):
            scale_factor = float(scale_factor)
        size = tuple(size) if isinstance(size, list) else size
        self.size, self.scale_factor, self.mode = size, scale_factor, mode
        self.align_corners, self.recompute_scale_factor = align_corners, recompute_scale_factor

    @property
    def label(self) -> str:
        what = f"size={self.size!r}" if self.size is not None else f"scale_factor={_x(self)}"
        return f"Upsample({what}, mode={self.mode!r})"

    def forward(self, x: Any) -> Tensor:
        return R.interpolate_at(x, self.size, self.scale_factor, self.mode, self.align_corners,
                                self.recompute_scale_factor, False, self.label)

    def get_config(self) -> dict[str, Any]:
        return {"size": _listed(self.size), "scale_factor": _listed(self.scale_factor),
                "mode": self.mode, "align_corners": self.align_corners,
                "recompute_scale_factor": self.recompute_scale_factor}

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(int(n) for n in shape)
        R.check_mode(self.mode, self.align_corners, False, len(shape), self.label)
        out, _ = shapes.interpolate_out(shape[2:], self.size, self.scale_factor,
                                        self.recompute_scale_factor, self.label)
        shapes.check_size(shape[:2] + out, self.label)
        return shape[:2] + out

    def describe(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> str:
        mode = self.mode + (" (align_corners)" if self.align_corners else "")
        if self.scale_factor is not None:
            return f"upsample x{_x(self)} {mode}"
        return f"upsample {_hw(in_shape)} -> {_hw(out_shape)} {mode}"

    def macs(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
        return 0

    def extra_repr(self) -> str:
        what = f"size={self.size!r}" if self.size is not None else (
            f"scale_factor={self.scale_factor!r}")
        corners = "" if self.align_corners is None else f", align_corners={self.align_corners}"
        return f"{what}, mode={self.mode!r}{corners}"


def _x(layer: Upsample) -> str:
    """The scale factor as the slides write it: ``2``, ``1.5`` or ``(2, 3)``."""
    s = layer.scale_factor
    if isinstance(s, tuple):
        return "(" + ", ".join(f"{v:g}" for v in s) + ")"
    return f"{s:g}"


class Dropout2d(Module):
    """Zero whole channels (feature maps) with probability ``p`` in training; identity in
    eval mode. ``inplace`` is accepted and ignored.

    Shape:
        - Input: (N, C, H, W) or (C, H, W)
        - Output: the input's shape.

    >>> layer = Dropout2d(0.25, seed=0).eval()
    >>> layer(np.ones((1, 2, 3, 3), np.float32)).shape
    (1, 2, 3, 3)
    """

    op = "dropout2d"

    def __init__(
        self, p: float = 0.5, inplace: bool = False,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(p, numbers.Real) or isinstance(p, bool) or not 0 <= float(p) <= 1:
            raise ArgumentError(
                message("Dropout2d", "p must be a probability in [0, 1]", "use p=0.5", f"p={p!r}")
            )
        self.p, self.inplace = float(p), bool(inplace)
        self.generator = make_rng(seed)

    def forward(self, x: Any) -> Tensor:
        return D.dropout2d(x, self.p, self.training, generator=self.generator)

    def get_config(self) -> dict[str, Any]:
        return {"p": self.p, "inplace": self.inplace}

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(int(n) for n in shape)
        D.check_rank(shape, "dropout2d")
        return shape

    def describe(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> str:
        return f"dropout2d: drops whole feature maps with p={self.p:g} (training only)"

    def macs(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
        return 0

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
