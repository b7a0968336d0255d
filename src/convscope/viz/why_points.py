"""One value of a node that reads values at (or from) one place, rebuilt in float64:
activations, batch norm, dropout, additions and other elementwise joins, concatenation,
flatten and reshape, linear, softmax.

Each function returns the pieces of a :class:`~convscope.viz.why.Why` plus ``value`` and
``magnitude`` (the size of the terms summed, which sets the float32 tolerance).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ArgumentError, message
from .layers import Activations, LayerRef

__all__ = ["POINTWISE", "pointwise", "batch_norm", "binary", "concat", "linear", "reshape",
           "softmax"]


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _gelu(x: float, approximate: str) -> float:
    if approximate == "tanh":
        return 0.5 * x * (1 + math.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + math.erf(x / math.sqrt(2)))


Rule = Callable[[float, dict[str, Any]], float]

# op -> (the rule in words, the rule); `a` holds the node's arguments
POINTWISE: dict[str, tuple[str, Rule]] = {
    "relu": ("max(x, 0)", lambda x, a: max(x, 0.0)),
    "relu6": ("min(max(x, 0), 6)", lambda x, a: min(max(x, 0.0), 6.0)),
    "leaky_relu": ("x if x > 0, else {negative_slope:g} * x",
                   lambda x, a: x if x > 0 else a.get("negative_slope", 0.01) * x),
    "hardtanh": ("min(max(x, {min_val:g}), {max_val:g})",
                 lambda x, a: min(max(x, a.get("min_val", -1.0)), a.get("max_val", 1.0))),
    "sigmoid": ("1 / (1 + exp(-x))", lambda x, a: _sigmoid(x)),
    "tanh": ("tanh(x)", lambda x, a: math.tanh(x)),
    "silu": ("x * sigmoid(x) = x / (1 + exp(-x))", lambda x, a: x * _sigmoid(x)),
    "gelu": ("x * P(X <= x) = x * (1 + erf(x / sqrt 2)) / 2",
             lambda x, a: _gelu(x, a.get("approximate", "none"))),
    "hardswish": ("x * min(max(x + 3, 0), 6) / 6", lambda x, a: x * min(max(x + 3, 0), 6) / 6),
    "hardsigmoid": ("min(max(x + 3, 0), 6) / 6", lambda x, a: min(max(x + 3, 0), 6) / 6),
    "elu": ("x if x > 0, else {alpha:g} * (exp(x) - 1)",
            lambda x, a: x if x > 0 else a.get("alpha", 1.0) * math.expm1(x)),
    "dropout": ("x (eval mode: dropout passes its input)", lambda x, a: x),
    "dropout2d": ("x (eval mode: dropout passes its input)", lambda x, a: x),
    "identity": ("x", lambda x, a: x),
}
_GELU_TANH = "0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3)))"


def _point(x: np.ndarray, at: tuple[int, ...]) -> dict[str, Any]:
    v = float(np.asarray(x, np.float64)[at])
    rows = np.array([at[1]]) if len(at) == 3 else np.array([0])
    cols = np.array([at[2]]) if len(at) == 3 else np.array([at[-1]])
    return dict(patch=np.array([[[v]]]), padding=np.zeros((1, 1), bool), rows=rows, cols=cols,
                channels=(at[0],) if len(at) == 3 else (), input_value=v)


def pointwise(op: str, args: dict[str, Any], x: np.ndarray, at: tuple[int, ...]) -> dict[str, Any]:
    """An activation (or dropout in eval mode): one rule applied to the input value at the
    same place."""
    words, rule = POINTWISE[op]
    if op == "gelu" and args.get("approximate") == "tanh":
        words = _GELU_TANH
    got = _point(x, at)
    v = got["input_value"]
    value = rule(v, args) if math.isfinite(v) else float(np.asarray(
        rule(np.float64(v), args)))  # inf and NaN pass through the rule as NumPy numbers
    formula = words.format(**{k: args.get(k, d) for k, d in
                              (("negative_slope", 0.01), ("min_val", -1.0), ("max_val", 1.0),
                               ("alpha", 1.0))})
    return {**got, "value": value, "magnitude": abs(v), "details": {"formula": formula}}


def batch_norm(args: dict[str, Any], x: np.ndarray, at: tuple[int, ...]) -> dict[str, Any]:
    """(x - mean) / sqrt(var + eps) * gamma + beta with the running statistics (eval mode;
    a function called with training=True, or a layer without running statistics, uses the
    statistics of this input)."""
    got = _point(x, at)
    ch = at[0]
    mean_a, var_a = args.get("running_mean"), args.get("running_var")
    if args.get("training") or mean_a is None or var_a is None:
        values = np.asarray(x, np.float64)[ch]
        mean, var, where = float(values.mean()), float(values.var()), "this input's"
    else:
        mean, var, where = float(mean_a[ch]), float(var_a[ch]), "running"
    weight, bias = args.get("weight"), args.get("bias")
    gamma = float(np.asarray(weight).reshape(-1)[ch]) if weight is not None else 1.0
    beta = float(np.asarray(bias).reshape(-1)[ch]) if bias is not None else 0.0
    eps = float(args.get("eps", 1e-5))
    scale = gamma / math.sqrt(var + eps)
    v = got["input_value"]
    return {**got, "value": (v - mean) * scale + beta, "bias": beta,
            "magnitude": abs(v * scale) + abs(mean * scale) + abs(beta),
            "details": {"mean": mean, "var": var, "eps": eps, "gamma": gamma,
                        "statistics": where}}


def _operand(acts: Activations, name: str | None, value: Any, out: tuple[int, ...],
             at: tuple[int, ...]) -> float:
    """An operand's value at output position ``at`` (broadcast as NumPy and PyTorch do)."""
    arr = np.asarray(value, np.float64)
    if name is not None and name in acts.slot:
        arr = arr[None]  # a node's value lost its batch axis; parameters keep their shape
    return float(np.broadcast_to(arr, (1,) + out)[(0,) + at])


_SIGNS = {"add": "+", "sub": "-", "rsub": "-", "mul": "*", "div": "/", "rdiv": "/"}


def binary(ref: LayerRef, acts: Activations, args: dict[str, Any],
           at: tuple[int, ...]) -> dict[str, Any]:
    """An elementwise join (a residual add): each operand's value at this position."""
    node = ref.node
    assert node is not None
    first = "self" if "self" in node.attrs else "input"
    names: list[str | None] = []
    for key in (first, "other"):
        v = node.attrs.get(key)
        names.append(ref.inputs[v["$in"]] if isinstance(v, dict) and "$in" in v else None)
    a = _operand(acts, names[0], args[first], ref.output_shape, at)
    b = _operand(acts, names[1], args["other"], ref.output_shape, at)
    alpha = float(args.get("alpha", 1))
    if ref.op.startswith("r"):  # other - self, other / self
        a, b, names = b, a, names[::-1]
    op = ref.op.lstrip("r") if ref.op in ("rsub", "rdiv") else ref.op
    b_scaled = b * alpha
    with np.errstate(all="ignore"):  # x / 0 is inf or NaN, as in the forward pass
        value = float({"add": np.add, "sub": np.subtract, "mul": np.multiply,
                       "div": np.divide}[op](np.float64(a), np.float64(b_scaled)))
    words = [_operand_name(acts, n) for n in names]
    return dict(patch=np.array([[[a]]]), padding=np.zeros((1, 1), bool),
                rows=np.array([at[1] if len(at) == 3 else 0]),
                cols=np.array([at[-1]]), channels=(at[0],) if len(at) == 3 else (),
                value=value, magnitude=abs(a) + abs(b_scaled) + abs(value),
                operands=[(words[0], a), (words[1], b)],
                details={"sign": _SIGNS[ref.op], "alpha": alpha})


def _operand_name(acts: Activations, name: str | None) -> str:
    if name is None:
        return "a number"
    number = {n.name: n.index for n in acts.graph.nodes}
    if name in number:
        return f"{name} (node {number[name]})"
    return "the input image" if name in acts.slot else f"the parameter {name}"


def concat(ref: LayerRef, acts: Activations, args: dict[str, Any],
           at: tuple[int, ...]) -> dict[str, Any]:
    """Concatenation: which operand the value comes from, and where in it."""
    node = ref.node
    assert node is not None
    specs = node.attrs.get("tensors", [])
    names = [ref.inputs[v["$in"]] if isinstance(v, dict) and "$in" in v else None for v in specs]
    parts = [np.asarray(v, np.float64) for v in args["tensors"]]
    dim = int(args.get("dim", 0)) % (len(ref.output_shape) + 1)
    if dim == 0:
        raise ArgumentError(message(f"why, {ref.label}", "this concatenation joins along the "
                                    "batch axis", "pick another node"))
    axis = dim - 1
    start = 0
    for k, (name, part) in enumerate(zip(names, parts, strict=True)):
        size = part.shape[axis] if name in acts.slot else part.shape[dim]
        if at[axis] < start + size:
            local = list(at)
            local[axis] -= start
            v = _operand(acts, name, part, part.shape if name in acts.slot else part.shape[1:],
                         tuple(local))
            return dict(patch=np.array([[[v]]]), padding=np.zeros((1, 1), bool),
                        rows=np.array([at[1] if len(at) == 3 else 0]), cols=np.array([at[-1]]),
                        channels=(at[0],) if len(at) == 3 else (), value=v, magnitude=abs(v),
                        operands=[(_operand_name(acts, name), v)],
                        details={"part": k, "parts": len(parts), "local": tuple(local),
                                 "axis": axis, "start": start, "size": size,
                                 "sizes": [p.shape[axis] if n in acts.slot else p.shape[dim]
                                           for n, p in zip(names, parts, strict=True)]})
        start += size
    raise AssertionError("the position lies outside the concatenation")  # check_at prevents it


def linear(args: dict[str, Any], x: np.ndarray, at: tuple[int, ...]) -> dict[str, Any]:
    """Output ``at[-1]`` = the inputs times row ``at[-1]`` of the weights, summed, + bias."""
    xs = np.asarray(x, np.float64)[at[:-1]].reshape(-1)
    o = at[-1]
    kernel = np.asarray(args["weight"], np.float64)[o]
    products = xs * kernel
    bias_a = args.get("bias")
    bias = float(np.asarray(bias_a).reshape(-1)[o]) if bias_a is not None else 0.0
    return dict(patch=xs[None, None], padding=np.zeros((1, xs.size), bool),
                rows=np.array([0]), cols=np.arange(xs.size), channels=(),
                kernel=kernel[None, None], products=products[None, None],
                channel_sums=np.array([products.sum()]), bias=bias,
                value=float(products.sum() + bias))


def reshape(x: np.ndarray, at: tuple[int, ...], out: tuple[int, ...]) -> dict[str, Any]:
    """Flatten (or reshape): the values keep their order (channel, then row, then column),
    so output index k is input value k of that order."""
    flat = int(np.ravel_multi_index(at, out))
    src = tuple(int(v) for v in np.unravel_index(flat, x.shape))
    got = _point(x, src)
    return {**got, "value": got["input_value"], "magnitude": abs(got["input_value"]),
            "details": {"source": src}}


def softmax(op: str, args: dict[str, Any], x: np.ndarray, at: tuple[int, ...]) -> dict[str, Any]:
    """exp(x_i) / sum_j exp(x_j) along ``dim`` (log_softmax: its log)."""
    dim = args.get("dim")
    full = x.ndim + 1  # the axis numbers count the batch axis
    dim = (0 if full in (1, 3) else 1) if dim is None else int(dim) % full
    if dim == 0:
        raise ArgumentError(message("why", "this softmax runs along the batch axis",
                                    "pick another node"))
    axis = dim - 1
    line = [slice(None) if k == axis else v for k, v in enumerate(at)]
    values = np.asarray(x, np.float64)[tuple(line)]
    top = float(values.max())
    e = np.exp(values - top)
    i = at[axis]
    value = float(e[i] / e.sum()) if op == "softmax" else float(values[i] - top
                                                                  - math.log(e.sum()))
    got = _point(x, at)
    return {**got, "value": value, "magnitude": abs(value) + (0 if op == "softmax" else
                                                              abs(values[i]) + abs(top)),
            "details": {"axis": axis, "count": values.size, "sum": float(e.sum()),
                        "top": top}}
