"""The layers: thin modules over :mod:`convscope.functional`, with PyTorch's arguments.

Initialisation follows PyTorch's defaults (weights and biases uniform in
``+-1/sqrt(fan_in)``, i.e. ``kaiming_uniform_(a=sqrt(5))``), drawn from an explicit
``seed`` (an int or a ``np.random.Generator``), so a model is reproducible.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .. import functional as F
from .. import shapes
from ..errors import ArgumentError, ArgumentTypeError, ShapeError, message
from ..tensor import Tensor
from .module import Module, Parameter, make_rng

__all__ = [
    "Conv2d",
    "ReLU",
    "MaxPool2d",
    "AvgPool2d",
    "Flatten",
    "Linear",
    "BatchNorm2d",
    "Dropout",
    "Identity",
]


def _positive_int(value: Any, name: str, where: str) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ArgumentTypeError(
            message(where, f"`{name}` must be an int", f"pass e.g. {name}=8", f"{name}={value!r}")
        )
    if value < 1:
        raise ArgumentError(
            message(where, f"`{name}` must be positive", f"use {name}=1 or more", f"{name}={value}")
        )
    return int(value)


def volume(shape: tuple[int, ...]) -> str:
    """A shape in the slides' words: (N, C, H, W) -> ``64x64x3``; (N, F) -> ``F``."""
    from ..spec import format_volume

    return format_volume(shape[1:] if len(shape) in (2, 4) else shape)


def _spatial(shape: tuple[int, ...], where: str) -> tuple[int, ...]:
    """(N, C, H, W) of a batched or unbatched volume; a flat input is refused clearly."""
    if len(shape) == 4:
        return shape
    if len(shape) == 3:
        return (1, *shape)
    raise ShapeError(message(where, f"needs a volume H x W x D, but gets {volume(shape)} "
                             "flat values" if len(shape) == 2 else
                             f"needs a volume H x W x D, but gets a {len(shape)}-D input",
                             "put it before flatten"))


def _same_rank(shape: tuple[int, ...], out: tuple[int, ...]) -> tuple[int, ...]:
    return out if len(shape) == 4 else out[1:]


def _hw(pair: tuple[int, int]) -> str:
    return f"{pair[0]}x{pair[1]}"


def _uniform(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


def _config_padding(pad: Any) -> Any:
    """A padding argument as plain data (ints, tuples, 'same' or 'valid')."""
    if isinstance(pad, (list, tuple)):
        return tuple(_config_padding(p) for p in pad)
    return int(pad) if isinstance(pad, (int, np.integer)) else pad


def _pad_text(pad: Any) -> str:
    if isinstance(pad, str):
        return f"padding '{pad}'"
    (t, b), (left, r) = pad
    if t == b == left == r:
        return f"padding {t}" if t else "no padding"
    if t == b and left == r:
        return f"padding ({t}, {left})"
    if (t, b) == (left, r):
        return f"padding {t} before, {b} after"
    return f"padding top {t}, bottom {b}, left {left}, right {r}"


class Conv2d(Module):
    """``out_channels`` kernels of ``kernel_size x in_channels/groups``, slid over the input volume.

    Parameters
    ----------
    in_channels, out_channels : int
        Input depth (= kernel depth x groups) and number of kernels (= output depth).
    kernel_size, stride, dilation : int or (int, int)
    padding : int, (int, int), ((top, bottom), (left, right)), 'valid' or 'same'
    groups : int
    bias : bool
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
    seed : int or np.random.Generator, optional
        Source of the initial weights (PyTorch's default initialisation).

    Shape:
        - Input: (N, C_in, H, W) or (C_in, H, W)
        - Output: (N, C_out, H_out, W_out) with
          ``H_out = floor((H + pad_top + pad_bottom - dilation[0] * (kernel_size[0] - 1) - 1)
          / stride[0]) + 1`` and the same for ``W_out``.

    >>> layer = Conv2d(3, 8, 5, padding=2, seed=0)     # 8 kernels of 5x5x3
    >>> layer.weight.shape
    (8, 3, 5, 5)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        seed: int | np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        where = "Conv2d"
        self.in_channels = _positive_int(in_channels, "in_channels", where)
        self.out_channels = _positive_int(out_channels, "out_channels", where)
        self.kernel_size = shapes.pair(kernel_size, "kernel_size", where)
        self.stride = shapes.pair(stride, "stride", where)
        self.dilation = shapes.pair(dilation, "dilation", where)
        self.groups = _positive_int(groups, "groups", where)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ArgumentError(
                message(
                    where,
                    "`groups` must divide both in_channels and out_channels",
                    "choose groups from the common divisors of "
                    f"{self.in_channels} and {self.out_channels}",
                    f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
                    f"groups={self.groups}",
                )
            )
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ArgumentError(
                message(
                    where,
                    f"unknown padding_mode {padding_mode!r}",
                    "use 'zeros', 'reflect', 'replicate' or 'circular'",
                    f"padding_mode={padding_mode!r}",
                )
            )
        self.padding_mode = padding_mode
        self._padding_arg = padding
        self.padding = shapes.conv_padding(
            padding, self.kernel_size, self.dilation, where, self.stride
        )
        if self.padding == "same" and padding_mode != "zeros":
            raise ArgumentError(
                message(
                    where,
                    "padding='same' with stride > 1 needs padding_mode='zeros'",
                    "use an explicit padding",
                    f"stride={self.stride}",
                )
            )
        rng = make_rng(seed)
        fan_in = self.in_channels // self.groups * self.kernel_size[0] * self.kernel_size[1]
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        shapes.check_size(shape, where, what="the weight", fix="use fewer or smaller kernels")
        self.weight = Parameter(_uniform(rng, shape, fan_in))
        self.bias = Parameter(_uniform(rng, (self.out_channels,), fan_in)) if bias else None

    op = "conv2d"

    @property
    def label(self) -> str:
        k = self.kernel_size
        return f"Conv2d({self.in_channels} -> {self.out_channels}, {k[0]}x{k[1]})"

    def get_config(self) -> dict[str, Any]:
        return dict(in_channels=self.in_channels, out_channels=self.out_channels,
                    kernel_size=self.kernel_size, stride=self.stride,
                    padding=_config_padding(self._padding_arg), dilation=self.dilation,
                    groups=self.groups, bias=self.bias is not None,
                    padding_mode=self.padding_mode)

    def geometry(self, shape: tuple[int, ...], padding: Any = None) -> shapes.ConvGeometry:
        """The conv's geometry (padding resolved, output size) for an input of ``shape``."""
        batched = _spatial(shape, self.label)
        return shapes.conv_geometry(batched, self.weight.shape, self.stride,
                                    self.padding if padding is None else padding,
                                    self.dilation, self.groups, self.label)

    def output_shape(self, shape: tuple[int, ...], padding: Any = None) -> tuple[int, ...]:
        """Output shape for an input of ``shape`` (``padding`` replaces the layer's own)."""
        batched = _spatial(shape, self.label)
        geo = self.geometry(batched, padding)
        if self.padding_mode in ("reflect", "circular"):
            (pt, pb), (pl, pr) = geo.padding
            h, w = batched[2:]
            limit = (h - 1, w - 1) if self.padding_mode == "reflect" else (h, w)
            if max(pt, pb) > limit[0] or max(pl, pr) > limit[1]:
                raise ShapeError(message(self.label, f"{self.padding_mode} padding {geo.padding}"
                                         f" does not fit an input of {h}x{w}",
                                         "use less padding or padding_mode='zeros'"))
        return _same_rank(shape, (batched[0], self.out_channels, *geo.out_hw))

    def describe(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...] | None) -> str:
        k, g = self.kernel_size, self.groups
        text = f"{self.out_channels} kernel{'s' * (self.out_channels > 1)} of " \
               f"{k[0]}x{k[1]}x{self.in_channels // g}"
        if g > 1:
            text += " (depthwise)" if g == self.in_channels == self.out_channels else \
                f" in {g} groups"
        text += ", " + self.slide_text(in_shape)
        return text + ("" if self.bias is not None else ", no bias")

    def slide_text(self, in_shape: tuple[int, ...]) -> str:
        """How the kernels slide: ``"padding 2, stride 1"`` (plus dilation when used)."""
        from ..errors import ConvscopeError

        try:
            pad = _pad_text(self.geometry(in_shape).padding)
        except ConvscopeError:
            pad = _pad_text(self.padding)
        if self.padding_mode != "zeros":
            pad = f"{self.padding_mode} {pad}"
        s = self.stride
        text = f"{pad}, stride {s[0] if s[0] == s[1] else _hw(s)}"
        if self.dilation != (1, 1):
            d = self.dilation
            text += f", dilation {d[0] if d[0] == d[1] else _hw(d)}"
        return text

    def macs(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
        kh, kw = self.kernel_size
        return math.prod(out_shape) * (self.in_channels // self.groups) * kh * kw

    def window(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """(kernel, stride, dilation) per axis: what one output value sees of the input."""
        k, s, d = self.kernel_size, self.stride, self.dilation
        return (k[0], s[0], d[0]), (k[1], s[1], d[1])

    def forward(self, x: Any) -> Tensor:
        return self.forward_relu(x, relu=False)

    def forward_relu(
        self,
        x: Any,
        relu: bool = True,
        relu_input: bool = False,
        premasked: bool = False,
        pool: bool = False,
    ) -> Tensor:
        """``relu(self(x))`` as one fused operation (:func:`convscope.functional.conv2d_relu`).

        ``nn.Sequential`` calls it for a ``Conv2d`` followed by a ``ReLU``; ``relu_input``,
        ``premasked`` and ``pool`` are its knowledge of the neighbours
        (:func:`.functional.conv2d_at`).
        """
        padding = self.padding
        if self.padding_mode != "zeros":
            x, padding, relu_input = F.pad(x, self.padding, self.padding_mode), 0, False
        return F.conv2d_at(
            x,
            self.weight,
            self.bias,
            self.stride,
            padding,
            self.dilation,
            self.groups,
            self.label,
            relu,
            relu_input,
            premasked,
            pool,
        )

    def extra_repr(self) -> str:
        k = self.kernel_size
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={k}"
        if self.stride != (1, 1):
            s += f", stride={self.stride}"
        if self._padding_arg not in (0, (0, 0), "valid"):
            s += f", padding={self._padding_arg!r}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        return s


class Linear(Module):
    """``y = x W^T + b`` with ``W`` of shape (out_features, in_features)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features", "Linear")
        self.out_features = _positive_int(out_features, "out_features", "Linear")
        shapes.check_size(
            (self.out_features, self.in_features),
            "Linear",
            what="the weight",
            fix="use fewer features: a smaller volume before flatten (pooling, "
            "stride) or fewer outputs",
        )
        rng = make_rng(seed)
        self.weight = Parameter(
            _uniform(rng, (self.out_features, self.in_features), self.in_features)
        )
        self.bias = (
            Parameter(_uniform(rng, (self.out_features,), self.in_features)) if bias else None
        )

    op = "linear"

    def forward(self, x: Any) -> Tensor:
        return F.linear(
            x, self.weight, self.bias, where=f"Linear({self.in_features} -> {self.out_features})"
        )

    def get_config(self) -> dict[str, Any]:
        return dict(in_features=self.in_features, out_features=self.out_features,
                    bias=self.bias is not None)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        label = f"Linear({self.in_features} -> {self.out_features})"
        if len(shape) >= 3:
            feats = shape[1:] if len(shape) == 4 else shape
            raise ShapeError(message(label, f"needs flat values, but gets a volume "
                                     f"{volume(shape)}",
                                     f"put flatten before it ({math.prod(feats)} values)"))
        if not shape or shape[-1] != self.in_features:
            got = shape[-1] if shape else 0
            raise ShapeError(message(label, f"expects {self.in_features} input features, gets "
                                     f"{got}", f"build it with in_features={got}"))
        return (*shape[:-1], self.out_features)

    def describe(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...] | None) -> str:
        return f"linear {self.in_features} -> {self.out_features}" + (
            "" if self.bias is not None else ", no bias")

    def macs(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
        lead = math.prod(out_shape[1:-1]) if len(out_shape) > 2 else 1
        return lead * self.in_features * self.out_features

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}" + (
            "" if self.bias is not None else ", bias=False"
        )


class _Elementwise(Module):
    """A layer that keeps the volume's size (activations and the like)."""

    def get_config(self) -> dict[str, Any]:
        return {}

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(shape)

    def macs(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
        return 0


class ReLU(_Elementwise):
    """``max(x, 0)``. ``inplace`` is accepted for PyTorch code and ignored."""

    op = "relu"

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()

    def forward(self, x: Any) -> Tensor:
        return F.relu(x)

    def describe(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...] | None) -> str:
        return "ReLU: max(x, 0) per value"


class Identity(_Elementwise):
    """Returns its input (a placeholder, as PyTorch's; extra arguments are ignored)."""

    op = "identity"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x

    def describe(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...] | None) -> str:
        return "identity: the input unchanged"


class _Pool(Module):
    defaults: dict[str, Any] = {}

    def _init(self, where: str, kernel_size: Any, stride: Any, padding: Any, **kw: Any) -> None:
        self.kernel_size = shapes.pair(kernel_size, "kernel_size", where)
        self.stride = self.kernel_size if stride is None else shapes.pair(stride, "stride", where)
        self.padding = shapes.pair(padding, "padding", where, minimum=0)
        self.extra = kw

    def get_config(self) -> dict[str, Any]:
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                    **self.extra)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        k = self.kernel_size
        where = f"{type(self).__name__}({k[0]}x{k[1]})"
        batched = _spatial(shape, type(self).__name__)
        *_, out = shapes.pool_geometry(batched[2:], k, self.stride, self.padding,
                                       self.extra.get("dilation", 1), self.extra["ceil_mode"],
                                       where)
        return _same_rank(shape, (*batched[:2], *out))

    def describe(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...] | None) -> str:
        kind = "max" if self.op == "max_pool2d" else "average"
        s, p = self.stride, self.padding
        text = f"{kind} pool {_hw(self.kernel_size)}, stride {s[0] if s[0] == s[1] else _hw(s)}"
        if p != (0, 0):
            text += f", padding {p[0] if p[0] == p[1] else p}"
        for name, value in self.extra.items():
            if value != self.defaults[name]:
                text += f", {name}={value}"
        return text

    def macs(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
        return 0

    def window(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        k, s, d = self.kernel_size, self.stride, self.extra.get("dilation", (1, 1))
        return (k[0], s[0], d[0]), (k[1], s[1], d[1])

    def extra_repr(self) -> str:
        k = self.kernel_size
        s = f"kernel_size={k[0] if k[0] == k[1] else k}"
        if self.stride != self.kernel_size:
            s += f", stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        for name, value in self.extra.items():
            if value != self.defaults[name]:
                s += f", {name}={value}"
        return s


class MaxPool2d(_Pool):
    """Max over each window. Shape: as :func:`convscope.functional.max_pool2d`."""

    defaults = {"dilation": (1, 1), "ceil_mode": False}
    op = "max_pool2d"

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self._init(
            "MaxPool2d",
            kernel_size,
            stride,
            padding,
            dilation=shapes.pair(dilation, "dilation", "MaxPool2d"),
            ceil_mode=bool(ceil_mode),
        )

    def forward(self, x: Any, relu_input: bool = False) -> Tensor:
        """``relu_input`` (for ``nn.Sequential``): see :func:`.functional.max_pool2d_at`."""
        k = self.kernel_size
        return F.max_pool2d_at(
            x,
            k,
            self.stride,
            self.padding,
            self.extra["dilation"],
            self.extra["ceil_mode"],
            False,
            f"MaxPool2d({k[0]}x{k[1]})",
            relu_input,
        )


class AvgPool2d(_Pool):
    """Mean over each window. Shape: as :func:`convscope.functional.avg_pool2d`."""

    defaults = {"ceil_mode": False, "count_include_pad": True}
    op = "avg_pool2d"

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__()
        self._init(
            "AvgPool2d",
            kernel_size,
            stride,
            padding,
            ceil_mode=bool(ceil_mode),
            count_include_pad=bool(count_include_pad),
        )

    def forward(self, x: Any) -> Tensor:
        k = self.kernel_size
        return F.avg_pool2d_at(
            x,
            k,
            self.stride,
            self.padding,
            self.extra["ceil_mode"],
            self.extra["count_include_pad"],
            f"AvgPool2d({k[0]}x{k[1]})",
        )


class Flatten(Module):
    """Merge all axes after the batch axis: (N, C, H, W) -> (N, C*H*W)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    op = "flatten"

    def forward(self, x: Any) -> Tensor:
        return F.flatten(x, self.start_dim, self.end_dim)

    def get_config(self) -> dict[str, Any]:
        return dict(start_dim=self.start_dim, end_dim=self.end_dim)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        nd = max(len(shape), 1)
        a, b = self.start_dim % nd, self.end_dim % nd
        if a > b:
            return F.flatten(np.zeros((1,) * nd), self.start_dim, self.end_dim).shape
        return (*shape[:a], math.prod(shape[a:b + 1]), *shape[b + 1:])

    def describe(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...] | None) -> str:
        n = out_shape[-1] if out_shape else math.prod(in_shape[1:])
        return f"flatten {volume(in_shape)} -> {n} values"

    def macs(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
        return 0

    def extra_repr(self) -> str:
        return (
            ""
            if (self.start_dim, self.end_dim) == (1, -1)
            else f"start_dim={self.start_dim}, end_dim={self.end_dim}"
        )


class BatchNorm2d(Module):
    """Per-channel normalisation with learned scale and shift; running statistics for eval."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        self.num_features = _positive_int(num_features, "num_features", "BatchNorm2d")
        for name, value, low, high in (
            ("eps", eps, 0.0, math.inf),
            ("momentum", momentum, 0.0, 1.0),
        ):
            if (
                not isinstance(value, numbers.Real)
                or isinstance(value, bool)
                or not low <= float(value) <= high
            ):
                bound = "a number >= 0" if name == "eps" else "a number in [0, 1]"
                raise ArgumentError(
                    message(
                        "BatchNorm2d",
                        f"`{name}` must be {bound}",
                        "use eps=1e-5, momentum=0.1",
                        f"{name}={value!r}",
                    )
                )
        self.eps, self.momentum, self.affine = float(eps), float(momentum), affine
        self.track_running_stats = track_running_stats
        self.weight = Parameter(np.ones(num_features, np.float32)) if affine else None
        self.bias = Parameter(np.zeros(num_features, np.float32)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, np.float32))
            self.register_buffer("running_var", np.ones(num_features, np.float32))
            self.register_buffer("num_batches_tracked", np.array(0, np.int64))

    def forward(self, x: Any) -> Tensor:
        x = F.as_tensor(x, "BatchNorm2d")
        if x.ndim == 4 and x.shape[1] != self.num_features:
            raise ShapeError(
                message(
                    f"BatchNorm2d({self.num_features})",
                    f"expected {self.num_features} channels, got {x.shape[1]}",
                    f"build BatchNorm2d({x.shape[1]})",
                    f"input shape {x.shape}",
                )
            )
        use_batch = self.training or not self.track_running_stats
        if self.training and self.track_running_stats:
            self.register_buffer("num_batches_tracked", self.num_batches_tracked + 1)
        return F.batch_norm(
            x,
            getattr(self, "running_mean", None),
            getattr(self, "running_var", None),
            self.weight,
            self.bias,
            use_batch,
            self.momentum,
            self.eps,
        )

    op = "batch_norm"

    def get_config(self) -> dict[str, Any]:
        return dict(num_features=self.num_features, eps=self.eps, momentum=self.momentum,
                    affine=self.affine, track_running_stats=self.track_running_stats)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        label = f"BatchNorm2d({self.num_features})"
        if len(shape) != 4:
            raise ShapeError(message(label, f"needs a volume H x W x D, but gets "
                                     f"{volume(shape)}" + (" flat values" if len(shape) == 2
                                                           else ""), "put it before flatten"))
        if shape[1] != self.num_features:
            raise ShapeError(message(label, f"expects {self.num_features} channels, gets "
                                     f"{shape[1]}", f"build BatchNorm2d({shape[1]})"))
        return tuple(shape)

    def describe(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...] | None) -> str:
        return f"batch norm, {self.num_features} channels"

    def macs(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
        """torchinfo's convention: its scale and shift per channel and example (it folds
        into the preceding conv at inference)."""
        return 2 * self.num_features * (in_shape[0] if len(in_shape) == 4 else 1) \
            if self.affine else 0

    def extra_repr(self) -> str:
        return f"{self.num_features}"


class Dropout(_Elementwise):
    """Zero each value with probability ``p`` during training; identity in eval mode."""

    op = "dropout"

    def __init__(self, p: float = 0.5, inplace: bool = False,
                 seed: int | np.random.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(p, numbers.Real) or not 0.0 <= float(p) <= 1.0:
            raise ArgumentError(
                message("Dropout", "p must be a probability in [0, 1]", "use p=0.5", f"p={p!r}")
            )
        self.p = float(p)
        self.generator = make_rng(seed)

    def forward(self, x: Any) -> Tensor:
        return F.dropout(x, self.p, self.training, self.generator)

    def get_config(self) -> dict[str, Any]:
        return dict(p=self.p)

    def describe(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...] | None) -> str:
        return f"dropout p={self.p} (training only)"

    def extra_repr(self) -> str:
        return f"p={self.p}"
