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
text is read by a small tokenizer; nothing in it is ever evaluated as Python.

>>> model = parse("64x64x3 | conv(8, 5, padding=2) | relu | maxpool(2) | flatten | linear(10)")
>>> model.input_shape, model[0].weight.shape, model[4].in_features
((3, 64, 64), (8, 3, 5, 5), 8192)
>>> model.spec
'64x64x3 | conv(8, 5, padding=2) | relu | maxpool(2) | flatten | linear(10)'
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import shapes
from .errors import ConvscopeError, ShapeError, SpecError, message
from .nn import (
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Linear,
    MaxPool2d,
    Module,
    ReLU,
    Sequential,
)
from .nn.module import make_rng

__all__ = ["parse", "to_spec", "parse_volume", "as_volume", "format_volume", "output_shape",
           "LAYER_NAMES"]

Shape = tuple[int, ...]  # (C, H, W) for a volume, (F,) for a flat vector

# --------------------------------------------------------------------------- the layer table
_REQUIRED = object()


@dataclass(frozen=True)
class _Param:
    name: str
    kind: str  # a key of _CHECKS
    default: Any = _REQUIRED


_LAYERS: dict[str, tuple[type[Module], tuple[_Param, ...]]] = {
    "conv": (Conv2d, (
        _Param("out_channels", "count"), _Param("kernel_size", "pair"),
        _Param("stride", "pair", 1), _Param("padding", "padding", 0),
        _Param("dilation", "pair", 1), _Param("groups", "count", 1),
        _Param("bias", "bool", True), _Param("padding_mode", "mode", "zeros"))),
    "relu": (ReLU, ()),
    "maxpool": (MaxPool2d, (
        _Param("kernel_size", "pair"), _Param("stride", "pair_or_none", None),
        _Param("padding", "pad_pair", 0), _Param("dilation", "pair", 1),
        _Param("ceil_mode", "bool", False))),
    "avgpool": (AvgPool2d, (
        _Param("kernel_size", "pair"), _Param("stride", "pair_or_none", None),
        _Param("padding", "pad_pair", 0), _Param("ceil_mode", "bool", False),
        _Param("count_include_pad", "bool", True))),
    "flatten": (Flatten, ()),
    "linear": (Linear, (_Param("out_features", "count"), _Param("bias", "bool", True))),
    "batchnorm": (BatchNorm2d, (_Param("eps", "positive", 1e-5),
                                _Param("momentum", "unit", 0.1))),
    "dropout": (Dropout, (_Param("p", "unit", 0.5),)),
}
_ALIASES = {"conv2d": "conv", "maxpool2d": "maxpool", "avgpool2d": "avgpool",
            "batchnorm2d": "batchnorm", "bn": "batchnorm", "fc": "linear"}
LAYER_NAMES = tuple(_LAYERS)
_MAX_NESTING = 4  # parentheses inside a value; padding needs 2
_PAD_MODES = ("zeros", "reflect", "replicate", "circular")


def _is_int(v: object) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _int_pair(v: object, minimum: int) -> bool:
    return (isinstance(v, tuple) and len(v) == 2 and all(_is_int(x) for x in v)
            and min(v) >= minimum)  # type: ignore[type-var]


def _check(kind: str, name: str, v: Any) -> tuple[str, str] | None:
    """None when ``v`` fits ``kind``; else (what is wrong, how to fix it)."""
    if kind == "count":
        if _is_int(v) and v >= 1:
            return None
        return f"`{name}` must be a positive int", f"write e.g. {name}=8"
    if kind in ("pair", "pair_or_none"):
        if (kind == "pair_or_none" and v is None) or (_is_int(v) and v >= 1) or _int_pair(v, 1):
            return None
        return (f"`{name}` must be a positive int or a pair of them",
                f"write e.g. {name}=3 or {name}=(3, 5)")
    if kind == "pad_pair":
        if (_is_int(v) and v >= 0) or _int_pair(v, 0):
            return None
        return f"`{name}` must be an int >= 0 or a pair of them", f"write e.g. {name}=1"
    if kind == "padding":
        if isinstance(v, str) and v.lower() in ("same", "valid"):
            return None
        if ((_is_int(v) and v >= 0) or _int_pair(v, 0) or (
                isinstance(v, tuple) and len(v) == 2 and all(_int_pair(p, 0) for p in v))):
            return None
        return ("`padding` must be an int >= 0, a pair, ((top, bottom), (left, right)), "
                "'same' or 'valid'", "write e.g. padding=2 or padding='same'")
    if kind == "bool":
        return None if isinstance(v, bool) else (f"`{name}` must be true or false",
                                                 f"write {name}=false")
    if kind == "mode":
        if isinstance(v, str) and v in _PAD_MODES:
            return None
        return (f"`{name}` must be one of " + ", ".join(repr(m) for m in _PAD_MODES),
                f"write {name}='reflect'")
    ok_number = isinstance(v, numbers.Real) and not isinstance(v, bool)
    if kind == "positive" and ok_number and v > 0:
        return None
    if kind == "unit" and ok_number and 0 <= v <= 1:
        return None
    bound = "a number > 0" if kind == "positive" else "a number from 0 to 1"
    example = "0.5" if kind == "unit" else "1e-5"
    return f"`{name}` must be {bound}", f"write e.g. {name}={example}"


def _normal(kind: str, v: Any) -> Any:
    """The shortest equivalent form of a value: (3, 3) -> 3, ((1, 1), (2, 2)) -> (1, 2)."""
    if isinstance(v, tuple) and len(v) == 2 and all(isinstance(p, tuple) for p in v):
        if v[0][0] == v[0][1] and v[1][0] == v[1][1]:
            v = (v[0][0], v[1][0])
    if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1] and _is_int(v[0]):
        v = v[0]
    if kind == "padding" and isinstance(v, str):
        v = v.lower()
    if kind in ("positive", "unit") and _is_int(v):
        v = float(v)
    return v


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, str):
        return f"'{v}'"
    if isinstance(v, tuple):
        return "(" + ", ".join(_fmt(x) for x in v) + ")"
    return repr(v)


# --------------------------------------------------------------------------- tokenizer
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<volume>\d+(?:\s*[x\u00d7]\s*\d+)+(?![\w.]))
  | (?P<number>[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?(?![\w.]))
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>'[^'\n]*'|"[^"\n]*")
  | (?P<punct>[(),=|])
""", re.VERBOSE)


@dataclass
class _Tok:
    kind: str
    text: str
    start: int
    end: int


_SHOWN = 120  # longest spec line quoted whole in an error message


def _caret(text: str, start: int, end: int) -> str:
    """The spec line holding ``start``, with ``^^^`` under ``start..end``."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", start)
    line = text[line_start:line_end if line_end >= 0 else len(text)]
    col = start - line_start
    width = max(1, min(end, line_start + len(line)) - start)
    shown = line.replace("\t", " ")
    if len(shown) > _SHOWN:  # a long line: show a window around the mistake, marked with ...
        width = min(width, _SHOWN // 2)
        left = max(0, col - _SHOWN // 4)
        right = min(len(shown), col + width + _SHOWN // 4)
        shown = ("..." if left else "") + shown[left:right] + ("..." if right < len(line) else "")
        col = col - left + (3 if left else 0)
    return f"    {shown}\n    {' ' * col}{'^' * width}"


def _error(text: str, start: int, end: int, where: str, what: str, fix: str | None = None,
           received: str | None = None) -> SpecError:
    err = SpecError(message(where, what, fix, received) + "\n" + _caret(text, start, end))
    err.spec, err.column, err.end = text, start, end  # type: ignore[attr-defined]
    return err


def _tokenize(text: str) -> list[_Tok]:
    toks, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            if ch in "'\"":
                raise _error(text, pos, len(text), "spec", "this string is never closed",
                             f"end it with {ch}, e.g. padding={ch}same{ch}")
            raise _error(text, pos, pos + 1, "spec", f"unexpected character {ch!r}",
                         "a spec holds layer names, numbers, 'strings', ( ) , = and |; "
                         "e.g. '64x64x3 | conv(8, 5, padding=2) | relu'")
        if m.lastgroup != "ws":
            toks.append(_Tok(m.lastgroup or "", m.group(), m.start(), m.end()))
        pos = m.end()
    toks.append(_Tok("end", "", len(text), len(text)))
    return toks


# --------------------------------------------------------------------------- parser
@dataclass
class _Item:
    name: str
    start: int
    end: int
    args: dict[str, Any] = field(default_factory=dict)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.toks, self.i = text, _tokenize(text), 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def fail(self, tok: _Tok, what: str, fix: str | None = None) -> SpecError:
        return _error(self.text, tok.start, max(tok.end, tok.start + 1), "spec", what, fix)

    def take(self, kind: str, text: str | None = None) -> _Tok:
        tok = self.tok
        if tok.kind != kind or (text is not None and tok.text != text):
            want = repr(text) if text else kind
            got = "the end of the spec" if tok.kind == "end" else repr(tok.text)
            raise self.fail(tok, f"expected {want}, found {got}")
        self.i += 1
        return tok

    def spec(self) -> tuple[Shape | None, tuple[int, int] | None, list[_Item]]:
        volume = span = None
        if self.tok.kind in ("volume", "number"):
            tok = self.tok
            volume, span = parse_volume(tok.text, self.text, tok.start), (tok.start, tok.end)
            self.i += 1
            if self.tok.kind == "end":
                return volume, span, []
            self.take("punct", "|")
        items = [self.item()]
        while self.tok.kind != "end":
            if self.tok.text != "|":
                raise self.fail(self.tok, f"expected '|' between layers, found {self.tok.text!r}",
                                "separate layers with |, e.g. 'conv(8, 5) | relu'")
            self.i += 1
            items.append(self.item())
        return volume, span, items

    def item(self) -> _Item:
        tok = self.tok
        if tok.kind != "name":
            got = "nothing" if tok.kind == "end" or tok.text == "|" else repr(tok.text)
            hint = ("the input volume HxWxD goes first, e.g. '64x64x3 | conv(8, 5)'"
                    if tok.kind in ("volume", "number") else
                    "write a layer such as conv(8, 5) or relu, or remove the extra |")
            raise self.fail(tok, f"expected a layer name, found {got}", hint)
        name = _ALIASES.get(tok.text.lower(), tok.text.lower())
        if name not in _LAYERS:
            close = difflib.get_close_matches(tok.text.lower(), list(_LAYERS) + list(_ALIASES), 1)
            fix = (f"did you mean {_ALIASES.get(close[0], close[0])!r}? " if close else "") + \
                "Known layers: " + ", ".join(_LAYERS)
            raise self.fail(tok, f"unknown layer {tok.text!r}", fix)
        self.i += 1
        item = _Item(name, tok.start, tok.end)
        params = _LAYERS[name][1]
        if self.tok.text == "(" and self.tok.kind == "punct":
            self.args(item, params)
        for p in params:
            if p.name not in item.args:
                if p.default is _REQUIRED:
                    usage = ", ".join(q.name for q in params if q.default is _REQUIRED)
                    raise _error(self.text, item.start, item.end, "spec",
                                 f"{name} needs `{p.name}`", f"write {name}({usage}), "
                                 f"e.g. {_EXAMPLES[name]}")
                item.args[p.name] = p.default
        return item

    def args(self, item: _Item, params: tuple[_Param, ...]) -> None:
        self.take("punct", "(")
        positional = True
        n = 0
        while not (self.tok.kind == "punct" and self.tok.text == ")"):
            start = self.tok
            if start.kind == "name" and self.toks[self.i + 1].text == "=":
                key = start.text
                self.i += 2
                match = [p for p in params if p.name == key]
                if not match:
                    names = [p.name for p in params]
                    close = difflib.get_close_matches(key, names, 1)
                    fix = (f"did you mean {close[0]}? " if close else "") + (
                        f"{item.name} takes " + ", ".join(names) if names
                        else f"write {item.name} without arguments")
                    raise self.fail(start, f"{item.name} has no argument `{key}`", fix)
                param = match[0]
                positional = False
            else:
                if not positional:
                    raise self.fail(start, "a positional value after a keyword argument",
                                    "name it too, e.g. stride=2")
                if n >= len(params):
                    raise self.fail(start, f"{item.name} takes at most {len(params)} positional "
                                    "values" if params else f"{item.name} takes no arguments",
                                    f"e.g. {_EXAMPLES[item.name]}")
                param = params[n]
                n += 1
            if param.name in item.args:
                raise self.fail(start, f"`{param.name}` is given twice", "keep one of them")
            vstart = self.tok
            value = self.value()
            problem = _check(param.kind, param.name, value)
            if problem:
                end = self.toks[self.i - 1].end
                raise _error(self.text, vstart.start, end, "spec", f"{item.name}: {problem[0]}",
                             problem[1], f"{param.name}={_fmt(value)}")
            item.args[param.name] = value
            if self.tok.text == ",":
                self.i += 1
            elif self.tok.text != ")":
                raise self.fail(self.tok, f"expected ',' or ')' in {item.name}(...), found "
                                + (repr(self.tok.text) if self.tok.kind != "end" else "the end"),
                                f"e.g. {_EXAMPLES[item.name]}")
        item.end = self.take("punct", ")").end

    def value(self, depth: int = 0) -> Any:
        tok = self.tok
        self.i += 1
        if tok.kind == "number":
            if len(tok.text) > 40:  # also keeps int() far from Python's 4300-digit limit
                raise self.fail(tok, f"this number has {len(tok.text)} characters, more than 40",
                                "write a number of a sensible size, e.g. 8 or 1e-5")
            return float(tok.text) if re.search(r"[.eE]", tok.text) else int(tok.text)
        if tok.kind == "string":
            return tok.text[1:-1]
        if tok.kind == "name" and tok.text in ("true", "True", "false", "False"):
            return tok.text in ("true", "True")
        if tok.kind == "name" and tok.text in ("none", "None"):
            return None
        if tok.kind == "punct" and tok.text == "(":
            if depth >= _MAX_NESTING:
                raise self.fail(tok, f"values nest more than {_MAX_NESTING} deep",
                                "the deepest value is a padding ((top, bottom), (left, right))")
            values = [self.value(depth + 1)]
            while self.tok.text == ",":
                self.i += 1
                if self.tok.text == ")":
                    break
                values.append(self.value(depth + 1))
            self.take("punct", ")")
            return tuple(values)
        self.i -= 1
        if tok.kind == "volume":
            raise self.fail(tok, f"{tok.text!r} is not a value here",
                            "write a size as 5 or a pair as (5, 5)")
        if tok.kind == "name" and tok.text.lower() in ("same", "valid") + _PAD_MODES:
            raise self.fail(tok, f"expected a value, found the bare word {tok.text}",
                            f"quote strings: '{tok.text.lower()}'")
        if tok.kind == "name":
            raise self.fail(tok, f"expected a value, found the name {tok.text!r}",
                            "values are numbers, (tuples), 'strings', true or false; "
                            "nothing in a spec is evaluated")
        got = "the end of the spec" if tok.kind == "end" else repr(tok.text)
        raise self.fail(tok, f"expected a value, found {got}",
                        "values are numbers, (tuples), 'strings', true or false")


_EXAMPLES = {"conv": "conv(8, 5, padding=2)", "relu": "relu", "maxpool": "maxpool(2)",
             "avgpool": "avgpool(2)", "flatten": "flatten", "linear": "linear(10)",
             "batchnorm": "batchnorm", "dropout": "dropout(0.5)"}


# --------------------------------------------------------------------------- volumes
def parse_volume(text: str, spec: str | None = None, offset: int = 0) -> Shape:
    """``"64x64x3"`` (H x W x D, the slides' notation) -> ``(3, 64, 64)`` (C, H, W).

    >>> parse_volume("64x64x3")
    (3, 64, 64)
    """
    src = spec if spec is not None else text
    end = offset + len(text)
    parts = re.split(r"\s*[x\u00d7]\s*", text.strip())
    if not all(p.isdigit() for p in parts) or len(parts) != 3:
        example = f"{parts[0]}x{parts[1]}x1" if len(parts) == 2 and all(
            p.isdigit() for p in parts) else "64x64x3"
        raise _error(src, offset, end, "spec", "the input volume needs three numbers H x W x D "
                     "(height, width, depth)", f"write e.g. {example}", text)
    h, w, d = (int(p) for p in parts)
    if min(h, w, d) < 1:
        raise _error(src, offset, end, "spec", "the input volume's sizes must be positive",
                     "write e.g. 64x64x3", text)
    return (d, h, w)


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
    """The (C, H, W) or (F,) volume that ``layer`` makes of ``shape``, by :mod:`shapes` alone.

    ``padding`` replaces a conv's padding (used to look for the padding that gives a size).
    Raises :class:`ShapeError` / :class:`ArgumentError` with the numbers when it cannot run.
    """
    name = type(layer).__name__
    vol = len(shape) == 3
    if isinstance(layer, Sequential):
        for sub in layer:
            shape = output_shape(sub, shape)
        return shape
    if isinstance(layer, (Conv2d, MaxPool2d, AvgPool2d, BatchNorm2d)) and not vol:
        raise ShapeError(message(name, f"needs a volume H x W x D, but gets {shape[0]} flat values",
                                 "put it before flatten"))
    if isinstance(layer, Conv2d):
        label = layer.label
        pad = layer.padding if padding is None else padding
        geo = shapes.conv_geometry((1,) + tuple(shape), layer.weight.shape, layer.stride, pad,
                                   layer.dilation, layer.groups, label)
        if layer.padding_mode in ("reflect", "circular"):
            (pt, pb), (pl, pr) = geo.padding
            limit = (shape[1] - 1, shape[2] - 1) if layer.padding_mode == "reflect" else shape[1:]
            if max(pt, pb) > limit[0] or max(pl, pr) > limit[1]:
                raise ShapeError(message(label, f"{layer.padding_mode} padding {geo.padding} does "
                                         f"not fit an input of {shape[1]}x{shape[2]}",
                                         "use less padding or padding_mode='zeros'"))
        return (layer.out_channels,) + geo.out_hw
    if isinstance(layer, (MaxPool2d, AvgPool2d)):
        k = layer.kernel_size
        dil = layer.extra.get("dilation", 1)
        *_, out = shapes.pool_geometry(shape[1:], k, layer.stride, layer.padding, dil,
                                       layer.extra["ceil_mode"], f"{name}({k[0]}x{k[1]})")
        return (shape[0],) + out
    if isinstance(layer, BatchNorm2d):
        if shape[0] != layer.num_features:
            raise ShapeError(message(f"BatchNorm2d({layer.num_features})",
                                     f"expects {layer.num_features} channels, gets {shape[0]}",
                                     f"build BatchNorm2d({shape[0]})"))
        return shape
    if isinstance(layer, Flatten):
        if (layer.start_dim, layer.end_dim) != (1, -1):
            raise SpecError(message("Flatten", "only flatten(start_dim=1, end_dim=-1) is supported "
                                    "here", "use nn.Flatten()"))
        return (math.prod(shape),)
    if isinstance(layer, Linear):
        if vol:
            raise ShapeError(message(f"Linear({layer.in_features} -> {layer.out_features})",
                                     f"needs flat values, but gets a volume {format_volume(shape)}",
                                     f"put flatten before it ({math.prod(shape)} values)"))
        if shape[0] != layer.in_features:
            raise ShapeError(message(f"Linear({layer.in_features} -> {layer.out_features})",
                                     f"expects {layer.in_features} input features, gets {shape[0]}",
                                     f"build it with in_features={shape[0]}"))
        return (layer.out_features,)
    if isinstance(layer, (ReLU, Dropout)) or name == "Identity":
        return shape
    raise SpecError(message(name, "this layer type is not known to the spec language",
                            "use " + ", ".join(_LAYERS)))


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
    shape: Shape | None = volume
    layers, texts = [], []
    for k, item in enumerate(items):
        where = f"spec layer {k} ({item.name})"
        if shape is None and item.name in ("conv", "linear", "batchnorm"):
            what = {"conv": "its kernel depth", "linear": "in_features",
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
            err.partial = Sequential(*layers)  # type: ignore[attr-defined]
            err.partial.input_shape = volume  # type: ignore[attr-defined]
            err.layer_index, err.item_text = k, spec[item.start:item.end]  # type: ignore[attr-defined]
            raise err from None
        layers.append(layer)
        texts.append(_item_text(item.name, item.args))
    model = Sequential(*layers)
    model.spec = " | ".join(([format_volume(volume)] if volume else []) + texts)
    model.input_shape = volume
    return model


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
    if isinstance(layer, ReLU):
        return "relu"
    if isinstance(layer, Flatten) and (layer.start_dim, layer.end_dim) == (1, -1):
        return "flatten"
    raise SpecError(message("to_spec", f"{name} has no spec form",
                            "build the model from " + ", ".join(_LAYERS), repr(layer)[:80]))


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
