"""Fusions on the traced graph, for inference: fewer passes over memory, same numbers.

One pass over a graph's nodes, as torch.fx's ``fuse``: a pattern is rewritten only where
each producer has exactly one user (and is not an output) and no layer involved has a
hook. The patterns, in eval mode without gradients (inference):

- conv -> batch norm [-> ReLU | ReLU6]: the batch norm is folded into the conv's weights
  and bias (``w * gamma / sqrt(var + eps)``, ``(b - mean) * gamma / sqrt(var + eps) +
  beta``), the ReLU (ReLU6: a clamp to [0, 6]) runs in the conv's write where the conv's
  loop has that epilogue (the blocked product, depthwise; else one pass after it); the
  batch norm's pass disappears.
- conv -> ReLU: the conv's fused ReLU epilogue.
- add -> ReLU (ResNet's ``relu(out + identity)``): one pass.

Folding changes the rounding (the products are taken with folded weights): values agree
with the unfused graph within float32 rounding of the conv's reduction, which the tests
hold to the bound of notes/verification.md. Training and anything with gradients runs the
graph as recorded.

:func:`compiled_call` is what ``Module.__call__`` uses for a model that opted in
(``cs.compile(model)``, and the zoo's models): the fused graph of each input volume is
built once and cached on the model, checked against the model's current layers each call.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import kernels
from ..tensor import Tensor
from ..tracing import traced
from .ir import Graph, Node

__all__ = ["fuse", "compiled_call", "compile"]

_HI = {"relu": None, "relu6": 6.0}  # the activations fused, and each one's upper clamp
_ACTS = tuple(_HI)


# --------------------------------------------------------------------------- fused ops
@traced("conv_bn_act", key="fused.conv_bn_act")
def conv_bn_act(input: Any, weight: Any, bias: Any, gamma: Any, beta: Any, mean: Any, var: Any,
                eps: float, stride: Any, padding: Any, dilation: Any, groups: int,
                act: str | None) -> Tensor:
    """``act(batch_norm(conv2d(x)))`` for inference, the batch norm folded into the conv."""
    x = np.ascontiguousarray(input.data if isinstance(input, Tensor) else input)
    dt = x.dtype
    w = np.asarray(weight, dtype=dt)
    inv = 1.0 / np.sqrt(np.asarray(var, dtype=np.float64) + eps)
    scale = inv * (np.asarray(gamma, np.float64) if gamma is not None else 1.0)
    shift = -np.asarray(mean, np.float64) * scale
    if bias is not None:
        shift = shift + np.asarray(bias, np.float64) * scale
    if beta is not None:
        shift = shift + np.asarray(beta, np.float64)
    # one pass: the product is already of dtype dt and contiguous (an .astype copy after
    # it was a second pass over every weight, ~1 ms a pass for ResNet-18's layer 4)
    wf = np.multiply(w, scale.astype(dt).reshape(-1, 1, 1, 1), dtype=dt)
    if not wf.flags.c_contiguous:
        wf = np.ascontiguousarray(wf)
    bf = shift.astype(dt)
    args = (tuple(stride), _padding(padding), tuple(dilation), groups)
    y = kernels.conv2d_relu(x, wf, bf, *args, hi=_HI[act]) if act in _ACTS else \
        kernels.conv2d(x, wf, bf, *args)
    return Tensor._wrap(y)


@traced("conv_act", key="fused.conv_act")
def conv_act(input: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any,
             groups: int, act: str) -> Tensor:
    """``relu(conv2d(x))`` (or relu6) for inference, the activation in the conv's write."""
    x = np.ascontiguousarray(input.data if isinstance(input, Tensor) else input)
    w = np.asarray(weight, dtype=x.dtype)
    b = None if bias is None else np.asarray(bias, dtype=x.dtype)
    y = kernels.conv2d_relu(x, w, b, tuple(stride), _padding(padding), tuple(dilation), groups,
                            hi=_HI[act])
    return Tensor._wrap(y)


@traced("add_relu", key="fused.add_relu")
def add_relu(input: Any, other: Any) -> Tensor:
    """``relu(a + b)`` in one pass over memory (ResNet's block output)."""
    from ..kernels import elementwise

    a = input.data if isinstance(input, Tensor) else np.asarray(input)
    b = other.data if isinstance(other, Tensor) else np.asarray(other)
    return Tensor._wrap(elementwise.add_relu(np.ascontiguousarray(a), np.ascontiguousarray(b)))


def _padding(p: Any) -> Any:
    return tuple(tuple(v) if isinstance(v, (list, tuple)) else v for v in p)


# --------------------------------------------------------------------------- the pass
def _act_of(node: Node) -> str | None:
    if node.op in _ACTS and (node.kind == "module" or node.kind == "function"):
        return node.op
    return None


def _plain(node: Node) -> bool:
    m = node.module
    return m is None or not (m._forward_hooks or m._forward_pre_hooks)


def fuse(graph: Graph) -> Graph:
    """The graph with the inference fusions applied (see the module docstring).

    The returned graph's fused nodes are function nodes reading the layers' parameters as
    sources; unfused nodes are the original ones. Only for eval mode without gradients.
    """
    from ..nn import BatchNorm2d, Conv2d

    users: dict[str, list[Node]] = {}
    for n in graph.nodes:
        for i in n.inputs:
            users.setdefault(i, []).append(n)
    outputs = set(graph.outputs)

    def only_user(node: Node) -> Node | None:
        us = users.get(node.name, [])
        return us[0] if len(us) == 1 and node.name not in outputs and _plain(us[0]) else None

    sources = dict(graph.sources)
    nodes: list[Node] = []
    rename: dict[str, str] = {}  # a fused-away node's name -> the node that now makes it
    skip: set[str] = set()

    def param(name: str, value: Any) -> str:
        from .ir import Source

        if name not in sources:
            arr = np.asarray(value.data if isinstance(value, Tensor) else value)
            sources[name] = Source(name, "param", tuple(arr.shape), str(arr.dtype))
        return name

    for node in graph.nodes:
        if node.name in skip:
            continue
        conv = node.module
        if node.kind == "module" and type(conv) is Conv2d and conv.padding_mode == "zeros" \
                and _plain(node) and len(node.shape) == 4:
            nxt = only_user(node)
            bn = nxt.module if nxt is not None and nxt.kind == "module" else None
            fused: Node | None = None
            geo = conv.geometry(graph.shape_of(node.inputs[0]))
            common = dict(stride=geo.stride, padding=geo.padding, dilation=geo.dilation,
                          groups=geo.groups)
            p = node.target
            w = param(f"{p}.weight", conv.weight)
            b = param(f"{p}.bias", conv.bias) if conv.bias is not None else None
            if type(bn) is BatchNorm2d and bn.track_running_stats and nxt is not None:
                last, act = nxt, None
                after = only_user(nxt)
                if after is not None and _act_of(after) and len(after.inputs) == 1:
                    last, act = after, _act_of(after)
                q = nxt.target
                ins = [node.inputs[0], w]
                refs = {"input": {"$in": 0}, "weight": {"$in": 1}}
                gamma = None if bn.weight is None else param(f"{q}.weight", bn.weight)
                beta = None if bn.bias is None else param(f"{q}.bias", bn.bias)
                for key, attr in (("bias", b), ("gamma", gamma), ("beta", beta),
                                  ("mean", param(f"{q}.running_mean", bn.running_mean)),
                                  ("var", param(f"{q}.running_var", bn.running_var))):
                    if attr is None:
                        refs[key] = None
                    else:
                        ins.append(attr)
                        refs[key] = {"$in": len(ins) - 1}
                fused = Node(len(nodes), last.name, "conv_bn_act", "function", tuple(ins),
                             last.shape, last.dtype, node.path, "fused.conv_bn_act",
                             {**refs, "eps": bn.eps, **common, "act": act})
                skip.update({nxt.name, last.name})
                rename[node.name] = rename[nxt.name] = last.name
            elif nxt is not None and _act_of(nxt) and len(nxt.inputs) == 1:
                ins = [node.inputs[0], w] + ([b] if b else [])
                fused = Node(len(nodes), nxt.name, "conv_act", "function", tuple(ins),
                             nxt.shape, nxt.dtype, node.path, "fused.conv_act",
                             {"input": {"$in": 0}, "weight": {"$in": 1},
                              "bias": {"$in": 2} if b else None, **common, "act": _act_of(nxt)})
                skip.add(nxt.name)
                rename[node.name] = nxt.name
            if fused is not None:
                fused.inputs = tuple(rename.get(i, i) for i in fused.inputs)
                nodes.append(fused)
                continue
        if node.op == "add" and node.kind == "function" and len(node.inputs) == 2:
            nxt = only_user(node)
            a_shape = graph.shape_of(node.inputs[0])
            if nxt is not None and nxt.op == "relu" and len(nxt.inputs) == 1 and \
                    a_shape == graph.shape_of(node.inputs[1]) == node.shape:
                ins = tuple(rename.get(i, i) for i in node.inputs)
                nodes.append(Node(len(nodes), nxt.name, "add_relu", "function", ins, nxt.shape,
                                  nxt.dtype, node.path, "fused.add_relu",
                                  {"input": {"$in": 0}, "other": {"$in": 1}}))
                skip.add(nxt.name)
                rename[node.name] = nxt.name
                continue
        copy = Node(len(nodes), node.name, node.op, node.kind,
                    tuple(rename.get(i, i) for i in node.inputs), node.shape, node.dtype,
                    node.path, node.target, node.attrs, node.layer, node.module)
        nodes.append(copy)
    outs = tuple(rename.get(o, o) for o in graph.outputs)
    return Graph(nodes, sources, outs, graph.output_tuple, {}, graph.model)


# --------------------------------------------------------------------------- running it
def _fingerprint(model: Any) -> tuple:
    """What a cached plan depends on: the layers (by identity) and their hooks."""
    return tuple((id(m), bool(m._forward_hooks or m._forward_pre_hooks))
                 for m in model.modules())


def compiled_call(model: Any, args: tuple, kwargs: dict) -> Any:
    """Run ``model`` through its fused inference graph, or return ``NotImplemented`` when
    that does not apply (one tensor argument, eval mode, no gradients, a traceable model)."""
    from ..graph.module import run_graph
    from ..graph.trace import trace

    if kwargs or len(args) != 1:
        return NotImplemented
    x = args[0]
    arr = x.data if isinstance(x, Tensor) else x
    if not isinstance(arr, np.ndarray) or arr.ndim != 4 or arr.dtype.kind != "f" or \
            arr.shape[0] == 0:
        return NotImplemented
    key = (arr.shape[1:], arr.dtype.str)
    cache = model.__dict__.setdefault("_fused_plans", {})
    fp = _fingerprint(model)
    if any(hooked and not type(m).is_leaf() for m, (_, hooked) in zip(
            model.modules(), fp, strict=True) if m is not model):
        return NotImplemented  # a container's hook must see its call: run as written
    entry = cache.get(key)
    if entry is None or entry[0] != fp:
        graph = trace(model, arr.shape[1:])
        if graph.failure is not None or any(n.kind == "opaque" for n in graph.nodes):
            cache[key] = (fp, None)
            return NotImplemented
        entry = cache[key] = (fp, fuse(graph))
    plan = entry[1]
    if plan is None:
        return NotImplemented
    return run_graph(plan, model, (x,))


def compile(model: Any) -> Any:
    """Let ``model`` run its fused inference graph in eval mode without gradients.

    Returns the model itself (changed in place, as ``torch.compile`` returns a wrapper of
    the same weights): training, gradients and every picture tool see the layers as
    written; ``with cs.no_grad(): model.eval()(x)`` runs the fused graph, traced once per
    input volume. A model whose forward depends on the data's values (not only its shape)
    must not be compiled.
    """
    from ..nn import Module

    if not isinstance(model, Module):
        from ..errors import ArgumentTypeError, message

        raise ArgumentTypeError(message("compile", "expected a convscope model",
                                        "pass an nn.Module", type(model).__name__))
    object.__setattr__(model, "fused_inference", True)
    return model
