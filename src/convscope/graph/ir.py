"""The graph: one recorded forward pass of a model, as nodes that name their inputs.

A :class:`Graph` is what every tool reads (``explain``, the pictures, ONNX export, model
files, the fusion pass): a list of :class:`Node` in the order they ran, each with its
operation, its inputs, its output shape and the module path it came from, plus the
*sources* its nodes read that no node computes (the model's inputs, parameters used
directly, constants). Edges are names, as in ONNX: a node's ``inputs`` name other nodes
or sources. Nodes are numbered from 0 (``index``) in the order they ran; a chain model's
node ``k`` is its layer ``k``, as ``model[k]``.

>>> import convscope as cs
>>> g = cs.graph.trace(cs.parse("8x8x1 | conv(4, 3, padding=1) | relu"))
>>> [(n.index, n.name, n.op, n.shape) for n in g.nodes]
[(0, '0', 'conv2d', (1, 4, 8, 8)), (1, '1', 'relu', (1, 4, 8, 8))]
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, message

__all__ = ["Node", "Source", "Graph", "TraceFailure", "node_label"]

Shape = tuple[int, ...]


@dataclass
class Source:
    """A value the graph reads but does not compute.

    ``kind`` is ``"input"`` (an argument of ``forward``), ``"param"`` (a parameter or
    buffer of the model, by its state_dict name) or ``"constant"`` (any other array).
    """

    name: str
    kind: str
    shape: Shape
    dtype: str
    value: np.ndarray | None = field(default=None, repr=False)  # constants only
    trainable: bool = False  # a parameter (learned), not a buffer


@dataclass
class Node:
    """One recorded operation.

    Attributes
    ----------
    index : its number, in the order the nodes ran (what ``--layer 3`` means)
    name : unique: the module path for a layer (``"layer1.0.conv1"``), the enclosing
        module's path and the op for a function (``"layer1.0.add"``); a second call of the
        same layer or op gets ``#2``, and so on
    op : the operation (``"conv2d"``, ``"add"``, ``"cat"``...)
    kind : ``"module"`` (a leaf layer), ``"function"`` (a traced function or operator) or
        ``"opaque"`` (any other tensor operation: computed, not replayable)
    inputs : the names of the nodes or sources it reads, in argument order
    shape, dtype : its output (with the batch axis)
    path : the module path it came from: the layer's own (module nodes) or the module
        whose ``forward`` made the call (others; ``""`` for the model itself)
    target : what to call on replay: the module path (module nodes) or the key of the
        function in :data:`convscope.tracing.OPS`
    attrs : a function's arguments, tensors replaced by ``{"$in": k}`` (the k-th input);
        for a module node, the layer's ``get_config()``
    module : the layer object (module nodes), not saved
    """

    index: int
    name: str
    op: str
    kind: str
    inputs: tuple[str, ...]
    shape: Shape
    dtype: str
    path: str = ""
    target: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    layer: str = ""  # the class name of a module node's layer
    module: Any = field(default=None, repr=False, compare=False)

    @property
    def label(self) -> str:
        return node_label(self)


def node_label(node: Node) -> str:
    """``"layer1.0.conv1 (Conv2d)"``: how messages name a node."""
    return f"{node.name} ({node.layer or node.op})"


@dataclass
class TraceFailure:
    """Where a trace stopped: the node that could not run and why (a convscope error)."""

    name: str  # the node's would-be name (the layer path, or path.op)
    op: str
    layer: str
    path: str
    inputs: tuple[str, ...]
    input_shapes: tuple[Shape, ...]
    error: Exception


@dataclass
class Graph:
    """A recorded forward pass (see the module docstring).

    ``outputs`` names what ``forward`` returned (one name, or several for a tuple);
    ``containers`` maps the path of each traced-through module (``"layer1.0"``) to the
    node that made its output; ``values`` (when traced with real values) holds each node's
    and source's output for the traced input; ``failure`` says where a trace stopped.
    """

    nodes: list[Node]
    sources: dict[str, Source]
    outputs: tuple[str, ...]
    output_tuple: bool = False
    containers: dict[str, str] = field(default_factory=dict)
    model: Any = field(default=None, repr=False, compare=False)
    values: dict[str, np.ndarray] | None = field(default=None, repr=False, compare=False)
    failure: TraceFailure | None = None

    # ------------------------------------------------------------------ lookups
    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def inputs(self) -> list[Source]:
        return [s for s in self.sources.values() if s.kind == "input"]

    def by_name(self) -> dict[str, Node]:
        return {n.name: n for n in self.nodes}

    def shape_of(self, name: str) -> Shape:
        """The shape of a node's or source's output."""
        node = self.by_name().get(name)
        return node.shape if node is not None else self.sources[name].shape

    def users(self, name: str) -> list[Node]:
        """The nodes that read ``name`` (a node or a source), in order."""
        return [n for n in self.nodes if name in n.inputs]

    def producers(self, node: Node) -> list[Node | Source]:
        names = self.by_name()
        return [names.get(i) or self.sources[i] for i in node.inputs]

    def is_chain(self) -> bool:
        """Whether each node reads only the one before it (or the single input), and is
        read only by the one after it: the slides' stack of layers."""
        ins = self.inputs
        if len(ins) != 1 or len(self.outputs) != 1:
            return False
        prev = ins[0].name
        for n in self.nodes:
            reads = [i for i in n.inputs if self.sources.get(i) is None
                     or self.sources[i].kind == "input"]
            if reads != [prev]:
                return False
            prev = n.name
        return not self.nodes or self.outputs == (self.nodes[-1].name,)

    def find(self, layer: Any, where: str = "--layer") -> Node:
        """A node by number (``3``, ``"3"``) or by name or module path (``"layer1.0.conv1"``;
        a traced-through module's path finds the node that made its output).

        The error lists what there is, so a mistyped path gets a useful answer.
        """
        if isinstance(layer, Node):
            return layer
        names = self.by_name()
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer, str)):
            raise ArgumentTypeError(message(where, "a layer is a node number or a module path",
                                            "pass e.g. 3 or 'layer1.0.conv1'", repr(layer)))
        key = str(layer).strip()
        if key.lstrip("-").isdigit():
            k = int(key)
            if 0 <= k < len(self.nodes):
                return self.nodes[k]
            raise ArgumentError(message(where, f"there is no node {k}: the model has "
                                        f"{len(self.nodes)} (0 to {len(self.nodes) - 1})",
                                        "use a number from the first column of "
                                        "`convscope explain`", f"layer={layer!r}"))
        if key in names:
            return names[key]
        if key in self.containers:
            return names[self.containers[key]]
        paths = [n.name for n in self.nodes]
        close = [p for p in paths if p.startswith(key) or key in p][:8]
        import difflib

        close = close or difflib.get_close_matches(key, paths + list(self.containers), 5)
        hint = f"did you mean {', '.join(close)}" if close else \
            f"the model's layers are {', '.join(paths[:12])}" + (" ..." if len(paths) > 12 else "")
        raise ArgumentError(message(where, f"the model has no layer {key!r}",
                                    "use a node number or a module path from "
                                    f"`convscope explain`; {hint}", f"layer={layer!r}"))

    def param_count(self) -> int:
        """Parameters of the layers the graph uses, each counted once (a reused layer too)."""
        seen: set[int] = set()
        total = 0
        for n in self.nodes:
            if n.module is not None:
                for p in n.module.parameters():
                    if id(p) not in seen:
                        seen.add(id(p))
                        total += p.numel()
        for s in self.sources.values():
            if s.kind == "param" and s.dtype.startswith("float"):
                total += math.prod(s.shape)
        return total
