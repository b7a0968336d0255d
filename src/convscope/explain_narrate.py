"""The narration of :func:`convscope.explain`: each node told in the slides' words.

The first convolution is taken apart step by step (kernel depth, one value per position,
the output-size formula, depth = number of kernels); every later node gets one sentence
with its own numbers. Residual additions and concatenations say which branches meet.
"""

from __future__ import annotations

import math
from typing import Any

from .nn import AvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU
from .spec import format_volume

__all__ = ["narrate", "conv_formula", "formulas"]

Shape = tuple[int, ...]


def _vol(shape: Shape | None) -> str:
    return format_volume(shape) if shape is not None else "?"


def _hw(pair: tuple[int, int]) -> str:
    return f"{pair[0]}x{pair[1]}"


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


def formulas(layer: Any, shape: Shape, pad: Any = None) -> str:
    """Height and width formulas of a conv or pool on a (C, H, W) input (one when they agree)."""
    if isinstance(layer, Conv2d):
        pad = pad or layer.geometry((1, *shape)).padding
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


def _conv_lines(i: str, layer: Conv2d, x: Shape, y: Shape, first: bool,
                nxt: tuple[str, Conv2d] | None) -> list[str]:
    k, c = layer.kernel_size, layer.in_channels // layer.groups
    n = k[0] * k[1] * c
    kern = f"{k[0]}x{k[1]}x{c}"
    bias = " + bias" if layer.bias is not None else " (no bias)"
    if layer.groups == 1:
        depth = f"kernel depth = input depth = {c}"
    elif layer.groups == layer.in_channels:
        depth = f"depthwise: each of the {x[0]} kernels sees one input channel"
    else:
        depth = f"kernel depth = input depth / groups = {x[0]}/{layer.groups}"
    formula = formulas(layer, x).replace(" ", "\u00a0")
    if not first:
        return [f"Layer {i} (conv): {y[0]} kernels of {kern} ({depth}); each value is a dot "
                f"product of {n} multiplies{bias}; {formula}, so {_vol(x)} -> {_vol(y)}."]
    out = [f"Layer {i} (conv), input volume {_vol(x)}:",
           f"- Each kernel is {kern}: {depth}.",
           f"- At each position a kernel gives one value: its dot product with the {kern} patch "
           f"under it, {n} multiplies{bias}.",
           f"- Sliding the kernel over the input ({layer.slide_text((1, *x))}) gives a feature "
           f"map of {_hw(y[1:])}: {formula}.",
           f"- One kernel gives one feature map of depth 1; {y[0]} kernels give depth {y[0]}: "
           f"the output is a volume of {_vol(y)}."]
    if nxt is not None:
        nk = nxt[1].kernel_size
        out.append(f"- So the next conv (layer {nxt[0]}) has kernels of {nk[0]}x{nk[1]}x"
                   f"{nxt[1].in_channels // nxt[1].groups}: as deep as this output.")
    else:
        out.append(f"- A conv after this layer would need kernels of depth {y[0]}: as deep as "
                   "this output.")
    return out


def _sources(row: dict[str, Any]) -> list[str]:
    """``layer 47 (layer2.1.bn2)`` for each input of a join."""
    return [f"layer {f} ({name})" if f != name and f != "input" else f"the {name}"
            for f, name in zip(row["from"], row["inputs"], strict=False)]


def narrate(rows: list[dict[str, Any]], brief: bool = False) -> list[str]:
    """One paragraph per row that has an output (see the module docstring).

    ``brief`` (graphs): every conv and every join is told, other kinds only the first time.
    """
    out: list[str] = []
    detailed = False
    told: set[str] = set()
    for k, row in enumerate(rows):
        if row["output"] is None:
            break
        i, x, y, layer = row["index"], row["input"], row["output"], row.get("module")
        op = row.get("op", "")
        if brief and op not in ("conv2d", "add", "cat") and op in told:
            continue
        told.add(op)
        if isinstance(layer, Conv2d) and len(x) == 3:
            reached = {row["name"]}
            nxt = None
            for later in rows[k + 1:]:  # the first conv fed by this one's output
                if reached.intersection(later.get("inputs", ())):
                    if isinstance(later.get("module"), Conv2d):
                        nxt = (later["index"], later["module"])
                        break
                    reached.add(later["name"])
            out += _conv_lines(i, layer, x, y, not detailed, nxt)
            detailed = True
        elif isinstance(layer, ReLU) or op == "relu":
            out.append(f"Layer {i} (ReLU): negative values become 0; the volume keeps its size "
                       f"{_vol(y)}.")
        elif isinstance(layer, (MaxPool2d, AvgPool2d)):
            what = "largest value" if isinstance(layer, MaxPool2d) else "mean"
            formula = formulas(layer, x).replace(" ", "\u00a0")
            out.append(f"Layer {i} ({row['operation'].split(',')[0]}): each "
                       f"{_hw(layer.kernel_size)} window gives its {what}, per depth slice; "
                       f"{formula}, so {_vol(x)} -> {_vol(y)}.")
        elif isinstance(layer, Flatten):
            out.append(f"Layer {i} (flatten): the {_vol(x)} volume becomes one list of "
                       f"{math.prod(y)} values.")
        elif isinstance(layer, Linear):
            out.append(f"Layer {i} (linear): each of the {y[-1]} outputs is a weighted sum of "
                       f"all {x[-1]} values ({x[-1]} multiplies"
                       + (" + bias)." if layer.bias is not None else ")."))
        elif isinstance(layer, BatchNorm2d):
            out.append(f"Layer {i} (batch norm): each of the {x[0]} depth slices is shifted and "
                       "scaled to mean 0, variance 1, then by a learned scale and shift.")
        elif isinstance(layer, Dropout):
            out.append(f"Layer {i} (dropout): while training, each value is zeroed with "
                       f"probability {layer.p}; at inference it passes unchanged.")
        elif op in ("add", "sub") and len(row["inputs"]) == 2:
            a, b = _sources(row)
            kind = "a residual connection: the block learns what to add to its input" if \
                row.get("residual") else "two branches summed"
            out.append(f"Layer {i} (add): the outputs of {a} and {b} meet and are added value by "
                       f"value ({kind}); both are {_vol(y)}.")
        elif op == "cat":
            parts = " + ".join(_vol(s) for s in row["input_shapes"])
            out.append(f"Layer {i} (concatenate): the volumes of {', '.join(_sources(row))} are "
                       f"stacked along the depth, {parts} -> {_vol(y)}: a skip connection "
                       "brings earlier, finer maps to this point.")
    return out
