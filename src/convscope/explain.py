"""Explain a model in the slides' words: volumes, kernels, feature maps, with its own numbers.

Everything here is computed by :mod:`convscope.shapes` (through
:func:`convscope.spec.output_shape`); no forward pass is run, so a model of any size is
explained instantly, and a model that cannot run is explained up to the layer that breaks.

>>> e = explain("64x64x3 | conv(8, 5, padding=2) | relu | conv(16, 5, padding=2)")
>>> e.output_shape, e.rows[0]["operation"]
((16, 64, 64), '8 kernels of 5x5x3, padding 2, stride 1')
>>> e.check("62x62x16") is None
False
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import shapes
from .errors import ArgumentError, ConvscopeError, SpecError, message
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
from .spec import as_volume, format_volume, output_shape, parse, parse_volume

__all__ = ["explain", "Explanation", "conv_formula"]

Shape = tuple[int, ...]
_WIDTH = 92  # text width of the narration
_OP_WIDTH = 42  # the operation column wraps beyond this


# --------------------------------------------------------------------------- wording
def _vol(shape: Shape | None) -> str:
    return format_volume(shape) if shape is not None else "?"


def _hw(pair: tuple[int, int]) -> str:
    return f"{pair[0]}x{pair[1]}"


def _pad_text(pad: Any) -> str:
    if isinstance(pad, str):
        return f"padding '{pad}'"
    (t, b), (left, r) = pad
    if t == b == left == r:
        return f"padding {t}" if t else "no padding"
    if t == b and left == r:
        return f"padding ({t}, {left})"
    if (t, b) == (left, r):
        return f"padding {t} before, {b} after"
    return f"padding top {t}, bottom {b}, left {left}, right {r}"


def _conv_pad(layer: Conv2d, shape: Shape) -> tuple[tuple[int, int], tuple[int, int]]:
    geo = shapes.conv_geometry((1,) + tuple(shape), layer.weight.shape, layer.stride,
                               layer.padding, layer.dilation, layer.groups, layer.label)
    return geo.padding


def conv_formula(size: int, k: int, stride: int, pad: tuple[int, int], dilation: int = 1,
                 ceil: bool = False) -> str:
    """The output-size formula with the numbers filled in, as on the slides.

    >>> conv_formula(64, 5, 1, (2, 2))
    '(64 + 2*2 - 5)/1 + 1 = 64'
    >>> conv_formula(64, 5, 1, (0, 0))
    '(64 - 5)/1 + 1 = 60'
    >>> conv_formula(64, 5, 2, (1, 1))
    'floor((64 + 2*1 - 5)/2) + 1 = 31'
    """
    before, after = pad
    expr = str(size)
    if before == after and before:
        expr += f" + 2*{before}"
    elif before or after:
        expr += f" + {before} + {after}"
    expr += f" - {k}" if dilation == 1 else f" - {dilation}*({k} - 1) - 1"
    span = size + before + after - dilation * (k - 1) - 1
    if ceil:
        out = -(-span // stride) + 1
        text = f"ceil(({expr})/{stride}) + 1"
    else:
        out = span // stride + 1
        text = f"({expr})/{stride} + 1" if span % stride == 0 else f"floor(({expr})/{stride}) + 1"
    return f"{text} = {out}"


def _formulas(layer: Module, shape: Shape, out: Shape,
              pad: tuple[tuple[int, int], tuple[int, int]] | None = None) -> str:
    """Height and width formulas of a conv or pool (one when they read the same)."""
    if isinstance(layer, Conv2d):
        pad = pad or _conv_pad(layer, shape)
        k, s, d, ceil = layer.kernel_size, layer.stride, layer.dilation, (False, False)
    else:
        p = layer.padding
        pad = pad or ((p[0], p[0]), (p[1], p[1]))
        k, s = layer.kernel_size, layer.stride
        d = layer.extra.get("dilation", (1, 1))
        ceil = (layer.extra["ceil_mode"],) * 2
    fh = conv_formula(shape[1], k[0], s[0], pad[0], d[0], ceil[0])
    fw = conv_formula(shape[2], k[1], s[1], pad[1], d[1], ceil[1])
    return fh if fh == fw else f"height {fh}, width {fw}"


def _slide_text(layer: Conv2d, shape: Shape) -> str:
    """How a conv's kernels slide: ``"padding 2, stride 1"`` (plus dilation when used)."""
    try:
        pad = _pad_text(_conv_pad(layer, shape) if len(shape) == 3 else layer.padding)
    except ConvscopeError:
        pad = _pad_text(layer.padding)
    if layer.padding_mode != "zeros":
        pad = f"{layer.padding_mode} {pad}"
    s = layer.stride
    text = f"{pad}, stride {s[0] if s[0] == s[1] else _hw(s)}"
    if layer.dilation != (1, 1):
        d = layer.dilation
        text += f", dilation {d[0] if d[0] == d[1] else _hw(d)}"
    return text


def _operation(layer: Module, shape: Shape, out: Shape | None) -> str:
    if isinstance(layer, Conv2d):
        k, g = layer.kernel_size, layer.groups
        text = f"{layer.out_channels} kernel{'s' * (layer.out_channels > 1)} of " \
               f"{k[0]}x{k[1]}x{layer.in_channels // g}"
        if g > 1:
            text += f" in {g} groups"
        text += ", " + _slide_text(layer, shape)
        return text + ("" if layer.bias is not None else ", no bias")
    if isinstance(layer, (MaxPool2d, AvgPool2d)):
        kind = "max" if isinstance(layer, MaxPool2d) else "average"
        s, p = layer.stride, layer.padding
        text = f"{kind} pool {_hw(layer.kernel_size)}, stride {s[0] if s[0] == s[1] else _hw(s)}"
        if p != (0, 0):
            text += f", padding {p[0] if p[0] == p[1] else p}"
        for name, value in layer.extra.items():
            if value != layer.defaults[name]:
                text += f", {name}={value}"
        return text
    if isinstance(layer, ReLU):
        return "ReLU: max(x, 0) per value"
    if isinstance(layer, Flatten):
        return f"flatten {_vol(shape)} -> {math.prod(shape)} values"
    if isinstance(layer, Linear):
        return f"linear {layer.in_features} -> {layer.out_features}" + (
            "" if layer.bias is not None else ", no bias")
    if isinstance(layer, BatchNorm2d):
        return f"batch norm, {layer.num_features} channels"
    if isinstance(layer, Dropout):
        return f"dropout p={layer.p} (training only)"
    return type(layer).__name__


def _macs(layer: Module, shape: Shape, out: Shape) -> int:
    if isinstance(layer, Conv2d):
        kh, kw = layer.kernel_size
        return math.prod(out) * (layer.in_channels // layer.groups) * kh * kw
    if isinstance(layer, Linear):
        return layer.in_features * layer.out_features
    if isinstance(layer, BatchNorm2d):
        return math.prod(shape)
    return 0


def _window(layer: Module) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
    """(kernel, stride, dilation) per axis, for the receptive field; None: sees everything."""
    if isinstance(layer, Conv2d):
        k, s, d = layer.kernel_size, layer.stride, layer.dilation
    elif isinstance(layer, (MaxPool2d, AvgPool2d)):
        k, s, d = layer.kernel_size, layer.stride, layer.extra.get("dilation", (1, 1))
    elif isinstance(layer, (Flatten, Linear)):
        return None
    else:
        k = s = d = (1, 1)
    return (k[0], s[0], d[0]), (k[1], s[1], d[1])


def _walk(model: Module, prefix: str = "") -> Iterator[tuple[str, Module]]:
    if isinstance(model, Sequential):
        for name, sub in model._modules.items():
            yield from _walk(sub, f"{prefix}.{name}" if prefix else name)
    else:
        yield prefix or "0", model


def _num(n: int) -> str:
    return f"{n:,}"


def _short(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return str(int(n))


# --------------------------------------------------------------------------- the explanation
@dataclass
class Explanation:
    """Rows (one per layer), the output volume, an error (or None) and the narration."""

    input_shape: Shape
    rows: list[dict[str, Any]] = field(default_factory=list)
    output_shape: Shape | None = None
    error: str | None = None
    narration: list[str] = field(default_factory=list)
    layers: list[tuple[str, Module]] = field(default_factory=list, repr=False)

    @property
    def total_params(self) -> int:
        return sum(r["params"] for r in self.rows)

    @property
    def total_macs(self) -> int:
        return sum(r["macs"] for r in self.rows)

    # ------------------------------------------------------------------ text
    def table(self) -> str:
        head = ("#", "input", "operation", "output", "params", "multiply-adds", "RF")
        lines: list[tuple[str, ...]] = []
        for r in self.rows:
            op = textwrap.wrap(r["operation"], _OP_WIDTH) or [""]
            out = r["output_text"] if r["output"] is not None else "ERROR"
            lines.append((r["index"], r["input_text"], op[0], out, _num(r["params"]),
                          _num(r["macs"]) if r["output"] is not None else "", r["rf_text"]))
            lines.extend(("", "", more, "", "", "", "") for more in op[1:])
        total = ("", "total", "", _vol(self.output_shape) if not self.error else "",
                 _num(self.total_params), _num(self.total_macs), "")
        widths = [max(len(row[i]) for row in [head, total, *lines]) for i in range(len(head))]
        right = {4, 5}

        def fmt(row: tuple[str, ...]) -> str:
            cells = [c.rjust(w) if i in right else c.ljust(w)
                     for i, (c, w) in enumerate(zip(row, widths, strict=True))]
            return "  ".join(cells).rstrip()

        rule = "-" * len(fmt(tuple("-" * w for w in widths)))
        return "\n".join([fmt(head), rule, *(fmt(row) for row in lines), rule, fmt(total)])

    def render(self, include_error: bool = True) -> str:
        parts = [f"input volume {_vol(self.input_shape)} (H x W x D: height x width x depth)", "",
                 self.table(), ""]
        flops = 2 * self.total_macs
        notes = (f"params = weights + biases. multiply-adds: one multiply-add counts once; "
                 f"FLOPs = 2 x multiply-adds = {_short(flops)}FLOPs here. Bias additions, "
                 "ReLU, pooling and dropout are not counted; batch norm counts 1 per value. "
                 "RF = receptive field: the input pixels that one output value sees.")
        parts.append(textwrap.fill(notes, _WIDTH))
        if self.narration:
            parts += ["", "How it works, with this model's numbers:"]
            for p in self.narration:
                lead = "    " if p.startswith("- ") else "  "
                text = textwrap.fill(p, _WIDTH, initial_indent=lead,
                                     subsequent_indent=lead + "  ")
                parts.append(text.replace("\u00a0", " "))
        if self.error and include_error:
            first, _, caret = self.error.partition("\n")
            parts += ["", f"The model breaks at layer {self.rows[-1]['index']}:",
                      textwrap.fill(first, _WIDTH)] + ([caret] if caret else [])
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.render()

    # ------------------------------------------------------------------ --expect
    def check(self, expect: str | Sequence[int]) -> str | None:
        """None when the output volume is ``expect`` ("HxWxD" or (C, H, W)); else why not.

        The message gives the real volume, the formula with numbers, and (when one exists)
        the padding of a conv layer that would make the claim true.
        """
        want = _expect_shape(expect)
        if self.error:
            return f"the model does not run, so it has no output volume: {self.error}"
        out = self.output_shape
        if out == want:
            return None
        said = f"the output is {_vol(out)}, not {_vol(want)}"
        if out is None or len(want) != len(out):
            return said
        if len(out) == 1:
            return said + ": the last linear layer sets the number of values"
        reasons = []
        if want[0] != out[0]:
            last = [(i, layer) for i, layer in self.layers if isinstance(layer, Conv2d)]
            reasons.append(f"the depth {out[0]} is the number of kernels of the last conv"
                           + (f" (layer {last[-1][0]}); conv({want[0]}, ...) gives depth "
                              f"{want[0]}" if last else ""))
        if want[1:] != out[1:]:
            reasons.append(self._spatial_reason(want))
        return said + ": " + "; ".join(reasons)

    def _spatial_reason(self, want: Shape) -> str:
        fix = self._padding_fix(want)
        if fix is not None:
            j, pad = fix
            row, layer = self.rows[j], self.layers[j][1]
            formula = _formulas(layer, row["input"], row["output"])
            p = pad[0] if pad[0] == pad[1] else pad
            new = (self.output_shape[0], want[1], want[2])  # type: ignore[index]
            return (f"layer {row['index']} gives {formula}; padding={p} at layer "
                    f"{row['index']} gives {_vol(new)}")
        changing = [j for j, r in enumerate(self.rows) if r["output"] is not None
                    and len(r["input"]) == 3 and r["input"][1:] != r["output"][1:]]
        if not changing:
            return "no layer changes the height and width"
        j = changing[-1]
        row = self.rows[j]
        formula = _formulas(self.layers[j][1], row["input"], row["output"])
        return (f"layer {row['index']} gives {formula}; "
                "no single padding change gives the expected size: change kernel sizes, "
                "strides or pooling")

    def _padding_fix(self, want: Shape) -> tuple[int, tuple[int, int]] | None:
        """(row, (ph, pw)): a symmetric padding of one conv that makes the output ``want``."""
        for j in range(len(self.rows) - 1, -1, -1):
            layer = self.layers[j][1]
            if not isinstance(layer, Conv2d):
                continue
            found = []
            for axis in (0, 1):
                # more padding than the (dilated) kernel only adds outputs made of zeros
                reach = layer.dilation[axis] * (layer.kernel_size[axis] - 1)
                hit = next((p for p in range(reach + 1) if self._spatial(j, axis, p, want)), None)
                found.append(hit)
            if None not in found:
                return j, (found[0], found[1])  # type: ignore[return-value]
        return None

    def _spatial(self, j: int, axis: int, p: int, want: Shape) -> bool:
        """Whether padding ``p`` along ``axis`` at row ``j`` gives ``want`` along that axis."""
        shape = self.rows[j]["input"]
        layer = self.layers[j][1]
        pad = list(_conv_pad(layer, shape))  # type: ignore[arg-type]
        pad[axis] = (p, p)
        try:
            shape = output_shape(layer, shape, padding=(pad[0], pad[1]))
            for _, later in self.layers[j + 1:]:
                shape = output_shape(later, shape)
        except ConvscopeError:
            return False
        return len(shape) == 3 and shape[1 + axis] == want[1 + axis]


def _expect_shape(expect: str | Sequence[int]) -> Shape:
    if isinstance(expect, str):
        text = expect.strip()
        if re.fullmatch(r"\d+", text):
            return (int(text),)
        try:
            return parse_volume(text)
        except SpecError:
            raise ArgumentError(message("--expect", f"{expect!r} is not a volume",
                                        "write it as H x W x D, e.g. 64x64x8 (or a number of "
                                        "values, e.g. 10)")) from None
    shape = tuple(expect) if isinstance(expect, (tuple, list, np.ndarray)) else ()
    if len(shape) not in (1, 3) or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in shape):
        raise ArgumentError(message("--expect", "the expected output must be a volume",
                                    "pass 'HxWxD' (e.g. '64x64x8'), (C, H, W) of positive ints, "
                                    "or a number of values such as '10'", f"{expect!r}"))
    return tuple(int(v) for v in shape)


# --------------------------------------------------------------------------- narration
def _narrate(rows: list[dict[str, Any]], layers: list[tuple[str, Module]]) -> list[str]:
    out: list[str] = []
    detailed = False
    # a spec broken at layer k has a row for k but no layer object: zip stops before it
    for j, (row, (_, layer)) in enumerate(zip(rows, layers, strict=False)):
        if row["output"] is None:
            break
        i, x, y = row["index"], row["input"], row["output"]
        if isinstance(layer, Conv2d):
            k, c = layer.kernel_size, layer.in_channels // layer.groups
            n = k[0] * k[1] * c
            kern = f"{k[0]}x{k[1]}x{c}"
            bias = " + bias" if layer.bias is not None else " (no bias)"
            depth = (f"kernel depth = input depth = {c}" if layer.groups == 1 else
                     f"kernel depth = input depth / groups = {x[0]}/{layer.groups}")
            formula = _formulas(layer, x, y).replace(" ", "\u00a0")
            nxt = next(((ri, m) for (ri, m) in layers[j + 1:] if isinstance(m, Conv2d)), None)
            if not detailed:
                detailed = True
                out.append(f"Layer {i} (conv), input volume {_vol(x)}:")
                out.append(f"- Each kernel is {kern}: {depth}.")
                out.append(f"- At each position a kernel gives one value: its dot product with "
                           f"the {kern} patch under it, {n} multiplies{bias}.")
                out.append(f"- Sliding the kernel over the input ({_slide_text(layer, x)}) "
                           f"gives a feature map of {_hw(y[1:])}: {formula}.")
                out.append(f"- One kernel gives one feature map of depth 1; {y[0]} kernels "
                           f"give depth {y[0]}: the output is a volume of {_vol(y)}.")
                if nxt is not None:
                    nk = nxt[1].kernel_size
                    out.append(f"- So the next conv (layer {nxt[0]}) has kernels of "
                               f"{nk[0]}x{nk[1]}x{nxt[1].in_channels // nxt[1].groups}: as deep "
                               f"as this output.")
                else:
                    out.append(f"- A conv after this layer would need kernels of depth {y[0]}: "
                               "as deep as this output.")
            else:
                out.append(f"Layer {i} (conv): {y[0]} kernels of {kern} ({depth}); each value is "
                           f"a dot product of {n} multiplies{bias}; {formula}, so {_vol(x)} -> "
                           f"{_vol(y)}.")
        elif isinstance(layer, ReLU):
            out.append(f"Layer {i} (ReLU): negative values become 0; the volume keeps its size "
                       f"{_vol(y)}.")
        elif isinstance(layer, (MaxPool2d, AvgPool2d)):
            what = "largest value" if isinstance(layer, MaxPool2d) else "mean"
            formula = _formulas(layer, x, y).replace(" ", "\u00a0")
            out.append(f"Layer {i} ({_operation(layer, x, y).split(',')[0]}): each "
                       f"{_hw(layer.kernel_size)} window gives its {what}, per depth slice; "
                       f"{formula}, so {_vol(x)} -> {_vol(y)}.")
        elif isinstance(layer, Flatten):
            out.append(f"Layer {i} (flatten): the {_vol(x)} volume becomes one list of "
                       f"{y[0]} values.")
        elif isinstance(layer, Linear):
            out.append(f"Layer {i} (linear): each of the {y[0]} outputs is a weighted sum of "
                       f"all {x[0]} values ({x[0]} multiplies" + (" + bias)." if layer.bias
                                                                  is not None else ")."))
        elif isinstance(layer, BatchNorm2d):
            out.append(f"Layer {i} (batch norm): each of the {x[0]} depth slices is shifted and "
                       "scaled to mean 0, variance 1, then by a learned scale and shift.")
        elif isinstance(layer, Dropout):
            out.append(f"Layer {i} (dropout): while training, each value is zeroed with "
                       f"probability {layer.p}; at inference it passes unchanged.")
    return out


# --------------------------------------------------------------------------- explain
def explain(model: Module | str, input_shape: Sequence[int] | str | None = None) -> Explanation:
    """Explain ``model`` layer by layer, from shapes alone (no forward pass).

    Parameters
    ----------
    model : Sequential, a single layer, or a spec string such as ``"64x64x3 | conv(8, 5)"``
    input_shape : (C, H, W) or "HxWxD", optional
        Defaults to ``model.input_shape`` (set by :func:`convscope.parse`).

    Returns
    -------
    Explanation
        ``.rows`` (one dict per layer: index, input, operation, output, params, macs, rf...),
        ``.output_shape``, ``.error`` (None, or why layer k cannot run), ``str()`` (table and
        narration) and ``.check("HxWxD")``.
    """
    broken: tuple[str, str, str] | None = None  # (index, operation text, message)
    if isinstance(model, str):
        try:
            model = parse(model, input_shape=input_shape)
        except SpecError as exc:
            partial = getattr(exc, "partial", None)
            if partial is None or partial.input_shape is None:
                raise
            broken = (str(exc.layer_index), exc.item_text, str(exc))  # type: ignore[attr-defined]
            model = partial
            input_shape = partial.input_shape
    if not isinstance(model, Module):
        raise ArgumentError(message("explain", "expected a model, a layer or a spec string",
                                    "pass e.g. '64x64x3 | conv(8, 5)'", type(model).__name__))
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
    if input_shape is None:
        raise ArgumentError(message("explain", "the input volume is unknown",
                                    "pass input_shape=(3, 64, 64) (or --input 64x64x3 on the "
                                    "command line), or build the model with cs.parse"))
    shape = as_volume(input_shape)
    result = Explanation(input_shape=shape)
    windows: list[list[tuple[int, int, int]]] | None = [[], []]
    for index, layer in _walk(model):
        row: dict[str, Any] = {"index": index, "layer": type(layer).__name__, "input": shape,
                               "input_text": _vol(shape)}
        params = sum(p.size for p in layer.parameters())
        try:
            out = output_shape(layer, shape)
        except ConvscopeError as exc:
            row.update(operation=_operation(layer, shape, None), output=None, output_text="",
                       params=params, macs=0, rf=None, rf_text="")
            result.rows.append(row)
            result.layers.append((index, layer))
            result.error = f"layer {index} ({row['layer']}), input {_vol(shape)}: {exc}"
            break
        win = _window(layer)
        if win is None or windows is None:
            windows = None
            rf: tuple[int, int] | None = None
        else:
            windows[0].append(win[0])
            windows[1].append(win[1])
            rf = (shapes.receptive_field(windows[0])[-1][0],
                  shapes.receptive_field(windows[1])[-1][0])
        row.update(operation=_operation(layer, shape, out), output=out, output_text=_vol(out),
                   params=params, macs=_macs(layer, shape, out), rf=rf,
                   rf_text=_hw(rf) if rf else "all",
                   formula=_formulas(layer, shape, out) if isinstance(
                       layer, (Conv2d, MaxPool2d, AvgPool2d)) else "")
        result.rows.append(row)
        result.layers.append((index, layer))
        shape = out
    else:
        result.output_shape = shape
    if broken is not None:
        result.rows.append({"index": broken[0], "layer": broken[1], "input": shape,
                            "input_text": _vol(shape), "operation": broken[1], "output": None,
                            "output_text": "", "params": 0, "macs": 0, "rf": None,
                            "rf_text": ""})
        result.output_shape = None
        result.error = broken[2]
    result.narration = _narrate(result.rows, result.layers)
    return result
