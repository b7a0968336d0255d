"""The slides, live: a 64x64x3 picture, 8 kernels of 5x5x3, 16 kernels of 5x5x8, as pictures.

:func:`run` is ``convscope demo``; :func:`feature_maps` and :func:`write_maps` are the
machinery of ``convscope apply`` (a bank of named kernels, optionally followed by more
layers, slid over a real image, every feature map written as a PNG).

>>> image = default_image()
>>> image.shape, image.dtype, float(image.min()) >= 0.0, float(image.max()) <= 1.0
((3, 64, 64), dtype('float32'), True, True)
"""

from __future__ import annotations

import os
import re
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from . import filters, shapes, viz
from .errors import ArgumentError, SpecError, message
from .explain import explain
from .nn import Conv2d, Sequential
from .spec import format_volume, parse
from .tensor import Tensor, no_grad

__all__ = ["default_image", "feature_maps", "write_maps", "run",
           "LAYER1_KERNELS", "SPEC"]

LAYER1_KERNELS = ("sobel-x", "sobel-y", "laplacian", "gaussian", "emboss", "red", "green", "blue")
SPEC = "64x64x3 | conv(8, 5, padding=2) | relu | conv(16, 5, padding=2)"
SLIP = "64x64x3 | conv(8, 5, padding=1)"


def default_image(size: int = 64) -> np.ndarray:
    """A deterministic picture, float32 (3, size, size) in [0, 1]: shapes on a gradient.

    A sky-to-sand gradient (a soft change from top to bottom), a red disc, a green square,
    a blue triangle, a white and a black dot: edges in every direction, flat areas, spots,
    and pure colours for the colour detectors. No file, no download, no randomness.
    """
    s = size / 64.0
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    t = (y / size)[None]
    img = (1 - t) * np.array([0.72, 0.84, 0.96], np.float32)[:, None, None] + \
        t * np.array([0.93, 0.86, 0.68], np.float32)[:, None, None]

    def paint(mask: np.ndarray, rgb: tuple[float, float, float]) -> None:
        for c in range(3):
            img[c][mask] = rgb[c]

    paint((x - 20 * s) ** 2 + (y - 21 * s) ** 2 <= (11 * s) ** 2, (0.86, 0.12, 0.10))
    paint((abs(x - 19 * s) <= 10 * s) & (abs(y - 47 * s) <= 10 * s), (0.10, 0.66, 0.22))
    paint((y >= 8 * s) & (y <= 30 * s) & (abs(x - 47 * s) <= (y - 8 * s) * 0.55),
          (0.14, 0.26, 0.86))
    paint((x - 44 * s) ** 2 + (y - 48 * s) ** 2 <= (2.2 * s) ** 2, (0.99, 0.99, 0.99))
    paint((x - 53 * s) ** 2 + (y - 48 * s) ** 2 <= (2.2 * s) ** 2, (0.08, 0.08, 0.10))
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _padding(text: str | int) -> str | int:
    if isinstance(text, int):
        return text
    value = str(text).strip().lower()
    if value in ("same", "valid"):
        return value
    if value.isdigit():
        return int(value)
    raise ArgumentError(message("--padding", f"{text!r} is not a padding",
                                "use same (keep the size), valid (no padding) or a number",
                                f"padding={text!r}"))


def feature_maps(image: np.ndarray, kernels: str | Sequence[str] | None = None,
                 spec: str | None = None, padding: str | int = "same",
                 seed: int = 0) -> tuple[Sequential, np.ndarray, list[str]]:
    """Slide a bank of named kernels (then the layers of ``spec``) over one image.

    Parameters
    ----------
    image : float array of shape (C, H, W)
    kernels : names from :mod:`convscope.filters` ("sobel-x,gaussian"), optional
    spec : more layers after the bank, e.g. "relu | maxpool(2)" (or the whole model when
        no kernels are given), seeded with ``seed``
    padding : 'same', 'valid' or an int, for the bank's conv

    Returns
    -------
    (model, maps of shape (D, H', W'), one label per map)
    """
    image = np.asarray(image, np.float32)
    if image.ndim != 3:
        raise ArgumentError(message("apply", "expected an image volume (C, H, W)",
                                    "load it with convscope.data.load_image",
                                    f"shape {image.shape}"))
    spec = (spec or "").strip()
    if spec and re.match(r"\d+\s*[x\u00d7]", spec):
        raise SpecError(message("--spec", "the input volume comes from the image",
                                "drop the leading 'HxWxD |' from the spec", spec))
    parts = [format_volume(image.shape)]
    labels: list[str] = []
    weight = None
    if kernels:
        weight, labels = filters.bank(kernels, image.shape[0])
        pad = _padding(padding)
        parts.append(f"conv({len(labels)}, {weight.shape[-1]}, padding="
                     f"{pad if isinstance(pad, int) else repr(pad)}, bias=false)")
    if spec:
        parts.append(spec)
    if len(parts) == 1:
        raise ArgumentError(message("apply", "nothing to apply",
                                    "pass --kernels sobel-x,sobel-y and/or --spec 'conv(8, 3)'"))
    model = parse(" | ".join(parts), seed=seed)
    if weight is not None:
        model[0].weight.data = weight
    with no_grad():
        out = model.eval()(Tensor(image[None])).numpy()[0]
    if out.ndim != 3:
        raise SpecError(message("apply", f"the model ends with {out.size} flat values, not "
                                "feature maps", "end the spec with a volume (drop flatten and "
                                "linear)", model.spec))
    if not labels or out.shape[0] != len(labels) or any(
            isinstance(m, Conv2d) for m in list(model)[1:]):
        labels = [f"map {i}" for i in range(out.shape[0])]
    return model, out, labels


def write_maps(maps: np.ndarray, labels: Sequence[str], out: str | os.PathLike[str],
               title: str | None = None) -> list[Path]:
    """Each map as ``NN-label.png`` (diverging colours, one pixel per value) plus ``grid.png``.

    Each map is scaled to its own largest |value| (see :func:`convscope.viz.map_limits`).

    Returns the paths, the grid last.
    """
    if len(labels) != len(maps):
        raise ArgumentError(message("write_maps", f"{len(labels)} labels for {len(maps)} maps",
                                    "pass one label per map"))
    folder = Path(out)
    paths = []
    width = len(str(len(maps) - 1))
    for i, (m, label, limit) in enumerate(zip(maps, labels, viz.map_limits(maps), strict=True)):
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "map"
        paths.append(viz.save_png(folder / f"{i:0{width}d}-{safe}.png", viz.diverging(m, limit)))
    paths.append(viz.save_png(folder / "grid.png", viz.grid(maps, labels, title=title)))
    return paths


def run(out: str | os.PathLike[str] = "demo-output", image: np.ndarray | None = None,
        echo: Callable[[str], None] = print) -> list[Path]:
    """``convscope demo``: print the slides' story with real numbers, write the pictures.

    Returns the written paths (input, kernels, layer 1 maps, layer 2 maps).
    """
    start = time.perf_counter()
    folder = Path(out)
    picture = default_image() if image is None else np.asarray(image, np.float32)
    c, h, w = picture.shape
    vol = format_volume(picture.shape)
    builtin = image is None
    spec = SPEC.replace("64x64x3", vol)
    model = parse(spec, seed=0)
    weight, labels = filters.bank(LAYER1_KERNELS, c)
    model[0].weight.data = weight
    model[0].bias.data = np.zeros(8, np.float32)
    with no_grad():
        x = Tensor(picture[None])
        maps1 = model[0](x)
        maps2 = model[2](model[1](maps1))
    maps1, maps2 = maps1.numpy()[0], maps2.numpy()[0]

    def say(text: str = "", indent: str = "") -> None:
        echo(textwrap.fill(text, 92, initial_indent=indent, subsequent_indent=indent + "  ")
             .replace("\u00a0", " ") if text else "")

    say(f"convscope demo: the convolution slides, live, on {'a built-in' if builtin else 'your'} "
        f"{vol} picture" + (" (coloured shapes on a gradient)." if builtin else "."))
    say()
    zoom = max(1, 512 // max(h, w))
    paths = [viz.save_png(folder / "input.png", viz.upscale(viz.to_rgb(picture), zoom))]
    say(f"Input image: {vol} (height x width x depth)")
    say()
    say("First convolutional layer (layer 0; layers are numbered as in PyTorch: model[0])")
    say(f"- Input: volume of {vol}", "  ")
    say(f"- Kernels: 8 of 5x5x{c} with padding=2 (kernel depth = input depth = {c}):", "  ")
    for name in labels:
        echo(f"      {name:<10} {filters.describe(name)}")
    say(f"- Output: volume of {format_volume(maps1.shape)}", "  ")
    say()
    say("Second convolutional layer (layer 2, after the ReLU at layer 1)")
    say(f"- Input: volume of {format_volume(maps1.shape)}", "  ")
    say("- Kernels: 16 of 5x5x8 with padding=2 (random weights, seed 0)", "  ")
    say(f"- Output: volume of {format_volume(maps2.shape)}", "  ")
    say()
    echo(str(explain(model)))
    say()
    slip = explain(SLIP.replace("64x64x3", vol))
    p = shapes.padding_for(h, 5, h)
    claim = (8, h, w)
    if slip.check(claim) is not None:
        say(f"The deck's slip, caught: the deck says {format_volume(claim)} with padding=1; "
            f"that gives {format_volume(slip.output_shape)}: "
            f"{slip.rows[0]['formula'].replace(' ', chr(0xA0))}. "
            f"padding={p} gives {format_volume(claim)}.")
        echo("  Check a claim like this with:")
        echo(f"    convscope explain \"{SLIP}\" --expect 64x64x8")
        say()
    title = f"Layer 0: 8 kernels of 5x5x{c} (3x3 and 1x1 kernels sit in a 5x5 frame)"
    paths.append(viz.save_png(folder / "kernels.png",
                              viz.kernel_picture(weight, title=title, names=labels)))
    paths.append(viz.save_png(folder / "layer0.png", viz.grid(
        maps1, labels, title=f"Layer 0: 8 feature maps, {format_volume(maps1.shape)}")))
    paths.append(viz.save_png(folder / "layer2.png", viz.grid(
        maps2, [f"map {i}" for i in range(maps2.shape[0])],
        title=f"Layer 2: 16 feature maps, {format_volume(maps2.shape)} (random kernels)")))
    # One value taken apart, and the kernel sliding: the slides' "one value per position".
    inner = np.abs(maps1[0, 2:-2, 2:-2])  # the strongest edge away from the border
    row, col = np.unravel_index(int(inner.argmax()), inner.shape)
    at = (0, int(row) + 2, int(col) + 2)
    walk = viz.why(model, picture, layer=0, at=at)
    say(f"One value, taken apart: feature map 0 ({labels[0]}) at row {at[1]}, column {at[2]} "
        "(`convscope why` does this for any value of any layer):")
    echo(str(walk))
    say()
    paths.append(viz.save_png(folder / "why.png", walk.picture()))
    paths.append(viz.save_gif(viz.animate(picture, model, layer=0, channel=0),
                              folder / "slide.gif"))
    notes = [f"the input picture, {zoom}x larger (nearest neighbour)",
             "layer-0 kernels: colour view and the depth slices",
             "layer-0 feature maps (blue < 0 < red)",
             "layer-2 feature maps (after the ReLU at layer 1)",
             "the walk-through above, as a picture",
             f"the {labels[0]} kernel sliding over the input, the map filling in"]
    echo("Pictures:")
    width = max(len(str(path)) for path in paths)
    for path, note in zip(paths, notes, strict=True):
        echo(f"  {str(path):<{width}}  {note}")
    echo(f"Done in {time.perf_counter() - start:.1f} s.")
    return paths
