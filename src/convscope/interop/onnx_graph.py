"""The walk from an ONNX graph's input to its output, one node at a time, into layers.

:class:`GraphChain` reads the nodes in their (topological) order and keeps one "current"
tensor: each operator must read it, and what it writes becomes the current tensor. Operators
with a layer become that layer (its shape checked by :func:`convscope.spec.output_shape`);
padding operators (Pad; Gather, or Slice + Concat picking rows the way a padding mode does)
wait for the Conv that follows and become its ``padding``/``padding_mode``; nodes computing
on constants only are folded (:mod:`.onnx_fold`). Anything else is refused with the node's
index, name and operator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import shapes
from ..errors import ConvscopeError, FileFormatError, message
from ..nn import AvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Module, ReLU
from .onnx_export import pad_indices, require_onnx
from .onnx_fold import BATCH, FOLD_OPS, FoldError, fold, slice_positions

__all__ = ["GraphChain", "SUPPORTED_OPS", "check_tensor", "type_name"]

SUPPORTED_OPS = ("Conv", "Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
                 "BatchNormalization", "Flatten", "Reshape", "Gemm", "MatMul", "Add", "Pad",
                 "Gather", "Dropout", "Identity", "Constant")
_SUPPORTED_TEXT = ("Conv, Relu, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, "
                   "BatchNormalization, Flatten, Reshape (to (N, features)), Gemm, MatMul (+ Add "
                   "bias), Pad, Gather and Slice + Concat (as padding before a Conv), Dropout, "
                   "Identity, and constant shape arithmetic (" + ", ".join(FOLD_OPS) + ")")
_PAD_MODES = {"constant": "zeros", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


def _short_float(value: float) -> float:
    """A float32 attribute as the short decimal it was written from (1e-05, not 9.99e-06)."""
    return float(str(np.float32(value)))


class GraphChain:
    """Walks the nodes of one graph in order, turning them into layers."""

    def __init__(self, path: str, proto: Any, onnx: Any) -> None:
        self.path, self.onnx, self.graph = path, onnx, proto.graph
        self.opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
                          0)
        self.consts: dict[str, Any] = {t.name: t for t in self.graph.initializer}
        self.layers: list[Module] = []
        self.shape: tuple[int, ...] = ()
        self.pending: dict[str, Any] | None = None  # Pad/Gather waiting for its Conv
        self.open_linear: str | None = None  # output of a bias-less MatMul/Gemm, for its Add
        self.side: dict[str, tuple[str, int, np.ndarray]] = {}  # Slice of the chain: src, axis, at
        self.used: dict[str, int] = {}
        for node in self.graph.node:
            for name in node.input:
                self.used[name] = self.used.get(name, 0) + 1
        for out in self.graph.output:
            self.used[out.name] = self.used.get(out.name, 0) + 1

    # ------------------------------------------------------------------ errors
    def fail(self, what: str, fix: str, received: str | None = None) -> FileFormatError:
        return FileFormatError(message(f"ONNX file {self.path!r}", what, fix, received))

    def node_fail(self, k: int, node: Any, what: str, fix: str,
                  received: str | None = None) -> FileFormatError:
        where = f"ONNX file {self.path!r}, node {k} ({node.name or 'unnamed'!r}, {node.op_type})"
        return FileFormatError(message(where, what, fix, received))

    # ------------------------------------------------------------------ operands
    def attrs(self, node: Any) -> dict[str, Any]:
        out = {}
        for a in node.attribute:
            value = self.onnx.helper.get_attribute_value(a)
            if isinstance(value, bytes):
                value = value.decode("utf-8", errors="replace")
            out[a.name] = value
        return out

    def array(self, k: int, node: Any, name: str) -> np.ndarray:
        value = self.consts[name]
        if isinstance(value, np.ndarray):
            return value
        tp = self.onnx.TensorProto
        if value.data_type in (tp.STRING, tp.UNDEFINED):
            raise self.node_fail(k, node, f"tensor {name!r} holds no numbers",
                                 "export the model again", f"data type {value.data_type}")
        try:
            arr = self.onnx.numpy_helper.to_array(value)
        except (ValueError, TypeError) as exc:
            raise self.node_fail(k, node, f"tensor {name!r} is damaged (its data does not fit "
                                 "its shape)", "export the model again; the file may be truncated",
                                 str(exc)[:200]) from None
        self.consts[name] = arr
        return arr

    def weight(self, k: int, node: Any, i: int, role: str,
               shape: tuple[int, ...] | None = None, ndim: int | None = None) -> np.ndarray:
        name = node.input[i] if i < len(node.input) else ""
        if not name:
            raise self.node_fail(k, node, f"its {role} input is missing", "export the model again")
        if name not in self.consts:
            raise self.node_fail(k, node, f"its {role} {name!r} is computed in the graph, not "
                                 "stored as a constant", "export with constant folding "
                                 "(torch.onnx.export(do_constant_folding=True))", f"input {name!r}")
        value = self.consts[name]
        tp = self.onnx.TensorProto
        if not isinstance(value, np.ndarray) and value.data_type != tp.FLOAT:
            kind = type_name(self.onnx, value.data_type)
            raise self.node_fail(k, node, f"its {role} {name!r} holds {kind} values; convscope "
                                 "layers hold float32 weights only",
                                 "convert the model to float32 before exporting it (quantized "
                                 "and half-precision models are not imported)", f"data type {kind}")
        arr = self.array(k, node, name)
        if arr.dtype != np.float32:
            raise self.node_fail(k, node, f"its {role} {name!r} holds {arr.dtype} values; "
                                 "convscope layers hold float32 weights only",
                                 "convert the model to float32 before exporting it",
                                 f"dtype {arr.dtype}")
        if (ndim is not None and arr.ndim != ndim) or (shape is not None and arr.shape != shape):
            want = shape if shape is not None else f"{ndim}-D"
            raise self.node_fail(k, node, f"its {role} {name!r} has the wrong shape",
                                 "export the model again", f"expected {want}, received {arr.shape}")
        return arr.copy()

    def ints(self, k: int, node: Any, i: int, role: str) -> list[int] | None:
        name = node.input[i] if i < len(node.input) else ""
        if not name:
            return None
        if name not in self.consts:
            raise self.node_fail(k, node, f"its {role} is computed in the graph at run time",
                                 "export with a fixed input size and constant folding",
                                 f"input {name!r}")
        arr = self.array(k, node, name)
        if arr.dtype.kind not in "iu" or arr.ndim > 1:
            raise self.node_fail(k, node, f"its {role} must be a 1-D integer tensor",
                                 "export the model again", f"{arr.dtype} of shape {arr.shape}")
        return [int(v) for v in arr.reshape(-1)]

    # ------------------------------------------------------------------ layers
    def add(self, k: int, node: Any, make: Callable[[], Module]) -> Module:
        from ..spec import output_shape

        try:
            layer = make()
            self.shape = output_shape(layer, self.shape)
        except ConvscopeError as exc:
            raise self.node_fail(k, node, f"it does not fit the volume here: {exc}",
                                 "check that the graph is one convscope can run",
                                 f"input volume {self.shape}") from None
        self.layers.append(layer)
        return layer

    def need_volume(self, k: int, node: Any) -> tuple[int, int, int]:
        if len(self.shape) != 3:
            raise self.node_fail(k, node, "it needs a volume (N, C, H, W) but gets flat values",
                                 "put it before the Flatten/Reshape", f"shape (N, {self.shape[0]})")
        return self.shape  # type: ignore[return-value]

    def pair_attr(self, k: int, node: Any, a: dict[str, Any], name: str, default: int
                  ) -> tuple[int, int]:
        value = list(a.get(name, [default, default]))
        if len(value) != 2:
            raise self.node_fail(k, node, f"`{name}` must have 2 values (2-D)",
                                 "only 2-D convolution and pooling are supported",
                                 f"{name}={value}")
        return value[0], value[1]

    def auto_pads(self, k: int, node: Any, a: dict[str, Any], kernel: tuple[int, int],
                  stride: tuple[int, int], dilation: tuple[int, int]) -> list[int]:
        """[top, left, bottom, right] from ``pads`` or ``auto_pad``."""
        mode = a.get("auto_pad", "NOTSET")
        if mode in ("NOTSET", ""):
            pads = list(a.get("pads", [0, 0, 0, 0]))
            if len(pads) != 4 or min(pads) < 0:
                raise self.node_fail(k, node, "`pads` must be 4 non-negative values",
                                     "export the model again", f"pads={pads}")
            return pads
        if mode == "VALID":
            return [0, 0, 0, 0]
        if mode in ("SAME_UPPER", "SAME_LOWER"):
            got = [shapes.same_padding(n, kk, s, d)
                   for n, kk, s, d in zip(self.shape[1:], kernel, stride, dilation, strict=True)]
            if mode == "SAME_LOWER":
                got = [(b, a_) for a_, b in got]
            return [got[0][0], got[1][0], got[0][1], got[1][1]]
        raise self.node_fail(k, node, f"unknown auto_pad {mode!r}", "export the model again")

    def conv(self, k: int, node: Any, a: dict[str, Any]) -> None:
        c = self.need_volume(k, node)[0]
        w = self.weight(k, node, 1, "weight", ndim=4)
        o, cg, kh, kw = w.shape
        groups = int(a.get("group", 1))
        if groups < 1 or cg * groups != c or o % groups:
            raise self.node_fail(k, node, f"its kernels of depth {cg} in {groups} group(s) do not "
                                 f"fit an input of depth {c}", "export the model again",
                                 f"weight shape {w.shape}, group={groups}")
        if list(a.get("kernel_shape", [kh, kw])) != [kh, kw]:
            raise self.node_fail(k, node, "kernel_shape disagrees with the weight's shape",
                                 "export the model again",
                                 f"kernel_shape={a['kernel_shape']}, weight shape {w.shape}")
        stride = self.pair_attr(k, node, a, "strides", 1)
        dilation = self.pair_attr(k, node, a, "dilations", 1)
        t, left, b, r = self.auto_pads(k, node, a, (kh, kw), stride, dilation)
        bias = None
        if len(node.input) > 2 and node.input[2]:
            bias = self.weight(k, node, 2, "bias", shape=(o,))
        mode = "zeros"
        if self.pending is not None:
            (pt, pb), (pl, pr) = self.pending["pads"]
            mode = self.pending["mode"]
            if mode != "zeros" and any((t, left, b, r)):
                raise self.node_fail(k, node, f"it adds zero padding after {mode} padding, which "
                                     "one Conv2d cannot do", "pad in one place only",
                                     f"pads={[t, left, b, r]}")
            t, b, left, r = t + pt, b + pb, left + pl, r + pr
            self.pending = None
        padding: Any = (t, left) if (t, left) == (b, r) else ((t, b), (left, r))
        if a.get("auto_pad") == "SAME_UPPER" and mode == "zeros":
            padding = "same"  # the same numbers, and the spec keeps saying 'same'

        def make() -> Conv2d:
            layer = Conv2d(c, o, (kh, kw), stride, padding, dilation, groups, bias is not None,
                           mode, seed=0)
            layer.weight.data = w
            if bias is not None:
                layer.bias.data = bias  # type: ignore[union-attr]
            return layer

        self.add(k, node, make)

    def pool(self, k: int, node: Any, a: dict[str, Any]) -> None:
        _, h, wd = self.need_volume(k, node)
        is_max = node.op_type == "MaxPool"
        if len(node.output) > 1 and node.output[1] and self.used.get(node.output[1]):
            raise self.node_fail(k, node, "its Indices output is used", "only the pooled values "
                                 "of MaxPool are supported", f"output {node.output[1]!r}")
        kernel = self.pair_attr(k, node, a, "kernel_shape", 0)
        stride = self.pair_attr(k, node, a, "strides", 1)
        dilation = self.pair_attr(k, node, a, "dilations", 1)
        if not is_max and dilation != (1, 1):
            raise self.node_fail(k, node, "AveragePool with dilations is not supported",
                                 "use dilations of 1", f"dilations={list(dilation)}")
        ceil = bool(a.get("ceil_mode", 0))
        count_pad = bool(a.get("count_include_pad", 0))  # ONNX's default is 0
        t, left, b, r = self.auto_pads(k, node, a, kernel, stride, dilation)
        if (t, left) == (b, r):
            padding = (t, left)
        else:  # extra end padding may say "ceil_mode" in another way; find it or refuse
            match = None
            if not ceil and b >= t and r >= left and (is_max or not count_pad):
                ends = (t + b, left + r)
                want = [shapes.pool_out(n + e - 2 * p, kk, s, p, d)
                        for n, e, p, kk, s, d in zip((h, wd), ends, (t, left), kernel, stride,
                                                     dilation, strict=True)]
                for cm in (False, True):
                    got = [shapes.pool_out(n, kk, s, p, d, cm)
                           for n, p, kk, s, d in zip((h, wd), (t, left), kernel, stride,
                                                     dilation, strict=True)]
                    if got == want:
                        match = cm
                        break
            if match is None:
                raise self.node_fail(k, node, "its padding is not the same on both sides, which "
                                     "convscope's pooling layers cannot express",
                                     "use symmetric pads", f"pads={[t, left, b, r]}")
            padding, ceil = (t, left), match

        def make() -> Module:
            if is_max:
                return MaxPool2d(kernel, stride, padding, dilation, ceil)
            return AvgPool2d(kernel, stride, padding, ceil, count_pad)

        self.add(k, node, make)

    def batchnorm(self, k: int, node: Any, a: dict[str, Any]) -> None:
        c = self.need_volume(k, node)[0]
        if int(a.get("training_mode", 0)) or any(node.output[1:]):
            raise self.node_fail(k, node, "it is in training mode (it outputs batch statistics)",
                                 "export the model in eval mode", f"outputs {list(node.output)}")
        scale, shift, mean, var = (self.weight(k, node, i, role, shape=(c,)) for i, role in
                                   enumerate(("scale", "bias", "mean", "var"), start=1))
        eps = _short_float(a.get("epsilon", 1e-5))
        if not 0 < eps < float("inf"):
            raise self.node_fail(k, node, "epsilon must be a positive number",
                                 "export the model again", f"epsilon={eps}")

        def make() -> BatchNorm2d:
            layer = BatchNorm2d(c, eps=eps)
            layer.weight.data, layer.bias.data = scale, shift  # type: ignore[union-attr]
            layer.register_buffer("running_mean", mean)
            layer.register_buffer("running_var", var)
            return layer

        self.add(k, node, make)

    def flatten_like(self, k: int, node: Any, target: list[int] | None) -> None:
        """Flatten or Reshape: fine when it means (N, C, H, W) -> (N, C*H*W), or nothing."""
        if target is not None:
            target = [0 if v == BATCH else v for v in target]
            feats = math.prod(self.shape)
            same = list(self.shape)
            ok_flat = (len(target) == 2 and target[0] in (0, -1, self.batch)
                       and target[1] in (feats, -1) and target != [-1, -1])
            if target[1:] == same and target[0] in (0, -1, self.batch):
                return  # a reshape to the shape it already has
            if not ok_flat:
                raise self.node_fail(k, node, "only a reshape to (N, features) is supported",
                                     f"reshape to (N, {feats}) or use Flatten(axis=1)",
                                     f"target shape {target}, input "
                                     f"(N, {', '.join(map(str, same))})")
        if len(self.shape) == 3:
            self.add(k, node, Flatten)

    def linear(self, k: int, node: Any, a: dict[str, Any]) -> None:
        if len(self.shape) != 1:
            raise self.node_fail(k, node, f"it needs flat values (N, features) but gets a volume "
                                 f"{self.shape}", "put a Flatten before it", f"shape {self.shape}")
        feats = self.shape[0]
        w = self.weight(k, node, 1, "weight", ndim=2)
        bias = None
        if node.op_type == "Gemm":
            if int(a.get("transA", 0)):
                raise self.node_fail(k, node, "transA=1 is not supported", "export with transA=0")
            w = w if int(a.get("transB", 0)) else w.T
            alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
            if alpha != 1.0:
                w = w * np.float32(alpha)
            if len(node.input) > 2 and node.input[2]:
                raw = self.weight(k, node, 2, "bias")
                if raw.size not in (1, w.shape[0]) or raw.ndim > 2:
                    raise self.node_fail(k, node, f"its bias must hold {w.shape[0]} values",
                                         "export the model again", f"bias shape {raw.shape}")
                bias = np.broadcast_to(raw.reshape(-1), (w.shape[0],)).copy()
                if beta != 1.0:
                    bias = bias * np.float32(beta)
        else:
            w = w.T
        w = np.ascontiguousarray(w, dtype=np.float32)
        if w.shape[1] != feats:
            raise self.node_fail(k, node, f"its weight takes {w.shape[1]} features but the "
                                 f"previous layer gives {feats}", "export the model again",
                                 f"weight shape (out, in) = {w.shape}")

        def make() -> Linear:
            layer = Linear(feats, w.shape[0], bias is not None, seed=0)
            layer.weight.data = w
            if bias is not None:
                layer.bias.data = bias.astype(np.float32)  # type: ignore[union-attr]
            return layer

        self.add(k, node, make)
        self.open_linear = None if bias is not None else node.output[0]

    def bias_add(self, k: int, node: Any, cur: str) -> None:
        other = [n for n in node.input if n != cur]
        last = self.layers[-1] if self.layers else None
        if self.open_linear != cur or len(other) != 1 or not isinstance(last, Linear):
            raise self.node_fail(k, node, "Add is supported only as the bias of a MatMul or Gemm",
                                 "convscope imports chains of layers; element-wise arithmetic "
                                 "and skip connections have no layer here",
                                 f"inputs {list(node.input)}")
        i = list(node.input).index(other[0])
        raw = self.weight(k, node, i, "bias")
        if raw.size != last.out_features or raw.ndim > 2:
            raise self.node_fail(k, node, f"the bias must hold {last.out_features} values",
                                 "export the model again", f"bias shape {raw.shape}")
        layer = Linear(last.in_features, last.out_features, True, seed=0)
        layer.weight.data = last.weight.data
        layer.bias.data = raw.reshape(-1).copy()  # type: ignore[union-attr]
        self.layers[-1] = layer

    def pad(self, k: int, node: Any, a: dict[str, Any]) -> None:
        self.need_volume(k, node)
        mode = a.get("mode", "constant")
        if self.opset < 11:
            pads, value = list(a.get("pads", [])), float(a.get("value", 0.0))
            axes = None
        else:
            pads = self.ints(k, node, 1, "pads") or []
            value = 0.0
            if len(node.input) > 2 and node.input[2]:
                value = float(self.array(k, node, node.input[2]).reshape(-1)[0])
            axes = self.ints(k, node, 3, "axes")
        if mode not in _PAD_MODES or (mode == "constant" and value != 0.0):
            raise self.node_fail(k, node, f"padding mode {mode!r} with value {value} is not "
                                 "supported", "pad with zeros, reflect, edge or wrap",
                                 f"mode={mode!r}, value={value}")
        axes = [x % 4 for x in axes] if axes is not None else [0, 1, 2, 3]
        if len(pads) != 2 * len(axes) or (pads and min(pads) < 0):
            raise self.node_fail(k, node, "pads must hold a non-negative begin and end per axis",
                                 "export the model again", f"pads={pads}, axes={axes}")
        full = dict.fromkeys(range(4), (0, 0))
        for j, axis in enumerate(axes):
            full[axis] = (pads[j], pads[j + len(axes)])
        if full[0] != (0, 0) or full[1] != (0, 0):
            raise self.node_fail(k, node, "it pads the batch or channel axis",
                                 "pad only height and width", f"pads={pads}")
        self.start_pad(k, node, _PAD_MODES[mode], full[2], full[3])

    def gather(self, k: int, node: Any, a: dict[str, Any]) -> None:
        self.need_volume(k, node)
        self.pad_by_indices(k, node, int(a.get("axis", 0)) % 4, self.ints(k, node, 1, "indices"))

    def pad_by_indices(self, k: int, node: Any, axis: int, idx: list[int] | None) -> None:
        """Gather, or Slice + Concat, that picks rows/columns the way a padding mode does."""
        if axis in (2, 3) and idx is not None:
            n = self.shape[axis - 1]
            for mode in ("circular", "reflect", "replicate"):
                for before in range(len(idx) - n + 1):
                    after = len(idx) - n - before
                    if pad_indices(n, before, after, mode).tolist() == idx:
                        pads = ((before, after), (0, 0)) if axis == 2 else ((0, 0), (before, after))
                        self.start_pad(k, node, mode, *pads, axis=axis)
                        return
        raise self.node_fail(k, node, f"{node.op_type} is supported only as padding (picking "
                             "rows or columns the way a padding mode does) before a Conv",
                             "export the padding with Pad", f"axis={axis}")

    def side_slice(self, k: int, node: Any, a: dict[str, Any], cur: str) -> None:
        """A Slice of the chain's tensor, kept aside for the Concat that pads with it."""
        self.need_volume(k, node)
        consts = [None] + [self.array(k, node, n) if n else None for n in node.input[1:]]
        axes = _ints_or(consts, 3, None)
        starts, ends = _ints_or(consts, 1, []), _ints_or(consts, 2, [])
        steps = _ints_or(consts, 4, [1] * len(starts))
        if self.opset < 10 or len(starts) != 1 or axes is None or len(axes) != 1 \
                or axes[0] % 4 not in (2, 3):
            raise self.node_fail(k, node, "a Slice of the layers' data is supported only along "
                                 "one of the height or width axes, as part of padding",
                                 "export the padding with Pad", f"axes={axes}")
        axis = axes[0] % 4
        try:
            at = slice_positions(self.shape[axis - 1], starts[0], ends[0], steps[0])
        except FoldError as exc:
            raise self.node_fail(k, node, str(exc), "export the model again") from None
        self.side[node.output[0]] = (cur, axis, at)

    def concat_pad(self, k: int, node: Any, a: dict[str, Any], cur: str) -> None:
        """Concat of the chain's tensor with Slices of it: padding (circular, in PyTorch)."""
        self.need_volume(k, node)
        axis = int(a.get("axis", 0)) % 4
        parts = []
        for name in node.input:
            if name == cur:
                parts.append(np.arange(self.shape[axis - 1], dtype=np.int64))
            elif name in self.side and self.side[name][:2] == (cur, axis):
                parts.append(self.side[name][2])
            else:
                raise self.node_fail(k, node, "a Concat of the layers' data is supported only "
                                     "as padding (the tensor with Slices of itself)",
                                     "export the padding with Pad", f"inputs {list(node.input)}")
        self.pad_by_indices(k, node, axis, np.concatenate(parts).tolist())

    def start_pad(self, k: int, node: Any, mode: str, rows: tuple[int, int],
                  cols: tuple[int, int], axis: int | None = None) -> None:
        if self.pending is not None:
            prev = self.pending
            free = prev.get("axis") is not None and axis is not None and prev["axis"] != axis
            if not free or (prev["mode"] != mode and any(rows + cols)
                            and any(prev["pads"][0] + prev["pads"][1])):
                raise self.node_fail(k, node, "two padding nodes in a row are not supported",
                                     "pad once before each Conv", f"mode {mode!r} after "
                                     f"{prev['mode']!r}")
            (pt, pb), (pl, pr) = prev["pads"]
            if not any(prev["pads"][0] + prev["pads"][1]):
                prev["mode"] = mode
            prev["pads"] = ((pt + rows[0], pb + rows[1]), (pl + cols[0], pr + cols[1]))
            prev["axis"] = None
            return
        self.pending = {"mode": mode, "pads": (rows, cols), "axis": axis}

    def dropout(self, k: int, node: Any, a: dict[str, Any]) -> None:
        if any(self.used.get(o) for o in node.output[1:] if o):
            raise self.node_fail(k, node, "its mask output is used", "export in eval mode")
        if len(node.input) > 2 and node.input[2]:
            mode = self.array(k, node, node.input[2]) if node.input[2] in self.consts else None
            if mode is None or bool(np.asarray(mode).reshape(-1)[0]):
                raise self.node_fail(k, node, "it is in training mode",
                                     "export the model in eval mode", f"input {node.input[2]!r}")
        p = a.get("ratio", 0.5)
        if len(node.input) > 1 and node.input[1]:
            p = float(self.array(k, node, node.input[1]).reshape(-1)[0])
        p = _short_float(p)
        self.add(k, node, lambda: Dropout(p, seed=0))

    # ------------------------------------------------------------------ the walk
    def fold(self, k: int, node: Any, a: dict[str, Any]) -> None:
        inputs = [self.array(k, node, n) if n else None for n in node.input]
        try:
            value = fold(node.op_type, a, inputs, self.opset,
                         self.onnx.helper.tensor_dtype_to_np_dtype, self.onnx.numpy_helper.to_array)
        except (FoldError, ValueError, TypeError, IndexError, KeyError) as exc:
            raise self.node_fail(k, node, f"its constant arithmetic cannot be worked out: {exc}",
                                 "export the model with constant folding", None) from None
        self.consts[node.output[0]] = np.asarray(value)

    def constant(self, k: int, node: Any, a: dict[str, Any]) -> None:
        if "value" in a:
            value = a["value"]
            check_tensor(self, value, f"node {k} ({node.name!r}, Constant)")
            self.consts[node.output[0]] = value
            return
        for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                           ("value_int", np.int64), ("value_ints", np.int64)):
            if key in a:
                self.consts[node.output[0]] = np.asarray(a[key], dtype=dtype)
                return
        raise self.node_fail(k, node, "only numeric Constant values are supported",
                             "export the model again", f"attributes {sorted(a)}")

    def step(self, k: int, node: Any, cur: str, made: set[str]) -> str:
        """Take node ``k``; return the name of the chain's tensor after it."""
        op = node.op_type
        handlers: dict[str, Callable[[int, Any, dict[str, Any]], None]] = {
            "Conv": self.conv, "MaxPool": self.pool, "AveragePool": self.pool,
            "BatchNormalization": self.batchnorm, "Gemm": self.linear, "MatMul": self.linear,
            "Pad": self.pad, "Gather": self.gather, "Dropout": self.dropout,
        }
        if node.domain not in ("", "ai.onnx") or op not in SUPPORTED_OPS + FOLD_OPS:
            domain = f" (domain {node.domain!r})" if node.domain else ""
            raise self.node_fail(k, node, f"operator {op}{domain} is not supported",
                                 f"convscope imports chains of {_SUPPORTED_TEXT}",
                                 f"op_type {op!r}, node name {node.name!r}, index {k}")
        a = self.attrs(node)
        if any(isinstance(v, self.onnx.GraphProto) or (
                isinstance(v, list) and v and isinstance(v[0], self.onnx.GraphProto))
               for v in a.values()):
            raise self.node_fail(k, node, "it holds a subgraph", "export a plain chain")
        if op == "Constant":
            self.constant(k, node, a)
            made.update(node.output)
            return cur
        missing = [n for n in node.input if n and n not in made]
        if missing:
            raise self.node_fail(k, node, f"it reads {missing[0]!r}, which no earlier node "
                                 "makes and no initializer holds",
                                 "the file may be truncated or its nodes out of order; "
                                 "export it again", f"inputs {list(node.input)}")
        made.update(o for o in node.output if o)
        ins = list(node.input)
        known = all(n == "" or n in self.consts for n in ins[1:])
        if op == "Shape" and ins[0] == cur and self.pending is None:
            dims = np.array([self.batch if self.batch > 0 else BATCH, *self.shape], np.int64)
            self.consts[node.output[0]] = dims[slice(a.get("start"), a.get("end"))]
            return cur
        if op in FOLD_OPS and known and ins[0] in self.consts:
            self.fold(k, node, a)
            return cur
        if op == "Slice" and ins[0] == cur and known:
            self.side_slice(k, node, a, cur)
            return cur
        if op == "Concat" and cur in ins:
            self.concat_pad(k, node, a, cur)
            return node.output[0]
        if op not in SUPPORTED_OPS:
            raise self.node_fail(k, node, f"operator {op} is supported only on constants "
                                 "(shape arithmetic), not on the layers' data",
                                 f"convscope imports chains of {_SUPPORTED_TEXT}",
                                 f"op_type {op!r}, node name {node.name!r}, index {k}")
        data = [n for n in node.input if n and n not in self.consts]
        if data != [cur] or (node.input[0] != cur and op != "Add"):
            raise self.node_fail(k, node, "the graph is not a single chain of layers here",
                                 "convscope imports one chain from the input to the output; "
                                 "branches, skip connections and several inputs are not "
                                 "supported", f"it reads {data}, the chain is at {cur!r}")
        if self.pending is not None and op not in ("Conv", "Pad", "Gather"):
            raise self.node_fail(k, node, "padding is supported only right before a Conv",
                                 "pad inside the Conv or the pooling layer",
                                 f"{op} after a padding node")
        if op in handlers:
            handlers[op](k, node, a)
        elif op == "Relu":
            self.add(k, node, ReLU)
        elif op in ("GlobalAveragePool", "GlobalMaxPool"):
            _, h, w = self.need_volume(k, node)
            kind = AvgPool2d if op == "GlobalAveragePool" else MaxPool2d
            self.add(k, node, lambda kind=kind, h=h, w=w: kind((h, w)))
        elif op == "Flatten":
            axis = int(a.get("axis", 1))
            rank = len(self.shape) + 1
            if axis % rank != 1:
                raise self.node_fail(k, node, "only Flatten(axis=1), which keeps the batch "
                                     "axis, is supported", "flatten with axis=1",
                                     f"axis={axis}")
            self.flatten_like(k, node, None)
        elif op == "Reshape":
            if int(a.get("allowzero", 0)):
                raise self.node_fail(k, node, "allowzero=1 is not supported",
                                     "export with allowzero=0")
            self.flatten_like(k, node, self.ints(k, node, 1, "target shape"))
        elif op == "Add":
            self.bias_add(k, node, cur)
        # Identity: nothing to do
        if op not in ("Gemm", "MatMul"):
            self.open_linear = None if op != "Identity" else self.open_linear
        return node.output[0]

    def run(self, input_name: str, shape: tuple[int, int, int], batch: int) -> None:
        self.shape, self.batch, cur = shape, batch, input_name
        made = {input_name} | set(self.consts)
        for k, node in enumerate(self.graph.node):
            try:
                cur = self.step(k, node, cur, made)
            except ConvscopeError:
                raise
            except (TypeError, ValueError, IndexError, KeyError, OverflowError) as exc:
                raise self.node_fail(k, node, "it is malformed", "export the model again",
                                     f"{type(exc).__name__}: {str(exc)[:200]}") from None
        if self.pending is not None:
            raise self.fail("the graph ends with padding that no Conv uses",
                            "export the model again")
        out = self.graph.output[0].name
        if out != cur:
            raise self.fail(f"the graph output {out!r} is not the end of the chain of layers "
                            f"({cur!r})", "export a graph that is one chain from input to output")
        self.input_name = input_name


def _ints_or(values: list[Any], i: int, default: Any) -> Any:
    if i < len(values) and values[i] is not None:
        return [int(v) for v in np.asarray(values[i]).reshape(-1)]
    return default


def type_name(onnx: Any, code: int) -> str:
    """An ONNX element type's name (FLOAT16 ...), or its number when the file makes one up."""
    try:
        return str(onnx.TensorProto.DataType.Name(code))
    except ValueError:
        return f"type {code}"


def check_tensor(chain: GraphChain | None, t: Any, where: str, path: str = "") -> None:
    """Refuse tensors kept in external files; a size that does not match is caught on use."""
    onnx = chain.onnx if chain is not None else require_onnx("load_onnx")
    if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data):
        where_file = next((e.value for e in t.external_data if e.key == "location"), "?")
        raise FileFormatError(message(
            f"ONNX file {chain.path if chain else path!r}",
            f"tensor {t.name!r} ({where}) keeps its data in an external file ({where_file!r}); "
            "convscope never reads files that a model file points to",
            "save the model as one file: onnx.save_model(model, path, "
            "save_as_external_data=False) (models under 2 GiB)",
            f"external data location {where_file!r}"))


