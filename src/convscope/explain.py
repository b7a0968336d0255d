"""Explain a model in the slides' words: volumes, kernels, feature maps, with its own numbers.

The model is traced (:func:`convscope.graph.trace`) from shapes alone: every layer answers
from its ``output_shape``, nothing is computed or compiled, so a model of any size is
explained at once, and a model that cannot run is explained up to the node that breaks.
One row per node of the graph. A chain (a ``Sequential``, a spec) prints as the slides'
stack of layers, numbered as ``model[k]``; any other graph gets the module path of each
node and a "from" column (Keras's "Connected to"), and residual additions and
concatenations name the volumes that meet.

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from .errors import ArgumentError, ConvscopeError, SpecError, message
from .explain_narrate import conv_formula as conv_formula
from .explain_narrate import formulas, narrate
from .graph import Graph, trace
from .nn import AvgPool2d, Conv2d, MaxPool2d, Module, Sequential
from .spec import as_volume, format_volume, parse, parse_volume

__all__ = ["explain", "Explanation", "conv_formula"]

Shape = tuple[int, ...]
_WIDTH = 92  # text width of the narration
_OP_WIDTH = 42  # the operation column wraps beyond this


def _vol(shape: Shape | None) -> str:
    return format_volume(shape) if shape is not None else "?"


def _hw(pair: tuple[int, int]) -> str:
    return f"{pair[0]}x{pair[1]}"


def _num(n: int) -> str:
    return f"{n:,}"


def _short(n: float) -> str:
    """``31.1 M``; below a thousand the number alone and a space (``0 ``, ``500 ``)."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} "


# --------------------------------------------------------------------------- functions' words
_AXES = {1: "depth", 2: "height", 3: "width", -3: "depth", -2: "height", -1: "width"}


def _function_text(op: str, attrs: dict[str, Any], ins: list[Shape], out: Shape) -> str:
    """The operation column for a function node (an add, a cat, a reshape...)."""
    if op in ("add", "sub", "mul", "div") and len(ins) == 2:
        sign = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[op]
        return f"{op}: {_vol(ins[0][1:])} {sign} {_vol(ins[1][1:])}"
    if op in ("add", "sub", "mul", "div"):
        other = attrs.get("other")
        return f"{op} {other} per value" if other is not None else op
    if op == "cat":
        dim = attrs.get("dim", 0)
        where = _AXES.get(dim, f"axis {dim}") if len(out) == 4 else f"axis {dim}"
        return f"concatenate along {where}: " + " + ".join(_vol(s[1:]) for s in ins)
    if op in ("reshape", "view", "flatten"):
        return f"{op} {_vol(ins[0][1:])} -> {_vol(out[1:])}" + (
            " values" if len(out) == 2 else "")
    if op == "mean" and len(ins[0]) == 4 and len(out) in (2, 4) and out[-1:] != ins[0][-1:]:
        return f"mean over height and width: {_vol(ins[0][1:])} -> {_vol(out[1:])}"
    from .nn import layer_for_op

    cls = layer_for_op(op)
    if cls is not None:
        try:
            layer = cls(**{k: v for k, v in attrs.items() if k not in ("input", "self")
                           and not isinstance(v, dict) and k in _init_args(cls)})
            return layer.describe(ins[0], out)
        except (ConvscopeError, TypeError):
            pass
    return op


def _init_args(cls: type) -> set[str]:
    import inspect

    return set(inspect.signature(cls.__init__).parameters) - {"self"}


# --------------------------------------------------------------------------- receptive field
def _receptive(graph: Graph) -> dict[str, tuple[Fraction, Fraction, Fraction, Fraction] | None]:
    """(rf_h, rf_w, jump_h, jump_w) per node: what one output value sees of the input.

    rf grows by ``(k - 1) * dilation * jump`` through a window and the jump multiplies by the
    stride; branches meeting take the larger; a layer that mixes everything (linear,
    flatten, global pooling) sees all (None). A layer that enlarges the maps (upsampling,
    transposed conv) divides the jump by its factor.
    """
    one = Fraction(1)
    rf: dict[str, tuple[Fraction, Fraction, Fraction, Fraction] | None] = {
        name: (one, one, one, one) for name in graph.sources}
    for node in graph.nodes:
        ins = [rf.get(i) for i in node.inputs if i in rf and (
            i not in graph.sources or graph.sources[i].kind == "input")]
        ins = ins or [(one, one, one, one)]
        if any(r is None for r in ins) or len(node.shape) != 4:
            rf[node.name] = None
            continue
        r = tuple(max(v[k] for v in ins) for k in range(4))  # type: ignore[index]
        window = getattr(node.module, "window", None)
        if window is None and node.op in ("conv2d", "conv2d_relu", "max_pool2d", "avg_pool2d"):
            window = _function_window(graph, node)
        in_shape = graph.shape_of(node.inputs[0])
        if window is not None:
            (kh, sh, dh), (kw, sw, dw) = window()
            rf[node.name] = (r[0] + (kh - 1) * dh * r[2], r[1] + (kw - 1) * dw * r[3],
                             r[2] * sh, r[3] * sw)
        elif len(in_shape) != 4:
            rf[node.name] = None
        elif node.shape[2:] == (1, 1) and in_shape[2:] != (1, 1):
            rf[node.name] = None  # global pooling sees everything
        elif node.shape[2:] == in_shape[2:]:
            rf[node.name] = r  # per value, or a join of same-sized maps
        else:  # resampling: the jump scales with the size; neighbours are read
            fh = Fraction(node.shape[2], in_shape[2])
            fw = Fraction(node.shape[3], in_shape[3])
            grow = (1 if fh < 1 else 0, 1 if fw < 1 else 0)
            rf[node.name] = (r[0] + (math.ceil(1 / fh) - 1 + grow[0] * 0) * r[2],
                             r[1] + (math.ceil(1 / fw) - 1) * r[3], r[2] / fh, r[3] / fw)
    return rf


def _function_window(graph: Graph, node: Any) -> Any:
    """The window of a conv or pool called as a function (``F.conv2d`` in a forward)."""
    a = node.attrs

    def two(v: Any, default: int = 1) -> tuple[int, int]:
        v = default if v is None else v
        return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[1]))

    try:
        if node.op.startswith("conv"):
            k = graph.shape_of(node.inputs[1])[2:]
        else:
            k = two(a.get("kernel_size"))
        s = two(a.get("stride"), 1) if a.get("stride") is not None else (
            (1, 1) if node.op.startswith("conv") else k)
        d = two(a.get("dilation"), 1)
    except (TypeError, ValueError, IndexError, KeyError):
        return None
    return lambda: ((k[0], s[0], d[0]), (k[1], s[1], d[1]))


def _rf_text(r: tuple[Fraction, ...] | None) -> tuple[tuple[int, int] | None, str]:
    if r is None:
        return None, "all"
    h, w = math.ceil(r[0]), math.ceil(r[1])
    return (h, w), _hw((h, w))


# --------------------------------------------------------------------------- the explanation
@dataclass
class Explanation:
    """Rows (one per node), the output volume, an error (or None) and the narration.

    Row keys: ``index`` (as ``--layer`` takes it), ``name`` (module path), ``layer`` (class or
    op), ``op``, ``input``/``output`` (volumes without the batch axis), ``input_shapes``,
    ``inputs`` and ``from`` (what feeds it), ``operation`` (the words), ``params``, ``macs``,
    ``rf``, ``formula``, ``module``.
    """

    input_shape: Shape
    rows: list[dict[str, Any]] = field(default_factory=list)
    output_shape: Shape | None = None
    error: str | None = None
    narration: list[str] = field(default_factory=list)
    layers: list[tuple[str, Module]] = field(default_factory=list, repr=False)
    graph: Graph | None = field(default=None, repr=False)
    chain: bool = True

    @property
    def total_params(self) -> int:
        return sum(r["params"] for r in self.rows)

    @property
    def total_macs(self) -> int:
        return sum(r["macs"] for r in self.rows)

    # ------------------------------------------------------------------ text
    def table(self) -> str:
        head: tuple[str, ...] = ("#", "input", "operation", "output", "params", "multiply-adds",
                                 "RF")
        if not self.chain:  # the "from" column says where inputs come from
            head = ("#", "layer", *head[2:], "from")
        lines: list[tuple[str, ...]] = []
        for r in self.rows:
            op = textwrap.wrap(r["operation"], _OP_WIDTH) or [""]
            out = r["output_text"] if r["output"] is not None else "ERROR"
            cells = [r["index"], r["input_text"], op[0], out, _num(r["params"]),
                     _num(r["macs"]) if r["output"] is not None else "", r["rf_text"]]
            if not self.chain:
                cells = [cells[0], r["name"], *cells[2:], ", ".join(r["from"])]
            lines.append(tuple(cells))
            blank = [""] * len(cells)
            lines.extend(tuple(blank[:2] + [more] + blank[3:]) for more in op[1:])
        total = ["", "total", "", _vol(self.output_shape) if not self.error else "",
                 _num(self.total_params), _num(self.total_macs), ""]
        if not self.chain:
            total = ["", "total", "", total[3], total[4], total[5], "", ""]
        widths = [max(len(row[i]) for row in [head, tuple(total), *lines])
                  for i in range(len(head))]
        right = {4, 5}

        def fmt(row: Sequence[str]) -> str:
            cells = [c.rjust(w) if i in right else c.ljust(w)
                     for i, (c, w) in enumerate(zip(row, widths, strict=True))]
            return "  ".join(cells).rstrip()

        rule = "-" * len(fmt(tuple("-" * w for w in widths)))
        return "\n".join([fmt(head), rule, *(fmt(row) for row in lines), rule, fmt(total)])

    def render(self, include_error: bool = True) -> str:
        parts = [f"input volume {_vol(self.input_shape)} (H x W x D: height x width x depth)", "",
                 self.table(), ""]
        flops = 2 * self.total_macs
        notes = (f"params = weights + biases. multiply-adds: one multiply-add counts once "
                 f"({_short(self.total_macs).rstrip()} in all); FLOPs = 2 x multiply-adds = "
                 f"{_short(flops)}FLOPs here. Bias additions, "
                 "ReLU, pooling and dropout are not counted; batch norm counts 2 per channel "
                 "(torchinfo's convention: it folds into the conv at inference). "
                 "RF = receptive field: the input pixels that one output value sees.")
        if not self.chain:
            notes += (" A layer used twice counts its params once. \"from\" names the nodes "
                      "(by number) whose outputs a node reads.")
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
        fix = self._padding_fix(want) if self.chain else None
        if fix is not None:
            j, pad = fix
            row = self.rows[j]
            formula = formulas(row["module"], row["input"])
            p = pad[0] if pad[0] == pad[1] else pad
            new = (self.output_shape[0], want[1], want[2])  # type: ignore[index]
            return (f"layer {row['index']} gives {formula}; padding={p} at layer "
                    f"{row['index']} gives {_vol(new)}")
        changing = [j for j, r in enumerate(self.rows) if r["output"] is not None
                    and len(r["input"]) == 3 and len(r["output"]) == 3
                    and r["input"][1:] != r["output"][1:]
                    and isinstance(r.get("module"), (Conv2d, MaxPool2d, AvgPool2d))]
        if not changing:
            return "no layer changes the height and width"
        row = self.rows[changing[-1]]
        return (f"layer {row['index']} gives {formulas(row['module'], row['input'])}; "
                "no single padding change gives the expected size: change kernel sizes, "
                "strides or pooling")

    def _padding_fix(self, want: Shape) -> tuple[int, tuple[int, int]] | None:
        """(row, (ph, pw)): a symmetric padding of one conv that makes the output ``want``."""
        for j in range(len(self.rows) - 1, -1, -1):
            layer = self.rows[j].get("module")
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
        shape = (1, *self.rows[j]["input"])
        layer = self.rows[j]["module"]
        pad = list(layer.geometry(shape).padding)
        pad[axis] = (p, p)
        try:
            shape = layer.output_shape(shape, padding=(pad[0], pad[1]))
            for row in self.rows[j + 1:]:
                shape = row["module"].output_shape(shape)
        except (ConvscopeError, AttributeError):
            return False
        return len(shape) == 4 and shape[2 + axis] == want[1 + axis]


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


# --------------------------------------------------------------------------- rows
def _is_chain(model: Module, graph: Graph) -> bool:
    """A stack of layers printed as the slides do: a Sequential (or one layer) traced into
    a chain of layer nodes named by their places."""
    return (isinstance(model, Sequential) or type(model).is_leaf()) and graph.is_chain() and \
        all(n.kind == "module" and n.name == n.target for n in graph.nodes)


def _rows(graph: Graph, chain: bool) -> list[dict[str, Any]]:
    rf = _receptive(graph)
    number = {n.name: str(n.index) for n in graph.nodes}
    seen: set[int] = set()
    rows = []
    for node in graph.nodes:
        ins = [graph.shape_of(i) for i in node.inputs
               if i not in graph.sources or graph.sources[i].kind == "input"] or \
            [graph.shape_of(node.inputs[0])] if node.inputs else [()]
        layer = node.module
        if layer is not None and hasattr(layer, "describe"):
            operation = layer.describe(ins[0], node.shape)
            macs = layer.macs(ins[0], node.shape) // max(node.shape[0], 1)
        else:
            operation = _function_text(node.op, node.attrs, ins, node.shape)
            macs = 0
        params = 0
        if layer is not None:
            for p in layer.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    params += int(p.data.size)
        r, rf_text = _rf_text(rf.get(node.name))
        formula = ""
        if isinstance(layer, (Conv2d, MaxPool2d, AvgPool2d)) and len(ins[0]) == 4:
            formula = formulas(layer, ins[0][1:])
        sources = [number.get(i, i) for i in node.inputs
                   if i in number or graph.sources[i].kind == "input"]
        rows.append({
            "index": node.name if chain else str(node.index), "name": node.name,
            "layer": node.layer or node.op, "op": node.op, "module": layer,
            "input": ins[0][1:], "input_text": _vol(ins[0][1:]) + (" ..." if len(ins) > 1
                                                                    else ""),
            "input_shapes": [s[1:] for s in ins],
            "inputs": node.inputs, "from": sources or ["input"],
            "output": node.shape[1:], "output_text": _vol(node.shape[1:]),
            "operation": operation, "params": params, "macs": macs, "rf": r, "rf_text": rf_text,
            "formula": formula,
            "residual": node.op == "add" and _residual(graph, node),
        })
    return rows


def _residual(graph: Graph, node: Any) -> bool:
    """Whether an add joins a path with one of its own earlier values (a skip connection)."""
    if len(node.inputs) != 2:
        return False
    names = graph.by_name()
    a, b = node.inputs
    ancestors: set[str] = set()
    stack = [a]
    while stack:
        cur = stack.pop()
        if cur in ancestors:
            continue
        ancestors.add(cur)
        if cur in names:
            stack.extend(names[cur].inputs)
    return b in ancestors or any(b == i for i in ancestors)


def _failure_text(graph: Graph, chain: bool) -> tuple[dict[str, Any], str]:
    """The row of the node that could not run, and the error told with its inputs."""
    f = graph.failure
    assert f is not None
    ins = [s[1:] for s in f.input_shapes] or [()]
    number = {n.name: str(n.index) for n in graph.nodes}
    index = f.name if chain else str(len(graph.nodes))
    layer = None
    if graph.model is not None and f.path and f.layer:
        try:
            layer = graph.model.get_submodule(f.path)
        except ConvscopeError:
            layer = None
    operation = f.layer or f.op
    if layer is not None and hasattr(layer, "describe"):
        try:
            operation = layer.describe((1, *ins[0]), None)
        except (ConvscopeError, ValueError, IndexError):
            pass
    elif f.op in ("add", "cat", "sub", "mul"):
        operation = f"{f.op}: " + (" + " if f.op != "cat" else " & ").join(_vol(s) for s in ins)
    text = f"layer {index} ({f.layer or f.op}), input {_vol(ins[0])}: {f.error}"
    if f.op in ("add", "sub", "mul", "cat") and len(f.inputs) >= 2:
        met = "; ".join(f"{_vol(s)} from {number.get(i, i)} ({i})"
                        for i, s in zip(f.inputs, ins, strict=False))
        joined = "added" if f.op != "cat" else "concatenated"
        fix = ("give both branches the same height, width and depth (a 1x1 conv with the "
               "right stride and kernel count on the shortcut, as ResNet's downsample)"
               if f.op != "cat" else "make the maps the same height and width before "
               "concatenating (crop, pad or resize one branch)")
        text = message(f"layer {index} ({f.op}, in {f.path or 'the model'})",
                       f"the branches that meet here cannot be {joined}: {met}", fix)
    row = {"index": index, "name": f.name, "layer": f.layer or f.op, "op": f.op,
           "module": layer, "input": ins[0], "input_text": _vol(ins[0]), "input_shapes": ins,
           "inputs": f.inputs, "from": [number.get(i, i) for i in f.inputs] or ["input"],
           "operation": operation, "output": None, "output_text": "",
           "params": sum(int(p.data.size) for p in layer.parameters()) if layer else 0,
           "macs": 0, "rf": None, "rf_text": "", "formula": ""}
    return row, text


# --------------------------------------------------------------------------- explain
def explain(model: Module | str, input_shape: Sequence[int] | str | None = None) -> Explanation:
    """Explain ``model`` node by node, from shapes alone (nothing is computed).

    Parameters
    ----------
    model : any convscope model or layer, or a spec string such as ``"64x64x3 | conv(8, 5)"``
    input_shape : (C, H, W) or "HxWxD", optional
        Defaults to ``model.input_shape`` (set by :func:`convscope.parse` and the zoo).

    Returns
    -------
    Explanation
        ``.rows`` (one dict per node: index, input, operation, output, params, macs, rf...),
        ``.output_shape``, ``.error`` (None, or why node k cannot run), ``.graph``, ``str()``
        (table and narration) and ``.check("HxWxD")``.
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
    graph = trace(model, shape)
    chain = _is_chain(model, graph) and (graph.failure is None or graph.failure.path == (
        graph.failure.name))
    result = Explanation(input_shape=shape, graph=graph, chain=chain)
    result.rows = _rows(graph, chain)
    result.layers = [(r["index"], r["module"]) for r in result.rows if r["module"] is not None]
    if graph.failure is not None:
        row, text = _failure_text(graph, chain)
        result.rows.append(row)
        if row["module"] is not None:
            result.layers.append((row["index"], row["module"]))
        result.error = text
    elif broken is None:
        outs = [graph.shape_of(o) for o in graph.outputs]
        result.output_shape = tuple(outs[0][1:])
    if broken is not None:
        last = result.rows[-1]["output"] if result.rows else shape
        result.rows.append({"index": broken[0], "name": broken[0], "layer": broken[1],
                            "op": "", "module": None, "input": last, "input_text": _vol(last),
                            "input_shapes": [last], "inputs": (), "from": [],
                            "operation": broken[1], "output": None, "output_text": "",
                            "params": 0, "macs": 0, "rf": None, "rf_text": "", "formula": ""})
        result.output_shape = None
        result.error = broken[2]
    result.narration = narrate(result.rows, brief=not chain)
    return result
