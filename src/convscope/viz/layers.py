"""The front end the pictures share: which model, which image, which node, which position.

A *model* is a :class:`~convscope.nn.Module`, a saved model file or run folder
(:func:`convscope.io.load`), a zoo name (``"resnet18"``, :mod:`convscope.models`) or a
model-spec string (:func:`convscope.parse`). A zoo name or a spec gets random weights from
``seed``, and :func:`load_model` says so. An *image* is a (C, H, W) float array or an
image file.

Every tool reads the model's traced graph (:func:`convscope.graph.trace`): a *layer* is a
node of it, named by its number as ``convscope explain`` prints it (``3``; for a chain the
layer's own index, ``model[3]``) or by its module path (``"layer2.0.conv1"``). The input of
a node is what ``node.inputs`` names, not the node before it: a residual add reads two
branches, the conv after a skip reads the block's input.

>>> model, note = load_model("16x16x1 | conv(4, 3, padding=1) | relu | maxpool(2)")
>>> note
'untrained model: a spec string, so the weights are random (seed 0)'
>>> ref = find_layer(model, 2, (1, 16, 16))
>>> ref.index, ref.kind, ref.output_shape, ref.label
('2', 'MaxPool2d', (4, 8, 8), 'layer 2 (MaxPool2d)')
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    ArgumentError,
    ArgumentTypeError,
    ConvscopeError,
    FileFormatError,
    ShapeError,
    SpecError,
    message,
)
from ..explain import Explanation, explain
from ..graph import Graph, Node, trace
from ..nn import Conv2d, Module
from ..spec import LAYER_NAMES, format_volume, parse
from ..tensor import Tensor, as_array

__all__ = ["load_model", "load_input", "prepare", "Prepared", "layer_refs", "find_layer",
           "LayerRef", "Activations", "activations", "parse_at", "check_at", "conv_padding"]

Shape = tuple[int, ...]
UNTRAINED = "untrained model: a spec string, so the weights are random (seed {seed})"
UNTRAINED_ZOO = ("untrained model: the zoo's {name} with random weights (seed {seed}); "
                 "nothing is downloaded")


def _looks_like_path(text: str) -> bool:
    return (Path(text).exists() or text.endswith((".safetensors", "/", os.sep))
            or ("|" not in text and "(" not in text and ("/" in text or "." in text)))


def _is_zoo(text: Any) -> bool:
    from ..models import is_zoo_name

    return isinstance(text, str) and not Path(text).exists() and is_zoo_name(text)


def load_model(model: Any, seed: int = 0) -> tuple[Module, str | None]:
    """(model, note): the note says when the weights are random (a zoo name or a spec).

    ``model`` is a Module (used as is; a model this function built keeps its note), a
    path to a saved model or run folder, a zoo name or a spec.
    """
    if isinstance(model, Module):
        return model, getattr(model, "viz_note", None)
    if _is_zoo(model):
        from ..models import get

        built = get(model, seed=seed)
        built.viz_note = UNTRAINED_ZOO.format(name=model.strip(), seed=seed)
        return built, built.viz_note
    if isinstance(model, os.PathLike) or (isinstance(model, str) and _looks_like_path(model)):
        from ..io import load_model as load  # the safetensors reader, only when a file is named

        return load(model), None
    if not isinstance(model, str):
        raise ArgumentTypeError(message("model", "expected a model, a model file, a zoo name or "
                                        "a spec string", "pass e.g. '64x64x3 | conv(8, 5) | "
                                        "relu', resnet18 or run/model.safetensors",
                                        type(model).__name__))
    return _untrained(_parse(model, seed), seed)


def _parse(text: str, seed: int, input_shape: Sequence[int] | None = None) -> Module:
    """:func:`convscope.parse`; a word that is no layer name reads as a missing file."""
    try:
        return parse(text, seed=seed, input_shape=input_shape)
    except SpecError:
        word = text.strip().lower()
        if "|" in word or "(" in word or word in LAYER_NAMES:
            raise
        from ..models import names

        raise FileFormatError(message("MODEL", f"{text!r} is neither a model file or run folder"
                                      ", a zoo model nor a model spec", "check the path, name a"
                                      f" zoo model ({', '.join(names())}), or write a spec such "
                                      "as '64x64x3 | conv(8, 5) | relu'",
                                      f"model={text!r}")) from None


def _untrained(model: Module, seed: int) -> tuple[Module, str]:
    """Mark a model built from a spec: the note travels with it to every picture."""
    model.viz_note = UNTRAINED.format(seed=seed)
    return model, model.viz_note


def _runs_on(model: Module, shape: Shape) -> bool:
    """Whether the model runs on a volume of ``shape`` (a shapes-only trace: nothing is
    computed)."""
    try:
        return trace(model, shape).failure is None
    except ConvscopeError:
        return False


def load_input(image: Any, model: Module | None = None, size: int | Sequence[int] | None = None,
               where: str = "image", channels: int | None = None) -> np.ndarray:
    """A float32 (C, H, W) volume from an image file or an array, fitted to ``model``.

    A file is read with the model's depth (1 grey, 3 RGB; else ``channels``, default 3) and,
    when the model knows its input volume, resized to it; ``size`` (N or (H, W)) resizes to
    that instead. An array of another volume is taken when the model runs on it.
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
    if want is not None and arr.shape != tuple(want) and (
            arr.shape[0] != want[0] or not _runs_on(model, arr.shape)):  # type: ignore[arg-type]
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
    free = isinstance(model, str) and not _looks_like_path(model) and not _VOLUME.match(model) \
        and not _is_zoo(model)
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


# --------------------------------------------------------------------------- nodes
@dataclass(frozen=True)
class LayerRef:
    """One node of the model's graph, located: its number and name, its layer (None for a
    function such as an add), what it reads and its volumes (without the batch axis).

    ``inputs`` names every node or source the node reads, in argument order (parameters a
    function uses included); ``data_inputs`` only the data: the image (``"input"``) and
    other nodes, with their volumes in ``input_shapes``; ``input_shape`` is the first.
    """

    position: int  # the node's number: its place in the graph (and in `activations`)
    index: str  # the number explain's first column shows (for a chain the layer's own)
    name: str  # the node's name: its module path ("layer1.0.conv2"), "2" in a chain
    op: str
    layer: Module | None
    input_shape: Shape
    output_shape: Shape
    operation: str  # explain's words for it
    inputs: tuple[str, ...] = ()
    data_inputs: tuple[str, ...] = ()
    input_shapes: tuple[Shape, ...] = ()
    sources: tuple[str, ...] = ()  # each data input as "maxpool (node 3)"
    chain: bool = True
    rf: tuple[int, int] | None = None  # explain's RF column (None: the whole input)
    node: Node | None = field(default=None, compare=False, repr=False)

    @property
    def kind(self) -> str:
        """The layer's class name (``"Conv2d"``) or the function's op (``"add"``)."""
        return type(self.layer).__name__ if self.layer is not None else self.op

    @property
    def short(self) -> str:
        """``"layer 2"`` in a chain, ``"layer1.0.conv2 (node 7)"`` in a graph."""
        return f"layer {self.index}" if self.chain else f"{self.name} (node {self.index})"

    @property
    def label(self) -> str:
        """``"layer 2 (MaxPool2d)"`` in a chain, ``"layer1.0.conv2 (node 7, Conv2d)"``."""
        if self.chain:
            return f"layer {self.index} ({self.kind})"
        return f"{self.name} (node {self.index}, {self.kind})"

    @property
    def title(self) -> str:
        return f"{self.label}: {self.operation}"

    @property
    def origin(self) -> str:
        """Where its input comes from, for a graph: ``" from layer1.0.relu (node 6)"``."""
        if self.chain or not self.sources:
            return ""
        return " from " + " and ".join(self.sources)


def _explanation(model: Module, input_shape: Sequence[int]) -> Explanation:
    result = explain(model, input_shape=tuple(input_shape))
    if result.error:
        raise ShapeError(message("model", f"the model cannot run on a {format_volume(input_shape)}"
                                 f" input: {result.error}",
                                 "pass an image of the size the model was built for"))
    return result


class Refs(list):
    """The nodes of a model as :class:`LayerRef` (a list, in order), with the graph."""

    graph: Graph


def layer_refs(model: Module, input_shape: Sequence[int]) -> Refs:
    """Every node, in the order it runs, located (see :func:`find_layer`)."""
    result = _explanation(model, input_shape)
    graph = result.graph
    assert graph is not None
    number = {n.name: n.index for n in graph.nodes}
    refs = Refs()
    for node, row in zip(graph.nodes, result.rows, strict=True):
        data = tuple(i for i in node.inputs if i in number or graph.sources[i].kind == "input")
        sources = tuple(f"{i} (node {number[i]})" if i in number else "the image" for i in data)
        refs.append(LayerRef(node.index, row["index"], node.name, node.op, node.module,
                             tuple(row["input"]), tuple(row["output"]), row["operation"],
                             node.inputs, data, tuple(graph.shape_of(i)[1:] for i in data),
                             sources, result.chain, row["rf"], node))
    refs.graph = graph
    return refs


Kinds = Collection[str] | Callable[[LayerRef], bool] | None


def _fits(ref: LayerRef, kinds: Kinds) -> bool:
    if kinds is None:
        return True
    return kinds(ref) if callable(kinds) else ref.op in kinds


def _valid(refs: Sequence[LayerRef]) -> str:
    """The nodes one may pick, listed (the first and last few of a long list)."""
    if not refs:
        return "none"
    words = [f"{r.index} ({r.kind})" if r.chain else f"{r.index} {r.name}" for r in refs]
    if len(words) > 12:
        return ", ".join(words[:8] + ["..."] + words[-2:]) + f" ({len(refs)} in all)"
    return ", ".join(words)


def find_layer(model: Module, layer: int | str | None, input_shape: Sequence[int],
               where: str = "--layer", kinds: Kinds = None, what: str = "",
               refs: Refs | None = None) -> LayerRef:
    """Locate ``layer``: a node number as ``explain`` prints it, or a module path
    (``"layer2.0.conv1"``; a block's path finds the node that made its output).
    None picks the last node that fits ``kinds``.

    ``kinds`` restricts the nodes: op names (``("conv2d",)``) or a test of a
    :class:`LayerRef`; ``what`` names them in the error message.
    """
    refs = refs if refs is not None else layer_refs(model, input_shape)
    fitting = [r for r in refs if _fits(r, kinds)]
    valid = _valid(fitting)
    if layer is None:
        if not fitting:
            raise ArgumentError(message(where, f"the model has no {what or 'such'} layer",
                                        "pick another model", f"layers: {_valid(refs)}"))
        return fitting[-1]
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer, str)):
        raise ArgumentTypeError(message(where, "a layer is a node number or a module path as "
                                        "`convscope explain` prints them",
                                        f"pass one of: {valid}", repr(layer)))
    key = str(layer).strip()
    found = next((r for r in refs if r.index == key), None)
    if found is None and key.lstrip("-").isdigit():
        raise ArgumentError(message(where, f"there is no layer {key}: the model has "
                                    f"{len(refs)} (0 to {len(refs) - 1})",
                                    "use a number from the first column of `convscope explain`"
                                    f": {valid}", f"layer={layer!r}"))
    if found is None:
        found = refs[refs.graph.find(key, where).index]  # the graph's error names close paths
    if not _fits(found, kinds):
        raise ArgumentError(message(where, f"{found.short} is {found.kind}, not {what or 'usable'}"
                                    " here", f"pick one of: {valid}", f"layer={layer!r}"))
    return found


# --------------------------------------------------------------------------- values
class Activations(list):
    """``[input, output of node 0, output of node 1, ...]`` for one image, batch axis dropped.

    A list, as for a chain of layers; :meth:`value` reads an entry by its name and
    :meth:`inputs_of` gives what a node reads (its ``node.inputs``: in a graph the input of
    node k is not the output of node k - 1).
    """

    def __init__(self, items: list[np.ndarray], names: list[str], graph: Graph,
                 others: dict[str, np.ndarray]) -> None:
        super().__init__(items)
        self.names = names
        self.slot = {n: k for k, n in enumerate(names)}
        self.graph = graph
        self.others = others  # parameters and constants the graph reads, as they are

    def value(self, name: str) -> np.ndarray:
        """The output of node (or source) ``name``; the image for ``"input"``."""
        if name in self.slot:
            return self[self.slot[name]]
        if name in self.others:
            return self.others[name]
        raise ArgumentError(message("activations", f"no value named {name!r} was kept",
                                    "ask for a node up to `upto`", f"name={name!r}"))

    def inputs_of(self, ref: LayerRef | Node) -> list[np.ndarray]:
        """The arrays node ``ref`` reads, in the order of its ``inputs``."""
        names = ref.inputs
        return [self.value(n) for n in names]


def activations(model: Module, image: np.ndarray, upto: int | None = None) -> Activations:
    """Every node's output for one image (eval mode; one traced pass with real values).

    The batch axis is dropped: each entry is (C, H, W) or (F,). ``upto`` keeps the entries
    up to that node number (see :attr:`LayerRef.position`).
    """
    image = np.asarray(image, np.float32)
    graph = trace(model, inputs=image[None], values=True)
    if graph.failure is not None:
        raise ShapeError(message("model", f"the model cannot run on a {format_volume(image.shape)}"
                                 f" input: {graph.failure.error}",
                                 "pass an image of the size the model was built for"))
    values = graph.values or {}
    batched = {s.name for s in graph.inputs}
    for node in graph.nodes:  # a value made from the image has its batch axis
        if any(i in batched for i in node.inputs):
            batched.add(node.name)
    names = [graph.inputs[0].name] + [n.name for n in graph.nodes]
    if upto is not None:
        names = names[:upto + 2]
    items = [np.asarray(values[n][0] if n in batched else values[n]) for n in names]
    others = {s: np.asarray(v) for s, v in values.items() if s in graph.sources and s not in names}
    return Activations(items, names, graph, others)


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
        names = ("value",) if len(shape) == 1 else tuple(f"index {k}" for k in range(len(shape)))
        form = "value" if len(shape) == 1 else ",".join(names)
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
