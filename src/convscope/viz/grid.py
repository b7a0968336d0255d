"""A labelled grid of pictures: feature maps, kernel slices, images, as one RGB array.

>>> import numpy as np
>>> maps = np.random.default_rng(0).normal(size=(8, 16, 16))
>>> grid(maps, [f"map {i}" for i in range(8)]).dtype
dtype('uint8')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ArgumentError, ShapeError, message
from .colors import diverging, grey, map_limits, symmetric_limit
from .image import upscale

__all__ = ["grid", "font"]

_GAP = 10  # pixels between cells
_INK, _PALE = (20, 20, 20), (110, 110, 110)


def font(size: int = 12) -> Any:
    """PIL's default font at ``size`` pixels (the bitmap one on very old Pillow)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _num(v: float) -> str:
    return f"{v:.3g}"


def _cell(item: Any, cmap: str, vmax: float | None) -> tuple[np.ndarray, str]:
    """One item as (RGB uint8, value-range caption)."""
    arr = np.asarray(item)
    if arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint8:
        return arr, ""
    if arr.ndim != 2:
        raise ShapeError(message("grid", "each item must be a 2-D map (H, W) or an RGB picture "
                                 "(H, W, 3) uint8", "pass maps of shape (N, H, W)",
                                 f"item shape {arr.shape}"))
    if cmap == "diverging":
        own = symmetric_limit(arr)
        limit = own if vmax is None else float(vmax)
        caption = f"\u00b1{_num(limit)}" if limit > 0 or own == 0 else f"~0 (\u00b1{own:.2g})"
        return diverging(arr, limit), caption
    if cmap == "grey":
        finite = arr[np.isfinite(arr)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        return grey(arr), f"{_num(lo)}..{_num(hi)}"
    raise ArgumentError(message("grid", f"unknown colour map {cmap!r}",
                                "use 'diverging' or 'grey'"))


def _fit(draw: Any, text: str, fnt: Any, width: int) -> str:
    if draw.textlength(text, font=fnt) <= width:
        return text
    while text and draw.textlength(text + "..", font=fnt) > width:
        text = text[:-1]
    return text + ".."


def _wrap(draw: Any, text: str, fnt: Any, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(lines[-1] + " " + word, font=fnt) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def grid(maps: np.ndarray | Sequence[Any], labels: Sequence[str] | None = None, *,
         cmap: str = "diverging", cols: int | None = None, cell: int | None = None,
         title: str | None = None, legend: bool = True, max_width: int = 1800,
         vmax: float | Sequence[float | None] | None = None) -> np.ndarray:
    """Lay out maps in a grid, each with its label and value range; returns uint8 (H, W, 3).

    Parameters
    ----------
    maps : array of shape (N, H, W), or a sequence of 2-D maps and/or (H, W, 3) uint8 pictures
    labels : N strings, optional (default: the index)
    cmap : 'diverging' (blue < 0 < red, each map scaled to its own largest |value|) or 'grey'
        (each map from its own minimum, black, to its maximum, white)
    cols : columns (default: about square; 8 maps make 2 rows of 4)
    cell : target cell size in pixels; maps are enlarged by an integer factor (nearest
        neighbour, so one value stays one visible square) up to it
    title : text above the grid
    legend : draw the colour scale and what the numbers under the maps mean
    max_width : maps are shrunk (box filter) when the grid would be wider than this
    vmax : the diverging scale: one number for all maps (a shared scale), one per map, or
        None (each map scaled to its own largest |value|)
    """
    from PIL import Image, ImageDraw

    maps = list(maps)
    if vmax is None and cmap == "diverging":
        flat = [i for i, m in enumerate(maps) if np.asarray(m).ndim == 2]
        auto = map_limits([maps[i] for i in flat])
        limits: list[float | None] = [None] * len(maps)
        for i, v in zip(flat, auto, strict=True):
            limits[i] = v
    else:
        limits = list(vmax) if isinstance(vmax, Sequence) else [vmax] * len(maps)
    if len(limits) != len(maps):
        raise ArgumentError(message("grid", f"{len(limits)} vmax values for {len(maps)} maps",
                                    "pass one per map, one number, or None"))
    items = [_cell(m, cmap, v) for m, v in zip(maps, limits, strict=True)]
    n = len(items)
    if n == 0:
        raise ArgumentError(message("grid", "no maps to draw", "pass at least one map"))
    labels = [str(i) for i in range(n)] if labels is None else [str(s) for s in labels]
    if len(labels) != n:
        raise ArgumentError(message("grid", f"{len(labels)} labels for {n} maps",
                                    "pass one label per map"))
    if cols is None:
        cols = n if n <= 4 else math.ceil(n / 2) if n <= 8 else math.ceil(math.sqrt(n))
    cols = max(1, min(int(cols), n))
    rows = math.ceil(n / cols)
    h = max(rgb.shape[0] for rgb, _ in items)
    w = max(rgb.shape[1] for rgb, _ in items)
    target = cell or (160 if n <= 16 else 96 if n <= 64 else 48)
    scale = max(1, target // max(h, w))
    scale = max(1, min(scale, (max_width // cols - _GAP) // w))
    shrink = max(1, math.ceil(cols * (w + _GAP) / max_width)) if scale == 1 else 1
    cw, ch = (w * scale) // shrink, (h * scale) // shrink
    small = cw < 80
    fnt, fnt2 = font(10 if small else 12), font(9 if small else 11)
    line = 12 if small else 15
    cap = line * 2 + 2
    tfont = font(15)
    width = max(cols * (cw + _GAP) + _GAP, 420 if legend else 0)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    title_lines = _wrap(measure, title, tfont, width - 2 * _GAP) if title else []
    top = 10 + 19 * len(title_lines) if title else _GAP
    leg_h = 76 if legend else 0
    canvas = Image.new("RGB", (width, top + rows * (ch + cap + _GAP) + leg_h + _GAP),
                       (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, text in enumerate(title_lines):
        draw.text((_GAP, 6 + 19 * i), text, fill=_INK, font=tfont)
    for i, ((rgb, rng), label) in enumerate(zip(items, labels, strict=True)):
        r, c = divmod(i, cols)
        x0, y0 = _GAP + c * (cw + _GAP), top + r * (ch + cap + _GAP)
        pic = Image.fromarray(upscale(rgb, scale))
        if shrink > 1:
            pic = pic.resize((max(1, pic.width // shrink), max(1, pic.height // shrink)),
                             Image.Resampling.BOX)
        canvas.paste(pic, (x0 + (cw - pic.width) // 2, y0 + (ch - pic.height) // 2))
        draw.rectangle((x0 - 1, y0 - 1, x0 + cw, y0 + ch), outline=(200, 200, 200))
        draw.text((x0, y0 + ch + 2), _fit(draw, label, fnt, cw), fill=_INK, font=fnt)
        if rng:
            draw.text((x0, y0 + ch + 2 + line), _fit(draw, rng, fnt2, cw), fill=_PALE, font=fnt2)
    if legend:
        _legend(draw, canvas, cmap, canvas.height - leg_h - 2, shrink, scale, vmax is None)
    return np.asarray(canvas, dtype=np.uint8).copy()


def _legend(draw: Any, canvas: Any, cmap: str, y: int, shrink: int, scale: int,
            own: bool) -> None:
    from PIL import Image

    t = np.linspace(-1, 1, 200)[None].repeat(12, axis=0)
    bar = diverging(t, 1.0) if cmap == "diverging" else grey(t)
    canvas.paste(Image.fromarray(bar), (_GAP, y + 4))
    draw.rectangle((_GAP - 1, y + 3, _GAP + 200, y + 16), outline=(160, 160, 160))
    small = font(11)
    ends = ("-max", "0", "+max") if cmap == "diverging" else ("min", "", "max")
    for x, s in zip((_GAP, _GAP + 100, _GAP + 200), ends, strict=True):
        tw = draw.textlength(s, font=small)
        draw.text((min(max(x - tw / 2, 2), canvas.width - tw - 2), y + 19), s, fill=_INK,
                  font=small)
    note = (("blue < 0 < red; each map scaled to its own max |value|, under its name" if own
             else "blue < 0 < red; max |value| of the colour scale under each name")
            if cmap == "diverging" else "each map from its own min (black) to max (white)")
    size = (f"one value = {scale}x{scale} screen pixels" if scale > 1 else
            f"shrunk to 1/{shrink} to fit" if shrink > 1 else "one value = one pixel")
    for i, text in enumerate((note, size)):
        draw.text((_GAP, y + 36 + 15 * i), _fit(draw, text, small, canvas.width - 2 * _GAP),
                  fill=_PALE, font=small)
