"""What a node computes with, read from the graph, and the graph run again with gradients.

:func:`node_args` gives the arguments of a node's operation as one dict, whether the node
is a layer (its ``get_config()`` and its weights) or a function called in a ``forward``
(its recorded arguments, tensors replaced by their values): ``{"stride": (2, 2),
"weight": array, ...}``. The walk-throughs read it, so ``F.conv2d(x, self.w, stride=2)`` in
a custom ``forward`` is taken apart like a ``Conv2d``.

:func:`replay` runs the graph's nodes again from given tensors (the image with
``requires_grad``, or the values of one node), each layer called as itself and each
function called with its recorded arguments: how a gradient reaches an inner node of any
traced model (Grad-CAM, the receptive field).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..errors import ArgumentError, message
from ..graph import Graph, Node
from ..graph.module import call_recorded
from ..nn import Module
from ..tensor import Tensor
from .layers import Activations, LayerRef

__all__ = ["node_args", "replay", "inspect_mode", "run_node", "pair"]

_ARRAYS = ("weight", "bias", "running_mean", "running_var")


def pair(value: Any) -> tuple[int, int]:
    """An int or a pair as a pair of ints."""
    if isinstance(value, (tuple, list)):
        return int(value[0]), int(value[-1])
    return int(value), int(value)


def _decode(value: Any, inputs: list[np.ndarray]) -> Any:
    if isinstance(value, dict) and "$in" in value:
        return inputs[value["$in"]]
    if isinstance(value, list):
        return [_decode(v, inputs) for v in value]
    return value


def node_args(ref: LayerRef, acts: Activations) -> dict[str, Any]:
    """The arguments of node ``ref``'s operation, with arrays for its tensors.

    A layer: its ``get_config()`` plus ``weight``, ``bias``, ``running_mean`` and
    ``running_var`` where it has them (None for a missing bias). A function: its recorded
    arguments by parameter name, each tensor replaced by its value (a data input keeps no
    batch axis; a parameter is as it is).
    """
    node = ref.node
    assert node is not None
    if ref.layer is not None:
        layer = ref.layer
        args: dict[str, Any] = dict(layer.get_config()) if hasattr(layer, "get_config") else {}
        for name in _ARRAYS:
            if hasattr(layer, name):
                v = getattr(layer, name)
                args[name] = None if v is None else np.asarray(getattr(v, "data", v))
        if hasattr(layer, "extra"):  # pooling keeps dilation, ceil_mode... here
            args = {**layer.extra, **args}
        return args
    inputs = acts.inputs_of(ref)
    return {k: _decode(v, inputs) for k, v in node.attrs.items() if not k.startswith("$")}


@contextmanager
def inspect_mode(model: Module) -> Iterator[None]:
    """The model in eval mode (batch norm's running statistics, no dropout) with its
    parameters frozen: a gradient taken for a picture reaches the image or an inner node,
    costs no weight gradients and leaves no ``.grad`` on the parameters. Then back."""
    modes = [(m, m.training) for m in model.modules()]
    params = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in params:
        p.requires_grad = False
    try:
        yield
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
        for p, flag in params:
            p.requires_grad = flag


Call = Callable[[Node, list[Any]], Any]


def run_node(node: Node, args: list[Any]) -> Any:
    """Node ``node`` computed again from ``args`` (its inputs, in order)."""
    if node.kind == "module":
        return node.module(*args)
    if node.kind != "function":
        raise ArgumentError(message(f"node {node.index} ({node.name})",
                                    f"the operation {node.op!r} was recorded but cannot be "
                                    "run again from the graph, so no gradient reaches "
                                    "through it", "write it with a convscope operation (an nn "
                                    "layer, a function of convscope.nn.functional, +, cs.cat)"))
    return call_recorded(_with_defaults(node), args)


def _with_defaults(node: Node) -> Node:
    """The node with every argument before its last recorded one filled in (a default where
    the call left it out), so that replay passes each argument in its own place: the call
    ``F.interpolate(x, size=s, mode="nearest")`` skips ``scale_factor``."""
    import inspect

    from .. import tracing

    params = list(inspect.signature(tracing.OPS[node.target]).parameters.values())
    given = [i for i, p in enumerate(params) if p.name in node.attrs]
    attrs = dict(node.attrs)
    for p in params[:max(given, default=-1) + 1]:
        if p.name not in attrs and p.default is not p.empty and p.kind in (
                p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            attrs[p.name] = p.default
    return dataclasses.replace(node, attrs=attrs)


def replay(graph: Graph, given: dict[str, Tensor], stop: str,
           call: Call | None = None) -> Tensor:
    """Node ``stop``'s output, computed from the tensors ``given`` by name (a source, or a
    node whose value is replaced): the nodes that depend on them run again (``call``,
    default :func:`run_node`); every other value is the traced one, a constant.

    Run it in :func:`inspect_mode` and under ``enable_grad`` to backpropagate.
    """
    values = graph.values or {}
    env: dict[str, Any] = dict(given)
    live = set(given)
    call = call or run_node
    for node in graph.nodes:
        if node.name in given:
            pass
        elif any(i in live for i in node.inputs):
            args = [env[i] if i in env else Tensor._wrap(np.asarray(values[i]))
                    for i in node.inputs]
            env[node.name] = call(node, args)
            live.add(node.name)
        if node.name == stop:
            break
    if stop not in env:
        return Tensor._wrap(np.asarray(values[stop]))
    return env[stop]
