"""The front end the pictures share: which model, which image, which layer, which position.

A *model* is a :class:`~convscope.nn.Module`, a saved model file or run folder
(:func:`convscope.io.load`) or a model-spec string (:func:`convscope.parse`; its weights are
random, from ``seed``, and :func:`load_model` says so). Layers are numbered as
``convscope explain`` numbers its rows (the model's own layer names, ``0`` for the first);
an *image* is a (C, H, W) float array or an image file.

>>> model, note = load_model("16x16x1 | conv(4, 3, padding=1) | relu | maxpool(2)")
>>> note
'untrained model: a spec string, so the weights are random (seed 0)'
>>> ref = find_layer(model, 2, (1, 16, 16))
>>> ref.index, ref.name, ref.output_shape
('2', 'MaxPool2d', (4, 8, 8))
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    ArgumentError,
    ArgumentTypeError,
    FileFormatError,
    ShapeError,
    SpecError,
    message,
)
from ..explain import Explanation, explain
from ..nn import Conv2d, Flatten, Linear, Module
from ..spec import LAYER_NAMES, format_volume, parse
from ..tensor import Tensor, as_array, no_grad

__all__ = ["load_model", "load_input", "prepare", "Prepared", "layer_refs", "find_layer",
           "LayerRef", "activations", "parse_at", "check_at", "conv_padding"]

Shape = tuple[int, ...]
UNTRAINED = "untrained model: a spec string, so the weights are random (seed {seed})"


def _looks_like_path(text: str) -> bool:
    return (Path(text).exists() or text.endswith((".safetensors", "/", os.sep))
            or ("|" not in text and "(" not in text and ("/" in text or "." in text)))


def load_model(model: Any, seed: int = 0) -> tuple[Module, str | None]:
    """(model, note): the note says when the weights are random (a spec string), else None.

    ``model`` is a Module (used as is; a model this function built from a spec keeps its
    note), a path to a saved model or run folder, or a spec.
    """
    if isinstance(model, Module):
        return model, getattr(model, "viz_note", None)
    if isinstance(model, os.PathLike) or (isinstance(model, str) and _looks_like_path(model)):
        from ..io import load_model as load  # the safetensors reader, only when a file is named

        return load(model), None
    if not isinstance(model, str):
        raise ArgumentTypeError(message("model", "expected a model, a model file or a spec string",
                                        "pass e.g. '64x64x3 | conv(8, 5) | relu' or run/model."
                                        "safetensors", type(model).__name__))
    return _untrained(_parse(model, seed), seed)


def _parse(text: str, seed: int, input_shape: Sequence[int] | None = None) -> Module:
    """:func:`convscope.parse`; a word that is no layer name reads as a missing file."""
    try:
        return parse(text, seed=seed, input_shape=input_shape)
    except SpecError:
        word = text.strip().lower()
        if "|" in word or "(" in word or word in LAYER_NAMES:
            raise
        raise FileFormatError(message("MODEL", f"{text!r} is neither a model file or run folder"
                                      " nor a model spec", "check the path, or write a spec "
                                      "such as '64x64x3 | conv(8, 5) | relu'",
                                      f"model={text!r}")) from None


def _untrained(model: Module, seed: int) -> tuple[Module, str]:
    """Mark a model built from a spec: the note travels with it to every picture."""
    model.viz_note = UNTRAINED.format(seed=seed)
    return model, model.viz_note


def _has_dense(model: Module) -> bool:
    return any(isinstance(m, (Flatten, Linear)) for m in model.modules())


def load_input(image: Any, model: Module | None = None, size: int | Sequence[int] | None = None,
               where: str = "image", channels: int | None = None) -> np.ndarray:
    """A float32 (C, H, W) volume from an image file or an array, fitted to ``model``.

    A file is read with the model's depth (1 grey, 3 RGB; else ``channels``, default 3) and,
    when the model knows its input volume, resized to it; ``size`` (N or (H, W)) resizes to
    that instead.
    """
    from ..data import load_image

    want: Shape | None = getattr(model, "input_shape", None) if model is not None else None
    if isinstance(image, (str, os.PathLike)):
        depth = want[0] if want else (channels or 3)
        if depth not in (1, 3):
            raise ShapeError(message(where, f"the model takes a volume of depth {depth}; an image "
                                     "file has depth 1 (grey) or 3 (RGB)",
                                     "pass a (C, H, W) array with that depth",
                                     f"model input {format_volume(want)}"))
        target = size if size is not None else (want[1:] if want else None)
        return load_image(image, size=target, channels=depth)
    if isinstance(image, Tensor):
        image = image.data
    arr = as_array(image, where, np.float32)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ShapeError(message(where, "expected one image volume (C, H, W)",
                                 "pass image[0] for a batch, or load a file with "
                                 "convscope.data.load_image", f"shape {np.shape(image)}"))
    if want is not None and (arr.shape[0] != want[0] or (_has_dense(model) and  # type: ignore[arg-type]
                                                           arr.shape != tuple(want))):
        raise ShapeError(message(where, f"the model takes {format_volume(want)}, the image is "
                                 f"{format_volume(arr.shape)}",
                                 "resize the image (load_image(path, size=...)) or pass an "
                                 "image file", f"image shape {arr.shape}"))
    return np.ascontiguousarray(arr)


_VOLUME = re.compile(r"\s*\d+\s*[x\u00d7]\s*\d+")


@dataclass
class Prepared:
    """A model and an image that fit each other, and a note when the weights are random."""

    model: Module
    image: np.ndarray
    note: str | None


def prepare(model: Any, image: Any, size: int | Sequence[int] | None = None, seed: int = 0,
            channels: int | None = None, max_side: int | None = None) -> Prepared:
    """Load ``model`` and ``image`` together.

    A spec without an input volume (``"conv(1, 5, padding=2)"``) takes the image's volume;
    otherwise the image is fitted to the model (see :func:`load_input`). ``max_side``
    shrinks an image file whose size nothing else fixes so its longer side is at most that.
    """
    free = isinstance(model, str) and not _looks_like_path(model) and not _VOLUME.match(model)
    if free:
        size = size if size is not None else _shrunk(image, max_side)
        img = load_input(image, None, size, channels=channels)
        built, note = _untrained(_parse(model, seed, img.shape), seed)
        return Prepared(built, img, note)
    built, note = load_model(model, seed)
    if size is None and getattr(built, "input_shape", None) is None:
        size = _shrunk(image, max_side)
    return Prepared(built, load_input(image, built, size, channels=channels), note)


def _shrunk(image: Any, max_side: int | None) -> tuple[int, int] | None:
    """The (H, W) that fits an image file's longer side into ``max_side`` (None: keep it)."""
    if max_side is None or not isinstance(image, (str, os.PathLike)):
        return None
    from ..data import image_size

    h, w = image_size(image)
    if max(h, w) <= max_side:
        return None
    scale = max_side / max(h, w)
    return (max(1, round(h * scale)), max(1, round(w * scale)))


@dataclass(frozen=True)
class LayerRef:
    """One layer of a model, located: its number as ``explain`` prints it, its volumes."""

    position: int  # 0-based place in the flat list of layers
    index: str  # the number explain shows
    layer: Module
    input_shape: Shape
    output_shape: Shape
    operation: str  # explain's words for it

    @property
    def name(self) -> str:
        return type(self.layer).__name__

    @property
    def title(self) -> str:
        return f"layer {self.index} ({self.name}: {self.operation})"


def _explanation(model: Module, input_shape: Sequence[int]) -> Explanation:
    result = explain(model, input_shape=tuple(input_shape))
    if result.error:
        raise ShapeError(message("model", f"the model cannot run on a {format_volume(input_shape)}"
                                 f" input: {result.error}",
                                 "pass an image of the size the model was built for"))
    return result


def find_layer(model: Module, layer: int | str | None, input_shape: Sequence[int],
               where: str = "--layer", kinds: tuple[type, ...] | None = None,
               what: str = "") -> LayerRef:
    """Locate ``layer`` (as numbered by ``explain``; None = the last one of ``kinds``).

    ``kinds`` restricts the layer types (``what`` names them in the error message).
    """
    refs = layer_refs(model, input_shape)
    fitting = [r for r in refs if kinds is None or isinstance(r.layer, kinds)]
    valid = ", ".join(f"{r.index} ({r.name})" for r in fitting) or "none"
    if layer is None:
        if not fitting:
            raise ArgumentError(message(where, f"the model has no {what or 'such'} layer",
                                        "pick another model", f"layers: {_names(refs)}"))
        return fitting[-1]
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer, str)):
        raise ArgumentTypeError(message(where, "a layer is a number as `convscope explain` "
                                        "prints it", f"pass one of: {valid}", repr(layer)))
    key = str(layer).strip()
    found = next((r for r in refs if r.index == key), None)
    if found is None:
        raise ArgumentError(message(where, f"there is no layer {key}",
                                    f"use a number from the first column of `convscope explain`"
                                    f": {valid}", f"layer={layer!r}"))
    if kinds is not None and not isinstance(found.layer, kinds):
        raise ArgumentError(message(where, f"layer {key} is {found.name}, not {what or 'usable'}"
                                    " here", f"pick one of: {valid}", f"layer={layer!r}"))
    return found


def _names(refs: Sequence[LayerRef]) -> str:
    return ", ".join(f"{r.index} {r.name}" for r in refs)


def layer_refs(model: Module, input_shape: Sequence[int]) -> list[LayerRef]:
    """Every layer, in order, located (see :func:`find_layer`)."""
    result = _explanation(model, input_shape)
    return [LayerRef(i, row["index"], mod, tuple(row["input"]), tuple(row["output"]),
                     row["operation"])
            for i, (row, (_, mod)) in enumerate(zip(result.rows, result.layers, strict=True))]


def activations(model: Module, image: np.ndarray, upto: int | None = None) -> list[np.ndarray]:
    """[input, output of layer 0, output of layer 1, ...] for one image, in eval mode.

    The batch axis is dropped: each entry is (C, H, W) or (F,). ``upto`` stops after that
    position (see :attr:`LayerRef.position`).
    """
    image = np.asarray(image, np.float32)
    layers = [r.layer for r in layer_refs(model, image.shape)]
    if upto is not None:
        layers = layers[:upto + 1]
    was = model.training
    model.eval()
    try:
        out = [image]
        x: Any = Tensor(image[None])
        with no_grad():
            for layer in layers:
                x = layer(x)
                out.append(np.asarray(x.data[0]))
    finally:
        model.train(was)
    return out


def conv_padding(layer: Conv2d,
                 input_shape: Sequence[int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """The conv's padding as ((top, bottom), (left, right)) for this input volume."""
    from .. import shapes

    geo = shapes.conv_geometry((1,) + tuple(input_shape), layer.weight.shape, layer.stride,
                               layer.padding, layer.dilation, layer.groups, layer.label)
    return geo.padding


def parse_at(at: Any, where: str = "--at") -> tuple[int, ...]:
    """``"3,17,41"``, ``"3 17 41"`` or (3, 17, 41) -> (3, 17, 41): channel, row, column."""
    if isinstance(at, str):
        parts = [p for p in re.split(r"[,\s]+", at.strip().strip("()[]")) if p]
        try:
            return tuple(int(p) for p in parts)
        except ValueError:
            raise ArgumentError(message(where, f"{at!r} is not a position",
                                        "write channel,row,column, e.g. 3,17,41",
                                        f"at={at!r}")) from None
    try:
        values = tuple(at)
    except TypeError:
        values = (at,)
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise ArgumentTypeError(message(where, "a position is whole numbers",
                                        "write channel,row,column, e.g. 3,17,41", f"at={at!r}"))
    return tuple(int(v) for v in values)


def check_at(at: Any, shape: Shape, what: str, where: str = "--at") -> tuple[int, ...]:
    """Parse ``at`` and check it against the volume ``shape``; the error gives the ranges."""
    pos = parse_at(at, where)
    if len(shape) == 3:
        names = ("channel", "row", "column")
        form = "channel,row,column"
    else:
        names = ("value",)
        form = "value"
    ranges = ", ".join(f"{n}s 0..{s - 1}" for n, s in zip(names, shape, strict=True))
    if len(pos) != len(shape):
        raise ArgumentError(message(where, f"{what} is {format_volume(shape)}: a position there "
                                    f"is {len(shape)} number{'s' * (len(shape) > 1)} "
                                    f"({form})", f"pass e.g. {','.join('0' * len(shape))}; "
                                    f"valid: {ranges}", f"at={at!r}"))
    for name, v, s in zip(names, pos, shape, strict=True):
        if not 0 <= v < s:
            raise ArgumentError(message(where, f"{name} {v} is out of range: {what} is "
                                        f"{format_volume(shape)}",
                                        f"use {ranges}", f"at={','.join(map(str, pos))}"))
    return pos

