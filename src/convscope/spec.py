"""The model-spec language: ``"64x64x3 | conv(8, 5, padding=2) | relu | maxpool(2)"``.

A spec is an optional input volume ``HxWxD`` (the slides' notation: height, width, depth)
followed by ``|``-separated layers. Each layer becomes one module of an
:class:`~convscope.nn.Sequential`, so the state_dict names (``0.weight``) match PyTorch's::

    conv(out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=true,
         padding_mode='zeros')
    relu
    maxpool(kernel_size, stride=none, padding=0, dilation=1, ceil_mode=false)
    avgpool(kernel_size, stride=none, padding=0, ceil_mode=false, count_include_pad=true)
    flatten
    linear(out_features, bias=true)
    batchnorm(eps=1e-05, momentum=0.1)
    dropout(p=0.5)

Values are ints, floats, tuples ``(3, 5)`` (nested for padding ``((1, 2), (1, 2))``), quoted
strings ``'same'`` and ``true``/``false``. The input depth of every conv, linear and batchnorm
is worked out by following the volume through the stack with :mod:`convscope.shapes`. The
text is read by a small tokenizer and parser (:mod:`convscope.spec_syntax`, which also holds
the layer table); nothing in it is ever evaluated as Python.

>>> model = parse("64x64x3 | conv(8, 5, padding=2) | relu | maxpool(2) | flatten | linear(10)")
>>> model.input_shape, model[0].weight.shape, model[4].in_features
((3, 64, 64), (8, 3, 5, 5), 8192)
>>> model.spec
'64x64x3 | conv(8, 5, padding=2) | relu | maxpool(2) | flatten | linear(10)'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import ConvscopeError, SpecError, message
from .nn import (
    GELU,
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm2d,
    Concat,
    Conv2d,
    ConvTranspose2d,
    Dropout,
    Flatten,
    Hardsigmoid,
    Hardswish,
    Identity,
    LeakyReLU,
    Linear,
    MaxPool2d,
    Module,
    ReLU,
    ReLU6,
    Residual,
    Sequential,
    Sigmoid,
    SiLU,
    Tanh,
    Upsample,
)
from .nn.module import make_rng
from .spec_syntax import (
    _LAYERS,
    _REQUIRED,
    LAYER_NAMES,
    Shape,
    _error,
    _fmt,
    _is_int,
    _normal,
    _Parser,
    parse_volume,
)

__all__ = ["parse", "to_spec", "parse_volume", "as_volume", "format_volume", "output_shape",
           "LAYER_NAMES"]


# --------------------------------------------------------------------------- volumes
def as_volume(value: Sequence[int] | str, where: str = "input_shape") -> Shape:
    """``"64x64x3"`` or ``(3, 64, 64)`` -> ``(3, 64, 64)``, checked: three positive ints.

    >>> as_volume("32x32x1"), as_volume([3, 8, 8])
    ((1, 32, 32), (3, 8, 8))
    """
    if isinstance(value, str):
        return parse_volume(value)
    shape = tuple(value) if isinstance(value, Sequence) else ()
    if len(shape) != 3 or not all(_is_int(v) and v >= 1 for v in shape):
        raise SpecError(message(where, "the input volume must be (C, H, W): three positive ints",
                                "pass e.g. (3, 64, 64), or the text '64x64x3'", repr(value)))
    return tuple(int(v) for v in shape)


def format_volume(shape: Sequence[int] | None) -> str:
    """``(3, 64, 64)`` -> ``"64x64x3"``; ``(2560,)`` -> ``"2560"``."""
    if shape is None:
        return "?"
    if len(shape) == 3:
        return f"{shape[1]}x{shape[2]}x{shape[0]}"
    return "x".join(str(s) for s in shape)


def _words(shape: Shape | None) -> str:
    return f"{shape[0]} flat values" if shape is not None and len(shape) == 1 else \
        f"volume {format_volume(shape)}"


# --------------------------------------------------------------------------- shape tracking
def output_shape(layer: Module, shape: Shape, padding: Any = None) -> Shape:
    """The (C, H, W) or (F,) volume that ``layer`` makes of ``shape``, by shapes alone.

    ``padding`` replaces a conv's padding (used to look for the padding that gives a size).
    Leaf layers answer from their own ``output_shape``; containers (a ``Sequential``, a
    branch block) from a shapes-only trace. Raises :class:`ShapeError` /
    :class:`ArgumentError` with the numbers when it cannot run.
    """
    batched = (1, *shape)
    if isinstance(layer, Sequential):
        for sub in layer:
            shape = output_shape(sub, shape)
        return shape
    if padding is not None:
        return tuple(layer.output_shape(batched, padding=padding)[1:])  # type: ignore[attr-defined]
    if type(layer).is_leaf() and hasattr(layer, "output_shape"):
        return tuple(layer.output_shape(batched)[1:])
    if isinstance(layer, (Residual, Concat)):
        from .graph import trace

        graph = trace(layer, shape, strict=True)
        return tuple(graph.shape_of(graph.outputs[0])[1:])
    raise SpecError(message(type(layer).__name__, "this layer type is not known to the spec "
                            "language", "use " + ", ".join(_LAYERS)))


# --------------------------------------------------------------------------- parse / to_spec
def _build(name: str, args: dict[str, Any], shape: Shape | None,
           rng: np.random.Generator) -> Module:
    if name == "conv":
        a = dict(args)
        return Conv2d(shape[0], a.pop("out_channels"), a.pop("kernel_size"), seed=rng,  # type: ignore[index]
                      **a)
    if name == "linear":
        return Linear(shape[0], args["out_features"], args["bias"], seed=rng)  # type: ignore[index]
    if name == "batchnorm":
        return BatchNorm2d(shape[0], **args)  # type: ignore[index]
    if name == "dropout":
        return Dropout(args["p"], seed=rng)
    if name == "globalavgpool":
        return AdaptiveAvgPool2d(1)
    if name == "convt":
        a = dict(args)
        return ConvTranspose2d(shape[0], a.pop("out_channels"), a.pop("kernel_size"),  # type: ignore[index]
                               seed=rng, **a)
    return _LAYERS[name][0](**args)


def _item_text(name: str, args: dict[str, Any]) -> str:
    parts = []
    if name in ("maxpool", "avgpool") and _normal("pair", args["stride"]) == _normal(
            "pair", args["kernel_size"]):
        args = {**args, "stride": None}  # the default stride is the window
    for p in _LAYERS[name][1]:
        v = _normal(p.kind, args[p.name])
        if p.default is _REQUIRED:
            parts.append(_fmt(v))
        elif v != _normal(p.kind, p.default):
            parts.append(f"{p.name}={_fmt(v)}")
    return name + (f"({', '.join(parts)})" if parts else "")


def parse(spec: str, seed: int | np.random.Generator | None = 0,
          input_shape: Sequence[int] | str | None = None) -> Sequential:
    """Build the :class:`~convscope.nn.Sequential` that ``spec`` describes.

    Parameters
    ----------
    spec : str
        ``"[HxWxD |] layer | layer ..."``, see the module docstring.
    seed : int, np.random.Generator or None
        Source of the initial weights (None: fresh entropy).
    input_shape : (C, H, W) or "HxWxD", optional
        The input volume, replacing the one written in the spec (if any).

    Returns
    -------
    Sequential with ``.spec`` (the normalised text) and ``.input_shape`` ((C, H, W) or None).

    Raises
    ------
    SpecError
        With the spec quoted, a caret under the offending part, and a fix.
    """
    if not isinstance(spec, str):
        raise SpecError(message("spec", "a model spec must be a string",
                                "pass e.g. '64x64x3 | conv(8, 5) | relu'", repr(spec)[:60]))
    volume, vspan, items = _Parser(spec).spec()
    if input_shape is not None:
        volume = as_volume(input_shape)
        vspan = None
    if not items:
        raise _error(spec, len(spec), len(spec) + 1, "spec", "the spec has no layers",
                     "add layers after the input volume, e.g. '64x64x3 | conv(8, 5) | relu'")
    rng = make_rng(seed)
    layers, texts, shape = _build_chain(spec, items, volume, rng, vspan)
    model = Sequential(*layers)
    model.spec = " | ".join(([format_volume(volume)] if volume else []) + texts)
    model.input_shape = volume
    return model


def _build_branch(spec: str, item: Any, shape: Shape | None, rng: np.random.Generator,
                  depth: int) -> tuple[Module, str, Shape | None]:
    """A residual or concat item: its container, its text and its output volume."""
    chains, texts = [], []
    for branch in item.branches:
        layers, words, _ = _build_chain(spec, branch, shape, rng, None, depth + 1)
        chains.append(layers[0] if len(layers) == 1 else Sequential(*layers))
        texts.append(" | ".join(words))
    if item.name == "residual":
        body = chains[0] if isinstance(chains[0], Sequential) else Sequential(chains[0])
        module: Module = Residual(body, chains[1] if len(chains) > 1 else None)
    else:
        module = Concat(*chains)
    text = f"{item.name}({'; '.join(texts)})"
    if shape is None:
        return module, text, None
    try:
        out = output_shape(module, shape)
    except ConvscopeError as exc:
        err = _error(spec, item.start, item.end, f"spec {item.name}",
                     f"impossible with input {_words(shape)}: {str(exc).rstrip('.')}")
        raise err from None
    return module, text, out


def _build_chain(spec: str, items: list[Any], volume: Shape | None, rng: np.random.Generator,
                 vspan: Any, depth: int = 0) -> tuple[list[Module], list[str], Shape | None]:
    """Build the layers of a chain, following the volume through it."""
    shape: Shape | None = volume
    layers: list[Module] = []
    texts: list[str] = []
    for k, item in enumerate(items):
        if item.branches:
            module, text, shape = _build_branch(spec, item, shape, rng, depth)
            layers.append(module)
            texts.append(text)
            continue
        where = f"spec layer {k} ({item.name})" if not depth else f"spec {item.name}"
        if shape is None and item.name in ("conv", "linear", "batchnorm", "convt"):
            what = {"conv": "its kernel depth", "linear": "in_features", "convt": "in_channels",
                    "batchnorm": "num_features"}[item.name]
            raise _error(spec, item.start, item.end, where,
                         f"{item.name} needs the input volume to work out {what}",
                         "start the spec with the input volume H x W x D, e.g. "
                         f"'64x64x3 | {spec.strip()}', or pass --input 64x64x3")
        try:
            layer = _build(item.name, item.args, shape, rng)
            if shape is not None:
                shape = output_shape(layer, shape)
        except ConvscopeError as exc:
            what = f"impossible with input {_words(shape)}: {str(exc).rstrip('.')}"
            if k == 0 and vspan and shape is not None and len(shape) == 3 and \
                    shape[1] <= 4 < shape[0]:
                what += (f". Note: the input volume is H x W x D, depth last; did you mean "
                         f"{shape[2]}x{shape[0]}x{shape[1]}?")
            err = _error(spec, item.start, item.end, where, what)
            if not depth:
                err.partial = Sequential(*layers)  # type: ignore[attr-defined]
                err.partial.input_shape = volume  # type: ignore[attr-defined]
                err.layer_index, err.item_text = k, spec[item.start:item.end]  # type: ignore[attr-defined]
            raise err from None
        layers.append(layer)
        texts.append(_item_text(item.name, item.args))
    return layers, texts, shape


def _layer_item(layer: Module) -> str:
    name = type(layer).__name__
    if isinstance(layer, Conv2d):
        pad = getattr(layer, "_padding_arg", layer.padding)
        pad = tuple(tuple(p) if isinstance(p, list) else p for p in pad) if isinstance(
            pad, (list, tuple)) else pad
        return _item_text("conv", dict(
            out_channels=layer.out_channels, kernel_size=layer.kernel_size, stride=layer.stride,
            padding=pad, dilation=layer.dilation, groups=layer.groups,
            bias=layer.bias is not None, padding_mode=layer.padding_mode))
    if isinstance(layer, (MaxPool2d, AvgPool2d)):
        stride = None if layer.stride == layer.kernel_size else layer.stride
        return _item_text("maxpool" if isinstance(layer, MaxPool2d) else "avgpool",
                          dict(kernel_size=layer.kernel_size, stride=stride,
                               padding=layer.padding, **layer.extra))
    if isinstance(layer, Linear):
        return _item_text("linear", dict(out_features=layer.out_features,
                                         bias=layer.bias is not None))
    if isinstance(layer, BatchNorm2d):
        if not (layer.affine and layer.track_running_stats):
            raise SpecError(message("to_spec", "batchnorm without affine or running statistics "
                                    "has no spec form", "use BatchNorm2d(C)"))
        return _item_text("batchnorm", dict(eps=layer.eps, momentum=layer.momentum))
    if isinstance(layer, Dropout):
        return _item_text("dropout", dict(p=layer.p))
    if isinstance(layer, Residual):
        text = _chain_text(layer.body)
        if layer.shortcut is not None:
            text += "; " + _chain_text(layer.shortcut)
        return f"residual({text})"
    if isinstance(layer, Concat):
        return "concat(" + "; ".join(_chain_text(b) for b in layer.children()) + ")"
    if isinstance(layer, ConvTranspose2d) and layer.padding_mode == "zeros":
        return _item_text("convt", dict(
            out_channels=layer.out_channels, kernel_size=layer.kernel_size, stride=layer.stride,
            padding=layer.padding, output_padding=layer.output_padding, groups=layer.groups,
            bias=layer.bias is not None, dilation=layer.dilation))
    if isinstance(layer, Upsample) and layer.size is None and layer.mode in (
            "nearest", "bilinear") and not layer.align_corners and isinstance(
            layer.scale_factor, (int, float)):
        return _item_text("upsample", dict(scale_factor=float(layer.scale_factor),
                                           mode=layer.mode))
    if isinstance(layer, AdaptiveAvgPool2d):
        size = layer.output_size
        if size in (1, (1, 1)):
            return "globalavgpool"
        if isinstance(size, int) or (isinstance(size, tuple) and None not in size):
            return _item_text("avgpool_to", dict(output_size=size))
    if isinstance(layer, LeakyReLU):
        return _item_text("leakyrelu", dict(negative_slope=layer.negative_slope))
    if isinstance(layer, GELU) and layer.approximate != "none":
        raise SpecError(message("to_spec", "gelu(approximate='tanh') has no spec form",
                                "use GELU()"))
    simple = {ReLU: "relu", ReLU6: "relu6", Sigmoid: "sigmoid", Tanh: "tanh", GELU: "gelu",
              SiLU: "silu", Hardswish: "hardswish", Hardsigmoid: "hardsigmoid",
              Identity: "identity"}
    if type(layer) in simple:
        return simple[type(layer)]
    if isinstance(layer, Flatten) and (layer.start_dim, layer.end_dim) == (1, -1):
        return "flatten"
    raise SpecError(message("to_spec", f"{name} has no spec form",
                            "build the model from " + ", ".join(_LAYERS), repr(layer)[:80]))


def _chain_text(model: Module) -> str:
    layers = list(model) if isinstance(model, Sequential) else [model]
    return " | ".join(_layer_item(m) for m in layers)


def to_spec(model: Module, input_shape: Sequence[int] | str | None = None) -> str:
    """The spec text of a Sequential (or single layer) of supported layers.

    The shapes are followed through the stack, so a model whose layers do not fit the input
    volume is refused; ``parse(to_spec(m, shape))`` builds the same architecture.

    >>> from convscope import nn
    >>> to_spec(nn.Sequential(nn.Conv2d(3, 8, 5, padding=2), nn.ReLU()), (3, 64, 64))
    '64x64x3 | conv(8, 5, padding=2) | relu'
    """
    layers = list(model) if isinstance(model, Sequential) else [model]
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
    shape = as_volume(input_shape) if input_shape is not None else None
    parts = [format_volume(shape)] if shape else []
    for k, layer in enumerate(layers):
        parts.append(_layer_item(layer))
        if shape is not None:
            need = getattr(layer, "in_channels", None) or getattr(layer, "in_features", None) \
                or getattr(layer, "num_features", None)
            if need is not None and shape[0] != need:
                raise SpecError(message(f"to_spec layer {k} ({type(layer).__name__})",
                                        f"expects {need} input channels/features, but the "
                                        f"volume there is {format_volume(shape)}",
                                        "fix the model or the input_shape"))
            try:
                shape = output_shape(layer, shape)
            except ConvscopeError as exc:
                raise SpecError(f"to_spec layer {k}: {exc}") from None
        elif any(hasattr(layer, a) for a in ("in_channels", "in_features", "num_features")):
            raise SpecError(message("to_spec", "the input volume is unknown",
                                    "pass input_shape=(C, H, W)"))
    return " | ".join(parts)
