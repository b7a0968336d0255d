"""One value of a windowed node, rebuilt by hand in float64: convolution, transposed
convolution, max and average pooling, adaptive average pooling, interpolation.

Each function takes the node's input volume ``x`` (C, H, W) and the output position and
returns the pieces of a :class:`~convscope.viz.why.Why` plus ``value``. Padding is made by
:func:`convscope.functional.pad` (the function the layers pad with); index rules come from
:mod:`convscope.shapes` and the resampling plans of the kernels; the arithmetic is done
here, so that it checks the forward pass rather than repeating it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import functional as F
from .. import shapes
from ..nn import Conv2d
from .nodes import pair

__all__ = ["ConvArgs", "conv_window", "transposed_window", "pool_window", "adaptive_window",
           "interpolate_window"]

Pad = tuple[tuple[int, int], tuple[int, int]]


@dataclass
class ConvArgs:
    """What a convolution computes with, from a ``Conv2d`` or an ``F.conv2d`` call."""

    weight: np.ndarray
    bias: np.ndarray | None
    stride: tuple[int, int]
    padding: Any  # as given: an int, a pair, 'same' or 'valid'
    dilation: tuple[int, int]
    groups: int
    padding_mode: str = "zeros"
    output_padding: tuple[int, int] = (0, 0)  # transposed convolutions only

    @classmethod
    def of(cls, args: dict[str, Any]) -> ConvArgs:
        bias = args.get("bias")
        return cls(np.asarray(args["weight"]), None if bias is None or isinstance(bias, bool)
                   else np.asarray(bias), pair(args.get("stride", 1)), args.get("padding", 0),
                   pair(args.get("dilation", 1)), int(args.get("groups", 1)),
                   args.get("padding_mode", "zeros"), pair(args.get("output_padding", 0)))

    @classmethod
    def of_layer(cls, layer: Conv2d) -> ConvArgs:
        return cls(layer.weight.data, None if layer.bias is None else layer.bias.data,
                   layer.stride, layer.padding, layer.dilation, layer.groups,
                   layer.padding_mode)

    def pads(self, shape: tuple[int, ...]) -> Pad:
        """((top, bottom), (left, right)) for an input volume of ``shape``."""
        geo = shapes.conv_geometry((1,) + tuple(shape), self.weight.shape, self.stride,
                                   self.padding, self.dilation, self.groups)
        return geo.padding


def conv_window(conv: Conv2d | ConvArgs, x: np.ndarray, at: tuple[int, ...],
                pad: Pad | None = None) -> dict[str, Any]:
    """The window of a convolution for output ``at`` over its input ``x`` (C, H, W).

    Returns patch (D, kh, kw), padding mask (kh, kw), rows, cols, channels, kernel, products,
    channel_sums, bias and value: the dot product done by hand. The padded values come from
    :func:`convscope.functional.pad`, the same function the layer pads with.
    """
    c = conv if isinstance(conv, ConvArgs) else ConvArgs.of_layer(conv)
    o, r, q = at
    pad = pad or c.pads(x.shape)
    (pt, _), (pl, _) = pad
    padded = F.pad(x[None], pad, c.padding_mode).data[0].astype(np.float64)
    out_channels, cg, kh, kw = c.weight.shape
    (sh, sw), (dh, dw) = c.stride, c.dilation
    g = o // (out_channels // c.groups)
    channels = tuple(range(g * cg, (g + 1) * cg))
    rows_p = r * sh + dh * np.arange(kh)
    cols_p = q * sw + dw * np.arange(kw)
    patch = padded[g * cg:(g + 1) * cg][:, rows_p][:, :, cols_p]
    rows, cols = rows_p - pt, cols_p - pl
    h, w = x.shape[1:]
    mask = ((rows < 0) | (rows >= h))[:, None] | ((cols < 0) | (cols >= w))[None, :]
    kernel = c.weight[o].astype(np.float64)
    products = patch * kernel
    sums = products.sum(axis=(1, 2))
    bias = float(c.bias[o]) if c.bias is not None else 0.0
    return dict(patch=patch, padding=mask, rows=rows, cols=cols, channels=channels,
                kernel=kernel, products=products, channel_sums=sums, bias=bias,
                value=float(sums.sum() + bias), padding_mode=c.padding_mode,
                details={"stride": c.stride, "dilation": c.dilation, "groups": c.groups,
                         "pad": pad, "out_channels": out_channels})


def _landing(out: int, k: int, s: int, p: int, d: int, n: int) -> np.ndarray:
    """For each kernel entry t along one axis, the input index whose value it carries to
    output index ``out`` (``i * s - p + t * d == out``), or -1 when none lands there."""
    num = out + p - d * np.arange(k)
    ok = (num >= 0) & (num % s == 0) & (num // s < n)
    return np.where(ok, num // s, -1)


def transposed_window(c: ConvArgs, x: np.ndarray, at: tuple[int, ...]) -> dict[str, Any]:
    """One output value of a transposed convolution, taken apart.

    Each input value ``x[ci, i, j]`` adds ``x[ci, i, j] * weight[ci, o, a, b]`` to output
    ``(o, i*s - p + a*d, j*s - p + b*d)``. For output ``at`` this gathers, per input channel
    of the group and per kernel entry (a, b), the input value that lands there: ``patch``
    (D, kh, kw) holds it (0 where none lands, ``padding`` True), ``kernel`` the entries
    ``weight[ci, o]``, ``rows``/``cols`` the input row of each kernel row and column (-1:
    none).
    """
    o, r, q = at
    cin, per, kh, kw = c.weight.shape
    g, local = divmod(o, per)
    cg = cin // c.groups
    channels = tuple(range(g * cg, (g + 1) * cg))
    pt, pl = pair(c.padding)
    h, w = x.shape[1:]
    rows = _landing(r, kh, c.stride[0], pt, c.dilation[0], h)
    cols = _landing(q, kw, c.stride[1], pl, c.dilation[1], w)
    lands = (rows >= 0)[:, None] & (cols >= 0)[None, :]
    xs = np.asarray(x, np.float64)[g * cg:(g + 1) * cg]
    patch = np.where(lands, xs[:, np.maximum(rows, 0)][:, :, np.maximum(cols, 0)], 0.0)
    kernel = c.weight[g * cg:(g + 1) * cg, local].astype(np.float64)
    products = np.where(lands, patch * kernel, 0.0)
    sums = products.sum(axis=(1, 2))
    bias = float(c.bias[o]) if c.bias is not None else 0.0
    return dict(patch=patch, padding=~lands, rows=rows, cols=cols, channels=channels,
                kernel=kernel, products=products, channel_sums=sums, bias=bias,
                value=float(sums.sum() + bias),
                details={"stride": c.stride, "dilation": c.dilation, "groups": c.groups,
                         "pad": (pt, pl), "output_padding": c.output_padding,
                         "lands": int(lands.sum())})


def pool_window(args: dict[str, Any], x: np.ndarray, at: tuple[int, ...],
                is_max: bool) -> dict[str, Any]:
    """The window of a max or average pool for output ``at`` over ``x`` (C, H, W)."""
    ch, r, c = at
    k = pair(args["kernel_size"])
    s = k if args.get("stride") is None else pair(args["stride"])
    ph, pw = pair(args.get("padding", 0))
    dh, dw = pair(args.get("dilation", 1))
    ceil = bool(args.get("ceil_mode", False))
    h, w = x.shape[1:]
    rows = r * s[0] - ph + dh * np.arange(k[0])
    cols = c * s[1] - pw + dw * np.arange(k[1])
    inside = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]
    vals = np.where(inside, x[ch][np.clip(rows, 0, h - 1)][:, np.clip(cols, 0, w - 1)], 0.0)
    out: dict[str, Any] = dict(rows=rows, cols=cols, padding=~inside, channels=(ch,))
    if is_max:
        patch = np.where(inside, vals, -np.inf).astype(np.float64)
        # the winner the forward pass records (its gradient goes there): ask the pool itself
        _, idx = F.max_pool2d(x[None], k, s, (ph, pw), (dh, dw), ceil, return_indices=True)
        wr, wc = divmod(int(np.asarray(idx)[0, ch, r, c]), w)
        i, j = int(np.flatnonzero(rows == wr)[0]), int(np.flatnonzero(cols == wc)[0])
        out.update(patch=patch[None], value=float(patch.max()), winner=(ch, wr, wc),
                   details={"ties": int((patch == patch.max()).sum()), "window": (i, j)})
    else:
        # explicit padding counts with count_include_pad; the ceil_mode overhang never counts
        in_pad = (((rows >= -ph) & (rows < h + ph))[:, None]
                  & ((cols >= -pw) & (cols < w + pw))[None, :])
        counted = in_pad if args.get("count_include_pad", True) else inside
        divisor = int(counted.sum())
        patch = vals.astype(np.float64)
        out.update(patch=patch[None], value=float(patch[inside].sum() / divisor),
                   divisor=divisor, details={"counted": counted})
    return out


def adaptive_window(x: np.ndarray, at: tuple[int, ...], out_hw: tuple[int, int]) -> dict[str, Any]:
    """Adaptive average pooling: output (i, j) is the mean of input rows
    ``[floor(i*H/Ho), ceil((i+1)*H/Ho))`` and the columns likewise (PyTorch's windows)."""
    ch, r, c = at
    h, w = x.shape[1:]
    r0, r1 = shapes.adaptive_window(r, h, out_hw[0])
    c0, c1 = shapes.adaptive_window(c, w, out_hw[1])
    patch = np.asarray(x[ch, r0:r1, c0:c1], np.float64)
    return dict(patch=patch[None], padding=np.zeros(patch.shape, bool),
                rows=np.arange(r0, r1), cols=np.arange(c0, c1), channels=(ch,),
                divisor=patch.size, value=float(patch.sum() / patch.size))


def interpolate_window(args: dict[str, Any], x: np.ndarray, at: tuple[int, ...],
                       out_hw: tuple[int, int]) -> dict[str, Any]:
    """Interpolation: the input cells output ``at`` reads and their weights.

    The source index (nearest) or the two neighbours and their weights (bilinear) come
    from the kernels' index plans (PyTorch's formulas); the weighted sum is done here.
    """
    from ..kernels import resample as plans

    ch, r, c = at
    mode = args.get("mode", "nearest")
    _, scales = shapes.interpolate_out(x.shape[1:], args.get("size"), args.get("scale_factor"),
                                       args.get("recompute_scale_factor"), "interpolate")
    scales = scales or (None, None)
    picks = []
    for axis, pos in ((0, r), (1, c)):
        n, out = x.shape[1 + axis], out_hw[axis]
        if mode in ("nearest", "nearest-exact"):
            src = plans.nearest_index(n, out, scales[axis], mode == "nearest-exact")
            picks.append(([int(src[pos])], [1.0]))
        else:
            i0, i1, w0, w1 = plans.linear_plan(n, out, scales[axis],
                                               bool(args.get("align_corners")), x.dtype)
            picks.append(([int(i0[pos]), int(i1[pos])], [float(w0[pos]), float(w1[pos])]))
    (rows, wr), (cols, wc) = picks
    patch = np.asarray(x[ch], np.float64)[np.ix_(rows, cols)]
    kernel = np.outer(wr, wc)
    products = patch * kernel
    return dict(patch=patch[None], padding=np.zeros(patch.shape, bool), rows=np.array(rows),
                cols=np.array(cols), channels=(ch,), kernel=kernel[None],
                products=products[None], channel_sums=products.sum(keepdims=True).reshape(1),
                value=float(products.sum()), details={"mode": mode})
