"""A :class:`~convscope.viz.why.Why` as a picture (``convscope why ... --out why.png``).

A convolution (and a transposed one) is drawn as the slides draw it: per input channel the
values under the kernel, the kernel slice and their products as coloured cells with their
numbers, the sum per channel, and the total with the bias, checked against the forward
pass. A pool draws its window; every other kind is its walk-through as text.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import numpy as np

from .colors import diverging, grey
from .draw import INK, PALE, canvas, cells, colour_bar, stack, text_picture
from .grid import font
from .why_text import conv_notes, decimals, pool_parts, render, signed, span, strongest

if TYPE_CHECKING:
    from .why import Why

__all__ = ["draw"]


def _where(w: Why) -> str:
    return f"rows {span(w.rows)}, columns {span(w.cols)}"


def _tile_colours(values: np.ndarray, vmax: float | None, pad: np.ndarray | None,
                  image_like: bool) -> np.ndarray:
    v = np.where(np.isfinite(values), values, 0.0)
    if image_like:
        return grey(v, 0.0, 1.0)
    return diverging(v, vmax if vmax else None)


def _numbers(draw: object, x0: int, y0: int, values: np.ndarray, size: int, rgb: np.ndarray,
             mark: tuple[int, int] | None = None, blank: np.ndarray | None = None) -> None:
    """Each cell's value written in it (none where ``blank``), ``mark`` outlined; two
    decimals, more when the values are all tiny."""
    fnt = font(10 if size < 44 else 11)
    finite = np.abs(values[np.isfinite(values)])
    top = float(finite.max()) if finite.size else 0.0
    places = 2 if top == 0 or top >= 0.01 else min(decimals(top) - 1, 5)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if blank is not None and blank[i, j]:
                continue
            v = values[i, j]
            s = "-inf" if np.isneginf(v) else f"{v + 0.0:.{places}f}" if abs(v) < 10 \
                else f"{v:.3g}"
            s = s[1:] if s.startswith("-") and not float(s) else s  # no "-0.00"
            light = rgb[i, j].astype(int).sum() < 330
            tw = draw.textlength(s, font=fnt)  # type: ignore[attr-defined]
            draw.text((x0 + j * size + (size - tw) / 2, y0 + i * size + size / 2 - 6), s,  # type: ignore[attr-defined]
                      fill=(255, 255, 255) if light else INK, font=fnt)
    if mark is not None:
        i, j = mark
        draw.rectangle((x0 + j * size, y0 + i * size, x0 + (j + 1) * size,  # type: ignore[attr-defined]
                        y0 + (i + 1) * size), outline=(0, 0, 0), width=3)


def _conv_words(w: Why) -> tuple[list[str], tuple[str, str, str], str]:
    """(the lines under the title, the three column titles, what the hatching means)."""
    assert w.kernel is not None
    d, kh, kw = w.kernel.shape
    o, r, c = w.at
    if w.kind == "transposed conv":
        lines = [f"output channel {o}, row {r}, column {c}: the input values that land here x "
                 f"the kernel entries that carry them (kernel [:, {o}], {kh}x{kw}x{d})",
                 "input row per kernel row: " + _landings(w.rows) + ";  input column per "
                 "kernel column: " + _landings(w.cols)]
        titles = ("input value landing", f"kernel [:, {o}]", "products")
        hatch = "hatched = no input value lands on this kernel entry"
    else:
        lines = [f"output channel {o}, row {r}, column {c}: kernel {o} ({kh}x{kw}x{d}) x the "
                 f"input patch at {_where(w)}"]
        titles = ("patch (input)", f"kernel {o}", "products")
        hatch = "hatched = padding" + ("" if w.padding_mode == "zeros" else
                                       f" ({w.padding_mode}: tinted copies)")
    if w.origin:
        lines.append(f"input {_volume(w.input_shape)}{w.origin}")
    return lines + conv_notes(w), titles, hatch


def _count(w: Why) -> int:
    """How many products the value sums (a transposed conv: only those that land)."""
    assert w.kernel is not None
    d, kh, kw = w.kernel.shape
    return d * int((~w.padding).sum()) if w.kind == "transposed conv" else d * kh * kw


def _landings(idx: np.ndarray) -> str:
    return ", ".join("-" if i < 0 else str(int(i)) for i in idx)


def _volume(shape: tuple[int, ...]) -> str:
    from ..spec import format_volume

    return format_volume(shape)


def _conv_picture(w: Why) -> np.ndarray:
    from PIL import Image

    assert w.kernel is not None and w.products is not None and w.channel_sums is not None
    d, kh, kw = w.kernel.shape
    shown = strongest(w, 6)
    rows = len(shown)
    size = int(np.clip(210 // max(kh, kw), 8, 48))
    real = w.patch[:, ~w.padding] if (~w.padding).any() else w.patch.reshape(d, -1)
    image_like = bool(w.details.get("image", True) and real.size and real.min() >= 0
                      and real.max() <= 1)
    kmax = float(np.abs(w.kernel).max()) or 1.0
    pmax = float(np.abs(w.products).max()) or 1.0
    tile = (kw * size, kh * size)
    lead, gap, row_h = 90, 40, kh * size + 26
    width = lead + 3 * tile[0] + 2 * gap + 170
    words, titles, hatch_words = _conv_words(w)
    if rows < d:
        words.append(f"drawn: the {rows} of the {d} input channels with the largest sums")
    words = [part for line in words for part in textwrap.wrap(line, 110)]
    width = max(width, 24 + 7 * max(len(line) for line in words))
    heads = 36 + 18 * len(words)
    top = heads + 22
    img, draw = canvas(width, top + rows * row_h + 120)
    big = font(15)
    draw.text((12, 8), f"{w.where}: {w.operation}", fill=INK, font=big)
    for k, line in enumerate(words):
        draw.text((12, 30 + 18 * k), line, fill=INK, font=font(13))
    small = font(12)
    for k, title in enumerate(titles):
        draw.text((lead + k * (tile[0] + gap), heads), title, fill=PALE, font=small)
    draw.text((lead + 3 * tile[0] + 2 * gap + 14, heads), "sum per channel", fill=PALE,
              font=small)
    for row, i in enumerate(shown):
        y0 = top + row * row_h
        draw.text((12, y0 + tile[1] // 2 - 7), f"channel {w.channels[i]}", fill=INK, font=small)
        grids = [(w.patch[i], _tile_colours(w.patch[i], None, w.padding, image_like), True),
                 (w.kernel[i], diverging(w.kernel[i], kmax), False),
                 (w.products[i], diverging(w.products[i], pmax), True)]
        for k, (vals, rgb, padded) in enumerate(grids):
            x0 = lead + k * (tile[0] + gap)
            pic = cells(rgb, size, w.padding if padded else None, w.padding_mode == "zeros")
            img.paste(Image.fromarray(pic), (x0, y0))
            draw.rectangle((x0 - 1, y0 - 1, x0 + tile[0], y0 + tile[1]), outline=(150, 150, 150))
            if size >= 30:
                _numbers(draw, x0, y0, vals, size, rgb, blank=w.padding if padded and
                         w.kind == "transposed conv" else None)
            if k < 2:
                draw.text((x0 + tile[0] + gap // 2 - 5, y0 + tile[1] // 2 - 9),
                          "x" if k == 0 else "=", fill=INK, font=big)
        draw.text((lead + 3 * tile[0] + 2 * gap + 14, y0 + tile[1] // 2 - 8),
                  f"= {signed(float(w.channel_sums[i]))}", fill=INK, font=font(14))
    y = top + rows * row_h + 4
    if rows < d:
        rest = float(w.channel_sums.sum() - w.channel_sums[shown].sum())
        draw.text((12, y), f"... and {d - rows} more input channels (their sums: "
                  f"{signed(rest)} together)", fill=PALE, font=small)
        y += 18
    draw.text((12, y), f"sum of {_count(w)} products {float(w.channel_sums.sum()):+.5f} "
              f"+ bias {w.bias:+.5f} = {w.value:.5f}   (forward pass: {w.forward_value:.5f})",
              fill=INK, font=font(14))
    colour_bar(img, draw, 12, y + 30, kmax, label=f"kernel colours; products: the same "
                                                   f"scale up to +-{pmax:.3g}")
    draw.text((12, y + 64), ("patch: grey levels 0..1; " if image_like else "patch and products:"
                             " blue < 0 < red; ") + hatch_words, fill=PALE, font=small)
    return np.asarray(img).copy()


def _pool_picture(w: Why) -> np.ndarray:
    from PIL import Image

    patch = w.patch[0]
    kh, kw = patch.shape
    size = int(np.clip(240 // max(kh, kw), 12, 56))
    finite = patch[np.isfinite(patch)]
    image_like = bool(w.details.get("image", True) and finite.size and finite.min() >= 0
                      and finite.max() <= 1)
    rgb = _tile_colours(patch, None, w.padding, image_like)
    before, after = pool_parts(w)
    head = text_picture([f"{w.where}: {w.operation}"] + [t.strip() for t in before])
    tail = text_picture([t.strip().replace("[in brackets]", "(outlined)") for t in after])
    img, draw = canvas(kw * size + 40, kh * size + 20)
    img.paste(Image.fromarray(cells(rgb, size, w.padding)), (20, 10))
    mark = w.details["window"] if w.kind == "max pool" else None
    if size >= 30:
        _numbers(draw, 20, 10, patch, size, rgb, mark)
    elif mark is not None:
        i, j = mark
        draw.rectangle((20 + j * size, 10 + i * size, 20 + (j + 1) * size, 10 + (i + 1) * size),
                       outline=(0, 0, 0), width=2)
    return stack([head, np.asarray(img), tail], gap=0)


def draw(w: Why) -> np.ndarray:
    """The walk-through as an RGB uint8 picture."""
    if w.kind in ("conv", "transposed conv"):
        return _conv_picture(w)
    if w.kind in ("max pool", "average pool", "adaptive average pool"):
        return _pool_picture(w)
    return text_picture(render(w).splitlines())
