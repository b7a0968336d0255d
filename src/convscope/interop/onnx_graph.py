"""The walk from an ONNX graph's input to its output, one node at a time, into layers.

:class:`GraphChain` reads the nodes in their (topological) order and keeps one "current"
tensor: each operator must read it, and what it writes becomes the current tensor. Operators
with a layer become that layer (its shape checked by :func:`convscope.spec.output_shape`);
padding operators (Pad; Gather, or Slice + Concat picking rows the way a padding mode does)
wait for the Conv that follows and become its ``padding``/``padding_mode``; nodes computing
on constants only are folded (:mod:`.onnx_fold`). A graph that is not one chain (a branch,
arithmetic on data, an operator the walk does not read) stops the walk with
:class:`~.onnx_operands.NotAChain`, and the importer reads it with the graph walk
(:mod:`.onnx_dag`), which reuses the layer handlers here; other errors name the node's
index, name and operator.

This module holds the walk and the operators that become layers; the padding operators are
:mod:`.onnx_padding`, the newer layers :mod:`.onnx_layers`, and the walk's state, errors and
operand reading :mod:`.onnx_operands` (:func:`check_tensor` and :func:`type_name` are
re-exported from there).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import shapes
from ..errors import ConvscopeError
from ..nn import AvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Module, ReLU
from .onnx_fold import BATCH, FOLD_OPS, FoldError, fold
from .onnx_layers import LAYER_OPS, LayerOps
from .onnx_operands import NotAChain, _short_float
from .onnx_operands import check_tensor as check_tensor
from .onnx_operands import type_name as type_name

__all__ = ["GraphChain", "CHAIN_OPS", "check_tensor", "type_name"]

CHAIN_OPS = ("Conv", "Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
             "BatchNormalization", "Flatten", "Reshape", "Gemm", "MatMul", "Add", "Pad",
             "Gather", "Dropout", "Identity", "Constant") + LAYER_OPS
"""Operators the chain walk reads (a graph with others, or with branches, goes to the graph
walk, :mod:`.onnx_dag`)."""


class GraphChain(LayerOps):
    """Walks the nodes of one graph in order, turning them into layers."""

    # ------------------------------------------------------------------ layers
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
            layer.register_buffer("num_batches_tracked", layer.num_batches_tracked)  # last,
            return layer  # as in PyTorch's state_dict

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
                raise NotAChain(self.node_where(k, node), "a chain reshapes to (N, features) "
                                "only", f"target shape {target}, input "
                                f"(N, {', '.join(map(str, same))})")
        if len(self.shape) == 3:
            self.add(k, node, Flatten)

    def linear(self, k: int, node: Any, a: dict[str, Any]) -> None:
        if len(self.shape) != 1 and node.op_type == "MatMul":
            raise NotAChain(self.node_where(k, node), "a MatMul of a volume (a graph's "
                            "function)", f"shape {self.shape}")
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
            if not (math.isfinite(alpha) and math.isfinite(beta)):
                raise self.node_fail(k, node, "alpha and beta must be finite numbers",
                                     "export the model again (a Linear layer is alpha = beta "
                                     "= 1)", f"alpha={alpha}, beta={beta}")
            if alpha != 1.0:
                w = self.scaled(k, node, w, alpha, "alpha", "weight")
            if len(node.input) > 2 and node.input[2]:
                raw = self.weight(k, node, 2, "bias")
                if raw.size not in (1, w.shape[0]) or raw.ndim > 2:
                    raise self.node_fail(k, node, f"its bias must hold {w.shape[0]} values",
                                         "export the model again", f"bias shape {raw.shape}")
                bias = np.broadcast_to(raw.reshape(-1), (w.shape[0],)).copy()
                if beta != 1.0:
                    bias = self.scaled(k, node, bias, beta, "beta", "bias")
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

    def scaled(self, k: int, node: Any, w: np.ndarray, factor: float, name: str,
               role: str) -> np.ndarray:
        """``w * factor`` in float32, refused where that leaves float32's range (ONNX Runtime
        scales the product instead, so inf or NaN weights would not be the same model)."""
        with np.errstate(over="ignore", invalid="ignore"):
            out = w * np.float32(factor)
        if not np.all(np.isfinite(out) | ~np.isfinite(w)):
            raise self.node_fail(k, node, f"{name} times its {role} leaves float32's range",
                                 "fold the scale into the weights in float64 and export again",
                                 f"{name}={factor}, largest |{role}| "
                                 f"{float(np.abs(w[np.isfinite(w)]).max(initial=0.0))}")
        return out

    def bias_add(self, k: int, node: Any, cur: str) -> None:
        other = [n for n in node.input if n != cur]
        last = self.layers[-1] if self.layers else None
        if self.open_linear != cur or len(other) != 1 or not isinstance(last, Linear):
            raise NotAChain(self.node_where(k, node), "Add is supported only as the bias of a "
                            "MatMul or Gemm in a chain", f"inputs {list(node.input)}")
        i = list(node.input).index(other[0])
        raw = self.weight(k, node, i, "bias")
        if raw.size != last.out_features or raw.ndim > 2:
            raise self.node_fail(k, node, f"the bias must hold {last.out_features} values",
                                 "export the model again", f"bias shape {raw.shape}")
        layer = Linear(last.in_features, last.out_features, True, seed=0)
        layer.weight.data = last.weight.data
        layer.bias.data = raw.reshape(-1).copy()  # type: ignore[union-attr]
        self.layers[-1] = layer

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
        if node.domain not in ("", "ai.onnx") or op not in CHAIN_OPS + FOLD_OPS:
            raise NotAChain(self.node_where(k, node), f"operator {op} is not one of the chain "
                            "walk's", "read it as a graph")
        a = self.attrs(k, node)
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
            if any(n != cur and n not in self.side for n in ins):
                raise NotAChain(self.node_where(k, node), "a Concat of the layers' data with "
                                "other data (not padding)", f"inputs {ins}")
            self.concat_pad(k, node, a, cur)
            return node.output[0]
        data = [n for n in node.input if n and n not in self.consts]
        if op not in CHAIN_OPS or data != [cur] or (node.input[0] != cur and op != "Add"):
            raise NotAChain(self.node_where(k, node), "the graph is not a single chain of "
                            "layers here", f"it reads {data}, the chain is at {cur!r}")
        if self.pending is not None and op not in ("Conv", "Pad", "Gather"):
            raise NotAChain(self.node_where(k, node), "padding that no Conv takes (a pad node "
                            "in a graph)", f"{op} after a padding node")
        if op == "Add":
            self.bias_add(k, node, cur)
        else:
            self.layer_op(k, node, a)
        if op not in ("Gemm", "MatMul"):
            self.open_linear = None if op != "Identity" else self.open_linear
        return node.output[0]

    def layer_op(self, k: int, node: Any, a: dict[str, Any]) -> None:
        """Turn one operator with a layer into that layer (on the current volume)."""
        op = node.op_type
        handlers: dict[str, Callable[[int, Any, dict[str, Any]], None]] = {
            "Conv": self.conv, "MaxPool": self.pool, "AveragePool": self.pool,
            "BatchNormalization": self.batchnorm, "Gemm": self.linear, "MatMul": self.linear,
            "Pad": self.pad, "Gather": self.gather, "Dropout": self.dropout,
        }
        if op in handlers:
            handlers[op](k, node, a)
        elif self.layer_op_new(k, node, a):
            pass
        elif op == "Relu":
            self.add(k, node, ReLU)
        elif op in ("GlobalAveragePool", "GlobalMaxPool"):
            _, h, w = self.need_volume(k, node)
            kind = AvgPool2d if op == "GlobalAveragePool" else MaxPool2d
            self.add(k, node, lambda kind=kind, h=h, w=w: kind((h, w)))
        elif op == "Flatten":
            axis = int(a.get("axis", 1))
            rank = len(self.shape) + 1
            if not -rank <= axis <= rank or (axis + rank if axis < 0 else axis) != 1:
                raise self.node_fail(k, node, "only Flatten(axis=1), which keeps the batch "
                                     "axis, is supported", "flatten with axis=1",
                                     f"axis={axis}")
            self.flatten_like(k, node, None)
        elif op == "Reshape":
            if int(a.get("allowzero", 0)):
                raise self.node_fail(k, node, "allowzero=1 is not supported",
                                     "export with allowzero=0")
            self.flatten_like(k, node, self.ints(k, node, 1, "target shape"))
        # Identity: nothing to do

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
            raise NotAChain(f"ONNX file {self.path!r}", "the graph ends with padding that no "
                            "Conv takes (a pad node in a graph)")
        out = self.graph.output[0].name
        if out != cur:
            raise NotAChain(f"ONNX file {self.path!r}", f"the graph output {out!r} is not the "
                            f"end of the chain of layers ({cur!r})", "read it as a graph")
        self.input_name = input_name
