"""Small drawing pieces the pictures share: padding hatch, cell grids, a colour bar, text.

Everything works on uint8 RGB arrays (H, W, 3) or on a PIL ``ImageDraw`` of one; the colour
maps themselves are :mod:`convscope.viz.colors`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .colors import diverging
from .grid import font

__all__ = ["PAD_GREY", "HATCH", "INK", "PALE", "hatch", "tint", "cells", "colour_bar",
           "text_picture", "stack", "canvas"]

PAD_GREY = np.array([200, 200, 200], np.uint8)  # zero padding: a grey cell, hatched
HATCH = np.array([150, 150, 150], np.uint8)
TINT = np.array([255, 214, 102], np.float64)  # copied padding (reflect...): tinted amber
INK, PALE = (20, 20, 20), (110, 110, 110)


def hatch(rgb: np.ndarray, mask: np.ndarray, period: int = 4) -> np.ndarray:
    """Draw diagonal hatch lines over the pixels of ``rgb`` where ``mask`` (H, W) is True."""
    h, w = mask.shape
    yy, xx = np.mgrid[0:h, 0:w]
    lines = ((yy + xx) % max(2, period)) == 0
    out = rgb.copy()
    out[mask & lines] = HATCH
    return out


def tint(rgb: np.ndarray, amount: float = 0.45) -> np.ndarray:
    """Blend colours toward amber: the look of a padding cell that copies a real value."""
    return np.rint(rgb * (1 - amount) + TINT * amount).astype(np.uint8)


def cells(colours: np.ndarray, size: int, pad: np.ndarray | None = None, zero_pad: bool = True,
          line: tuple[int, int, int] | None = (235, 235, 235)) -> np.ndarray:
    """(h, w, 3) colours -> a picture of h x w square cells of ``size`` pixels.

    ``pad`` marks padding cells: grey and hatched for zero padding, tinted and hatched for
    padding that copies values. ``line`` draws a thin grid between cells when they are big.
    """
    rgb = np.asarray(colours, np.uint8)
    if pad is not None and pad.any():
        rgb = rgb.copy()
        rgb[pad] = PAD_GREY if zero_pad else tint(rgb[pad].astype(np.float64))
    big = np.repeat(np.repeat(rgb, size, axis=0), size, axis=1)
    if pad is not None and pad.any():
        big = hatch(big, np.repeat(np.repeat(pad, size, axis=0), size, axis=1))
    if line is not None and size >= 6:
        big[::size] = line
        big[:, ::size] = line
    return big


def colour_bar(img: Any, draw: Any, x: int, y: int, vmax: float, width: int = 160,
               label: str = "") -> None:
    """A diverging colour bar on PIL ``img`` at (x, y) with -vmax, 0, +vmax under it."""
    from PIL import Image

    t = np.linspace(-1, 1, width)[None].repeat(10, axis=0)
    img.paste(Image.fromarray(diverging(t, 1.0)), (x, y))
    draw.rectangle((x - 1, y - 1, x + width, y + 10), outline=(160, 160, 160))
    small = font(11)
    for px, s in ((x, f"{-vmax:.3g}"), (x + width // 2, "0"), (x + width, f"+{vmax:.3g}")):
        tw = draw.textlength(s, font=small)
        draw.text((max(2, px - tw / 2), y + 12), s, fill=INK, font=small)
    if label:
        draw.text((x + width + 10, y - 1), label, fill=PALE, font=small)


def canvas(width: int, height: int) -> tuple[Any, Any]:
    """A white PIL image and its ``ImageDraw``."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (max(1, width), max(1, height)), (255, 255, 255))
    return img, ImageDraw.Draw(img)


def text_picture(lines: list[str], size: int = 13, width: int | None = None) -> np.ndarray:
    """Lines of text as a white picture (for walk-throughs that are words, not grids)."""
    fnt = font(size)
    _, measure = canvas(1, 1)
    w = width or int(max((measure.textlength(s, font=fnt) for s in lines), default=0)) + 24
    img, draw = canvas(w, (size + 5) * len(lines) + 20)
    for i, s in enumerate(lines):
        draw.text((12, 10 + (size + 5) * i), s, fill=INK, font=fnt)
    return np.asarray(img).copy()


def stack(pictures: list[np.ndarray], gap: int = 12, horizontal: bool = False) -> np.ndarray:
    """Pictures one below the other (or side by side) on white, left/top aligned."""
    if horizontal:
        h = max(p.shape[0] for p in pictures)
        w = sum(p.shape[1] for p in pictures) + gap * (len(pictures) - 1)
    else:
        h = sum(p.shape[0] for p in pictures) + gap * (len(pictures) - 1)
        w = max(p.shape[1] for p in pictures)
    out = np.full((h, w, 3), 255, np.uint8)
    at = 0
    for p in pictures:
        if horizontal:
            out[:p.shape[0], at:at + p.shape[1]] = p
            at += p.shape[1] + gap
        else:
            out[at:at + p.shape[0], :p.shape[1]] = p
            at += p.shape[0] + gap
    return out
