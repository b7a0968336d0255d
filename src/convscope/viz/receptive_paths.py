"""The input values one output value depends on, followed back through the traced graph.

Two independent ways, which the tests hold equal:

- :func:`analytic`: walk back from the output position node by node (through
  ``node.inputs``: both branches of an add, each part of a concatenation) with index
  arithmetic. Every windowed operation reads rows and columns independently, so each is a
  pair of "reads" tables, one per axis: output row i reads input rows ``R[i]``. A conv
  output at row r reads padded rows ``r*stride + dilation*t`` (t < k), and padding maps
  each padded row to the input row it copies (none for zero padding; the mirror, edge or
  wrapped row for reflect, replicate, circular); pooling likewise with its own window; a
  transposed conv's output row ``i*stride - padding + dilation*a`` comes from input row i;
  adaptive pooling and interpolation read the rows their index plans name. A conv reads
  every channel of its group; an elementwise node reads the same place; a linear layer
  reads everything.
- :func:`probe`: autograd through the graph run again (:func:`~convscope.viz.nodes.replay`)
  on an all-ones image, every kernel replaced by ones, pooling by a sum over the same window
  (a max pool's gradient would reach only its winner), batch norm, activations and dropout
  by the identity (a dead ReLU passes no gradient). The field is the set of input values
  with a non-zero gradient.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from ..errors import ArgumentError, message
from ..tensor import Tensor, enable_grad
from .layers import Activations, LayerRef, Refs
from .nodes import inspect_mode, node_args, pair, replay, run_node
from .why_points import POINTWISE
from .why_windows import ConvArgs

__all__ = ["analytic", "probe", "POINTWISE_OPS", "MIXING_OPS"]

_NUMPY_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}
POINTWISE_OPS = frozenset(POINTWISE) | {"batch_norm"}
JOIN_OPS = frozenset({"add", "sub", "rsub", "mul", "div", "rdiv"})
MIXING_OPS = frozenset({"linear"})
Mask = np.ndarray


# --------------------------------------------------------------------------- reads tables
def window_reads(n: int, out: int, k: int, s: int, d: int, pad: tuple[int, int],
                 mode: str = "zeros") -> np.ndarray:
    """bool (out, n): which input indices each output index of a window reads."""
    if mode == "zeros":
        source = np.pad(np.arange(n), pad, constant_values=-1)
    else:
        source = np.pad(np.arange(n), pad, mode=_NUMPY_MODE[mode])  # type: ignore[call-overload]
    reads = np.zeros((out, n), bool)
    padded = np.arange(out)[:, None] * s + d * np.arange(k)[None]
    for i, row in enumerate(padded):
        got = source[row[row < source.size]]  # a ceil_mode window may overhang
        reads[i, got[got >= 0]] = True
    return reads


def transposed_reads(n: int, out: int, k: int, s: int, p: int, d: int) -> np.ndarray:
    """bool (out, n): input index i lands on output ``i*s - p + a*d`` for each a < k."""
    reads = np.zeros((out, n), bool)
    for a in range(k):
        o = np.arange(n) * s - p + a * d
        ok = (o >= 0) & (o < out)
        reads[o[ok], np.arange(n)[ok]] = True
    return reads


def _plan_reads(args: dict[str, Any], n: int, out: int, axis: int, in_hw: tuple,
                dtype: Any) -> np.ndarray:
    """The rows (or columns) an interpolation reads: its index plan, weights > 0."""
    from .. import shapes
    from ..kernels import resample as plans

    _, scales = shapes.interpolate_out(in_hw, args.get("size"), args.get("scale_factor"),
                                       args.get("recompute_scale_factor"), "interpolate")
    scale = (scales or (None, None))[axis]
    mode = args.get("mode", "nearest")
    reads = np.zeros((out, n), bool)
    if mode in ("nearest", "nearest-exact"):
        reads[np.arange(out), plans.nearest_index(n, out, scale, mode == "nearest-exact")] = True
        return reads
    i0, i1, w0, w1 = plans.linear_plan(n, out, scale, bool(args.get("align_corners")), dtype)
    reads[np.arange(out)[w0 > 0], i0[w0 > 0]] = True
    reads[np.arange(out)[w1 > 0], i1[w1 > 0]] = True
    return reads


def _through(m: Mask, rows: np.ndarray, cols: np.ndarray) -> Mask:
    """Per channel: the input cells that the marked output cells read (rows x columns)."""
    return np.einsum("ih,cij,jw->chw", rows.astype(np.int64), m.astype(np.int64),
                     cols.astype(np.int64)) > 0


def _grouped(m: Mask, groups: int, in_channels: int, rows: np.ndarray,
             cols: np.ndarray) -> Mask:
    """A conv reads every input channel of an output channel's group."""
    per_group = m.reshape(groups, m.shape[0] // groups, *m.shape[1:]).any(axis=1)
    return np.repeat(_through(per_group, rows, cols), in_channels // groups, axis=0)


# --------------------------------------------------------------------------- one node back
def _windowed(ref: LayerRef, args: dict[str, Any], m: Mask) -> Mask:
    (c, h, w), (ho, wo) = ref.input_shape, ref.output_shape[1:]
    if ref.op == "conv2d":
        conv = ConvArgs.of(args)
        (kh, kw), pads = conv.weight.shape[2:], conv.pads(ref.input_shape)
        rows = window_reads(h, ho, kh, conv.stride[0], conv.dilation[0], pads[0],
                            conv.padding_mode)
        cols = window_reads(w, wo, kw, conv.stride[1], conv.dilation[1], pads[1],
                            conv.padding_mode)
        return _grouped(m, conv.groups, c, rows, cols)
    if ref.op == "conv_transpose2d":
        conv = ConvArgs.of(args)
        (kh, kw), (ph, pw) = conv.weight.shape[2:], pair(conv.padding)
        rows = transposed_reads(h, ho, kh, conv.stride[0], ph, conv.dilation[0])
        cols = transposed_reads(w, wo, kw, conv.stride[1], pw, conv.dilation[1])
        return _grouped(m, conv.groups, c, rows, cols)
    if ref.op in ("max_pool2d", "avg_pool2d"):
        k = pair(args["kernel_size"])
        s = k if args.get("stride") is None else pair(args["stride"])
        p, d = pair(args.get("padding", 0)), pair(args.get("dilation", 1))
        return _through(m, window_reads(h, ho, k[0], s[0], d[0], (p[0], p[0])),
                        window_reads(w, wo, k[1], s[1], d[1], (p[1], p[1])))
    if ref.op == "adaptive_avg_pool2d":
        from ..kernels.resample import adaptive_windows

        tables = []
        for n, out in ((h, ho), (w, wo)):
            start, end = adaptive_windows(n, out)
            idx = np.arange(n)
            tables.append((idx[None] >= start[:, None]) & (idx[None] < end[:, None]))
        return _through(m, *tables)
    # interpolate
    return _through(m, _plan_reads(args, h, ho, 0, (h, w), np.float32),
                    _plan_reads(args, w, wo, 1, (h, w), np.float32))


_WINDOWED = frozenset({"conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d",
                       "adaptive_avg_pool2d", "interpolate"})


def _back(ref: LayerRef, acts: Activations, m: Mask) -> list[tuple[str, Mask]]:
    """(input name, the cells of that input the marked outputs read) for each data input."""
    data = list(ref.data_inputs)
    shapes_ = dict(zip(ref.data_inputs, ref.input_shapes, strict=True))
    if ref.op in _WINDOWED:
        return [(data[0], _windowed(ref, node_args(ref, acts), m))]
    if ref.op in POINTWISE_OPS:
        return [(data[0], m)]
    if ref.op in JOIN_OPS:  # each operand at the same place (summed over broadcast axes)
        out = []
        for name in data:
            shape = shapes_[name]
            lead = m.ndim - len(shape)
            got = m.any(axis=tuple(range(lead))) if lead > 0 else m
            axes = tuple(i for i, n in enumerate(shape) if n == 1 and got.shape[i] != 1)
            out.append((name, got.any(axis=axes, keepdims=True) if axes else got))
        return out
    if ref.op == "cat":
        node = ref.node
        assert node is not None
        axis = int(node.attrs.get("dim", 0)) % (m.ndim + 1) - 1
        names = [ref.inputs[v["$in"]] for v in node.attrs["tensors"]]
        bounds = np.cumsum([shapes_[n][axis] for n in names])[:-1]
        return [(n, part) for n, part in zip(names, np.split(m, bounds, axis=axis),
                                             strict=True) if n in shapes_]
    if ref.op in ("flatten", "reshape", "view"):
        return [(data[0], m.reshape(shapes_[data[0]]))]
    if ref.op in MIXING_OPS or ref.op in ("softmax", "log_softmax"):
        return [(data[0], np.full(shapes_[data[0]], bool(m.any())))]
    raise ArgumentError(message("receptive field", f"{ref.label} is the operation {ref.op!r}, "
                                "which the field cannot be followed through by index "
                                "arithmetic", "use method='gradient' (autograd through the "
                                "graph)"))


def analytic(refs: Refs, acts: Activations, ref: LayerRef, at: tuple[int, ...]) -> Mask:
    """bool mask over the image: the input values output ``at`` of ``ref`` reads."""
    start = np.zeros(ref.output_shape, bool)
    start[at] = True
    need: dict[str, Mask] = {ref.name: start}
    for r in reversed(refs[:ref.position + 1]):
        m = need.pop(r.name, None)
        if m is None or not m.any():
            continue
        for name, got in _back(r, acts, m):
            need[name] = need[name] | got if name in need else got
    image = acts.graph.inputs[0].name
    return need.get(image, np.zeros(acts[0].shape, bool))


# --------------------------------------------------------------------------- the probe
_PROBED = frozenset({"conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d"}) | \
    POINTWISE_OPS | MIXING_OPS


def _probe_call(refs: Refs, acts: Activations) -> Any:
    by_name = {r.name: r for r in refs}

    def call(node: Any, args: list[Any]) -> Any:
        ref = by_name[node.name]
        if ref.op not in _PROBED:  # joins, reshapes, resampling: the real operation
            return run_node(node, args)
        h = args[ref.inputs.index(ref.data_inputs[0])]
        if ref.op in POINTWISE_OPS:
            return h
        a = node_args(ref, acts)
        if ref.op == "linear":
            return F.linear(h, np.ones(np.shape(a["weight"])))
        if ref.op == "conv_transpose2d":
            c = ConvArgs.of(a)
            return F.conv_transpose2d(h, np.ones(c.weight.shape), None, c.stride, c.padding,
                                      c.output_padding, c.groups, c.dilation)
        if ref.op == "conv2d":
            c = ConvArgs.of(a)
            pad: Any = c.pads(ref.input_shape)
            if c.padding_mode != "zeros":
                h, pad = F.pad(h, pad, c.padding_mode), 0
            return F.conv2d(h, np.ones(c.weight.shape), None, c.stride, pad, c.dilation,
                            c.groups)
        # a pool: a sum over the same window; extra bottom/right pad for ceil_mode
        k = pair(a["kernel_size"])
        s = k if a.get("stride") is None else pair(a["stride"])
        p, d = pair(a.get("padding", 0)), pair(a.get("dilation", 1))
        chans = ref.input_shape[0]
        extra = [max(0, (o - 1) * st + dl * (kk - 1) + 1 - (n + 2 * pp))
                 for o, st, dl, kk, n, pp in zip(ref.output_shape[1:], s, d, k,
                                                 ref.input_shape[1:], p, strict=True)]
        pads = ((p[0], p[0] + extra[0]), (p[1], p[1] + extra[1]))
        return F.conv2d(h, np.ones((chans, 1) + k), None, s, pads, d, chans)

    return call


def probe(refs: Refs, acts: Activations, ref: LayerRef, at: tuple[int, ...]) -> Mask:
    """Non-zero gradient of output ``at`` w.r.t. an all-ones image, through the probe run."""
    graph = acts.graph
    image = graph.inputs[0].name
    x = Tensor(np.ones((1,) + acts[0].shape), requires_grad=True, dtype=np.float64)
    with inspect_mode(graph.model), enable_grad():
        y = replay(graph, {image: x}, ref.name, _probe_call(refs, acts))
        y[(0,) + tuple(at)].backward()
    assert x.grad is not None
    return x.grad.data[0] != 0


def real_gradient(acts: Activations, ref: LayerRef, image: np.ndarray,
                  at: tuple[int, ...]) -> np.ndarray:
    """|d value / d input| of the real model on ``image``, summed over the channels (H, W)."""
    graph = acts.graph
    x = Tensor(np.asarray(image)[None], requires_grad=True)
    with inspect_mode(graph.model), enable_grad():
        y = replay(graph, {graph.inputs[0].name: x}, ref.name)
        y[(0,) + tuple(at)].backward()
    assert x.grad is not None
    return np.abs(x.grad.data[0]).sum(axis=0)
