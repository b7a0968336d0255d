"""The slides' animation: a kernel sliding over the input volume, the feature map filling in.

Every frame shows the padded input (zero padding grey and hatched; reflect, replicate and
circular padding as tinted, hatched copies of the values they repeat), the kernel's window
at one position (with dilation, the cells it reads drawn spread out), the output feature map
filled in up to that position, and the dot product in words: "sum of 75 products + bias =
0.412". The map comes from the layer's forward pass (:func:`convscope.functional.conv2d`,
padded by :func:`convscope.functional.pad` as the layer pads); the dot product written on a
frame is recomputed by hand from the same padded input and checked against it.

Frame count: a 64x64 map has 4096 positions, far too many frames. At most ``max_frames``
frames are made: the first ``max_frames // 3`` positions one by one (the kernel stepping by
its stride), then every k-th position with k chosen so the rest fits, the map filling in all
the values in between, then a last frame with the whole map.

>>> import numpy as np
>>> image = np.random.default_rng(0).random((3, 10, 10), dtype=np.float32)
>>> frames = animate(image, "conv(1, 3, padding=1)", max_frames=12)
>>> len(frames), frames[-1].position is None, bool(np.isnan(frames[-1].map).any())
(12, True, False)
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import functional as F
from ..errors import ArgumentError, message
from ..nn import Conv2d
from ..spec import format_volume
from .colors import diverging, grey, symmetric_limit
from .draw import INK, PAD_GREY, PALE, canvas, cells, colour_bar
from .grid import font
from .layers import LayerRef, activations, conv_padding, find_layer, layer_refs, prepare
from .why import WhyMismatchError, _tolerance, conv_window
from .why_text import span as _span

__all__ = ["animate", "save_gif", "gif_bytes", "Frame", "frame_positions"]

_EMPTY = (243, 243, 243)  # an output cell not computed yet


@dataclass
class Frame:
    """One picture of the animation.

    ``rgb`` (H, W, 3) uint8; ``position`` the output (row, column) computed on this frame
    (None on the last frame); ``value`` that value; ``map`` the feature map as shown
    (NaN where not computed yet); ``text`` the words on the frame; ``map_box`` where the map
    is drawn: (left, top, screen pixels per value).
    """

    rgb: np.ndarray
    position: tuple[int, int] | None
    value: float | None
    map: np.ndarray
    text: str
    map_box: tuple[int, int, int] = (0, 0, 1)


def frame_positions(oh: int, ow: int, max_frames: int) -> tuple[list[int], int]:
    """Which flat output positions get a frame (the last frame, the whole map, not included).

    Returns (positions, step): the first ``max_frames // 3`` one by one, then every
    ``step``-th, always ending with the last position.
    """
    total = oh * ow
    budget = max(1, max_frames - 1)
    if total <= budget:
        return list(range(total)), 1
    lead = max(1, budget // 3)
    rest = budget - lead
    step = max(1, math.ceil((total - lead) / rest))
    picks = list(range(lead)) + list(range(lead - 1 + step, total, step))
    if picks[-1] != total - 1:
        picks = picks[:budget - 1] + [total - 1]
    return picks[:budget], step


def _input_colours(padded: np.ndarray) -> tuple[np.ndarray, str]:
    """(Hp, Wp, 3) colours of the padded input volume, and how to read them."""
    c = padded.shape[0]
    finite = padded[np.isfinite(padded)]
    in_unit = bool(finite.size and finite.min() >= 0 and finite.max() <= 1)
    if in_unit and c == 3:
        return np.rint(padded.transpose(1, 2, 0) * 255).astype(np.uint8), "RGB"
    if in_unit and c == 1:
        return grey(padded[0], 0.0, 1.0), "grey levels 0..1"
    if c == 1:
        return diverging(padded[0]), "blue < 0 < red"
    return diverging(padded.mean(axis=0)), f"mean of the {c} channels, blue < 0 < red"


def _pad_mask(shape: tuple[int, int], pad: Any) -> np.ndarray:
    (pt, pb), (pl, pr) = pad
    hp, wp = shape
    mask = np.ones(shape, bool)
    mask[pt:hp - pb, pl:wp - pr] = False
    return mask


class _Painter:
    """Lays out and draws the frames of one animation."""

    def __init__(self, layer: Conv2d, x: np.ndarray, out: np.ndarray, channel: int,
                 pad: Any, cell: int | None, note: str | None, where: str) -> None:
        from PIL import Image

        self.layer, self.x, self.out, self.channel, self.pad = layer, x, out, channel, pad
        padded = F.pad(x[None], pad, layer.padding_mode).data[0]
        self.hp, self.wp = padded.shape[1:]
        self.mask = _pad_mask((self.hp, self.wp), pad)
        colours, self.reading = _input_colours(padded)
        self.ci = cell or int(np.clip(360 // max(self.hp, self.wp), 2, 24))
        self.input_pic = cells(colours, self.ci, self.mask, layer.padding_mode == "zeros",
                               line=(225, 225, 225))
        oh, ow = out.shape
        side = self.ci * max(self.hp, self.wp)
        self.co = int(np.clip(round(side / max(oh, ow)), 2, 40))
        self.vmax = symmetric_limit(out) or 1.0
        k = layer.kernel_size
        d = layer.in_channels // layer.groups
        mode = layer.padding_mode
        (pt, pb), (pl, pr) = pad
        ptxt = (f"padding {pt}" if pt == pb == pl == pr else
                f"padding top {pt} bottom {pb} left {pl} right {pr}")
        s, dl = layer.stride, layer.dilation
        self.title = (f"{where}: kernel {channel} of {k[0]}x{k[1]}x{d}, {ptxt} ({mode}), "
                      f"stride {s[0] if s[0] == s[1] else s}"
                      + (f", dilation {dl[0] if dl[0] == dl[1] else dl}" if dl != (1, 1) else ""))
        self.subtitle = (f"input {format_volume(x.shape)} -> padded {self.hp}x{self.wp}x"
                         f"{x.shape[0]} -> feature map {oh}x{ow}"
                         + (f" [{note}]" if note else ""))
        self.x0, self.y0 = 12, 56
        self.ox = self.x0 + self.input_pic.shape[1] + 60
        panel_h = max(self.input_pic.shape[0], oh * self.co)
        self.kernel_y = self.y0 + panel_h + 14
        self.kc = int(np.clip(48 // max(k), 3, 10))
        self.text_y = self.kernel_y + k[0] * self.kc + 46
        self.width = max(self.ox + ow * self.co + 20, 640)
        self.height = self.text_y + 64
        self.base = self._base(Image)

    @property
    def map_box(self) -> tuple[int, int, int]:
        return (self.ox, self.y0, self.co)

    def _base(self, image_mod: Any) -> Any:
        img, draw = canvas(self.width, self.height)
        draw.text((self.x0, 6), self.title, fill=INK, font=font(15))
        draw.text((self.x0, 28), self.subtitle, fill=PALE, font=font(12))
        img.paste(image_mod.fromarray(self.input_pic), (self.x0, self.y0))
        (pt, _), (pl, _) = self.pad
        h, w = self.x.shape[1:]
        draw.rectangle((self.x0 + pl * self.ci - 1, self.y0 + pt * self.ci - 1,
                        self.x0 + (pl + w) * self.ci, self.y0 + (pt + h) * self.ci),
                       outline=(60, 60, 60))
        oh, ow = self.out.shape
        draw.rectangle((self.ox - 1, self.y0 - 1, self.ox + ow * self.co, self.y0 + oh * self.co),
                       outline=(150, 150, 150))
        small = font(11)
        draw.text((self.x0, self.y0 + self.input_pic.shape[0] + 2),
                  f"input ({self.reading}); hatched: padding", fill=PALE, font=small)
        kernel = self.layer.weight.data[self.channel]
        kmax = symmetric_limit(kernel) or 1.0
        x = self.x0
        draw.text((x, self.kernel_y), f"kernel {self.channel}, one slice per input channel:",
                  fill=PALE, font=small)
        for c in range(min(kernel.shape[0], 12)):
            pic = cells(diverging(kernel[c], kmax), self.kc, line=None)
            img.paste(image_mod.fromarray(pic), (x, self.kernel_y + 16))
            draw.rectangle((x - 1, self.kernel_y + 15, x + pic.shape[1], self.kernel_y + 16
                            + pic.shape[0]), outline=(170, 170, 170))
            x += pic.shape[1] + 6
        colour_bar(img, draw, self.ox, self.y0 + oh * self.co + 8, self.vmax, width=140,
                   label="feature map")
        return img

    def frame(self, shown: np.ndarray, at: tuple[int, int] | None, lines: list[str]) -> np.ndarray:
        from PIL import Image, ImageDraw

        img = self.base.copy()
        draw = ImageDraw.Draw(img)
        oh, ow = shown.shape
        colours = diverging(np.nan_to_num(shown), self.vmax)
        colours[np.isnan(shown)] = _EMPTY
        img.paste(Image.fromarray(cells(colours, self.co, line=(225, 225, 225) if self.co >= 8
                                        else None)), (self.ox, self.y0))
        if at is not None:
            self._window(draw, at)
        for i, text in enumerate(lines):
            draw.text((self.x0, self.text_y + 20 * i), text, fill=INK if i == 0 else PALE,
                      font=font(15 if i == 0 else 12))
        return np.asarray(img).copy()

    def _window(self, draw: Any, at: tuple[int, int]) -> None:
        r, c = at
        (sh, sw), (dh, dw) = self.layer.stride, self.layer.dilation
        kh, kw = self.layer.kernel_size
        ci = self.ci
        top, left = r * sh, c * sw

        def box(y: int, x: int, hh: int, ww: int, width: int = 2) -> tuple[int, ...]:
            return (self.x0 + x * ci, self.y0 + y * ci, self.x0 + (x + ww) * ci - 1,
                    self.y0 + (y + hh) * ci - 1)

        if (dh, dw) == (1, 1):
            outer = box(top, left, kh, kw)
            draw.rectangle(outer, outline=(0, 0, 0), width=2)
            draw.rectangle(tuple(v + (2 if i < 2 else -2) for i, v in enumerate(outer)),
                           outline=(255, 255, 255), width=1)
        else:
            draw.rectangle(box(top, left, dh * (kh - 1) + 1, dw * (kw - 1) + 1),
                           outline=(90, 90, 90), width=1)
            for i in range(kh):
                for j in range(kw):
                    cell_box = box(top + dh * i, left + dw * j, 1, 1)
                    draw.rectangle(cell_box, outline=(0, 0, 0), width=max(1, min(2, ci // 4)))
        span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
        cx = self.x0 + (left + span_w / 2) * ci
        cy = self.y0 + (top + span_h / 2) * ci
        ox, oy = self.ox + c * self.co, self.y0 + r * self.co
        draw.line((cx, cy, ox + self.co / 2, oy + self.co / 2), fill=(70, 70, 70), width=1)
        draw.rectangle((ox - 1, oy - 1, ox + self.co, oy + self.co), outline=(0, 0, 0), width=2)


def _is_conv_layer(ref: LayerRef) -> bool:
    """A ``Conv2d`` node (a layer: the animation draws its kernel and padding)."""
    return ref.op == "conv2d" and ref.layer is not None


def animate(image: Any, model: Any = "conv(1, 5, padding=2)", layer: int | str | None = None,
            channel: int = 0, max_frames: int = 60, cell: int | None = None, size: Any = None,
            seed: int = 0) -> list[Frame]:
    """Frames of kernel ``channel`` of a conv layer sliding over ``image``.

    Parameters
    ----------
    image : (C, H, W) array or image file
    model : a spec such as ``"conv(1, 5, padding=2)"`` (the image gives the input volume;
        random weights from ``seed``), a model, model file or run folder
    layer : the conv layer (numbered as ``explain`` does); default: the first conv
    channel : which kernel (output channel) to animate
    max_frames : at most this many frames (see the module docstring for the stride)
    cell : screen pixels per input value (default: the input fills about 360 pixels)

    Returns
    -------
    list of Frame; the last one shows the whole map, equal to the layer's output.
    """
    if not isinstance(max_frames, int) or max_frames < 2:
        raise ArgumentError(message("animate", "max_frames must be an int >= 2",
                                    "use max_frames=60", f"max_frames={max_frames!r}"))
    prep = prepare(model, image, size=size, seed=seed)
    is_conv = _is_conv_layer
    if layer is None:
        convs = [r for r in layer_refs(prep.model, prep.image.shape) if is_conv(r)]
        if not convs:
            raise ArgumentError(message("animate", "the model has no conv layer to animate",
                                        "pass a spec such as 'conv(1, 5, padding=2)'"))
        ref = convs[0]
    else:
        ref = find_layer(prep.model, layer, prep.image.shape, kinds=is_conv,
                         what="a conv layer (only a conv slides a kernel)")
    conv: Conv2d = ref.layer  # type: ignore[assignment]
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) \
            or not 0 <= channel < conv.out_channels:
        raise ArgumentError(message("--channel", f"there is no kernel {channel!r}: "
                                    f"{ref.short} has {conv.out_channels} kernels",
                                    f"use a channel from 0 to {conv.out_channels - 1}",
                                    f"channel={channel!r}"))
    acts = activations(prep.model, prep.image, upto=ref.position)
    x, out = acts.value(ref.data_inputs[0]), acts.value(ref.name)[channel]  # node.inputs
    pad = conv_padding(conv, x.shape)
    painter = _Painter(conv, x, out, channel, pad, cell, prep.note, ref.short)
    oh, ow = out.shape
    picks, step = frame_positions(oh, ow, max_frames)
    n = conv.kernel_size[0] * conv.kernel_size[1] * (conv.in_channels // conv.groups)
    how = ("every position" if step == 1 else
           f"frames: the first {min(len(picks), max(1, (max_frames - 1) // 3))} positions one "
           f"by one, then every {_ordinal(step)}")
    frames: list[Frame] = []
    shown = np.full(out.shape, np.nan)
    done = 0
    for flat in picks:
        r, c = divmod(flat, ow)
        parts = conv_window(conv, x, (channel, r, c), pad)
        value = float(out[r, c])
        if abs(parts["value"] - value) > _tolerance(parts):
            raise WhyMismatchError(message("animate", f"the dot product at ({r}, {c}), "
                                           f"{parts['value']!r}, differs from the layer's "
                                           f"output, {value!r}", "report this bug"))
        shown.reshape(-1)[done:flat + 1] = out.reshape(-1)[done:flat + 1]
        done = flat + 1
        total = float(parts["channel_sums"].sum())
        lines = [f"output row {r}, column {c}: sum of {n} products + bias = {total:.4f} "
                 f"{'+' if parts['bias'] >= 0 else '-'} {abs(parts['bias']):.4f} = {value:.4f}",
                 f"window: input rows {_span(parts['rows'])}, columns {_span(parts['cols'])}; "
                 f"{int(parts['padding'].sum())} of {parts['padding'].size} cells are padding",
                 f"value {flat + 1} of {oh * ow} ({how})"]
        frames.append(Frame(painter.frame(shown, (r, c), lines), (r, c), value, shown.copy(),
                            "\n".join(lines), painter.map_box))
    lines = [f"done: the {oh}x{ow} feature map, {oh * ow} values (the layer's own output)",
             f"colours: blue < 0 < red, +-{painter.vmax:.3g} full colour", ""]
    frames.append(Frame(painter.frame(out.astype(np.float64), None, lines), None, None,
                        out.astype(np.float64), "\n".join(lines), painter.map_box))
    return frames


def _ordinal(n: int) -> str:
    """2 -> '2nd', 51 -> '51st', 12 -> '12th'."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def gif_bytes(frames: list[Frame] | list[np.ndarray], ms: int = 140,
              hold_ms: int = 2500) -> bytes:
    """The frames as a looping GIF file's bytes (see :func:`save_gif`)."""
    from PIL import Image

    pics = [f.rgb if isinstance(f, Frame) else np.asarray(f, np.uint8) for f in frames]
    if not pics:
        raise ArgumentError(message("save_gif", "no frames", "pass the frames of animate()"))
    ui = np.array([[0, 0, 0], [255, 255, 255], [70, 70, 70], list(_EMPTY), list(PAD_GREY),
                   [150, 150, 150], list(INK), list(PALE)], np.uint8)
    last = pics[-1]
    strip = np.repeat(ui[None], 4, axis=0).repeat(4, axis=1)
    source = np.zeros((last.shape[0] + 4, max(last.shape[1], strip.shape[1]), 3), np.uint8)
    source[:last.shape[0], :last.shape[1]] = last
    source[last.shape[0]:, :strip.shape[1]] = strip
    palette = Image.fromarray(source).quantize(256, method=Image.Quantize.MEDIANCUT,
                                               dither=Image.Dither.NONE)
    images = [Image.fromarray(p).quantize(palette=palette, dither=Image.Dither.NONE)
              for p in pics]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:],
                   duration=[ms] * (len(images) - 1) + [hold_ms], loop=0, optimize=False,
                   disposal=1)
    return buffer.getvalue()


def save_gif(frames: list[Frame] | list[np.ndarray], path: str | os.PathLike[str],
             ms: int = 140, hold_ms: int = 2500) -> Path:
    """Write frames as a looping GIF: ``ms`` per frame, the last one held ``hold_ms``.

    One shared 256-colour palette (taken from the last frame, which holds every colour of
    the map) keeps colours from flickering between frames.
    """
    data = gif_bytes(frames, ms, hold_ms)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p
