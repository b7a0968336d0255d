"""A :class:`~convscope.viz.why.Why` as text (the CLI's output) and as a picture (``--out``)."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import numpy as np

from ..spec import format_volume
from .colors import diverging, grey
from .draw import INK, PALE, canvas, cells, colour_bar, stack, text_picture
from .grid import font

if TYPE_CHECKING:
    from .why import Why

__all__ = ["render", "draw"]

_WIDTH = 100
_GRID_CHANNELS = 4  # input channels shown as number grids (the rest: their sums)
_GRID_KERNEL = 7  # kernels wider than this: sums only
_PAD_MEANING = {
    "zeros": "zero padding (the value 0)",
    "reflect": "reflect padding (a mirror copy of an inside value)",
    "replicate": "replicate padding (a copy of the nearest edge value)",
    "circular": "circular padding (a copy from the opposite side)",
}


def span(values: np.ndarray) -> str:
    v = [int(x) for x in values]
    if len(v) == 1:
        return str(v[0])
    step = v[1] - v[0]
    if all(b - a == step for a, b in zip(v, v[1:], strict=False)):
        return f"{v[0]}..{v[-1]}" + (f" every {step}" if step != 1 else "")
    return ", ".join(map(str, v))


def _where(w: Why) -> str:
    return f"rows {span(w.rows)}, columns {span(w.cols)}"


def _num(v: float) -> str:
    return f"{v:+.4f}" if abs(v) < 1e4 else f"{v:+.4g}"


def _block(values: np.ndarray, pad: np.ndarray | None, mark: np.ndarray | None = None) -> list[str]:
    """A grid of numbers; padding cells end with '*', a marked cell is in brackets."""
    m = float(np.max(np.abs(values[np.isfinite(values)]), initial=0.0))
    d = 3 if m < 10 else 2 if m < 100 else 1
    texts = [["-inf" if np.isneginf(v) else f"{v + 0.0:.{d}f}" for v in row] for row in values]
    width = max(len(t) for row in texts for t in row)
    lines = []
    for i, row in enumerate(texts):
        parts = []
        for j, t in enumerate(row):
            cell = t.rjust(width)
            if mark is not None and mark[i, j]:
                cell = f"[{cell}]"
            else:
                cell = f" {cell}" + ("*" if pad is not None and pad[i, j] else " ")
            parts.append(cell)
        lines.append("".join(parts).rstrip())
    return lines


def _side_by_side(blocks: list[tuple[str, list[str]]], indent: str = "    ") -> list[str]:
    """Titled blocks next to each other, as many per line as fit in the text width."""
    out: list[str] = []
    row: list[tuple[str, list[str]]] = []
    for block in blocks + [("", [])]:
        widths = [max([len(t)] + [len(s) for s in b]) for t, b in row + [block]]
        if block[1] and len(indent) + sum(widths) + 4 * len(row) <= _WIDTH:
            row.append(block)
            continue
        widths = widths[:-1]
        for i in range(len(row[0][1]) + 1):
            parts = [(t if i == 0 else b[i - 1]).ljust(w)
                     for (t, b), w in zip(row, widths, strict=True)]
            out.append((indent + "    ".join(parts)).rstrip())
        row = [block]
    return out


def _header(w: Why) -> list[str]:
    lines = [f"layer {w.layer}: {w.operation}",
             f"input {format_volume(w.input_shape)} -> output {format_volume(w.output_shape)}"]
    if w.note:
        lines.append(f"note: {w.note}")
    return lines + [""]


def _conv(w: Why) -> list[str]:
    assert w.kernel is not None and w.products is not None and w.channel_sums is not None
    d, kh, kw = w.kernel.shape
    o, r, c = w.at
    n = d * kh * kw
    lines = textwrap.wrap(f"output channel {o}, row {r}, column {c} = kernel {o} ({kh}x{kw}x{d}) "
                          f"times the {kh}x{kw}x{d} input patch at {_where(w)}, summed, plus the "
                          "bias:", _WIDTH)
    if w.padding.any():
        lines.append(f"  * = {_PAD_MEANING[w.padding_mode]}: {int(w.padding.sum())} of the "
                     f"{kh * kw} window cells are padding")
    lines.append("")
    grids = max(kh, kw) <= _GRID_KERNEL
    shown = min(d, _GRID_CHANNELS) if grids else 0
    for i in range(shown):
        ch = w.channels[i]
        lines.append(f"  input channel {ch}:")
        lines += _side_by_side([("patch (input values)", _block(w.patch[i], w.padding)),
                                (f"kernel {o}, slice {i}", _block(w.kernel[i], None)),
                                ("products", _block(w.products[i], w.padding))])
        lines.append(f"    sum of {kh * kw} products = {_num(w.channel_sums[i])}")
    if shown < d:
        what = ("" if not grids else f"input channels {w.channels[shown]}..{w.channels[-1]} "
                "(grids left out): ")
        lines.append(f"  {what}sum of the {kh * kw} products per input channel:")
        items = [f"ch {ch}: {_num(s)}" for ch, s in zip(w.channels[shown:], w.channel_sums[shown:],
                                                       strict=True)]
        for k in range(0, len(items), 6):
            lines.append("    " + "   ".join(items[k:k + 6]))
    lines.append("")
    sums = w.channel_sums
    total = float(sums.sum())
    terms = " ".join(f"{'+' if s >= 0 else '-'} {abs(s):.4f}" for s in sums).lstrip("+ ")
    lines.append(f"  sum of {n} products = " + (f"{terms} = " if 1 < d <= 6 else "")
                 + f"{total:.6g}")
    lines.append(f"  + bias {w.bias:.6g}")
    lines.append(f"  = {w.value:.6g}   (the forward pass gave {w.forward_value:.6g}; "
                 f"difference {abs(w.value - w.forward_value):.1e})")
    return lines


def _pool_parts(w: Why) -> tuple[list[str], list[str]]:
    """(the sentence before the window's numbers, the result after them)."""
    ch, r, c = w.at
    kh, kw = w.padding.shape
    patch = w.patch[0]
    before = textwrap.wrap(f"output channel {ch}, row {r}, column {c} = the "
                           f"{'largest value' if w.kind == 'max pool' else 'mean'} of the "
                           f"{kh}x{kw} window of input channel {ch} at {_where(w)}:", _WIDTH)
    if w.padding.any():
        before.append("  * = padding" + (" (-inf: it never wins)" if w.kind == "max pool" else
                                         " (0)"))
    if w.kind == "max pool":
        assert w.winner is not None
        ties = w.details.get("ties", 1)
        after = [f"  the winner [in brackets] is input channel {w.winner[0]}, row "
                 f"{w.winner[1]}, column {w.winner[2]}: {w.value:.6g}"
                 + (f" ({ties} cells tie; the pool records the first, as PyTorch does)"
                    if ties > 1 else "")]
    else:
        real = ~w.padding
        after = [f"  sum of the {int(real.sum())} input values {patch[real].sum():.6g} / "
                 f"{w.divisor} cells = {w.value:.6g}"]
        if w.divisor != int(real.sum()):
            after.append("  (count_include_pad: the padding cells count in the divisor)")
    return before, after + [f"  the forward pass gave {w.forward_value:.6g}"]


def _pool(w: Why) -> list[str]:
    before, after = _pool_parts(w)
    mark = None
    if w.kind == "max pool":
        mark = np.zeros_like(w.padding)
        mark[w.details["window"]] = True
    return before + _block(w.patch[0], w.padding, mark) + after


def _point(w: Why) -> list[str]:
    x = float(w.patch.reshape(-1)[0])
    at = ", ".join(f"{n} {v}" for n, v in zip(("channel", "row", "column"), w.at, strict=False))
    if w.kind == "relu":
        body = (f"ReLU at {at}: max(x, 0) of the input value x = {x:.6g} at the same place "
                f"-> {w.value:.6g}" + ("  (negative: set to 0)" if x < 0 else "  (kept)"))
    elif w.kind == "dropout":
        body = f"dropout at {at} in eval mode passes its input: {x:.6g}"
    elif w.kind == "flatten":
        src = w.details["source"]
        body = (f"flatten: value {w.at[0]} is input channel {src[0]}, row {src[1]}, column "
                f"{src[2]} (order: channel, then row, then column): {x:.6g}")
    else:
        dd = w.details
        body = (f"batch norm at {at}: (x - mean) / sqrt(var + eps) * gamma + beta = "
                f"({x:.4g} - {dd['mean']:.4g}) / sqrt({dd['var']:.4g} + {dd['eps']:g}) * "
                f"{dd['gamma']:.4g} + {w.bias:.4g} = {w.value:.6g}")
    return [body, f"the forward pass gave {w.forward_value:.6g}"]


def _linear(w: Why) -> list[str]:
    assert w.products is not None and w.kernel is not None
    prods = w.products.reshape(-1)
    xs, ws = w.patch.reshape(-1), w.kernel.reshape(-1)
    top = np.argsort(-np.abs(prods), kind="stable")[:8]
    lines = [f"output {w.at[0]} = the {prods.size} inputs times row {w.at[0]} of the weights, "
             "summed, plus the bias. The largest products:"]
    for i in top:
        lines.append(f"  input {i:>6}: {xs[i]:+.4f} x {ws[i]:+.4f} = {prods[i]:+.5f}")
    lines.append(f"  sum of {prods.size} products = {prods.sum():.6g}")
    lines.append(f"  + bias {w.bias:.6g}")
    lines.append(f"  = {w.value:.6g}   (the forward pass gave {w.forward_value:.6g})")
    return lines


def render(w: Why) -> str:
    """The walk-through as text (<= 100 columns)."""
    body = {"conv": _conv, "max pool": _pool, "average pool": _pool,
            "linear": _linear}.get(w.kind, _point)(w)
    lines = []
    for line in _header(w) + body:
        lead = " " * (len(line) - len(line.lstrip()))
        lines += textwrap.wrap(line, _WIDTH, subsequent_indent=lead + "  ",
                               drop_whitespace=True) if len(line) > _WIDTH else [line]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the picture
def _tile_colours(values: np.ndarray, vmax: float | None, pad: np.ndarray | None,
                  image_like: bool) -> np.ndarray:
    v = np.where(np.isfinite(values), values, 0.0)
    if image_like:
        return grey(v, 0.0, 1.0)
    return diverging(v, vmax if vmax else None)


def _numbers(draw: object, x0: int, y0: int, values: np.ndarray, size: int, rgb: np.ndarray,
             mark: tuple[int, int] | None = None) -> None:
    fnt = font(10 if size < 44 else 11)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            s = "-inf" if np.isneginf(v) else f"{v + 0.0:.2f}" if abs(v) < 10 else f"{v:.3g}"
            s = "0.00" if s == "-0.00" else s
            light = rgb[i, j].astype(int).sum() < 330
            tw = draw.textlength(s, font=fnt)  # type: ignore[attr-defined]
            draw.text((x0 + j * size + (size - tw) / 2, y0 + i * size + size / 2 - 6), s,  # type: ignore[attr-defined]
                      fill=(255, 255, 255) if light else INK, font=fnt)
    if mark is not None:
        i, j = mark
        draw.rectangle((x0 + j * size, y0 + i * size, x0 + (j + 1) * size,  # type: ignore[attr-defined]
                        y0 + (i + 1) * size), outline=(0, 0, 0), width=3)


def _conv_picture(w: Why) -> np.ndarray:
    from PIL import Image

    assert w.kernel is not None and w.products is not None and w.channel_sums is not None
    d, kh, kw = w.kernel.shape
    rows = min(d, 6)
    size = int(np.clip(210 // max(kh, kw), 8, 48))
    real = w.patch[:, ~w.padding] if (~w.padding).any() else w.patch.reshape(d, -1)
    image_like = bool(real.size and real.min() >= 0 and real.max() <= 1)
    kmax = float(np.abs(w.kernel).max()) or 1.0
    pmax = float(np.abs(w.products).max()) or 1.0
    tile = (kw * size, kh * size)
    lead, gap, row_h = 90, 40, kh * size + 26
    width = lead + 3 * tile[0] + 2 * gap + 170
    top = 76
    img, draw = canvas(width, top + rows * row_h + 120)
    big = font(15)
    o, r, c = w.at
    draw.text((12, 8), f"layer {w.layer}: {w.operation}", fill=INK, font=big)
    draw.text((12, 30), f"output channel {o}, row {r}, column {c}: kernel {o} ({kh}x{kw}x{d}) "
              f"x the input patch at {_where(w)}", fill=INK, font=font(13))
    small = font(12)
    for k, title in enumerate(("patch (input)", f"kernel {o}", "products")):
        draw.text((lead + k * (tile[0] + gap), 54), title, fill=PALE, font=small)
    draw.text((lead + 3 * tile[0] + 2 * gap + 14, 54), "sum per channel", fill=PALE, font=small)
    for i in range(rows):
        y0 = top + i * row_h
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
                _numbers(draw, x0, y0, vals, size, rgb)
            if k < 2:
                draw.text((x0 + tile[0] + gap // 2 - 5, y0 + tile[1] // 2 - 9),
                          "x" if k == 0 else "=", fill=INK, font=big)
        draw.text((lead + 3 * tile[0] + 2 * gap + 14, y0 + tile[1] // 2 - 8),
                  f"= {w.channel_sums[i]:+.4f}", fill=INK, font=font(14))
    y = top + rows * row_h + 4
    if rows < d:
        draw.text((12, y), f"... and {d - rows} more input channels (their sums: "
                  f"{float(w.channel_sums[rows:].sum()):+.4f} together)", fill=PALE, font=small)
        y += 18
    draw.text((12, y), f"sum of {d * kh * kw} products {float(w.channel_sums.sum()):+.5f} "
              f"+ bias {w.bias:+.5f} = {w.value:.5f}   (forward pass: {w.forward_value:.5f})",
              fill=INK, font=font(14))
    colour_bar(img, draw, 12, y + 30, kmax, label=f"kernel colours; products: the same "
                                                   f"scale up to +-{pmax:.3g}")
    pad_note = "hatched = padding" + ("" if w.padding_mode == "zeros" else
                                      f" ({w.padding_mode}: tinted copies)")
    draw.text((12, y + 64), ("patch: grey levels 0..1; " if image_like else "patch and products:"
                             " blue < 0 < red; ") + pad_note, fill=PALE, font=small)
    return np.asarray(img).copy()


def _pool_picture(w: Why) -> np.ndarray:
    from PIL import Image

    patch = w.patch[0]
    kh, kw = patch.shape
    size = int(np.clip(240 // max(kh, kw), 12, 56))
    finite = patch[np.isfinite(patch)]
    image_like = bool(finite.size and finite.min() >= 0 and finite.max() <= 1)
    rgb = _tile_colours(patch, None, w.padding, image_like)
    before, after = _pool_parts(w)
    head = text_picture([f"layer {w.layer}: {w.operation}"] + [t.strip() for t in before])
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
    if w.kind == "conv":
        return _conv_picture(w)
    if w.kind in ("max pool", "average pool"):
        return _pool_picture(w)
    return text_picture(render(w).splitlines())
