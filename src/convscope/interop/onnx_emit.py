"""The state of an ONNX export: the nodes and initializers written so far, and one graph
node's call as the export builders see it.

:class:`Emitter` names what it writes the way PyTorch's exporter does (nodes
``/layer1/layer1.0/conv1/Conv``, values ``<node>_output_0``) and gives each parameter one
initializer named as in ``state_dict()`` (``layer1.0.conv1.weight``), however many nodes read
it. :class:`Call` presents a graph node (a layer, or a traced function) as the arguments of
its function: a ``Conv2d`` layer and a ``conv2d(x, w, b, ...)`` call both give ``weight``,
``bias``, ``stride``, ``padding`` ... so that one builder serves both.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import tracing
from ..errors import ArgumentError, message
from ..graph import Graph, Node
from .onnx_common import scope_of

__all__ = ["Emitter", "Call", "Ref", "BatchSize"]

WHERE = "export_onnx"


@dataclass(frozen=True)
class Ref:
    """A tensor of the ONNX graph: its name, its shape (batch 1 for data) and, for a
    parameter or a constant, its values."""

    name: str
    shape: tuple[int, ...]
    array: np.ndarray | None = None


@dataclass(frozen=True)
class BatchSize:
    """``x.shape[dim]`` of the ``k``-th input, recorded by the tracer (the batch size)."""

    k: int
    dim: int


class Emitter:
    """Collects nodes and initializers; maps the graph's values to ONNX names."""

    def __init__(self, onnx: Any, opset: int, graph: Graph, params: dict[str, Any]) -> None:
        self.onnx, self.opset, self.graph = onnx, opset, graph
        self.params = params  # state_dict name -> Parameter or array (function nodes' weights)
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.values: dict[str, Ref] = {}
        self._inits: dict[str, int] = {}  # initializer name -> id of the array it holds
        self._node_names: set[str] = set()
        self._by_name = graph.by_name()

    # ------------------------------------------------------------------ writing
    def const(self, name: str, array: Any) -> Ref:
        """An initializer (float data as float32); the same array under one name is written
        once; another array asking for a taken name gets a suffix."""
        arr = np.asarray(array)
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        arr = np.array(arr, order="C")  # (ascontiguousarray would make a scalar 1-D)
        key = id(array)
        if self._inits.get(name) == key:
            return Ref(name, tuple(arr.shape), arr)
        base, k = name, 1
        while name in self._inits:
            name, k = f"{base}_{k}", k + 1
        self._inits[name] = key
        self.initializers.append(self.onnx.numpy_helper.from_array(arr, name))
        return Ref(name, tuple(arr.shape), arr)

    def op(self, scope: str, op_type: str, inputs: list[str], outputs: int = 1,
           **attrs: Any) -> str:
        """Write one node; returns its (first) output's name."""
        base = f"{scope}/{op_type}"
        name, k = base, 1
        while name in self._node_names:
            name, k = f"{base}_{k}", k + 1
        self._node_names.add(name)
        outs = [f"{name}_output_{i}" for i in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, outs, name=name, **attrs))
        return outs[0]

    # ------------------------------------------------------------------ reading the graph
    def value(self, name: str) -> Ref:
        """The ONNX tensor for a graph value: a node's output, the input, a parameter or a
        constant (written as an initializer the first time it is read)."""
        if name in self.values:
            return self.values[name]
        src = self.graph.sources.get(name)
        if src is None:  # a node not yet written: cannot happen in a traced order
            raise ArgumentError(message(WHERE, f"the graph reads {name!r} before it is made",
                                        "trace the model again"))
        if src.kind == "input":
            ref = Ref(name, src.shape)
        elif src.kind == "param":
            ref = self.param(name, self.params.get(name))
        else:
            ref = self.const(name, src.value)
        self.values[name] = ref
        return ref

    def param(self, name: str, value: Any) -> Ref:
        if value is None:
            raise ArgumentError(message(WHERE, f"the parameter {name!r} the graph reads is "
                                        "not in the model", "export the model that was traced"))
        data = getattr(value, "data", value)
        return self.const(name, np.asarray(data))


def _decode(value: Any, ins: list[Ref]) -> Any:
    if isinstance(value, dict):
        if "$in" in value:
            return ins[value["$in"]]
        if "$size" in value:
            return BatchSize(*value["$size"])
        if "$slice" in value or "$ellipsis" in value:
            return value
        return {k: _decode(v, ins) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, ins) for v in value]
    if isinstance(value, tuple):
        return tuple(_decode(v, ins) for v in value)
    return value


class Call:
    """One graph node as its function's arguments (see the module docstring)."""

    def __init__(self, e: Emitter, node: Node) -> None:
        self.e, self.node = e, node
        self.ins = [e.value(i) for i in node.inputs]
        self.out_shape = node.shape
        if node.kind == "module":
            self.scope = scope_of(node.name)
            self.args = self._module_args()
        else:
            self.scope = scope_of(node.path)
            self.args = self._function_args()

    def _module_args(self) -> dict[str, Any]:
        layer, node = self.node.module, self.node
        args: dict[str, Any] = dict(layer.get_config()) if hasattr(layer, "get_config") else {}
        prefix = f"{node.target}." if node.target else ""
        for name in ("weight", "bias", "running_mean", "running_var"):
            if name in layer._parameters or name in layer._buffers or name in args:
                value = layer._parameters.get(name, layer._buffers.get(name))
                args[name] = None if value is None else self.e.param(prefix + name, value)
        if node.op == "batch_norm":
            args["training"] = not layer.track_running_stats
        return args

    def _function_args(self) -> dict[str, Any]:
        fn = tracing.OPS.get(self.node.target)
        args = {k: _decode(v, self.ins) for k, v in self.node.attrs.items() if k != "$item"}
        if fn is not None:
            for p in inspect.signature(fn).parameters.values():
                if p.name not in args and p.default is not p.empty:
                    args[p.name] = p.default
        return args

    # ------------------------------------------------------------------ helpers for builders
    @property
    def x(self) -> str:
        """The first data input's name."""
        return self.ins[0].name

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.ins[0].shape

    def ref(self, key: str) -> Ref | None:
        value = self.args.get(key)
        return value if isinstance(value, Ref) else None

    def operand(self, key: str, like: str = "") -> str:
        """A tensor argument's name, or a number written as a float32 scalar constant."""
        value = self.args.get(key)
        if isinstance(value, Ref):
            return value.name
        if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            return self.const(key, np.array(value, np.float32))
        raise self.fail(f"its argument `{key}` is neither a tensor nor a number",
                        "export arithmetic between tensors and numbers only", f"{key}={value!r}")

    def op(self, op_type: str, inputs: list[str], outputs: int = 1, **attrs: Any) -> str:
        return self.e.op(self.scope, op_type, inputs, outputs, **attrs)

    def const(self, suffix: str, array: Any) -> str:
        return self.e.const(f"{self.node.name}.{suffix}", array).name

    @property
    def where(self) -> str:
        n = self.node
        at = "" if n.name == str(n.index) else f" at {n.name!r}"
        return f"{WHERE} layer {n.index} ({n.layer or n.op}){at}"

    def fail(self, what: str, fix: str, received: str | None = None) -> ArgumentError:
        return ArgumentError(message(self.where, what, fix, received))
