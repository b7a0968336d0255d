"""The receptive field of one output value: exactly which input pixels it depends on.

Two independent ways, which the tests hold equal:

- ``method="analytic"``: walk back from the output position layer by layer with index
  arithmetic. A conv output at row r reads padded rows ``r*stride + dilation*t`` (t < k);
  padding maps each padded row to the input row it copies (none for zero padding; the
  mirror, edge or wrapped row for reflect, replicate, circular); pooling likewise with its
  own stride, padding and dilation. Rows and columns are independent, so the field is
  (channels) x (rows) x (columns); with dilation it has holes.
- ``method="gradient"``: autograd through a probe copy of the model on an all-ones image:
  every kernel replaced by ones, pooling by a sum over the same window (a max pool's
  gradient would reach only its winner), batch norm and dropout by the identity. The field
  is the set of input values with a non-zero gradient.

>>> import numpy as np
>>> spec = "16x16x1 | conv(1, 3, padding=1) | conv(1, 3, dilation=4)"
>>> rf = receptive_field(spec, np.zeros((1, 16, 16)), layer=1, at=(0, 2, 2))
>>> rf.span, rf.rows.tolist()          # dilation 4 leaves holes: rows 4 and 8 are not read
((11, 11), [1, 2, 3, 5, 6, 7, 9, 10, 11])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import functional as F
from ..errors import ArgumentError, message
from ..nn import AvgPool2d, BatchNorm2d, Conv2d, Dropout, MaxPool2d, Module, ReLU
from ..spec import format_volume
from ..tensor import Tensor, enable_grad
from .grid import grid
from .image import to_rgb
from .layers import LayerRef, check_at, conv_padding, find_layer, layer_refs, prepare

__all__ = ["receptive_field", "ReceptiveField", "receptive_picture", "heat"]

_SPATIAL = (Conv2d, MaxPool2d, AvgPool2d, ReLU, BatchNorm2d, Dropout)
_NUMPY_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


@dataclass
class ReceptiveField:
    """The input values one output value depends on.

    ``mask`` bool (C, H, W) over the input image; ``rows``, ``cols``, ``channels`` the input
    rows, columns and channels it covers; ``span`` the (height, width) of its bounding box in
    the image; ``full`` the receptive field's size before the image edge clips it (the RF
    column of ``explain``); ``gradient`` |d value / d input| of the real model, summed over
    channels (H, W), or None.
    """

    layer: str
    operation: str
    at: tuple[int, int, int]
    mask: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    channels: tuple[int, ...]
    full: tuple[int, int]
    method: str
    image: np.ndarray | None = None
    gradient: np.ndarray | None = None
    note: str | None = None

    @property
    def span(self) -> tuple[int, int]:
        if not self.rows.size:
            return (0, 0)
        return (int(self.rows[-1] - self.rows[0] + 1), int(self.cols[-1] - self.cols[0] + 1))

    size = span

    @property
    def pixels(self) -> int:
        """How many pixel positions (row, column) the field covers."""
        return int(self.mask.any(axis=0).sum())

    def __str__(self) -> str:
        c, r, q = self.at
        h, w = self.span
        chans = self.mask.shape[0]
        which = ("its one channel" if chans == 1 else f"all {chans} channels"
                 if len(self.channels) == chans else
                 "channels " + ", ".join(map(str, self.channels)))
        lines = [f"layer {self.layer}: {self.operation}",
                 f"output channel {c}, row {r}, column {q} depends on input rows "
                 f"{_span(self.rows)}, columns {_span(self.cols)} ({which})",
                 f"  region {h}x{w} in the image, {self.pixels} pixel positions"
                 + ("" if self.pixels == h * w else f" (holes: dilation skips "
                    f"{h * w - self.pixels} of the {h * w})"),
                 f"  full receptive field {self.full[0]}x{self.full[1]} (explain's RF column)"
                 + ("" if self.full == (h, w) else
                    "; the rest falls outside the image (padding)" if h <= self.full[0]
                    and w <= self.full[1] else "; padding copies pixels from the far side of "
                    "the image (circular), so the field spreads beyond it")]
        if self.note:
            lines.insert(1, f"note: {self.note}")
        return "\n".join(lines)

    def picture(self) -> np.ndarray:
        return receptive_picture(self)


def _span(v: np.ndarray) -> str:
    if not v.size:
        return "none"
    if v.size == v[-1] - v[0] + 1:
        return f"{v[0]}..{v[-1]}"
    return f"{v[0]}..{v[-1]} ({v.size} of them)"


def _window(layer: Module, shape: Sequence[int]) -> tuple[Any, ...]:
    """(kernel, stride, dilation, ((top, bottom), (left, right)), mode) of a windowed layer."""
    if isinstance(layer, Conv2d):
        return (layer.kernel_size, layer.stride, layer.dilation, conv_padding(layer, shape),
                layer.padding_mode)
    assert isinstance(layer, (MaxPool2d, AvgPool2d))
    p = layer.padding
    return (layer.kernel_size, layer.stride, layer.extra.get("dilation", (1, 1)),
            ((p[0], p[0]), (p[1], p[1])), "zeros")


def _back(idx: np.ndarray, n: int, k: int, s: int, d: int, pad: tuple[int, int],
          mode: str) -> np.ndarray:
    """The input indices (along one axis) that the outputs ``idx`` read."""
    padded = (idx[:, None] * s + d * np.arange(k)[None]).reshape(-1)
    if mode == "zeros":
        source = np.pad(np.arange(n), pad, constant_values=-1)
    else:
        source = np.pad(np.arange(n), pad, mode=_NUMPY_MODE[mode])  # type: ignore[call-overload]
    padded = padded[padded < source.size]  # a ceil_mode window may overhang
    got = source[padded]
    return np.unique(got[got >= 0])


def _analytic(refs: list[LayerRef], ref: LayerRef, at: tuple[int, int, int]) -> np.ndarray:
    rows, cols = np.array([at[1]]), np.array([at[2]])
    chans = np.array([at[0]])
    for r in reversed(refs[:ref.position + 1]):
        layer, shape = r.layer, r.input_shape
        if isinstance(layer, (Conv2d, MaxPool2d, AvgPool2d)):
            k, s, d, pad, mode = _window(layer, shape)
            rows = _back(rows, shape[1], k[0], s[0], d[0], pad[0], mode)
            cols = _back(cols, shape[2], k[1], s[1], d[1], pad[1], mode)
        if isinstance(layer, Conv2d):
            per, cg = layer.out_channels // layer.groups, layer.in_channels // layer.groups
            groups = np.unique(chans // per)
            chans = (groups[:, None] * cg + np.arange(cg)[None]).reshape(-1)
    mask = np.zeros(refs[0].input_shape, bool)
    mask[np.ix_(chans, rows, cols)] = True
    return mask


def _probe(refs: list[LayerRef], ref: LayerRef, at: tuple[int, int, int]) -> np.ndarray:
    """Non-zero gradient of output ``at`` w.r.t. an all-ones image, through the probe model."""
    x = Tensor(np.ones((1,) + refs[0].input_shape), requires_grad=True, dtype=np.float64)
    h: Any = x
    with enable_grad():
        for r in refs[:ref.position + 1]:
            layer, shape = r.layer, r.input_shape
            if isinstance(layer, (Conv2d, MaxPool2d, AvgPool2d)):
                k, s, d, pad, mode = _window(layer, shape)
                if isinstance(layer, Conv2d):
                    ones = np.ones(layer.weight.shape)
                    groups = layer.groups
                else:  # a sum over the same window; extra bottom/right pad for ceil_mode
                    ones, groups = np.ones((shape[0], 1) + tuple(k)), shape[0]
                    extra = [max(0, (o - 1) * st + dl * (kk - 1) + 1 - (n + p[0] + p[1]))
                             for o, st, dl, kk, n, p in zip(r.output_shape[1:], s, d, k,
                                                            shape[1:], pad, strict=True)]
                    pad = ((pad[0][0], pad[0][1] + extra[0]), (pad[1][0], pad[1][1] + extra[1]))
                if mode != "zeros":
                    h, pad = F.pad(h, pad, mode), 0
                h = F.conv2d(h, ones, None, s, pad, d, groups)
            elif isinstance(layer, ReLU):
                h = F.relu(h)
        h[0, at[0], at[1], at[2]].backward()
    assert x.grad is not None
    return x.grad.data[0] != 0


def receptive_field(model: Any, image: Any, layer: int | str, at: Any,
                    method: str = "analytic", size: Any = None, seed: int = 0,
                    gradient: bool = True) -> ReceptiveField:
    """The input values that output ``at`` = (channel, row, column) of ``layer`` depends on.

    Parameters
    ----------
    method : 'analytic' (index arithmetic) or 'gradient' (autograd through a probe model);
        see the module docstring. Both give the same mask.
    gradient : also compute |d value / d input| of the real model on ``image`` (how much
        each pixel of the field matters, for the picture)

    Returns
    -------
    ReceptiveField
    """
    if method not in ("analytic", "gradient"):
        raise ArgumentError(message("receptive_field", f"unknown method {method!r}",
                                    "use 'analytic' or 'gradient'", f"method={method!r}"))
    prep = prepare(model, image, size=size, seed=seed)
    refs = layer_refs(prep.model, prep.image.shape)
    ref = find_layer(prep.model, layer, prep.image.shape, kinds=_SPATIAL,
                     what="a layer with feature maps (before flatten: a linear layer sees "
                          "the whole image)")
    bad = next((r for r in refs[:ref.position] if not isinstance(r.layer, _SPATIAL)), None)
    if bad is not None:
        raise ArgumentError(message("receptive_field", f"layer {bad.index} ({bad.name}) mixes "
                                    "every position, so every later value sees the whole image",
                                    "pick a layer before it"))
    pos = check_at(at, ref.output_shape, f"layer {ref.index} ({ref.name}) output")
    assert len(pos) == 3
    mask = _analytic(refs, ref, pos) if method == "analytic" else _probe(refs, ref, pos)  # type: ignore[arg-type]
    from .. import shapes

    windows = [[(1, 1, 1)], [(1, 1, 1)]]
    for r in refs[:ref.position + 1]:
        if isinstance(r.layer, (Conv2d, MaxPool2d, AvgPool2d)):
            k, s, d, _, _ = _window(r.layer, r.input_shape)
            for axis in (0, 1):
                windows[axis].append((k[axis], s[axis], d[axis]))
    full = (shapes.receptive_field(windows[0])[-1][0], shapes.receptive_field(windows[1])[-1][0])
    grad = _real_gradient(prep.model, refs, ref, prep.image, pos) if gradient else None  # type: ignore[arg-type]
    return ReceptiveField(layer=ref.index, operation=ref.operation, at=pos, mask=mask,  # type: ignore[arg-type]
                          rows=np.flatnonzero(mask.any(axis=(0, 2))),
                          cols=np.flatnonzero(mask.any(axis=(0, 1))),
                          channels=tuple(int(c) for c in np.flatnonzero(mask.any(axis=(1, 2)))),
                          full=full, method=method, image=prep.image, gradient=grad,
                          note=prep.note)


def _real_gradient(model: Module, refs: list[LayerRef], ref: LayerRef, image: np.ndarray,
                   at: tuple[int, int, int]) -> np.ndarray:
    was = model.training
    model.eval()
    try:
        x = Tensor(image[None], requires_grad=True)
        h: Any = x
        with enable_grad():
            for r in refs[:ref.position + 1]:
                h = r.layer(h)
            h[0, at[0], at[1], at[2]].backward()
    finally:
        model.train(was)
    assert x.grad is not None
    return np.abs(x.grad.data[0]).sum(axis=0)


_HOT = np.array([(0, 0, 0), (120, 0, 0), (220, 40, 0), (255, 150, 0), (255, 230, 90),
                 (255, 255, 255)], np.float64)


def heat(values: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """RGB uint8 'hot' colours: 0 black, through red and orange, ``vmax`` white."""
    v = np.nan_to_num(np.asarray(values, np.float64))
    top = float(v.max()) if vmax is None and v.size else float(vmax or 0.0)
    t = np.clip(v / top, 0, 1) if top > 0 else np.zeros(v.shape)
    pos = t * (len(_HOT) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(_HOT) - 2)
    frac = (pos - lo)[..., None]
    return np.rint(_HOT[lo] * (1 - frac) + _HOT[lo + 1] * frac).astype(np.uint8)


def image_rgb(image: np.ndarray) -> np.ndarray:
    """An input volume as RGB: itself when it is an image in [0, 1], else its channel mean."""
    img = np.asarray(image, np.float64)
    if img.shape[0] in (1, 3) and img.min() >= 0 and img.max() <= 1:
        return to_rgb(img)
    from .colors import grey

    return grey(img.mean(axis=0))


def receptive_picture(rf: ReceptiveField) -> np.ndarray:
    """The image with the field bright and the rest dimmed, a box around it, and the
    gradient of the real model (how much each pixel of the field matters)."""
    from PIL import Image, ImageDraw

    assert rf.image is not None
    h, w = rf.image.shape[1:]
    zoom = max(1, 320 // max(h, w))
    rgb = image_rgb(rf.image).astype(np.float64)
    inside = rf.mask.any(axis=0)
    shown = np.where(inside[..., None], rgb, rgb * 0.25 + 255 * 0.1)
    pics, labels = [], []
    for arr in [shown] + ([heat(np.where(inside, rf.gradient, 0))] if rf.gradient is not None
                          else []):
        big = Image.fromarray(np.repeat(np.repeat(np.asarray(arr, np.uint8), zoom, 0), zoom, 1))
        draw = ImageDraw.Draw(big)
        if rf.rows.size:
            box = (rf.cols[0] * zoom - 1, rf.rows[0] * zoom - 1, (rf.cols[-1] + 1) * zoom,
                   (rf.rows[-1] + 1) * zoom)
            draw.rectangle(box, outline=(255, 220, 0), width=2)
        pics.append(np.asarray(big))
    labels.append(f"input {format_volume(rf.image.shape)}: field bright, rest dimmed")
    if rf.gradient is not None:
        labels.append("|gradient| of the value (hot: matters most)")
    c, r, q = rf.at
    hh, ww = rf.span
    title = (f"Receptive field of layer {rf.layer}, output ({c}, {r}, {q}): {hh}x{ww} "
             f"input pixels (full field {rf.full[0]}x{rf.full[1]})")
    return grid(pics, labels, title=title, legend=False, cols=len(pics))
