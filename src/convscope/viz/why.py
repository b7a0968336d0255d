"""Why is this output value what it is: one value of one layer, taken apart.

For a convolution: the kxkxD patch under the kernel at that position (padding marked), the
kernel, their elementwise products, the sum per input channel, the bias and the value, as on
the slides ("the convolution of the kernel with the local patch outputs one value"). For a
max pool: the window and which input won; average pool: the window and its mean; ReLU:
``max(x, 0)`` of which input; batch norm, dropout, flatten and linear likewise.

The value is recomputed here in float64 from the layer's own input (the forward pass up to
that layer) and checked against the value the forward pass produced: a mismatch raises
:class:`WhyMismatchError` with both numbers.

>>> import numpy as np
>>> from convscope.viz.why import why
>>> image = np.random.default_rng(0).random((3, 8, 8), dtype=np.float32)
>>> w = why("8x8x3 | conv(4, 3, padding=1)", image, layer=0, at=(2, 0, 5))
>>> w.patch.shape, int(w.padding.sum()), bool(abs(w.value - w.forward_value) < 1e-5)
((3, 3, 3), 3, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import functional as F
from ..errors import ConvscopeError, message
from ..nn import AvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU
from .layers import LayerRef, activations, check_at, conv_padding, find_layer, prepare

__all__ = ["why", "Why", "WhyMismatchError", "conv_window"]

_KINDS = (Conv2d, MaxPool2d, AvgPool2d, ReLU, BatchNorm2d, Dropout, Flatten, Linear)


class WhyMismatchError(ConvscopeError, AssertionError):
    """The value rebuilt by hand differs from the forward pass: a bug, reported with both."""


@dataclass
class Why:
    """One output value, taken apart. Arrays are float64; ``str(why)`` is the walk-through.

    Attributes
    ----------
    layer : the layer number, as ``explain`` prints it
    kind : 'conv', 'max pool', 'average pool', 'relu', 'batch norm', 'dropout', 'flatten'
        or 'linear'
    at : the output position (channel, row, column), or (index,) for a flat output
    value : the value rebuilt here; ``forward_value`` is what the forward pass gave
    patch : (D, kh, kw) the input values under the window (padding cells hold the value
        the padding puts there: 0, a copy, or -inf for max pool); for ReLU and the like (1, 1, 1)
    padding : bool (kh, kw), True where the window is over padding
    rows, cols : the input row of each window row and column of each window column (values
        outside 0..H-1 are padding)
    channels : the input channels the value reads
    kernel, products, channel_sums : (D, kh, kw), (D, kh, kw), (D,) for conv and linear
    bias : the bias added (0.0 without one)
    winner : for max pool, the input (channel, row, column) that won
    """

    layer: str
    kind: str
    operation: str
    at: tuple[int, ...]
    value: float
    forward_value: float
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    patch: np.ndarray
    padding: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    channels: tuple[int, ...]
    kernel: np.ndarray | None = None
    products: np.ndarray | None = None
    channel_sums: np.ndarray | None = None
    bias: float = 0.0
    winner: tuple[int, int, int] | None = None
    padding_mode: str = "zeros"
    divisor: int | None = None
    note: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        from .why_text import render

        return render(self)

    def picture(self) -> np.ndarray:
        """The walk-through as an RGB uint8 picture (see :func:`convscope.viz.why_text.draw`)."""
        from .why_text import draw

        return draw(self)


def conv_window(layer: Conv2d, x: np.ndarray, at: tuple[int, int, int],
                pad: tuple[tuple[int, int], tuple[int, int]] | None = None) -> dict[str, Any]:
    """The window of ``layer`` for output ``at`` over its input ``x`` (C, H, W), in float64.

    Returns patch (D, kh, kw), padding mask (kh, kw), rows, cols, channels, kernel, products,
    channel_sums, bias and value: the dot product done by hand. The padded values come from
    :func:`convscope.functional.pad`, the same function the layer pads with.
    """
    o, r, c = at
    pad = pad or conv_padding(layer, x.shape)
    (pt, _), (pl, _) = pad
    padded = F.pad(x[None], pad, layer.padding_mode).data[0].astype(np.float64)
    kh, kw = layer.kernel_size
    (sh, sw), (dh, dw) = layer.stride, layer.dilation
    per = layer.out_channels // layer.groups
    cg = layer.in_channels // layer.groups
    g = o // per
    channels = tuple(range(g * cg, (g + 1) * cg))
    rows_p = r * sh + dh * np.arange(kh)
    cols_p = c * sw + dw * np.arange(kw)
    patch = padded[g * cg:(g + 1) * cg][:, rows_p][:, :, cols_p]
    rows, cols = rows_p - pt, cols_p - pl
    h, w = x.shape[1:]
    mask = ((rows < 0) | (rows >= h))[:, None] | ((cols < 0) | (cols >= w))[None, :]
    kernel = layer.weight.data[o].astype(np.float64)
    products = patch * kernel
    sums = products.sum(axis=(1, 2))
    bias = float(layer.bias.data[o]) if layer.bias is not None else 0.0
    return dict(patch=patch, padding=mask, rows=rows, cols=cols, channels=channels,
                kernel=kernel, products=products, channel_sums=sums, bias=bias,
                value=float(sums.sum() + bias))


def _pool_window(layer: MaxPool2d | AvgPool2d, x: np.ndarray,
                 at: tuple[int, int, int]) -> dict[str, Any]:
    ch, r, c = at
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
    dh, dw = layer.extra.get("dilation", (1, 1))
    h, w = x.shape[1:]
    rows = r * sh - ph + dh * np.arange(kh)
    cols = c * sw - pw + dw * np.arange(kw)
    inside = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]
    vals = np.where(inside, x[ch][np.clip(rows, 0, h - 1)][:, np.clip(cols, 0, w - 1)], 0.0)
    out: dict[str, Any] = dict(rows=rows, cols=cols, padding=~inside, channels=(ch,))
    if isinstance(layer, MaxPool2d):
        patch = np.where(inside, vals, -np.inf).astype(np.float64)
        # the winner the forward pass records (its gradient goes there): ask the pool itself
        _, idx = F.max_pool2d(x[None], layer.kernel_size, layer.stride, layer.padding,
                              (dh, dw), layer.extra["ceil_mode"], return_indices=True)
        wr, wc = divmod(int(np.asarray(idx)[0, ch, r, c]), w)
        i, j = int(np.flatnonzero(rows == wr)[0]), int(np.flatnonzero(cols == wc)[0])
        out.update(patch=patch[None], value=float(patch.max()), winner=(ch, wr, wc),
                   details={"ties": int((patch == patch.max()).sum()), "window": (i, j)})
    else:
        # explicit padding counts with count_include_pad; the ceil_mode overhang never counts
        in_pad = (((rows >= -ph) & (rows < h + ph))[:, None]
                  & ((cols >= -pw) & (cols < w + pw))[None, :])
        counted = in_pad if layer.extra["count_include_pad"] else inside
        divisor = int(counted.sum())
        patch = vals.astype(np.float64)
        out.update(patch=patch[None], value=float(patch[inside].sum() / divisor),
                   divisor=divisor, details={"counted": counted})
    return out


def _point(x: np.ndarray, at: tuple[int, ...]) -> dict[str, Any]:
    v = float(np.asarray(x, np.float64)[at])
    rows = np.array([at[1]]) if len(at) == 3 else np.array([0])
    cols = np.array([at[2]]) if len(at) == 3 else np.array([at[0]])
    return dict(patch=np.array([[[v]]]), padding=np.zeros((1, 1), bool), rows=rows, cols=cols,
                channels=(at[0],) if len(at) == 3 else (), input_value=v)


def _explain(ref: LayerRef, x: np.ndarray, at: tuple[int, ...]) -> tuple[str, dict[str, Any]]:
    layer = ref.layer
    if isinstance(layer, Conv2d):
        return "conv", {**conv_window(layer, x, at), "padding_mode": layer.padding_mode}  # type: ignore[arg-type]
    if isinstance(layer, (MaxPool2d, AvgPool2d)):
        kind = "max pool" if isinstance(layer, MaxPool2d) else "average pool"
        return kind, _pool_window(layer, x, at)  # type: ignore[arg-type]
    if isinstance(layer, ReLU):
        got = _point(x, at)
        return "relu", {**got, "value": max(got["input_value"], 0.0)}
    if isinstance(layer, Dropout):
        return "dropout", {**(got := _point(x, at)), "value": got["input_value"]}
    if isinstance(layer, BatchNorm2d):
        got = _point(x, at)
        ch = at[0]
        mean = float(getattr(layer, "running_mean", np.zeros(ch + 1))[ch])
        var = float(getattr(layer, "running_var", np.ones(ch + 1))[ch])
        gamma = float(layer.weight.data[ch]) if layer.weight is not None else 1.0
        beta = float(layer.bias.data[ch]) if layer.bias is not None else 0.0
        value = (got["input_value"] - mean) / math.sqrt(var + layer.eps) * gamma + beta
        return "batch norm", {**got, "value": value, "bias": beta,
                              "details": {"mean": mean, "var": var, "eps": layer.eps,
                                          "gamma": gamma}}
    if isinstance(layer, Flatten):
        src = np.unravel_index(at[0], x.shape)
        got = _point(x, tuple(int(v) for v in src))
        return "flatten", {**got, "value": got["input_value"],
                           "details": {"source": tuple(int(v) for v in src)}}
    assert isinstance(layer, Linear)
    xs = np.asarray(x, np.float64).reshape(-1)
    kernel = layer.weight.data[at[0]].astype(np.float64)
    products = xs * kernel
    bias = float(layer.bias.data[at[0]]) if layer.bias is not None else 0.0
    return "linear", dict(patch=xs[None, None], padding=np.zeros((1, xs.size), bool),
                          rows=np.array([0]), cols=np.arange(xs.size), channels=(),
                          kernel=kernel[None, None], products=products[None, None],
                          channel_sums=np.array([products.sum()]), bias=bias,
                          value=float(products.sum() + bias))


def _tolerance(parts: dict[str, Any]) -> float:
    scale = abs(parts.get("bias", 0.0)) + abs(parts["value"])
    if parts.get("products") is not None:
        scale += float(np.abs(parts["products"]).sum())
    return 1e-4 * scale + 1e-5


def why(model: Any, image: Any, layer: int | str, at: Any, size: Any = None,
        seed: int = 0) -> Why:
    """Take apart output ``at`` = (channel, row, column) of ``layer`` for ``image``.

    Parameters
    ----------
    model : Module, model file, run folder or spec string (random weights from ``seed``)
    image : (C, H, W) array or image file
    layer : the layer number as ``convscope explain`` prints it
    at : (channel, row, column), or "3,17,41"; (index,) for a flat output (linear, flatten)

    Returns
    -------
    Why

    Raises
    ------
    ArgumentError
        ``at`` out of range (the message gives the valid ranges), or a layer kind that has
        no walk-through.
    WhyMismatchError
        The value rebuilt here differs from the forward pass (with both numbers).
    """
    prep = prepare(model, image, size=size, seed=seed)
    ref = find_layer(prep.model, layer, prep.image.shape, kinds=_KINDS,
                     what="a layer with a walk-through (conv, pool, relu, batch norm, "
                          "dropout, flatten, linear)")
    pos = check_at(at, ref.output_shape, f"layer {ref.index} ({ref.name}) output")
    acts = activations(prep.model, prep.image, upto=ref.position)
    x, y = acts[-2], acts[-1]
    kind, parts = _explain(ref, x, pos)
    forward = float(y[pos])
    value = parts.pop("value")
    if not (abs(value - forward) <= _tolerance({**parts, "value": value})
            or (math.isinf(value) and value == forward)):
        raise WhyMismatchError(message(
            f"why, layer {ref.index} ({ref.name})",
            f"the value rebuilt by hand, {value!r}, differs from the forward pass, {forward!r}, "
            f"at {pos}", "this is a bug in convscope: please report it with the model and image"))
    parts.pop("input_value", None)
    return Why(layer=ref.index, kind=kind, operation=ref.operation, at=pos, value=value,
               forward_value=forward, input_shape=ref.input_shape, output_shape=ref.output_shape,
               note=prep.note, **parts)

