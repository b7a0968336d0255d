"""The walk that reads any ONNX DAG (branches, residual adds, concatenations) as a graph
model, :class:`~convscope.graph.GraphModule`.

The nodes are read in (topological) order. Every data tensor keeps the graph node that
makes it and its shape (batch 1, as a trace records it); constants are folded as in the
chain walk. An operator with a layer reads one data tensor and becomes that layer, at the
module path :mod:`.onnx_names` finds for it (PyTorch's ``/layer1/layer1.0/conv1/Conv`` ->
``layer1.0.conv1``), made by the same handlers as in the chain walk; padding nodes wait for
their Conv as there. Arithmetic, joins, reductions and reshapes of data become function
nodes that call convscope's operations (``x + y`` -> ``Tensor.add``, Concat -> ``cat``,
ReduceMean -> ``Tensor.mean``); constants they read become the graph's constants (a single
number stays a number). A bias-less Gemm or MatMul whose only user adds a constant takes it
as its bias; GELU, SiLU and Hardswish written as formulas become their layers
(:mod:`.onnx_patterns`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .. import tracing
from ..errors import ConvscopeError
from ..graph import Graph, GraphModule, Node, Source
from ..nn import GELU, Hardswish, Linear, Module, Sequential, SiLU
from .onnx_fold import BATCH, FOLD_OPS
from .onnx_graph import CHAIN_OPS, GraphChain
from .onnx_names import PathNamer
from .onnx_operands import NotAChain, _short_float
from .onnx_patterns import Fused, find_fused

__all__ = ["GraphDag", "SUPPORTED_OPS"]

_FUNCTION_OPS = ("Sub", "Mul", "Div", "Concat", "ReduceMean", "ReduceSum", "Transpose", "Neg",
                 "Exp", "Log", "Sqrt", "Abs", "Pow", "Erf", "Slice", "Shape", "Unsqueeze",
                 "Squeeze")
SUPPORTED_OPS = tuple(sorted(set(CHAIN_OPS + _FUNCTION_OPS)))
"""Every operator :func:`~.load_onnx` reads (constants aside)."""
SUPPORTED_TEXT = (", ".join(o for o in SUPPORTED_OPS if o not in ("Erf", "Slice", "Shape"))
                  + "; Erf in GELU's formula; Pad, Gather and Slice + Concat as padding before "
                  "a Conv; and shape arithmetic on constants (" + ", ".join(FOLD_OPS) + ")")
_ARITH = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div"}
_SWAPPED = {"Add": "add", "Sub": "rsub", "Mul": "mul", "Div": "rdiv"}
_UNARY = {"Neg": "neg", "Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Abs": "abs"}
_LAYER_OPS = set(CHAIN_OPS) - {"Add", "Constant"}


def _params(key: str) -> set[str]:
    """The argument names of a traced operation (what a function node's attrs may say)."""
    import inspect

    return set(inspect.signature(tracing.OPS[key]).parameters)


@dataclass
class Val:
    """A data tensor: the graph node (or ``input``) that makes it and its shape; padding
    waiting for a Conv, or a Slice kept for the Concat that pads with it."""

    ref: str
    shape: tuple[int, ...]
    pending: dict[str, Any] | None = None
    side: bool = False


class GraphDag(GraphChain):
    """Reads a whole ONNX graph into graph nodes (see the module docstring)."""

    def build(self, input_name: str, shape: tuple[int, int, int], batch: int) -> Module:
        self.batch = batch
        self.vals: dict[str, Val] = {input_name: Val("input", (1, *shape))}
        self.gnodes: list[Node] = []
        self.sources: dict[str, Source] = {
            "input": Source("input", "input", (1, *shape), "float32")}
        self.at: dict[str, int] = {}  # graph node name -> its index in gnodes
        self.inits = {t.name for t in self.graph.initializer}
        nodes = self.graph.node
        self.namer = PathNamer(nodes, {"input"})
        outputs = {o.name for o in self.graph.output}
        self.fused = find_fused(nodes, outputs)
        members = {m for f in self.fused.values() for m in f.members[:-1]}
        for k, node in enumerate(nodes):
            if k in members:
                continue  # part of a formula: read with its last node
            try:
                if k in self.fused and self.take_fused(self.fused[k]):
                    continue
                for m in self.fused[k].members[:-1] if k in self.fused else []:
                    self.node(m, nodes[m])
                self.node(k, node)
            except NotAChain as exc:  # a chain-walk rule reached from here: said plainly
                raise self.node_fail(k, node, exc.what, "export the model again",
                                     exc.received) from None
            except ConvscopeError:
                raise
            except (TypeError, ValueError, IndexError, KeyError, OverflowError) as exc:
                raise self.node_fail(k, node, "it is malformed", "export the model again",
                                     f"{type(exc).__name__}: {str(exc)[:200]}") from None
        return self.finish(self.graph.output[0].name)

    # ------------------------------------------------------------------ one node
    def node(self, k: int, node: Any) -> None:
        op = node.op_type
        if node.domain not in ("", "ai.onnx") or op not in SUPPORTED_OPS + FOLD_OPS:
            domain = f" (domain {node.domain!r})" if node.domain else ""
            raise self.node_fail(k, node, f"operator {op}{domain} is not supported",
                                 f"convscope imports graphs of {SUPPORTED_TEXT}",
                                 f"op_type {op!r}, node name {node.name!r}, index {k}")
        a = self.attrs(k, node)
        if any(isinstance(v, self.onnx.GraphProto) or (
                isinstance(v, list) and v and isinstance(v[0], self.onnx.GraphProto))
               for v in a.values()):
            raise self.node_fail(k, node, "it holds a subgraph", "export a plain graph")
        if op == "Constant":
            self.constant(k, node, a)
            return
        for name in node.input:
            if name and name not in self.vals and name not in self.consts:
                raise self.node_fail(k, node, f"it reads {name!r}, an output that convscope "
                                     "does not compute (a mask, indices or statistics)",
                                     "export the model in eval mode", f"inputs "
                                     f"{list(node.input)}")
        data = [n for n in node.input if n in self.vals]
        if not data:
            if op not in FOLD_OPS:
                raise self.node_fail(k, node, f"operator {op} on constants only is not "
                                     "imported", "export with constant folding",
                                     f"inputs {list(node.input)}")
            self.fold(k, node, a)
            return
        if any(self.vals[n].side for n in data) and op != "Concat":
            raise self.node_fail(k, node, "a Slice of data is supported only as part of "
                                 "padding (Slices concatenated to the tensor)",
                                 "export the padding with Pad", f"{op} after a Slice")
        if op not in ("Conv", "Pad", "Gather", "Concat", "Slice"):
            for n in data:  # padding that no Conv takes: a pad node of its own
                if self.vals[n].pending:
                    self.vals[n] = self.padded(k, node, self.vals[n])
        if op == "Shape":
            self.shape_of(k, node, a)
        elif op in _ARITH and data:
            self.arith(k, node, data)
        elif op == "Concat":
            self.concat(k, node, a, data)
        elif op in ("ReduceMean", "ReduceSum"):
            self.reduce(k, node, a)
        elif op == "Transpose":
            self.transpose(k, node, a)
        elif op in _UNARY and f"Tensor.{_UNARY[op]}" not in tracing.OPS:
            raise self.node_fail(k, node, f"operator {op} has no operation in this convscope",
                                 "export the model without it", f"op_type {op!r}")
        elif op in _UNARY:
            self.function(k, node, f"Tensor.{_UNARY[op]}", _UNARY[op], [self.vals[data[0]]],
                          {"self": {"$in": 0}}, self.vals[data[0]].shape)
        elif op == "Pow":
            self.power(k, node)
        elif op == "Slice":
            self.slice(k, node, a)
        elif op == "Erf":
            raise self.node_fail(k, node, "Erf is supported only inside GELU's formula "
                                 "(x * (1 + erf(x / sqrt 2)) / 2)", "export GELU with opset 20 "
                                 "(one Gelu node) or as PyTorch writes it")
        elif op == "MatMul" and (len(data) == 2 or len(self.vals[data[0]].shape) > 2):
            self.matmul(k, node)
        elif op == "Reshape" and not self.flat_reshape(k, node):
            self.reshape(k, node, a)
        elif op == "Clip" and self.one_sided(k, node, a):
            pass
        elif op in ("Unsqueeze", "Squeeze", "Cast"):
            self.unsqueeze(k, node, a)
        elif op in _LAYER_OPS:
            self.layer(k, node, a, data)
        else:
            raise self.node_fail(k, node, f"operator {op} is supported on constants only "
                                 "(shape arithmetic), not on computed volumes",
                                 f"convscope imports graphs of {SUPPORTED_TEXT}",
                                 f"op_type {op!r}, data inputs {data}")

    # ------------------------------------------------------------------ layers
    def layer(self, k: int, node: Any, a: dict[str, Any], data: list[str]) -> None:
        if len(data) != 1 or node.input[0] != data[0]:
            raise self.node_fail(k, node, f"a {node.op_type} layer reads one data tensor, "
                                 "first", "compute its weights in the graph before export: "
                                 "export with constant folding", f"data inputs {data}")
        val = self.vals[data[0]]
        self.shape, self.layers, self.pending = val.shape[1:], [], val.pending
        self.open_linear = None
        self.layer_op(k, node, a)
        out = node.output[0]
        if node.op_type in ("Pad", "Gather"):
            self.vals[out] = Val(val.ref, val.shape, pending=self.pending)
            return
        ref = self.module(k, node, self.layers[-1], [val.ref]) if self.layers else val.ref
        self.vals[out] = Val(ref, (1, *self.shape))

    def module(self, k: int, node: Any, layer: Module, inputs: list[str]) -> str:
        weights = tuple(n for n in node.input[1:] if n in self.inits)
        path, name, layer = self.namer.place(k, node, layer, weights)
        self.at[name] = len(self.gnodes)
        self.gnodes.append(Node(len(self.gnodes), name, str(layer.op), "module", tuple(inputs),
                                (1, *self.shape), "float32", path, path, layer.get_config(),
                                type(layer).__name__, layer))
        return name

    def take_fused(self, f: Fused) -> bool:
        """Make a formula's layer; False if its constants say it is something else."""
        nodes = self.graph.node
        end, first = nodes[f.members[-1]], nodes[f.members[0]]
        for name, want in f.constants:
            if name not in self.consts:
                return False
            got = np.asarray(self.array(f.members[-1], end, name))
            if got.size != 1 or got.dtype.kind != "f" or not np.isclose(
                    float(got.reshape(-1)[0]), want, rtol=1e-6, atol=0):
                return False
        if f.layer == "Hardswish":
            a = self.attrs(f.members[0], first)
            if np.float32(a.get("alpha", 0.2)) != np.float32(1 / 6) or \
                    np.float32(a.get("beta", 0.5)) != np.float32(0.5):
                return False
        val = self.vals.get(f.x)
        if val is None or val.pending or val.side:
            return False
        layer = {"GELU": GELU, "SiLU": SiLU, "Hardswish": Hardswish}[f.layer]()
        self.shape = val.shape[1:]
        ref = self.module(f.members[-1], end, layer, [val.ref])
        self.vals[end.output[0]] = Val(ref, val.shape)
        return True

    def flat_reshape(self, k: int, node: Any) -> bool:
        """A Reshape to (N, features) of a volume, or to its own shape: the chain's rule."""
        target = self.ints(k, node, 1, "target shape") or []
        val = self.vals[node.input[0]]
        rest = list(val.shape[1:])
        head = [0, -1, BATCH] + ([self.batch] if self.batch > 0 else [])
        feats = int(np.prod(rest))
        flat = len(target) == 2 and target[0] in head and target[1] in (feats, -1) \
            and target != [-1, -1] and len(rest) == 3
        return flat or (len(target) == len(rest) + 1 and target[0] in head
                        and target[1:] == rest)

    # ------------------------------------------------------------------ functions
    def function(self, k: int, node: Any, key: str, op: str, ins: list[Val],
                 attrs: dict[str, Any], shape: tuple[int, ...],
                 consts: tuple[np.ndarray, ...] = (), out: str | None = None) -> None:
        inputs = [v.ref for v in ins]
        for value in consts:
            name = f"constant_{len(self.sources) - 1}"  # sources: the input, then constants
            while name in self.namer.names:  # a layer may have claimed that path
                name += "_"
            self.sources[name] = Source(name, "constant", tuple(value.shape), "float32", value)
            self.namer.names.add(name)
            inputs.append(name)
        path, name = self.namer.function_name(k, op)
        self.at[name] = len(self.gnodes)
        self.gnodes.append(Node(len(self.gnodes), name, op, "function", tuple(inputs),
                                tuple(int(v) for v in shape), "float32", path, key, attrs))
        self.vals[out or node.output[0]] = Val(name, tuple(int(v) for v in shape))

    def arith(self, k: int, node: Any, data: list[str]) -> None:
        op = node.op_type
        if len(node.input) != 2 or not all(node.input):
            raise self.node_fail(k, node, f"{op} takes two inputs", "export the model again",
                                 f"inputs {list(node.input)}")
        if len(data) == 2:
            shapes = [self.vals[n].shape for n in node.input]
            try:
                shape = tuple(np.broadcast_shapes(*shapes))
            except ValueError:
                raise self.node_fail(k, node, f"its operands' volumes do not fit together: "
                                     f"{shapes[0]} and {shapes[1]}", "make the branches "
                                     "that meet here the same size", f"shapes {shapes}") from None
            self.function(k, node, f"Tensor.{_ARITH[op]}", _ARITH[op],
                          [self.vals[n] for n in node.input],
                          {"self": {"$in": 0}, "other": {"$in": 1}}, shape)
            return
        i = list(node.input).index(data[0])
        val, const = self.vals[data[0]], self.array(k, node, node.input[1 - i])
        if const.dtype != np.float32:
            raise self.node_fail(k, node, f"its constant holds {const.dtype} values",
                                 "export a float32 model", f"dtype {const.dtype}")
        if op == "Add" and self.bias(k, node, val, const):
            return
        try:
            grown = tuple(np.broadcast_shapes(val.shape, const.shape)) != val.shape
        except ValueError:
            grown = True
        if grown:
            raise self.node_fail(k, node, f"its constant of shape {const.shape} does not fit "
                                 f"the volume {val.shape} (it would grow or change it)",
                                 "export the model again", f"constant shape {const.shape}")
        op_name = _ARITH[op] if i == 0 else _SWAPPED[op]
        if const.size == 1 and const.ndim <= len(val.shape):
            self.function(k, node, f"Tensor.{op_name}", op_name, [val],
                          {"self": {"$in": 0}, "other": float(const.reshape(-1)[0])}, val.shape)
        else:
            self.function(k, node, f"Tensor.{op_name}", op_name, [val],
                          {"self": {"$in": 0}, "other": {"$in": 1}}, val.shape,
                          (np.array(const, np.float32),))

    def bias(self, k: int, node: Any, val: Val, const: np.ndarray) -> bool:
        """``MatMul(x, W) + b`` with nothing else reading the product: Linear with bias."""
        at = self.at.get(val.ref)
        gnode = self.gnodes[at] if at is not None else None
        name = next(n for n in node.input if n in self.vals)
        layer = gnode.module if gnode is not None else None
        if not isinstance(layer, Linear) or layer.bias is not None or \
                self.used.get(name, 0) != 1 or const.size != layer.out_features or \
                const.ndim > 2:
            return False
        new = Linear(layer.in_features, layer.out_features, True, seed=0)
        new.weight.data = layer.weight.data
        new.bias.data = const.reshape(-1).astype(np.float32)  # type: ignore[union-attr]
        self.gnodes[at] = replace(gnode, module=new, attrs=new.get_config())  # type: ignore
        self.vals[node.output[0]] = val
        return True

    def concat(self, k: int, node: Any, a: dict[str, Any], data: list[str]) -> None:
        ins = list(node.input)
        if any(self.vals[n].side for n in data):  # padding: the tensor with Slices of itself
            cur = [n for n in data if not self.vals[n].side]
            if len(cur) != 1:
                raise self.node_fail(k, node, "a Concat with Slices of data is supported only "
                                     "as padding (the tensor with Slices of itself)",
                                     "export the padding with Pad", f"inputs {ins}")
            val = self.vals[cur[0]]
            self.shape, self.pending = val.shape[1:], val.pending
            self.concat_pad(k, node, a, cur[0])
            self.vals[node.output[0]] = Val(val.ref, val.shape, pending=self.pending)
            return
        if len(data) != len(ins) or not ins:
            raise self.node_fail(k, node, "a Concat of data with constants is not supported",
                                 "concatenate computed volumes only", f"inputs {ins}")
        for n in ins:  # padding that no Conv takes: a pad node of its own
            if self.vals[n].pending:
                self.vals[n] = self.padded(k, node, self.vals[n])
        vals = [self.vals[n] for n in ins]
        rank = len(vals[0].shape)
        axis = int(a.get("axis", 0))
        if not -rank <= axis < rank or axis % rank == 0:
            raise self.node_fail(k, node, f"it joins along axis {axis}, not a feature axis of "
                                 f"the {rank}-axis volumes", "concatenate along the channels "
                                 "(axis 1)", f"axis={axis}")
        axis %= rank
        if any(len(v.shape) != rank or v.shape[:axis] + v.shape[axis + 1:] !=
               vals[0].shape[:axis] + vals[0].shape[axis + 1:] for v in vals):
            raise self.node_fail(k, node, f"the volumes it joins differ outside axis {axis}: "
                                 + ", ".join(str(v.shape[1:]) for v in vals),
                                 "make the branches that meet here the same height and width",
                                 f"axis={axis}")
        shape = list(vals[0].shape)
        shape[axis] = sum(v.shape[axis] for v in vals)
        self.function(k, node, "cat", "cat", vals,
                      {"tensors": [{"$in": i} for i in range(len(vals))], "dim": axis},
                      tuple(shape))

    def reduce(self, k: int, node: Any, a: dict[str, Any]) -> None:
        val = self.vals[node.input[0]]
        axes = list(a["axes"]) if "axes" in a else (self.ints(k, node, 1, "axes") or [])
        rank = len(val.shape)
        if not axes or any(not -rank <= x < rank for x in axes) or \
                0 in [x % rank for x in axes] or len({x % rank for x in axes}) != len(axes):
            raise self.node_fail(k, node, "it must reduce distinct axes other than the batch",
                                 "reduce e.g. axes [2, 3] (height and width)", f"axes={axes}")
        axes = sorted(x % rank for x in axes)
        keep = bool(int(a.get("keepdims", 1)))
        shape = tuple(1 if i in axes else n for i, n in enumerate(val.shape)) if keep else \
            tuple(n for i, n in enumerate(val.shape) if i not in axes)
        op = "mean" if node.op_type == "ReduceMean" else "sum"
        names = ("dim", "keepdim") if "dim" in _params(f"Tensor.{op}") else ("axis", "keepdims")
        self.function(k, node, f"Tensor.{op}", op, [val],
                      {"self": {"$in": 0}, names[0]: tuple(axes), names[1]: keep}, shape)

    def transpose(self, k: int, node: Any, a: dict[str, Any]) -> None:
        val = self.vals[node.input[0]]
        rank = len(val.shape)
        perm = [int(p) for p in a.get("perm", range(rank - 1, -1, -1))]
        if sorted(perm) != list(range(rank)) or perm[0] != 0:
            raise self.node_fail(k, node, "it must keep the batch axis first and permute all "
                                 "axes once", "transpose the feature axes only", f"perm={perm}")
        shape = tuple(val.shape[p] for p in perm)
        if "Tensor.permute" in tracing.OPS:  # PyTorch's names: permute reorders all axes
            self.function(k, node, "Tensor.permute", "permute", [val],
                          {"self": {"$in": 0}, "dims": tuple(perm)}, shape)
        else:
            self.function(k, node, "Tensor.transpose", "transpose", [val],
                          {"self": {"$in": 0}, "axes": tuple(perm)}, shape)

    def power(self, k: int, node: Any) -> None:
        val = self.vals[node.input[0]]
        if len(node.input) != 2 or node.input[1] not in self.consts:
            raise self.node_fail(k, node, "its exponent must be a constant number",
                                 "export the model again", f"inputs {list(node.input)}")
        e = np.asarray(self.array(k, node, node.input[1]))
        if e.size != 1 or e.dtype.kind != "f" or not np.isfinite(e).all():
            raise self.node_fail(k, node, "its exponent must be one finite number",
                                 "export the model again", f"exponent {e!r:.60}")
        self.function(k, node, "Tensor.pow", "pow", [val],
                      {"self": {"$in": 0}, "exponent": float(e.reshape(-1)[0])}, val.shape)

    def matmul(self, k: int, node: Any) -> None:
        """A product of two flat tensors (``Tensor.matmul``), or of a volume and a constant
        weight: ``linear`` on the volume's last axis, the weight one of the graph's
        constants."""
        if len(node.input) != 2 or node.input[0] not in self.vals:
            raise self.node_fail(k, node, "MatMul takes the data first and one other input",
                                 "export the model again", f"inputs {list(node.input)}")
        va = self.vals[node.input[0]]
        if node.input[1] not in self.vals:
            w = self.weight(k, node, 1, "weight", ndim=2)
            if w.shape[0] != va.shape[-1]:
                raise self.node_fail(k, node, f"its weight takes {w.shape[0]} features but the "
                                     f"volume has {va.shape[-1]} on its last axis",
                                     "export the model again", f"weight shape {w.shape}")
            self.function(k, node, "linear", "linear", [va],
                          {"input": {"$in": 0}, "weight": {"$in": 1}},
                          va.shape[:-1] + (w.shape[1],), (np.ascontiguousarray(w.T),))
            return
        vb = self.vals[node.input[1]]
        if len(va.shape) != 2 or len(vb.shape) != 2 or va.shape[1] != vb.shape[0]:
            raise self.node_fail(k, node, f"a product of two computed tensors is supported for "
                                 f"(N, k) @ (k, m) only, not {va.shape} @ {vb.shape}",
                                 "export the model again", f"shapes {va.shape}, {vb.shape}")
        self.function(k, node, "Tensor.matmul", "matmul", [va, vb],
                      {"self": {"$in": 0}, "other": {"$in": 1}}, (va.shape[0], vb.shape[1]))

    def reshape(self, k: int, node: Any, a: dict[str, Any]) -> None:
        val = self.vals[node.input[0]]
        target = self.ints(k, node, 1, "target shape") or []
        if int(a.get("allowzero", 0)) or not target or \
                target[0] not in (0, BATCH, self.batch if self.batch > 0 else BATCH):
            raise self.node_fail(k, node, "a reshape must keep the batch axis first",
                                 "reshape to (N, ...) with 0 or the batch size first",
                                 f"target shape {target}, allowzero={a.get('allowzero', 0)}")
        rest = [val.shape[i] if v == 0 and i < len(val.shape) else v
                for i, v in enumerate(target)][1:]
        total = int(np.prod(val.shape[1:]))
        known = int(np.prod([v for v in rest if v != -1]))
        if rest.count(-1) > 1 or any(v < -1 or v == 0 for v in rest) or known == 0 or \
                total % known or (-1 not in rest and known != total):
            raise self.node_fail(k, node, f"it cannot reshape {val.shape[1:]} to {target}",
                                 "export the model again", f"target shape {target}")
        rest = [total // known if v == -1 else v for v in rest]
        self.function(k, node, "Tensor.reshape", "reshape", [val],
                      {"self": {"$in": 0}, "shape": ({"$size": [0, 0]}, *rest)},
                      (1, *rest))

    def one_sided(self, k: int, node: Any, a: dict[str, Any]) -> bool:
        """Clip with one bound (other than ReLU's): ``Tensor.clamp``; False for the rest."""
        lo, hi = self.clip_bounds(k, node, a)
        if math.isfinite(lo) == math.isfinite(hi) or lo == 0.0:
            return False
        if "Tensor.clamp" not in tracing.OPS:
            raise self.node_fail(k, node, "Clip with one bound has no layer here",
                                 "clip to two finite bounds", f"min={lo}, max={hi}")
        val = self.vals[node.input[0]]
        bound = {"min": _short_float(lo)} if math.isfinite(lo) else {"max": _short_float(hi)}
        self.function(k, node, "Tensor.clamp", "clamp", [val], {"self": {"$in": 0}, **bound},
                      val.shape)
        return True

    def unsqueeze(self, k: int, node: Any, a: dict[str, Any]) -> None:
        """Unsqueeze, Squeeze (not of the batch axis) and Cast to float32 of a volume."""
        val = self.vals[node.input[0]]
        if node.op_type == "Cast":
            if int(a.get("to", 0)) != self.onnx.TensorProto.FLOAT:
                raise self.node_fail(k, node, "a Cast of a volume to another type is not "
                                     "supported", "keep the model in float32",
                                     f"to={a.get('to')}")
            self.vals[node.output[0]] = val
            return
        axes = list(a["axes"]) if "axes" in a else (self.ints(k, node, 1, "axes") or [])
        shape = list(val.shape)
        if node.op_type == "Unsqueeze":
            rank = len(shape) + len(axes)
            axes = sorted({self.axis(k, node, x, rank) for x in axes})
            for x in axes:
                shape.insert(x, 1)
        else:
            rank = len(shape)
            axes = sorted({self.axis(k, node, x, rank) for x in axes} if axes else
                          {i for i, n in enumerate(shape) if n == 1 and i})
            if any(shape[x] != 1 for x in axes):
                raise self.node_fail(k, node, "it squeezes an axis that is not of size 1",
                                     "export the model again", f"axes={axes}, shape {shape}")
            shape = [n for i, n in enumerate(shape) if i not in axes]
        if 0 in axes:
            raise self.node_fail(k, node, f"{node.op_type} of the batch axis is not supported",
                                 "keep the batch axis first", f"axes={axes}")
        self.function(k, node, "Tensor.reshape", "reshape", [val],
                      {"self": {"$in": 0}, "shape": ({"$size": [0, 0]}, *shape[1:])},
                      tuple(shape))

    def padded(self, k: int, node: Any, val: Val) -> Val:
        """Padding waiting for a Conv that another operator reads: a ``pad`` node."""
        pending = val.pending or {}
        (pt, pb), (pl, pr) = pending["pads"]
        shape = (*val.shape[:2], val.shape[2] + pt + pb, val.shape[3] + pl + pr)
        name = f"{node.input[0]}:pad"
        self.function(k, node, "pad", "pad", [val],
                      {"input": {"$in": 0}, "padding": ((pt, pb), (pl, pr)),
                       "mode": pending["mode"]}, shape, out=name)
        return self.vals.pop(name)

    def shape_of(self, k: int, node: Any, a: dict[str, Any]) -> None:
        val = self.vals[node.input[0]]
        dims = np.array([self.batch if self.batch > 0 else BATCH, *val.shape[1:]], np.int64)
        self.consts[node.output[0]] = dims[slice(a.get("start"), a.get("end"))]

    def slice(self, k: int, node: Any, a: dict[str, Any]) -> None:
        val = self.vals[node.input[0]]
        if any(n and n not in self.consts for n in node.input[1:]):
            raise self.node_fail(k, node, "its starts, ends, axes and steps must be constants",
                                 "export with constant folding", f"inputs {list(node.input)}")
        self.shape = val.shape[1:]
        self.side_slice(k, node, a, node.input[0])
        self.vals[node.output[0]] = Val(val.ref, val.shape, val.pending, side=True)

    # ------------------------------------------------------------------ the model
    def finish(self, out: str) -> Module:
        val = self.vals.get(out)
        if val is not None and val.pending:
            val = self.padded(len(self.graph.node) - 1, self.graph.node[-1], val)
        if val is None or val.side:
            raise self.fail(f"the graph output {out!r} is not a computed volume (padding or a "
                            "Slice that no Conv uses, or a constant)", "export the model again")
        if val.ref == "input":  # nothing computed: the identity
            from ..nn import Identity

            self.shape = val.shape[1:]
            val = Val(self.module(0, self.graph.node[0], Identity(), ["input"]), val.shape)
        self.shape = val.shape[1:]
        keep = {val.ref}
        for n in reversed(self.gnodes):
            if n.name in keep:
                keep.update(n.inputs)
        nodes = [replace(n, index=i) for i, n in enumerate(
            n for n in self.gnodes if n.name in keep)]
        sources = {k: s for k, s in self.sources.items() if k in keep or s.kind == "input"}
        if all(n.kind == "module" for n in nodes) and [n.inputs for n in nodes] == [
                ("input",)] + [(n.name,) for n in nodes[:-1]] and \
                len({id(n.module) for n in nodes}) == len(nodes):
            return Sequential(*[n.module for n in nodes])
        return GraphModule(Graph(nodes, sources, (val.ref,)))
