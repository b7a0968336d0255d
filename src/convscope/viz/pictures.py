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
from ..nn import Module
from ..spec import format_volume
from .colors import symmetric_limit
from .grid import grid
from .image import to_rgb
from .layers import LayerRef, Prepared, activations, find_layer, layer_refs, load_model, prepare
from .nodes import pair

__all__ = ["feature_maps", "feature_map_grid", "kernel_grid", "kernel_picture",
           "MAX_KERNELS", "MAX_SLICES"]

MAX_KERNELS = 64  # rows of a kernel picture; more are left out (and the title says so)
MAX_SLICES = 16  # input-channel slices per row


def _random_note(note: str | None) -> str:
    if not note:
        return ""
    return " [random weights: untrained zoo model]" if "zoo" in note else \
        " [random weights: untrained spec]"


def feature_maps(model: Any, image: Any, layer: int | str, size: Any = None,
                 seed: int = 0) -> np.ndarray:
    """The output volume of node ``layer`` for ``image``: float32 (D, H', W'), one map per
    channel.

    ``layer`` is a node number as ``convscope explain`` prints it, or a module path. A node
    with a flat output (flatten, linear) has no maps: :class:`ShapeError`.
    """
    return _maps(model, image, layer, size, seed)[2]


def _maps(model: Any, image: Any, layer: int | str, size: Any,
          seed: int) -> tuple[Prepared, LayerRef, np.ndarray]:
    prep = prepare(model, image, size=size, seed=seed)
    ref = find_layer(prep.model, layer, prep.image.shape)
    need_maps(ref)
    return prep, ref, activations(prep.model, prep.image, upto=ref.position).value(ref.name)


def need_maps(ref: LayerRef) -> None:
    """Refuse a node whose output is not a volume of feature maps."""
    if len(ref.output_shape) != 3:
        raise ShapeError(message(ref.label, f"its output is {format_volume(ref.output_shape)} "
                                 "flat values, not feature maps", "pick a layer before flatten"))


def feature_map_grid(model: Any, image: Any, layer: int | str, size: Any = None, seed: int = 0,
                     shared_scale: bool = False, max_width: int = 1800,
                     max_maps: int | None = None) -> np.ndarray:
    """Every feature map of node ``layer`` in one labelled grid (uint8 RGB).

    Each map is coloured on its own symmetric scale (its largest |value| = full red or blue,
    written under it), or on one scale for all with ``shared_scale``; 0 is always white.
    ``max_maps`` draws only the first maps (the title says so).
    """
    prep, ref, maps = _maps(model, image, layer, size, seed)
    return maps_picture(maps, ref, prep.note, shared_scale, max_width, max_maps)


def maps_picture(maps: np.ndarray, ref: LayerRef, note: str | None = None,
                 shared_scale: bool = False, max_width: int = 1800,
                 max_maps: int | None = None, cell: int | None = None) -> np.ndarray:
    """The feature maps ``maps`` (D, H, W) of node ``ref`` as a labelled grid."""
    n = len(maps)
    shown = n if max_maps is None else max(1, min(n, max_maps))
    where = f"Layer {ref.index}" if ref.chain else f"{ref.name} (node {ref.index}"
    title = (f"{where} ({ref.operation}): {n} feature maps, " if ref.chain else
             f"{where}, {ref.operation}): {n} feature maps, ")
    inputs = "" if not ref.origin else f"; input{'s' * (len(ref.sources) > 1)}{ref.origin}"
    title += f"{format_volume(maps.shape)}{inputs}{_random_note(note)}"
    if shown < n:
        title += f" (the first {shown} of the {n} maps are drawn)"
    vmax = symmetric_limit(maps) if shared_scale else None
    return grid(maps[:shown], [f"map {i}" for i in range(shown)], title=title, vmax=vmax,
                max_width=max_width, cell=cell)


def kernel_picture(weight: np.ndarray, title: str | None = None,
                   max_kernels: int = MAX_KERNELS, max_slices: int = MAX_SLICES,
                   colour_view: bool | None = None,
                   names: Sequence[str] | None = None, depthwise: int = 0) -> np.ndarray:
    """Kernels (C_out, D, kh, kw) as a grid: one row per kernel, one tile per input channel.

    ``names`` label the kernels (default ``kernel 0``, ``kernel 1``...). ``depthwise``, the
    groups of a depthwise conv (kernels of depth 1, each reading one channel), lays the
    kernels out side by side, one tile each, up to ``4 * max_kernels`` of them.

    A kernel of depth 3 (the first layer of an RGB model) also gets a colour view first:
    0 is mid grey, its largest |weight| full colour. All the tiles of one kernel share its
    colour scale (its largest |weight|), so its slices compare.
    """
    w = np.asarray(weight, np.float64)
    if w.ndim != 4:
        raise ShapeError(message("kernel_picture", "expected weights (C_out, D, kh, kw)",
                                 "pass layer.weight.data of a conv", f"shape {w.shape}"))
    n, d = w.shape[:2]
    if depthwise and d == 1:
        return _depthwise_picture(w, title, 4 * max_kernels, depthwise)
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
            labels.append(names[k] if names is not None else
                          (f"kernel {k}" if shown_k <= 16 else f"k{k}"))
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
    per_kernel = shown_d + rgb
    side_by_side = 1 if shown_k <= 16 else max(1, 12 // per_kernel)  # many small kernels:
    if side_by_side > 1:                                               # several to a row
        text = text.replace("One row per kernel", f"{side_by_side} kernels to a row")
    return grid(cells, labels, cols=per_kernel * side_by_side, cell=size, title=text,
                vmax=limits)


def _depthwise_picture(w: np.ndarray, title: str | None, limit: int,
                       groups: int) -> np.ndarray:
    n = w.shape[0]
    per = max(1, n // groups)  # kernels per input channel (the channel multiplier)
    shown = min(n, limit)
    text = (title or f"{n} kernels of {w.shape[2]}x{w.shape[3]}x1")
    if shown < n:
        text += f" (kernels {shown}..{n - 1} left out)"
    text += (". Depthwise: kernel k filters input channel k alone" if per == 1 else
             f". Depthwise: kernel k filters input channel k // {per} alone") + \
        "; one tile per kernel, on its own scale."
    labels = [f"ch {k}" if per == 1 else f"k{k} ch {k // per}" for k in range(shown)]
    return grid([w[k, 0] for k in range(shown)], labels, cols=min(shown, 16),
                cell=48 if shown > 16 else 72, title=text,
                vmax=[symmetric_limit(w[k]) for k in range(shown)])


KERNEL_OPS = ("conv2d", "conv_transpose2d")


def _has_kernels(ref: LayerRef) -> bool:
    return ref.op in KERNEL_OPS


def kernel_grid(model: Any, layer: int | str | None = None, seed: int = 0,
                input_shape: Sequence[int] | None = None, **kwargs: Any) -> np.ndarray:
    """The kernels of conv node ``layer`` (default: the first conv) as a picture, see
    :func:`kernel_picture`. A transposed conv's kernel ``o`` is ``weight[:, o]``: what every
    input channel stamps onto output channel ``o``. ``model`` may also be a conv layer."""
    if hasattr(model, "op") and model.op in KERNEL_OPS and hasattr(model, "weight"):
        kernels, words = _kernels(model.op, model.weight.data, model.groups, model.stride)
        return kernel_picture(kernels, title=f"{model.label}: {words}", **_depthwise(
            model.op, model.groups, kernels, kwargs))
    built, note = load_model(model, seed)
    shape = input_shape or getattr(built, "input_shape", None)
    if shape is None:
        raise ArgumentError(message("kernels", "the model's input volume is unknown",
                                    "start the spec with it, e.g. '64x64x3 | conv(8, 5)'"))
    what = "a conv layer (only conv layers have kernels)"
    if layer is None:
        refs = layer_refs(built, shape)
        convs = [r for r in refs if _has_kernels(r)]
        if not convs:
            raise ArgumentError(message("kernels", "the model has no conv layer, so no kernels",
                                        "pick a model with conv layers"))
        ref = convs[0]
    else:
        ref = find_layer(built, layer, shape, kinds=_has_kernels, what=what)
    return kernels_of(built, ref, note, **kwargs)


def kernels_of(model: Module, ref: LayerRef, note: str | None = None,
               **kwargs: Any) -> np.ndarray:
    """The kernel picture of conv node ``ref`` of ``model`` (see :func:`kernel_grid`)."""
    weight, groups, stride = _weights(model, ref)
    kernels, words = _kernels(ref.op, weight, groups, stride)
    head = f"Layer {ref.index}: " if ref.chain else f"{ref.name} (node {ref.index}): "
    return kernel_picture(kernels, title=f"{head}{words}{_random_note(note)}",
                          **_depthwise(ref.op, groups, kernels, kwargs))


def _depthwise(op: str, groups: int, kernels: np.ndarray, kwargs: dict) -> dict:
    if op == "conv2d" and groups > 1 and kernels.shape[1] == 1:
        return {"depthwise": groups, **kwargs}
    return kwargs


def _weights(model: Module, ref: LayerRef) -> tuple[np.ndarray, int, tuple[int, int]]:
    """(weight, groups, stride) of a conv node: its layer's, or the parameters an
    ``F.conv2d`` call in a ``forward`` used."""
    if ref.layer is not None:
        return ref.layer.weight.data, ref.layer.groups, ref.layer.stride
    assert ref.node is not None
    attrs = ref.node.attrs
    source = attrs.get("weight")
    params = dict(model.named_parameters())
    name = ref.inputs[source["$in"]] if isinstance(source, dict) and "$in" in source else None
    if name not in params:
        raise ArgumentError(message("kernels", f"{ref.label} computes its weights in forward(),"
                                    " so they are not the model's parameters",
                                    "pick a conv whose weight is a parameter"))
    return params[name].data, int(attrs.get("groups", 1)), pair(attrs.get("stride", 1))


def _kernels(op: str, weight: np.ndarray, groups: int,
             stride: tuple[int, int]) -> tuple[np.ndarray, str]:
    """(kernels as (C_out, D, kh, kw), the title's words)."""
    w = np.asarray(weight)
    if op == "conv2d":
        n, d, kh, kw = w.shape
        parts = (f" in {groups} groups" if groups > 1 and d > 1 else
                 " (depthwise: one per channel)" if groups > 1 else "")
        return w, f"{n} kernels of {kh}x{kw}x{d}{parts}"
    cin, per, kh, kw = w.shape
    cg = cin // groups
    kernels = np.stack([w[g * cg:(g + 1) * cg, j] for g in range(groups) for j in range(per)])
    words = (f"transposed conv: {len(kernels)} kernels of {kh}x{kw}x{cg} (kernel o = "
             f"weight[:, o]: what each input value stamps onto output channel o, "
             f"{stride[0]} apart)")
    return kernels, words
