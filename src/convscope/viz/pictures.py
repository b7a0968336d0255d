"""Feature maps and kernels as labelled picture grids (blue < 0 < red, white = 0).

>>> import numpy as np
>>> image = np.random.default_rng(0).random((3, 16, 16), dtype=np.float32)
>>> spec = "16x16x3 | conv(8, 3, padding=1) | relu"
>>> feature_maps(spec, image, layer=0).shape
(8, 16, 16)
>>> kernel_grid(spec, layer=0).dtype
dtype('uint8')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ArgumentError, ShapeError, message
from ..nn import Conv2d
from ..spec import format_volume
from .colors import symmetric_limit
from .grid import grid
from .image import to_rgb
from .layers import activations, find_layer, load_model, prepare

__all__ = ["feature_maps", "feature_map_grid", "kernel_grid", "kernel_picture",
           "MAX_KERNELS", "MAX_SLICES"]

MAX_KERNELS = 64  # rows of a kernel picture; more are left out (and the title says so)
MAX_SLICES = 16  # input-channel slices per row


def _random_note(note: str | None) -> str:
    return " [random weights: untrained spec]" if note else ""


def feature_maps(model: Any, image: Any, layer: int | str, size: Any = None,
                 seed: int = 0) -> np.ndarray:
    """The output volume of ``layer`` for ``image``: float32 (D, H', W'), one map per channel.

    ``layer`` is numbered as ``convscope explain`` numbers it. A layer with a flat output
    (flatten, linear) has no maps: :class:`ShapeError`.
    """
    prep = prepare(model, image, size=size, seed=seed)
    ref = find_layer(prep.model, layer, prep.image.shape)
    _need_maps(ref.output_shape, ref.index, ref.name)
    return activations(prep.model, prep.image, upto=ref.position)[-1]


def _need_maps(shape: Sequence[int], index: str, name: str) -> None:
    if len(shape) != 3:
        raise ShapeError(message(f"layer {index} ({name})", f"its output is {shape[0]} flat "
                                 "values, not feature maps", "pick a layer before flatten"))


def feature_map_grid(model: Any, image: Any, layer: int | str, size: Any = None, seed: int = 0,
                     shared_scale: bool = False, max_width: int = 1800) -> np.ndarray:
    """Every feature map of ``layer`` in one labelled grid (uint8 RGB).

    Each map is coloured on its own symmetric scale (its largest |value| = full red or blue,
    written under it), or on one scale for all with ``shared_scale``; 0 is always white.
    """
    prep = prepare(model, image, size=size, seed=seed)
    ref = find_layer(prep.model, layer, prep.image.shape)
    _need_maps(ref.output_shape, ref.index, ref.name)
    maps = activations(prep.model, prep.image, upto=ref.position)[-1]
    title = (f"Layer {ref.index} ({ref.operation}): {len(maps)} feature maps, "
             f"{format_volume(maps.shape)}{_random_note(prep.note)}")
    vmax = symmetric_limit(maps) if shared_scale else None
    return grid(maps, [f"map {i}" for i in range(len(maps))], title=title, vmax=vmax,
                max_width=max_width)


def kernel_picture(weight: np.ndarray, title: str | None = None,
                   max_kernels: int = MAX_KERNELS, max_slices: int = MAX_SLICES,
                   colour_view: bool | None = None,
                   names: Sequence[str] | None = None) -> np.ndarray:
    """Kernels (C_out, D, kh, kw) as a grid: one row per kernel, one tile per input channel.

    ``names`` label the kernels (default ``kernel 0``, ``kernel 1``...).

    A kernel of depth 3 (the first layer of an RGB model) also gets a colour view first:
    0 is mid grey, its largest |weight| full colour. All the tiles of one kernel share its
    colour scale (its largest |weight|), so its slices compare.
    """
    w = np.asarray(weight, np.float64)
    if w.ndim != 4:
        raise ShapeError(message("kernel_picture", "expected weights (C_out, D, kh, kw)",
                                 "pass layer.weight.data of a conv", f"shape {w.shape}"))
    n, d = w.shape[:2]
    rgb = d == 3 if colour_view is None else colour_view
    shown_k, shown_d = min(n, max_kernels), min(d, max_slices)
    cells: list[Any] = []
    labels: list[str] = []
    limits: list[float | None] = []
    channels = ("R", "G", "B") if d == 3 else None
    for k in range(shown_k):
        limit = symmetric_limit(w[k])
        if rgb:
            cells.append(to_rgb(0.5 + 0.5 * w[k] / (limit or 1.0)))
            labels.append(names[k] if names is not None else f"kernel {k}")
            limits.append(None)
        for c in range(shown_d):
            cells.append(w[k, c])
            ch = channels[c] if channels else f"in {c}"
            labels.append(f"{ch}" if rgb else f"k{k} {ch}")
            limits.append(limit)
    left = []
    if shown_k < n:
        left.append(f"kernels {shown_k}..{n - 1} left out")
    if shown_d < d:
        left.append(f"input channels {shown_d}..{d - 1} left out")
    text = (title or f"{n} kernels of {w.shape[2]}x{w.shape[3]}x{d}")
    text += (" (" + "; ".join(left) + ")" if left else "")
    text += (". One row per kernel: " + ("a colour view (grey = 0), then " if rgb else "")
             + "one slice per input channel, on the kernel's own scale.")
    size = (72 if max(w.shape[2:]) <= 7 else 96) if shown_k <= 16 else 36
    return grid(cells, labels, cols=shown_d + rgb, cell=size, title=text, vmax=limits)


def kernel_grid(model: Any, layer: int | str | None = None, seed: int = 0,
                input_shape: Sequence[int] | None = None, **kwargs: Any) -> np.ndarray:
    """The kernels of conv ``layer`` (default: the first conv) as a picture, see
    :func:`kernel_picture`. ``model`` may also be a :class:`~convscope.nn.Conv2d`."""
    if isinstance(model, Conv2d):
        conv, head = model, f"{model.label}: "
        note = None
    else:
        built, note = load_model(model, seed)
        shape = input_shape or getattr(built, "input_shape", None)
        if shape is None:
            raise ArgumentError(message("kernels", "the model's input volume is unknown",
                                        "start the spec with it, e.g. '64x64x3 | conv(8, 5)'"))
        if layer is None:
            ref = next(r for r in _conv_refs(built, shape))
        else:
            ref = find_layer(built, layer, shape, kinds=(Conv2d,), what="a conv layer (only "
                             "conv layers have kernels)")
        conv = ref.layer  # type: ignore[assignment]
        head = f"Layer {ref.index}: "
    k = conv.kernel_size
    groups = f" in {conv.groups} groups" if conv.groups > 1 else ""
    title = (f"{head}{conv.out_channels} kernels of {k[0]}x{k[1]}x"
             f"{conv.in_channels // conv.groups}{groups}{_random_note(note)}")
    return kernel_picture(conv.weight.data, title=title, **kwargs)


def _conv_refs(model: Any, shape: Sequence[int]) -> Any:
    from .layers import layer_refs

    refs = [r for r in layer_refs(model, shape) if isinstance(r.layer, Conv2d)]
    if not refs:
        raise ArgumentError(message("kernels", "the model has no conv layer, so no kernels",
                                    "pick a model with conv layers"))
    return iter(refs)
