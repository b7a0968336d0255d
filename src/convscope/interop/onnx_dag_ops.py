"""The graph walk's operations on data that have no layer: they become function nodes.

Arithmetic (``Tensor.add`` ... between volumes, or with constants: a single number stays a
number, other constants become the graph's constants), ``cat``, reductions
(``Tensor.mean``/``sum`` over feature axes), ``Tensor.permute``, ``Tensor.pow`` by a
constant, ``linear`` for a MatMul of a volume by a constant, ``Tensor.reshape`` (also for
Unsqueeze and Squeeze), ``Tensor.clamp`` for a one-sided Clip, and ``pad`` for padding that
no Conv takes. A bias-less Gemm or MatMul whose only user adds a constant takes it as its
bias instead. :class:`DataOps` is the part of :class:`~.onnx_dag.GraphDag` that makes them;
:class:`Val` is the walk's record of a data tensor.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .. import tracing
from ..graph import Node, Source
from ..nn import Linear
from .onnx_fold import BATCH
from .onnx_graph import GraphChain
from .onnx_operands import _short_float

__all__ = ["DataOps", "Val"]

_ARITH = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div"}
_SWAPPED = {"Add": "add", "Sub": "rsub", "Mul": "mul", "Div": "rdiv"}


def _params(key: str) -> set[str]:
    """The argument names of a traced operation (what a function node's attrs may say)."""
    return set(inspect.signature(tracing.OPS[key]).parameters)


@dataclass
class Val:
    """A data tensor: the graph node (or ``input``) that makes it and its shape; padding
    waiting for a Conv, or a Slice kept for the Concat that pads with it."""

    ref: str
    shape: tuple[int, ...]
    pending: dict[str, Any] | None = None
    side: bool = False


class DataOps(GraphChain):
    """Function nodes for the graph walk (see the module docstring). Expects the walk's
    ``vals``, ``gnodes``, ``sources``, ``at`` (graph node name -> index), ``namer`` and
    ``batch``."""

    vals: dict[str, Val]
    gnodes: list[Node]
    sources: dict[str, Source]
    at: dict[str, int]
    namer: Any

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
