"""Why is this output value what it is: one value of one node, taken apart.

For a convolution: the kxkxD patch under the kernel at that position (padding marked), the
kernel, their elementwise products, the sum per input channel, the bias and the value, as on
the slides ("the convolution of the kernel with the local patch outputs one value"); a
grouped or depthwise conv reads only its group's channels. A transposed convolution: which
input values, times which kernel entries, land on this output. A max pool: the window and
which input won; an average pool (adaptive too): the window and its mean; an activation:
its rule applied to which input; an add: the two operands at this position; a
concatenation: which operand and channel; batch norm, dropout, flatten, linear,
interpolation and softmax likewise.

The value is recomputed here in float64 from the node's own inputs (``node.inputs`` of the
traced graph, the values of one forward pass) and checked against the value the forward pass
produced: a mismatch raises :class:`WhyMismatchError` with both numbers.

>>> import numpy as np
>>> from convscope.viz.why import why
>>> image = np.random.default_rng(0).random((3, 8, 8), dtype=np.float32)
>>> w = why("8x8x3 | conv(4, 3, padding=1)", image, layer=0, at=(2, 0, 5))
>>> w.patch.shape, int(w.padding.sum()), bool(abs(w.value - w.forward_value) < 1e-5)
((3, 3, 3), 3, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConvscopeError, message
from . import why_points as P
from .layers import Activations, LayerRef, activations, check_at, find_layer, prepare
from .nodes import node_args
from .why_windows import (
    ConvArgs,
    adaptive_window,
    conv_window,
    interpolate_window,
    pool_window,
    transposed_window,
)

__all__ = ["why", "take_apart", "Why", "WhyMismatchError", "conv_window", "WHY_OPS"]

_U = 2.0 ** -24  # float32's unit roundoff


class WhyMismatchError(ConvscopeError, AssertionError):
    """The value rebuilt by hand differs from the forward pass: a bug, reported with both."""


@dataclass
class Why:
    """One output value, taken apart. Arrays are float64; ``str(why)`` is the walk-through.

    Attributes
    ----------
    layer : the node number, as ``explain`` prints it
    kind : 'conv', 'transposed conv', 'max pool', 'average pool', 'adaptive average pool',
        'batch norm', 'add' (and 'sub', 'mul', 'div'), 'cat', 'flatten', 'linear',
        'interpolate', 'softmax', or the activation's op ('relu', 'relu6', 'sigmoid'...;
        'dropout' for dropout in eval mode)
    at : the output position (channel, row, column), or (index,) for a flat output
    value : the value rebuilt here; ``forward_value`` is what the forward pass gave
    patch : (D, kh, kw) the input values under the window (padding cells hold the value
        the padding puts there: 0, a copy, or -inf for max pool); for a transposed conv the
        input value that lands on each kernel entry; for ReLU and the like (1, 1, 1)
    padding : bool (kh, kw), True where the window is over padding (a transposed conv:
        where no input value lands)
    rows, cols : the input row of each window row and column (values outside 0..H-1 are
        padding; -1 for a transposed conv's kernel row that no input row reaches)
    channels : the input channels the value reads
    kernel, products, channel_sums : (D, kh, kw), (D, kh, kw), (D,) for conv and linear
    bias : the bias added (0.0 without one)
    winner : for max pool, the input (channel, row, column) that won
    operands : for a join (add, cat), (which input, its value at this position)
    where : how messages name the node ("layer 0"; "layer1.0.conv2 (node 7)" in a graph)
    origin : where the node's input comes from in a graph (" from layer1.0.relu (node 6)")
    """

    layer: str
    kind: str
    operation: str
    at: tuple[int, ...]
    value: float
    forward_value: float
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    patch: np.ndarray
    padding: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    channels: tuple[int, ...]
    kernel: np.ndarray | None = None
    products: np.ndarray | None = None
    channel_sums: np.ndarray | None = None
    bias: float = 0.0
    winner: tuple[int, int, int] | None = None
    padding_mode: str = "zeros"
    divisor: int | None = None
    note: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    operands: list[tuple[str, float]] = field(default_factory=list)
    name: str = ""
    where: str = ""
    origin: str = ""

    def __post_init__(self) -> None:
        self.where = self.where or f"layer {self.layer}"

    def __str__(self) -> str:
        from .why_text import render

        return render(self)

    def picture(self) -> np.ndarray:
        """The walk-through as an RGB uint8 picture (see :func:`convscope.viz.why_draw.draw`)."""
        from .why_draw import draw

        return draw(self)


def _x(ref: LayerRef, acts: Activations) -> np.ndarray:
    """The node's (first) data input: the image or another node's output."""
    return np.asarray(acts.value(ref.data_inputs[0]))


def _conv(ref: LayerRef, acts: Activations, args: dict, at: tuple) -> tuple[str, dict]:
    return "conv", conv_window(ConvArgs.of(args), _x(ref, acts), at)


def _transposed(ref: LayerRef, acts: Activations, args: dict, at: tuple) -> tuple[str, dict]:
    return "transposed conv", transposed_window(ConvArgs.of(args), _x(ref, acts), at)


def _pool(ref: LayerRef, acts: Activations, args: dict, at: tuple) -> tuple[str, dict]:
    is_max = ref.op == "max_pool2d"
    return ("max pool" if is_max else "average pool"), pool_window(args, _x(ref, acts), at,
                                                                   is_max)


def _adaptive(ref: LayerRef, acts: Activations, args: dict, at: tuple) -> tuple[str, dict]:
    return "adaptive average pool", adaptive_window(_x(ref, acts), at, ref.output_shape[1:])


def _interpolate(ref: LayerRef, acts: Activations, args: dict, at: tuple) -> tuple[str, dict]:
    return "interpolate", interpolate_window(args, _x(ref, acts), at, ref.output_shape[1:])


def _pointwise(ref: LayerRef, acts: Activations, args: dict, at: tuple) -> tuple[str, dict]:
    kind = "dropout" if ref.op in ("dropout", "dropout2d") else ref.op
    return kind, P.pointwise(ref.op, args, _x(ref, acts), at)


def _batch_norm(ref: LayerRef, acts: Activations, args: dict, at: tuple) -> tuple[str, dict]:
    return "batch norm", P.batch_norm(args, _x(ref, acts), at)


def _binary(ref: LayerRef, acts: Activations, args: dict, at: tuple) -> tuple[str, dict]:
    return ref.op.lstrip("r") if ref.op in ("rsub", "rdiv") else ref.op, \
        P.binary(ref, acts, args, at)


def _cat(ref: LayerRef, acts: Activations, args: dict, at: tuple) -> tuple[str, dict]:
    return "cat", P.concat(ref, acts, args, at)


def _linear(ref: LayerRef, acts: Activations, args: dict, at: tuple) -> tuple[str, dict]:
    return "linear", P.linear(args, _x(ref, acts), at)


def _reshape(ref: LayerRef, acts: Activations, args: dict, at: tuple) -> tuple[str, dict]:
    return "flatten", P.reshape(_x(ref, acts), at, ref.output_shape)


def _softmax(ref: LayerRef, acts: Activations, args: dict, at: tuple) -> tuple[str, dict]:
    return ref.op.replace("_", " "), P.softmax(ref.op, args, _x(ref, acts), at)


_HANDLERS: dict[str, Any] = {
    "conv2d": _conv, "conv_transpose2d": _transposed, "max_pool2d": _pool, "avg_pool2d": _pool,
    "adaptive_avg_pool2d": _adaptive, "interpolate": _interpolate, "batch_norm": _batch_norm,
    "add": _binary, "sub": _binary, "rsub": _binary, "mul": _binary, "div": _binary,
    "rdiv": _binary, "cat": _cat, "linear": _linear, "flatten": _reshape, "reshape": _reshape,
    "view": _reshape, "softmax": _softmax, "log_softmax": _softmax,
    **{op: _pointwise for op in P.POINTWISE},
}
WHY_OPS = tuple(_HANDLERS)
"""The operations ``why`` takes apart (graph op names)."""


def _tolerance(parts: dict[str, Any]) -> float:
    """How far a float32 forward value may lie from the float64 recompute (notes: the error
    of a sum of K products is at most gamma_K times the sum of their sizes)."""
    scale = abs(parts.get("bias", 0.0)) + abs(parts["value"]) + parts.get("magnitude", 0.0)
    terms = 1
    if parts.get("products") is not None:
        scale += float(np.abs(parts["products"]).sum())
        terms = int(np.size(parts["products"])) + 1
    gamma = terms * _U / (1 - terms * _U)
    return max(1e-4, 2 * gamma) * scale + 1e-5


def _agrees(value: float, forward: float, parts: dict[str, Any]) -> bool:
    if math.isnan(value) or math.isnan(forward):
        return math.isnan(value) and math.isnan(forward)
    if math.isinf(value) or math.isinf(forward):
        return value == forward
    return abs(value - forward) <= _tolerance({**parts, "value": value})


def why(model: Any, image: Any, layer: int | str, at: Any, size: Any = None,
        seed: int = 0) -> Why:
    """Take apart output ``at`` = (channel, row, column) of node ``layer`` for ``image``.

    Parameters
    ----------
    model : Module, model file, run folder, zoo name or spec string (random weights from
        ``seed``)
    image : (C, H, W) array or image file
    layer : the node number as ``convscope explain`` prints it, or its module path
        (``"layer1.0.conv2"``)
    at : (channel, row, column), or "3,17,41"; (index,) for a flat output (linear, flatten)

    Returns
    -------
    Why

    Raises
    ------
    ArgumentError
        ``at`` out of range (the message gives the valid ranges), or a node kind that has
        no walk-through.
    WhyMismatchError
        The value rebuilt here differs from the forward pass (with both numbers).
    """
    prep = prepare(model, image, size=size, seed=seed)
    ref = find_layer(prep.model, layer, prep.image.shape, kinds=WHY_OPS,
                     what="a layer with a walk-through (conv, transposed conv, pool, "
                          "activation, batch norm, add, cat, dropout, flatten, linear, "
                          "interpolate, softmax)")
    pos = check_at(at, ref.output_shape, f"{ref.label} output")
    acts = activations(prep.model, prep.image, upto=ref.position)
    return take_apart(ref, acts, pos, prep.note)


def take_apart(ref: LayerRef, acts: Activations, pos: tuple[int, ...],
               note: str | None = None) -> Why:
    """Output ``pos`` of node ``ref``, taken apart from the values of one forward pass
    (:func:`~convscope.viz.layers.activations`): what :func:`why` does once it has them, for
    a tool that keeps them (the local server). ``pos`` must be checked already
    (:func:`~convscope.viz.layers.check_at`)."""
    kind, parts = _HANDLERS[ref.op](ref, acts, node_args(ref, acts), pos)
    forward = float(np.asarray(acts.value(ref.name))[pos])
    value = parts.pop("value")
    if not _agrees(value, forward, parts):
        raise WhyMismatchError(message(
            f"why, {ref.label}",
            f"the value rebuilt by hand, {value!r}, differs from the forward pass, {forward!r}, "
            f"at {pos}", "this is a bug in convscope: please report it with the model and image"))
    for key in ("input_value", "magnitude"):
        parts.pop(key, None)
    image = acts.graph.inputs[0].name  # whether the node reads the image itself
    parts["details"] = {**parts.get("details", {}), "image": ref.data_inputs[:1] == (image,)}
    return Why(layer=ref.index, kind=kind, operation=ref.operation, at=pos, value=value,
               forward_value=forward, input_shape=ref.input_shape, output_shape=ref.output_shape,
               note=note, name=ref.name, where=ref.short, origin=ref.origin, **parts)
