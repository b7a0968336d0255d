"""The JSON the routes answer with, built from the state: the model's graph, a node's maps,
one value taken apart, the geometry of a sliding window, the class probabilities.

Numbers keep float32's full value (``float(np.float32(x))``); infinities and NaN, which JSON
has no words for, are the strings ``"inf"``, ``"-inf"`` and ``"nan"``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ArgumentError, message
from ..spec import format_volume
from ..viz.layers import LayerRef
from ..viz.nodes import node_args, pair
from ..viz.pictures import KERNEL_OPS
from .pictures import atlas_layout
from .walk import WHY_OPS

if TYPE_CHECKING:
    from ..viz.why import Why
    from .state import State

__all__ = ["jsonable", "model_json", "maps_json", "why_json", "slide_json", "classes_json",
           "SLIDE_OPS"]

SLIDE_OPS = ("conv2d", "max_pool2d", "avg_pool2d")  # a window sliding over the input


def jsonable(value: Any) -> Any:
    """Arrays, NumPy scalars, tuples and non-finite floats as plain JSON values."""
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else ("nan" if math.isnan(v) else "inf" if v > 0 else "-inf")
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def _volume(shape: tuple[int, ...]) -> str:
    return format_volume(shape) if len(shape) == 3 else f"{math.prod(shape)} values"


def _block(ref: LayerRef) -> str:
    """The module a node belongs to: its layer's parent (``layer1.0`` for ``layer1.0.conv1``),
    or for a function the module whose ``forward`` called it."""
    node = ref.node
    if node is None:
        return ""
    if node.kind == "module":
        return node.path.rpartition(".")[0]
    return node.path


def _narration(paragraphs: list[str]) -> dict[str, list[str]]:
    """explain's narration split by node: ``"Layer 4 (conv): ..."`` and its ``- `` lines."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for p in paragraphs:
        head = re.match(r"Layer (\S+) \(", p)
        if head:
            current = found.setdefault(head.group(1), [])
            current.append(p.replace("\u00a0", " "))
        elif p.startswith("- ") and current is not None:
            current.append(p.replace("\u00a0", " "))
        else:
            current = None
    return found


def model_json(state: State) -> dict[str, Any]:
    """The graph as the page draws it: explain's rows, each with its inputs and the layout
    of its maps."""
    e, refs = state.explanation, state.refs
    number = {r.name: r.index for r in refs}
    words = _narration(e.narration)
    nodes = []
    for ref, row in zip(refs, e.rows, strict=False):
        out = ref.output_shape
        nodes.append({
            "index": ref.index, "position": ref.position, "name": ref.name, "op": ref.op,
            "layer": ref.kind, "label": ref.label, "operation": ref.operation,
            "sentence": f"{ref.operation} -> {_volume(out)}",
            "inputs": [{"name": n, "index": number.get(n), "volume": _volume(s)}
                       for n, s in zip(ref.data_inputs, ref.input_shapes, strict=False)],
            "input": list(ref.input_shape), "output": list(out),
            "input_volume": _volume(ref.input_shape), "output_volume": _volume(out),
            "params": row["params"], "macs": row["macs"], "rf": row["rf_text"],
            "formula": row["formula"], "residual": bool(row.get("residual", False)),
            "block": _block(ref), "narration": words.get(ref.index, []),
            "maps": len(out) == 3, "kernels": ref.op in KERNEL_OPS, "why": ref.op in WHY_OPS,
            "slide": ref.op in SLIDE_OPS and len(out) == 3, "atlas": atlas_layout(out)})
    image = state.image
    return {"model": state.title, "note": state.note, "chain": e.chain,
            "version": state.version,
            "image": {"name": state.image_name, "shape": list(image.shape),
                      "volume": format_volume(image.shape)},
            "output": _volume(e.output_shape or ()), "params": e.total_params,
            "macs": e.total_macs, "classes": state.classes is not None, "nodes": nodes}


def maps_json(state: State, ref: LayerRef, channel: int | None = None) -> dict[str, Any]:
    """A node's output values: all maps (C, H, W) or one (``channel``), or flat values."""
    values = state.values(ref.name)
    out: dict[str, Any] = {"layer": ref.index, "name": ref.name, "shape": list(values.shape),
                           "volume": _volume(values.shape)}
    if channel is not None:
        values = values[channel]
        out["channel"] = channel
    out["min"] = jsonable(np.min(values)) if values.size else None
    out["max"] = jsonable(np.max(values)) if values.size else None
    out["maps" if channel is None and values.ndim == 3 else "values"] = jsonable(values)
    return out


def why_json(w: Why, ref: LayerRef) -> dict[str, Any]:
    """One value taken apart: every field of the :class:`Why`, the recomputed ``value`` and
    the forward pass's ``forward``, and the walk-through as the CLI prints it (``text``)."""
    fields = {f.name: getattr(w, f.name) for f in dataclasses.fields(w)}
    fields.pop("forward_value")
    difference = abs(w.value - w.forward_value) if math.isfinite(w.value) and math.isfinite(
        w.forward_value) else None
    return jsonable({**fields, "forward": w.forward_value, "difference": difference,
                     "input": ref.data_inputs[0] if ref.data_inputs else None,
                     "inputs": list(ref.data_inputs), "label": ref.label, "text": str(w)})


def slide_json(state: State, ref: LayerRef) -> dict[str, Any]:
    """How a conv's or a pool's window moves over its input: kernel size, stride, dilation,
    and the padding on each side, for the page's slider."""
    if ref.op not in SLIDE_OPS or len(ref.output_shape) != 3 or len(ref.input_shape) != 3:
        raise ArgumentError(message("/api/slide", f"{ref.label} has no sliding window",
                                    "pick a conv or a pooling node", f"layer={ref.index}"))
    args = node_args(ref, state.acts)
    if ref.op == "conv2d":
        weight = np.asarray(args["weight"])
        kernel = weight.shape[2:]
        stride, dilation = pair(args.get("stride", 1)), pair(args.get("dilation", 1))
        groups = int(args.get("groups", 1))
        per_group = weight.shape[1]
    else:
        kernel = pair(args["kernel_size"])
        stride = pair(args.get("stride") or args["kernel_size"])
        dilation, groups, per_group = pair(args.get("dilation", 1)), ref.input_shape[0], 1
    c, h, w = ref.input_shape
    oc, oh, ow = ref.output_shape
    declared = _padding(ref, args, (c, h, w))
    pads = []
    for axis, (size, out) in enumerate(((h, oh), (w, ow))):
        before, after = declared[axis]
        reach = (out - 1) * stride[axis] + dilation[axis] * (kernel[axis] - 1) + 1
        pads.append([before, max(after, reach - before - size)])  # ceil mode may reach past
    source = ref.data_inputs[0]
    return {"layer": ref.index, "op": ref.op, "kernel": list(kernel), "stride": list(stride),
            "dilation": list(dilation), "padding": pads, "groups": groups,
            "per_group": per_group, "input": [c, h, w], "output": [oc, oh, ow],
            "source": source, "source_is_image": source not in {r.name for r in state.refs},
            "padding_mode": args.get("padding_mode", "zeros")}


def _padding(ref: LayerRef, args: dict[str, Any],
             shape: tuple[int, int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)): the padding the node puts around its input."""
    if ref.op == "conv2d":
        from ..viz.why_windows import ConvArgs

        (t, b), (le, r) = ConvArgs.of(args).pads(shape)
        return (int(t), int(b)), (int(le), int(r))
    ph, pw = pair(args.get("padding", 0))
    return (ph, ph), (pw, pw)


def classes_json(state: State, top: int = 10) -> dict[str, Any]:
    """The model's best classes for the image (softmax of its output), when it has class
    names; else why there are none."""
    classes = state.classes
    out = np.asarray(state.values(state.refs[-1].name), np.float64).ravel()
    if classes is None or len(classes) != out.size:
        why = ("the model has no class names (untrained: a zoo name or a spec)" if classes is None
               else f"the model names {len(classes)} classes but outputs {out.size} values")
        return {"classes": None, "reason": why}
    p = np.exp(out - out.max())
    p /= p.sum()
    best = np.argsort(-p)[:top]
    return {"classes": [{"index": int(k), "name": classes[k], "probability": float(p[k]),
                         "logit": float(out[k])} for k in best], "count": len(classes)}
