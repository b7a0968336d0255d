"""ONNX builders for the operations without windows: activations, arithmetic, joins,
reshapes and reductions.

The activations that ONNX has no operator for at the chosen opset are written as their
formulas: SiLU as ``Mul(x, Sigmoid(x))``, GELU below opset 20 as
``Mul(Mul(x, Add(Erf(Div(x, sqrt 2)), 1)), 0.5)`` (PyTorch's exporter writes the same),
Hardswish below opset 14 as ``Mul(x, HardSigmoid(x))``. :data:`MATH_BUILDERS` maps a graph
op to its builder.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .onnx_emit import BatchSize, Call, Ref

__all__ = ["MATH_BUILDERS"]


def _f32(c: Call, key: str, value: float) -> str:
    return c.const(key, np.array(value, np.float32))


def _gelu(c: Call) -> str:
    approximate = c.args.get("approximate", "none")
    if c.e.opset >= 20:
        return c.op("Gelu", [c.x], approximate=approximate)
    x = c.x
    if approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = c.op("Mul", [c.op("Mul", [x, x]), x])
        inner = c.op("Add", [x, c.op("Mul", [cube, _f32(c, "k", 0.044715)])])
        t = c.op("Tanh", [c.op("Mul", [inner, _f32(c, "sqrt_2_over_pi",
                                                    math.sqrt(2 / math.pi))])])
        return c.op("Mul", [c.op("Mul", [x, c.op("Add", [t, _f32(c, "one", 1.0)])]),
                            _f32(c, "half", 0.5)])
    erf = c.op("Erf", [c.op("Div", [x, _f32(c, "sqrt2", math.sqrt(2.0))])])
    return c.op("Mul", [c.op("Mul", [x, c.op("Add", [erf, _f32(c, "one", 1.0)])]),
                        _f32(c, "half", 0.5)])


def _hardswish(c: Call) -> str:
    if c.e.opset >= 14:
        return c.op("HardSwish", [c.x])
    return c.op("Mul", [c.x, c.op("HardSigmoid", [c.x], alpha=1 / 6, beta=0.5)])


def _softmax(c: Call, op_type: str) -> str:
    rank = len(c.in_shape)
    dim = c.args.get("dim")
    if dim is None:
        dim = 0 if rank in (0, 1, 3) else 1
    return c.op(op_type, [c.x], axis=int(dim) % max(rank, 1))


def _clip(c: Call, lo: float, hi: float) -> str:
    return c.op("Clip", [c.x, _f32(c, "min", lo), _f32(c, "max", hi)])


def _first(c: Call) -> str:
    """The first operand of a binary op: ``input`` (functions) or ``self`` (Tensor methods)."""
    return c.operand("input" if "input" in c.args else "self")


def _binary(op_type: str, swap: bool = False) -> Callable[[Call], str]:
    def build(c: Call) -> str:
        a, b = _first(c), c.operand("other")
        alpha = c.args.get("alpha", 1)
        if alpha != 1:  # add(input, other, alpha): input + alpha * other
            b = c.op("Mul", [b, _f32(c, "alpha", float(alpha))])
        return c.op(op_type, [b, a] if swap else [a, b])

    return build


def _unary(op_type: str) -> Callable[[Call], str]:
    return lambda c: c.op(op_type, [c.x])


def _pow(c: Call) -> str:
    return c.op("Pow", [c.x, c.operand("exponent")])


def _axes(c: Call) -> list[int] | None:
    """The reduced axes: ``dim`` (PyTorch's name) or ``axis`` (NumPy's); None for all."""
    axis = c.args.get("dim")
    if axis is None:
        axis = c.args.get("axis")
    if axis is None or (isinstance(axis, (tuple, list)) and not axis):
        return None
    rank = len(c.in_shape)
    items = list(axis) if isinstance(axis, (tuple, list)) else [axis]
    return sorted(int(a) % rank for a in items)


def _reduce(op_type: str) -> Callable[[Call], str]:
    def build(c: Call) -> str:
        axes = _axes(c)
        keep = c.args.get("keepdims")
        keep = int(bool(c.args.get("keepdim", False) if keep is None else keep))
        if axes is None:
            axes = list(range(len(c.in_shape)))
        if op_type == "ReduceMean" and c.e.opset < 18:
            return c.op(op_type, [c.x], axes=axes, keepdims=keep)
        return c.op(op_type, [c.x, c.const("axes", np.array(axes, np.int64))], keepdims=keep)

    return build


def _transpose(c: Call) -> str:
    """``transpose(dim0, dim1)`` swaps two axes; ``permute(*dims)`` reorders them all."""
    rank = len(c.in_shape)
    if "dims" in c.args:  # permute
        dims = list(c.args["dims"])
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = list(dims[0])
        return c.op("Transpose", [c.x], perm=[int(d) % rank for d in dims])
    dims = [d for d in (c.args.get("dim0"), c.args.get("dim1"), *c.args.get("more", ()))
            if d is not None]
    perm = list(range(rank))
    if len(dims) == 2:
        a, b = int(dims[0]) % rank, int(dims[1]) % rank
        perm[a], perm[b] = perm[b], perm[a]
    elif dims:
        perm = [int(d) % rank for d in dims]
    else:
        perm.reverse()
    return c.op("Transpose", [c.x], perm=perm)


def _unsqueeze(c: Call) -> str:
    rank = len(c.out_shape)
    dim = int(c.args.get("dim", 0)) % rank
    return c.op("Unsqueeze", [c.x, c.const("axes", np.array([dim], np.int64))])


def _squeeze(c: Call) -> str:
    target = [0] + list(c.out_shape[1:])  # batch-generic, whatever was dropped
    if c.in_shape[0] == 1 and len(c.out_shape) < len(c.in_shape) and \
            c.out_shape[:1] != c.in_shape[:1]:
        raise c.fail("a squeeze of the batch axis has no batch-generic ONNX form",
                     "squeeze feature axes only (x.squeeze(2))", f"shape {c.in_shape}")
    return c.op("Reshape", [c.x, c.const("shape", np.array(target, np.int64))])


def _clamp(c: Call) -> str:
    lo, hi = c.args.get("min"), c.args.get("max")
    inputs = [c.x, "" if lo is None else _f32(c, "min", float(lo)),
              "" if hi is None else _f32(c, "max", float(hi))]
    while inputs[-1] == "":
        inputs.pop()
    return c.op("Clip", inputs)


def _target_shape(c: Call, sizes: Any) -> list[int]:
    """A recorded reshape target as ONNX Reshape's: the batch size recorded from the input
    (``x.shape[0]``) becomes 0, "copy that axis"."""
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = sizes[0]
    out: list[int] = []
    for i, s in enumerate(sizes):
        if isinstance(s, BatchSize):
            if s.dim == 0 and i == 0 and s.k == 0:
                out.append(0)
            elif s.dim != 0:
                out.append(int(c.ins[s.k].shape[s.dim]))
            else:
                raise c.fail("a reshape that moves the batch size to another axis has no "
                             "batch-generic ONNX form", "keep the batch axis first",
                             f"shape {sizes}")
        elif isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s != 0:
            out.append(int(s))
        else:
            raise c.fail("a reshape to a size of 0 or a non-integer size has no ONNX export "
                         "here", "reshape to positive sizes (and -1)", f"shape {sizes}")
    return out


def _reshape(c: Call) -> str:
    target = _target_shape(c, c.args.get("shape", ()))
    return c.op("Reshape", [c.x, c.const("shape", np.array(target, np.int64))])


def _flatten(c: Call) -> str:
    rank = max(len(c.in_shape), 1)
    start = int(c.args.get("start_dim", 1)) % rank
    end = int(c.args.get("end_dim", -1)) % rank
    if end == rank - 1 and start == 1:
        return c.op("Flatten", [c.x], axis=1)
    target = [0] * start + [-1] + list(c.in_shape[end + 1:])
    return c.op("Reshape", [c.x, c.const("shape", np.array(target, np.int64))])


def _tensors(c: Call) -> list[Ref]:
    items = c.args.get("tensors") or []
    if not all(isinstance(t, Ref) for t in items):
        raise c.fail("it joins values that are not tensors", "join tensors only")
    return list(items)


def _cat(c: Call) -> str:
    axis = int(c.args.get("dim", 0)) % len(c.out_shape)
    return c.op("Concat", [t.name for t in _tensors(c)], axis=axis)


def _stack(c: Call) -> str:
    axis = int(c.args.get("dim", 0)) % len(c.out_shape)
    axes = c.const("axes", np.array([axis], np.int64))
    return c.op("Concat", [c.op("Unsqueeze", [t.name, axes]) for t in _tensors(c)], axis=axis)


MATH_BUILDERS: dict[str, Callable[[Call], str]] = {
    "relu": _unary("Relu"),
    "sigmoid": _unary("Sigmoid"),
    "tanh": _unary("Tanh"),
    "identity": _unary("Identity"),
    "relu6": lambda c: _clip(c, 0.0, 6.0),
    "hardtanh": lambda c: _clip(c, float(c.args.get("min_val", -1.0)),
                                float(c.args.get("max_val", 1.0))),
    "leaky_relu": lambda c: c.op("LeakyRelu", [c.x],
                                 alpha=float(c.args.get("negative_slope", 0.01))),
    "elu": lambda c: c.op("Elu", [c.x], alpha=float(c.args.get("alpha", 1.0))),
    "gelu": _gelu,
    "silu": lambda c: c.op("Mul", [c.x, c.op("Sigmoid", [c.x])]),
    "hardsigmoid": lambda c: c.op("HardSigmoid", [c.x], alpha=1 / 6, beta=0.5),
    "hardswish": _hardswish,
    "softmax": lambda c: _softmax(c, "Softmax"),
    "log_softmax": lambda c: _softmax(c, "LogSoftmax"),
    "add": _binary("Add"),
    "sub": _binary("Sub"),
    "mul": _binary("Mul"),
    "div": _binary("Div"),
    "rsub": _binary("Sub", swap=True),
    "rdiv": _binary("Div", swap=True),
    "matmul": lambda c: c.op("MatMul", [_first(c), c.operand("other")]),
    "neg": _unary("Neg"),
    "exp": _unary("Exp"),
    "log": _unary("Log"),
    "sqrt": _unary("Sqrt"),
    "pow": _pow,
    "mean": _reduce("ReduceMean"),
    "sum": _reduce("ReduceSum"),
    "transpose": _transpose,
    "permute": _transpose,
    "unsqueeze": _unsqueeze,
    "squeeze": _squeeze,
    "clamp": _clamp,
    "abs": _unary("Abs"),
    "clone": _unary("Identity"),
    "contiguous": _unary("Identity"),
    "reshape": _reshape,
    "view": _reshape,
    "flatten": _flatten,
    "cat": _cat,
    "stack": _stack,
}
