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

from dataclasses import replace
from typing import Any

import numpy as np

from .. import tracing
from ..errors import ConvscopeError
from ..graph import Graph, GraphModule, Node, Source
from ..nn import GELU, Hardswish, Module, Sequential, SiLU
from .onnx_dag_ops import _ARITH, DataOps, Val
from .onnx_fold import BATCH, FOLD_OPS
from .onnx_graph import CHAIN_OPS
from .onnx_names import PathNamer
from .onnx_operands import NotAChain
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
_UNARY = {"Neg": "neg", "Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Abs": "abs"}
_LAYER_OPS = set(CHAIN_OPS) - {"Add", "Constant"}


class GraphDag(DataOps):
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
