"""Run a graph as a model, and write a graph as data (JSON) and read it back.

:class:`GraphModule` is a model rebuilt from a :class:`~convscope.graph.Graph`: its layers
sit at their original module paths (so ``state_dict()`` names are the original model's,
``layer1.0.conv1.weight``), and ``forward`` runs the nodes in order: a layer node calls its
layer, a function node calls the traced function (:data:`convscope.tracing.OPS`) with the
recorded arguments. A graph's JSON form (:func:`to_json`, :func:`from_json`) names layer
classes, their ``get_config()`` arguments, functions by key, and edges; never code. It is
what a model file keeps in its header for a model that is not a chain.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import tracing
from ..errors import ArgumentError, FileFormatError, ShapeError, message
from ..nn.module import Module, Parameter
from ..tensor import Tensor, as_array
from .ir import Graph, Node, Source

__all__ = ["GraphModule", "to_json", "from_json", "GRAPH_FORMAT", "layer_classes"]

GRAPH_FORMAT = "convscope-graph-1"
_MAX_NODES = 100_000


def layer_classes() -> dict[str, type]:
    """Every leaf layer class convscope has, by class name (what a graph file may name)."""
    from .. import nn

    out: dict[str, type] = {}
    for name in dir(nn):
        cls = getattr(nn, name)
        if isinstance(cls, type) and issubclass(cls, Module) and cls.is_leaf():
            out[name] = cls
    return out


def _decode(value: Any, inputs: Sequence[Any]) -> Any:
    """A recorded argument back to a value: ``{"$in": k}`` is the k-th input."""
    if isinstance(value, dict):
        if "$in" in value:
            return inputs[value["$in"]]
        if "$size" in value:
            k, dim = value["$size"]
            return int(inputs[k].shape[dim])
        if "$slice" in value:
            return slice(*value["$slice"])
        if "$ellipsis" in value:
            return Ellipsis
        return {k: _decode(v, inputs) for k, v in value.items()}
    if isinstance(value, list):  # a list of tensors stays a list (cat); plain data: tuples
        items = [_decode(v, inputs) for v in value]
        return items if any(isinstance(v, Tensor) for v in items) else tuple(items)
    if isinstance(value, tuple):
        return tuple(_decode(v, inputs) for v in value)
    return value


_PARAMS: dict[Any, tuple] = {}


def _parameters(fn: Any) -> tuple:
    params = _PARAMS.get(fn)
    if params is None:
        params = _PARAMS[fn] = tuple(inspect.signature(fn).parameters.values())
    return params


def call_recorded(node: Node, args: Sequence[Any]) -> Any:
    """Call a function node's function with its recorded arguments and these inputs."""
    fn = tracing.OPS.get(node.target)
    if node.kind != "function" or fn is None:
        raise ArgumentError(message(f"graph node {node.name}", f"the operation {node.op!r} "
                                    "was recorded but cannot be run again from the graph",
                                    "write it with a convscope operation (an nn layer or a "
                                    "function of convscope.nn.functional)",
                                    f"kind={node.kind}"))
    attrs = {k: v for k, v in node.attrs.items() if k != "$item"}
    bound = {k: _decode(v, args) for k, v in attrs.items()}
    pos: list[Any] = []
    kw: dict[str, Any] = {}
    skipped = False  # after an argument left out, the rest go by name (never shifted)
    for p in _parameters(fn):
        if p.name not in bound:
            skipped = skipped or p.kind is not p.VAR_POSITIONAL
            continue
        v = bound[p.name]
        if p.kind is p.VAR_POSITIONAL:
            pos.extend(v)
        elif p.kind is p.VAR_KEYWORD:
            kw.update(v)
        elif p.kind is p.KEYWORD_ONLY or skipped:
            kw[p.name] = v
        else:
            pos.append(v)
    rec = tracing.active()
    if rec is not None and not tracing.quiet():  # a graph model being traced: one node again
        out = rec.call_function(tracing.OP_NAMES[node.target], node.target, fn, tuple(pos), kw)
    else:
        out = fn(*pos, **kw)
    return out[node.attrs["$item"]] if "$item" in node.attrs else out


class GraphModule(Module):
    """A model that runs a recorded graph (see the module docstring).

    Parameters
    ----------
    graph : Graph
        With ``module`` set on its layer nodes (a traced graph, or one read by
        :func:`from_json`).
    params : dict of name -> Parameter or array, optional
        The parameters and buffers the graph's function nodes read directly, by
        state_dict name.
    """

    fused_inference = True  # inference runs the fused graph (graph/fuse.py)

    def __init__(self, graph: Graph, params: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.graph = graph
        self.input_shape = tuple(graph.inputs[0].shape[1:]) if graph.inputs else None
        for node in graph.nodes:
            if node.kind == "module":
                self._place(node.target, node.module)
        for name, src in graph.sources.items():
            if src.kind == "param":
                value = (params or {}).get(name)
                if value is None and graph.model is not None:
                    value = _lookup(graph.model, name)
                if value is None:
                    raise FileFormatError(message("graph", f"the parameter {name!r} the graph "
                                                  "reads is missing", "save the whole model"))
                if src.trainable and not isinstance(value, Parameter):
                    value = Parameter(np.asarray(value))
                self._place_param(name, value)

    def _container(self, path: str) -> Module:
        mod: Module = self
        for part in [p for p in path.split(".") if p]:
            nxt = mod._modules.get(part)
            if nxt is None:
                nxt = Module()
                nxt.forward = None  # type: ignore[assignment]  # a holder, never called
                mod.__setattr__(part, nxt)
            mod = nxt
        return mod

    def _place(self, path: str, module: Module) -> None:
        parent, _, leaf = path.rpartition(".")
        holder = self._container(parent)
        if leaf in holder._modules and holder._modules[leaf] is not module:
            raise ShapeError(message("graph", f"two layers claim the path {path!r}",
                                     "give each layer its own name"))
        holder.__setattr__(leaf or "0", module)

    def _place_param(self, name: str, value: Any) -> None:
        parent, _, leaf = name.rpartition(".")
        holder = self._container(parent)
        if isinstance(value, Parameter):
            holder.__setattr__(leaf, value)
        else:
            holder.register_buffer(leaf, np.asarray(value))

    def _layer(self, path: str) -> Module:
        return self.get_submodule(path) if path else self._modules["0"]

    def forward(self, *inputs: Any) -> Any:
        return run_graph(self.graph, self, inputs)


def run_graph(graph: Graph, root: Module, inputs: Sequence[Any]) -> Any:
    """Run ``graph``'s nodes in order on ``inputs``; layers and parameters are looked up in
    ``root`` by their paths at each call (so a replaced buffer or layer is the one used)."""
    env: dict[str, Any] = {}
    ins = graph.inputs
    if len(inputs) != len(ins):
        raise ArgumentError(message("graph model", f"forward takes {len(ins)} input(s)",
                                    "pass one array per input", f"{len(inputs)} given"))
    for src, x in zip(ins, inputs, strict=True):
        env[src.name] = x if isinstance(x, Tensor) else Tensor._wrap(
            np.ascontiguousarray(as_array(x, "graph model")))  # float64 stays float64
    for name, src in graph.sources.items():
        if src.kind == "param":
            env[name] = _lookup(root, name)
        elif src.kind == "constant":
            env[name] = Tensor._wrap(src.value)
    for node in graph.nodes:
        args = [env[i] for i in node.inputs]
        if node.kind == "module":
            layer = root.get_submodule(node.target) if node.target else root._modules["0"]
            env[node.name] = layer(*args)
        else:
            env[node.name] = call_recorded(node, args)
    outs = tuple(env[o] for o in graph.outputs)
    return outs if graph.output_tuple else outs[0]


def _lookup(model: Module, name: str) -> Any:
    parent, _, leaf = name.rpartition(".")
    try:
        mod = model.get_submodule(parent)
    except ArgumentError:
        return None
    return mod._parameters.get(leaf) if leaf in mod._parameters else mod._buffers.get(leaf)


# --------------------------------------------------------------------------- JSON
def to_json(graph: Graph) -> str:
    """The graph as JSON text: layers by class name and config, functions by key, edges.

    Refuses a graph with an operation that cannot be replayed (an opaque node).
    """
    opaque = [n for n in graph.nodes if n.kind == "opaque"]
    if opaque:
        n = opaque[0]
        raise ArgumentError(message("save", f"node {n.index} ({n.name}) is the operation "
                                    f"{n.op!r}, which convscope cannot write down as data",
                                    "use convscope layers and functions (cs.nn, "
                                    "cs.nn.functional, cs.cat, +) in forward()",
                                    f"{len(opaque)} such node(s)"))
    if graph.failure is not None:
        raise ShapeError(message("save", "the model does not run on its input volume",
                                 "fix the model first", str(graph.failure.error)))
    data = {
        "format": GRAPH_FORMAT,
        "sources": [{"name": s.name, "kind": s.kind, "shape": list(s.shape), "dtype": s.dtype,
                     "trainable": s.trainable} for s in graph.sources.values()],
        "nodes": [{"name": n.name, "op": n.op, "kind": n.kind, "inputs": list(n.inputs),
                   "target": n.target, "attrs": n.attrs, "layer": n.layer, "path": n.path,
                   "shape": list(n.shape), "dtype": n.dtype} for n in graph.nodes],
        "outputs": list(graph.outputs),
        "output_tuple": graph.output_tuple,
    }
    return json.dumps(data, allow_nan=True, separators=(",", ":"))


def _bad(what: str, received: str = "") -> FileFormatError:
    return FileFormatError(message("model file graph", what, "re-save the model with "
                                   "convscope", received or None))


def from_json(text: str, constants: dict[str, np.ndarray] | None = None) -> Graph:
    """Rebuild a :class:`Graph` (layers constructed fresh, weights not loaded) from
    :func:`to_json`'s text, checking every name it uses; nothing in it is run as code."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise _bad("the graph is not valid JSON") from None
    if not isinstance(data, dict) or data.get("format") != GRAPH_FORMAT:
        raise _bad(f"the graph is not in the {GRAPH_FORMAT} format")
    classes = layer_classes()
    try:
        sources: dict[str, Source] = {}
        for s in data["sources"]:
            kind = s["kind"]
            if kind not in ("input", "param", "constant") or s["name"] in sources:
                raise _bad(f"bad source {s['name']!r}")
            value = None
            if kind == "constant":
                value = (constants or {}).get(s["name"])
                if value is None:
                    raise _bad(f"the constant {s['name']!r} is missing from the file")
            sources[s["name"]] = Source(str(s["name"]), kind, tuple(int(v) for v in s["shape"]),
                                        str(s["dtype"]), value, bool(s.get("trainable")))
        nodes: list[Node] = []
        known = set(sources)
        built: dict[str, Module] = {}
        if len(data["nodes"]) > _MAX_NODES:
            raise _bad(f"more than {_MAX_NODES} nodes")
        for k, n in enumerate(data["nodes"]):
            name, kind = str(n["name"]), n["kind"]
            inputs = tuple(str(i) for i in n["inputs"])
            missing = [i for i in inputs if i not in known]
            if missing:
                raise _bad(f"node {name!r} reads {missing[0]!r}, which no earlier node or "
                           "source makes (a cycle or a dangling edge)")
            if name in known:
                raise _bad(f"two nodes are named {name!r}")
            module = None
            if kind == "module":
                cls = classes.get(n["layer"])
                if cls is None:
                    raise _bad(f"node {name!r} names the layer class {n['layer']!r}, which "
                               "convscope does not have")
                module = built.get(n["target"])
                if module is None:
                    cfg = _tuples(n["attrs"])
                    if not isinstance(cfg, dict):
                        raise _bad(f"node {name!r} has no layer arguments")
                    module = built[n["target"]] = cls(**cfg)
                elif type(module) is not cls:
                    raise _bad(f"the path {n['target']!r} names two different layers")
            elif kind == "function":
                if n["target"] not in tracing.OPS:
                    raise _bad(f"node {name!r} calls {n['target']!r}, which convscope does not "
                               "have")
            else:
                raise _bad(f"node {name!r} has the kind {kind!r}")
            nodes.append(Node(k, name, str(n["op"]), kind, inputs,
                              tuple(int(v) for v in n["shape"]), str(n["dtype"]),
                              str(n.get("path", "")), str(n["target"]),
                              n["attrs"] if kind == "function" else _tuples(n["attrs"]),
                              str(n.get("layer", "")), module))
            known.add(name)
        outputs = tuple(str(o) for o in data["outputs"])
        if not outputs or any(o not in known for o in outputs):
            raise _bad("the graph's outputs are not made by its nodes")
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, FileFormatError):
            raise
        raise _bad("the graph is malformed", f"{type(exc).__name__}: {exc}") from None
    return Graph(nodes, sources, outputs, bool(data.get("output_tuple", False)))


def _tuples(value: Any) -> Any:
    """JSON lists back to tuples (layer arguments are tuples in convscope)."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {str(k): _tuples(v) for k, v in value.items()}
    return value
