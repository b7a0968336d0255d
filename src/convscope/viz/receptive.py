"""The receptive field of one output value: exactly which input pixels it depends on.

It is followed back through the model's traced graph (:mod:`convscope.viz.receptive_paths`),
so a value inside a residual block, after a concatenation or an upsampling, has its field
too. Two independent ways, which the tests hold equal:

- ``method="analytic"``: index arithmetic, node by node: a conv output at row r reads padded
  rows ``r*stride + dilation*t`` (t < k); padding maps each padded row to the input row it
  copies (none for zero padding; the mirror, edge or wrapped row for reflect, replicate,
  circular); pooling likewise with its own stride, padding and dilation; both operands of
  an add, the part of a concatenation the value lies in. With dilation it has holes.
- ``method="gradient"``: autograd through the graph run again on an all-ones image, every
  kernel replaced by ones, pooling by a sum over the same window (a max pool's gradient
  would reach only its winner), batch norm, activations and dropout by the identity. The
  field is the set of input values with a non-zero gradient.

``full`` is the field's size by the graph's RF rule (``explain``'s RF column), before the
image edge clips it; the picture also shows the gradient of the real model (how much each
pixel of the field matters for this image).

>>> import numpy as np
>>> spec = "16x16x1 | conv(1, 3, padding=1) | conv(1, 3, dilation=4)"
>>> rf = receptive_field(spec, np.zeros((1, 16, 16)), layer=1, at=(0, 2, 2))
>>> rf.span, rf.rows.tolist()          # dilation 4 leaves holes: rows 4 and 8 are not read
((11, 11), [1, 2, 3, 5, 6, 7, 9, 10, 11])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ArgumentError, message
from ..spec import format_volume
from .grid import grid
from .image import to_rgb
from .layers import LayerRef, activations, check_at, find_layer, layer_refs, prepare
from .receptive_paths import analytic, probe, real_gradient

__all__ = ["receptive_field", "ReceptiveField", "receptive_picture", "heat"]

_METHODS = {"analytic": "worked out node by node from the kernels, strides, dilations and "
                        "padding",
            "gradient": "autograd through the graph on an all-ones image, kernels set to ones"}


@dataclass
class ReceptiveField:
    """The input values one output value depends on.

    ``mask`` bool (C, H, W) over the input image; ``rows``, ``cols``, ``channels`` the input
    rows, columns and channels it covers; ``span`` the (height, width) of its bounding box in
    the image; ``full`` the receptive field's size before the image edge clips it (the RF
    column of ``explain``; None when it is the whole input); ``gradient`` |d value / d
    input| of the real model, summed over channels (H, W), or None.
    """

    layer: str
    operation: str
    at: tuple[int, int, int]
    mask: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    channels: tuple[int, ...]
    full: tuple[int, int] | None  # None: the whole input (after a global pool)
    method: str
    image: np.ndarray | None = None
    gradient: np.ndarray | None = None
    note: str | None = None
    where: str = ""  # "layer 4", or "layer1.0.conv2 (node 7)" in a graph
    wraps: bool = False  # a conv on the way pads circularly

    def __post_init__(self) -> None:
        self.where = self.where or f"layer {self.layer}"

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
        lines = [f"{self.where}: {self.operation}",
                 f"output channel {c}, row {r}, column {q} depends on input rows "
                 f"{_span(self.rows)}, columns {_span(self.cols)} ({which})",
                 f"  region {h}x{w} in the image, {self.pixels} pixel positions"
                 + ("" if self.pixels == h * w else f" (holes: dilation skips "
                    f"{h * w - self.pixels} of the {h * w})"),
                 "  " + self._full_text(h, w),
                 f"  method: {self.method}, {_METHODS[self.method]}"]
        if self.note:
            lines.insert(1, f"note: {self.note}")
        return "\n".join(lines)

    def _full_text(self, h: int, w: int) -> str:
        if self.full is None:
            return "full receptive field: the whole input (explain's RF column: all)"
        text = f"full receptive field {self.full[0]}x{self.full[1]} (explain's RF column)"
        if self.full == (h, w):
            return text
        if h <= self.full[0] and w <= self.full[1]:
            return text + "; the rest falls outside the image (padding)"
        if self.wraps:
            return text + ("; padding copies pixels from the far side of the image "
                           "(circular), so the field spreads beyond it")
        return text + ("; the field found here is larger: explain's rule counts the windows "
                       "of layers only (a conv called as a function in forward() is not)")

    def picture(self) -> np.ndarray:
        return receptive_picture(self)


def _span(v: np.ndarray) -> str:
    if not v.size:
        return "none"
    if v.size == v[-1] - v[0] + 1:
        return f"{v[0]}..{v[-1]}"
    return f"{v[0]}..{v[-1]} ({v.size} of them)"


def _has_maps(ref: LayerRef) -> bool:
    return len(ref.output_shape) == 3


def receptive_field(model: Any, image: Any, layer: int | str, at: Any,
                    method: str = "analytic", size: Any = None, seed: int = 0,
                    gradient: bool = True) -> ReceptiveField:
    """The input values that output ``at`` = (channel, row, column) of node ``layer``
    depends on (``layer``: a node number as ``explain`` prints it, or a module path).

    Parameters
    ----------
    method : 'analytic' (index arithmetic) or 'gradient' (autograd through a probe run of
        the graph); see the module docstring. Both give the same mask.
    gradient : also compute |d value / d input| of the real model on ``image`` (how much
        each pixel of the field matters, for the picture)

    Returns
    -------
    ReceptiveField
    """
    if method not in _METHODS:
        raise ArgumentError(message("receptive_field", f"unknown method {method!r}",
                                    "use 'analytic' or 'gradient'", f"method={method!r}"))
    prep = prepare(model, image, size=size, seed=seed)
    refs = layer_refs(prep.model, prep.image.shape)
    ref = find_layer(prep.model, layer, prep.image.shape, kinds=_has_maps, refs=refs,
                     what="a layer with feature maps (before flatten: a linear layer sees "
                          "the whole image)")
    pos = check_at(at, ref.output_shape, f"{ref.label} output")
    acts = activations(prep.model, prep.image)
    mask = (analytic if method == "analytic" else probe)(refs, acts, ref, pos)
    grad = real_gradient(acts, ref, prep.image, pos) if gradient else None
    return ReceptiveField(layer=ref.index, operation=ref.operation, at=pos,  # type: ignore[arg-type]
                          mask=mask, rows=np.flatnonzero(mask.any(axis=(0, 2))),
                          cols=np.flatnonzero(mask.any(axis=(0, 1))),
                          channels=tuple(int(c) for c in np.flatnonzero(mask.any(axis=(1, 2)))),
                          full=ref.rf, method=method, image=prep.image, gradient=grad,
                          note=prep.note, where=ref.short,
                          wraps=any(getattr(r.layer, "padding_mode", "") == "circular"
                                    for r in refs[:ref.position + 1]))


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
    full = "the whole input" if rf.full is None else f"{rf.full[0]}x{rf.full[1]}"
    title = (f"Receptive field of {rf.where}, output ({c}, {r}, {q}): {hh}x{ww} "
             f"input pixels (full field {full})")
    return grid(pics, labels, title=title, legend=False, cols=len(pics))
