"""Reading the model-spec language: the layer table, the tokenizer and the parser.

:mod:`convscope.spec` builds models from specs and writes specs of models; this module holds
the text side it uses. The layer table says which arguments each layer takes, their kinds and
defaults, and how a value is checked (:func:`_check`), shortened (:func:`_normal`) and written
back (:func:`_fmt`). The hand-written tokenizer splits a spec into tokens (nothing in it is
ever evaluated as Python); every mistake becomes a :class:`~convscope.errors.SpecError` that
quotes the spec line with a caret under the offending part (:func:`_error`). The parser turns
the tokens into an optional input volume (:func:`parse_volume`) and a list of layer items
with checked arguments.
"""

from __future__ import annotations

import difflib
import numbers
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import SpecError, message
from .nn import (
    GELU,
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm2d,
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
    Sigmoid,
    SiLU,
    Tanh,
    Upsample,
)

__all__ = ["parse_volume", "LAYER_NAMES"]

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
    "convt": (ConvTranspose2d, (
        _Param("out_channels", "count"), _Param("kernel_size", "pair"),
        _Param("stride", "pair", 1), _Param("padding", "pad_pair", 0),
        _Param("output_padding", "pad_pair", 0), _Param("groups", "count", 1),
        _Param("bias", "bool", True), _Param("dilation", "pair", 1))),
    "upsample": (Upsample, (_Param("scale_factor", "positive", 2.0),
                            _Param("mode", "resize", "nearest"))),
    "avgpool_to": (AdaptiveAvgPool2d, (_Param("output_size", "pair"),)),
    "globalavgpool": (AdaptiveAvgPool2d, ()),
    "relu6": (ReLU6, ()),
    "leakyrelu": (LeakyReLU, (_Param("negative_slope", "unit", 0.01),)),
    "sigmoid": (Sigmoid, ()),
    "tanh": (Tanh, ()),
    "gelu": (GELU, ()),
    "silu": (SiLU, ()),
    "hardswish": (Hardswish, ()),
    "hardsigmoid": (Hardsigmoid, ()),
    "identity": (Identity, ()),
}
BRANCHES = ("residual", "concat")
"""Items that hold chains: ``residual(<body>)``, ``residual(<body>; <shortcut>)`` and
``concat(<branch>; <branch>; ...)`` (branches separated by ``;``)."""
_ALIASES = {"conv2d": "conv", "maxpool2d": "maxpool", "avgpool2d": "avgpool",
            "batchnorm2d": "batchnorm", "bn": "batchnorm", "fc": "linear",
            "convtranspose": "convt", "convtranspose2d": "convt", "deconv": "convt",
            "adaptiveavgpool": "avgpool_to", "gap": "globalavgpool", "swish": "silu",
            "leaky_relu": "leakyrelu", "res": "residual", "cat": "concat"}
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
    if kind == "resize":
        if v in ("nearest", "bilinear"):
            return None
        return "`mode` must be 'nearest' or 'bilinear'", "write mode='bilinear'"
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
  | (?P<punct>[(),=|;])
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
    branches: list[list[_Item]] = field(default_factory=list)  # residual, concat


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
        return volume, span, self.chain(("end",))

    def chain(self, stops: tuple[str, ...], depth: int = 0) -> list[_Item]:
        """Items separated by ``|`` up to a token in ``stops`` (the end, or ``;``/``)``)."""
        items = [self.item(depth)]
        while not (self.tok.kind == "end" if "end" in stops else self.tok.text in stops):
            if self.tok.text != "|":
                got = "the end of the spec" if self.tok.kind == "end" else repr(self.tok.text)
                if "end" in stops:
                    raise self.fail(self.tok, f"expected '|' between layers, found {got}",
                                    "separate layers with |, e.g. 'conv(8, 5) | relu'")
                raise self.fail(self.tok, f"expected '|', ';' or ')' in a branch, found {got}",
                                "write e.g. residual(conv(8, 3, padding=1) | relu)")
            self.i += 1
            items.append(self.item(depth))
        return items

    def branches(self, item: _Item, depth: int) -> None:
        """``(<chain>; <chain>; ...)`` after residual or concat."""
        if depth >= _MAX_NESTING:
            raise self.fail(self.tok, f"branches nest more than {_MAX_NESTING} deep",
                            "flatten the model, or build it in Python")
        if not (self.tok.kind == "punct" and self.tok.text == "("):
            raise _error(self.text, item.start, item.end, "spec",
                         f"{item.name} needs its branches in parentheses",
                         f"write e.g. {_EXAMPLES[item.name]}")
        self.i += 1
        item.branches.append(self.chain((";", ")"), depth + 1))
        while self.tok.text == ";":
            self.i += 1
            item.branches.append(self.chain((";", ")"), depth + 1))
        item.end = self.take("punct", ")").end
        if item.name == "residual" and len(item.branches) > 2:
            raise _error(self.text, item.start, item.end, "spec", "residual takes a body and at "
                         "most one shortcut", "write residual(<body>) or residual(<body>; "
                         "<shortcut>); use concat(...) to join more branches")

    def item(self, depth: int = 0) -> _Item:
        tok = self.tok
        if tok.kind != "name":
            got = "nothing" if tok.kind == "end" or tok.text == "|" else repr(tok.text)
            hint = ("the input volume HxWxD goes first, e.g. '64x64x3 | conv(8, 5)'"
                    if tok.kind in ("volume", "number") else
                    "write a layer such as conv(8, 5) or relu, or remove the extra |")
            raise self.fail(tok, f"expected a layer name, found {got}", hint)
        name = _ALIASES.get(tok.text.lower(), tok.text.lower())
        if name in BRANCHES:
            self.i += 1
            item = _Item(name, tok.start, tok.end)
            self.branches(item, depth)
            return item
        if name not in _LAYERS:
            close = difflib.get_close_matches(tok.text.lower(), list(_LAYERS) + list(_ALIASES)
                                              + list(BRANCHES), 1)
            fix = (f"did you mean {_ALIASES.get(close[0], close[0])!r}? " if close else "") + \
                "Known layers: " + ", ".join(_LAYERS) + "; branches: " + ", ".join(BRANCHES)
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
             "batchnorm": "batchnorm", "dropout": "dropout(0.5)",
             "convt": "convt(16, 2, stride=2)", "upsample": "upsample(2, mode='bilinear')",
             "avgpool_to": "avgpool_to(1)", "leakyrelu": "leakyrelu(0.1)",
             "residual": "residual(conv(16, 3, padding=1) | batchnorm | relu)",
             "concat": "concat(identity; conv(8, 1))"}
_EXAMPLES.update({k: k for k in _LAYERS if k not in _EXAMPLES})


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
