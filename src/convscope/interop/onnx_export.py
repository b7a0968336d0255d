"""Write any convscope model as an ONNX graph, from its traced graph.

:func:`export_onnx` records one forward pass (:func:`convscope.graph.trace`, in eval mode)
and writes each node with the builder for its op (:mod:`.onnx_export_layers`,
:mod:`.onnx_export_math`): a layer and the same function called in ``forward`` give the same
ONNX nodes. Names follow PyTorch's exporter, so that tools and :func:`~.load_onnx` find the
module paths again: nodes ``/layer1/layer1.0/conv1/Conv`` (a ``Sequential``'s layer 3:
``/3/Conv``), initializers as in ``state_dict()`` (``layer1.0.conv1.weight``)::

    conv2d            Conv (zero padding in its pads); other padding modes put a node first:
                      reflect -> Pad(reflect), replicate -> Pad(edge), circular ->
                      Pad(wrap) from opset 19, below it two Gather nodes (exact everywhere)
    conv_transpose2d  ConvTranspose (output_padding, groups, dilations)
    max/avg_pool2d    MaxPool / AveragePool (dilations, ceil_mode, count_include_pad)
    adaptive_avg_pool2d  GlobalAveragePool for 1x1; AveragePool where the windows are uniform
    batch_norm        BatchNormalization with the running statistics (inference form)
    linear            Gemm(transB=1); MatMul + Add on inputs of more than 2 axes
    interpolate       Resize: nearest (asymmetric, floor), nearest-exact (half_pixel,
                      round_prefer_ceil), bilinear (half_pixel or align_corners)
    relu, relu6, hardtanh, leaky_relu, elu, sigmoid, tanh, gelu, silu, hardsigmoid,
    hardswish, softmax, log_softmax
                      Relu, Clip, LeakyRelu, Elu, Sigmoid, Tanh, Gelu (opset 20; the Erf
                      formula below), Mul(x, Sigmoid(x)), HardSigmoid(1/6, 1/2), HardSwish,
                      Softmax, LogSoftmax
    add, sub, mul, div, matmul, neg, exp, log, sqrt, pow, mean, sum
                      Add, Sub, Mul, Div, MatMul, Neg, Exp, Log, Sqrt, Pow, ReduceMean, ReduceSum
    cat, stack, flatten, reshape, transpose, pad
                      Concat, Unsqueeze + Concat, Flatten or Reshape (batch-generic: 0 copies
                      the batch axis), Reshape, Transpose, Pad
    dropout, dropout2d, identity
                      Dropout (no training_mode: the identity), Identity

The graph has one input ``input`` (N, C, H, W) with a symbolic batch ``N`` and one output
``output``. An operation without an ONNX form is refused by name, with its node and the
list above.

ceil_mode: ONNX's shape rule keeps a last window that starts in the right padding, PyTorch's
(and convscope's) drops it. Where the two disagree the layer is written with ceil_mode=0
(which then gives the same windows), so that ONNX shape inference, ONNX Runtime and convscope
agree on every size.

Known limits of ONNX Runtime, not of the file: ORT refuses pooling padding that is not
smaller than the kernel, which a dilated MaxPool2d may have (``maxpool(2, padding=2,
dilation=3)``), and a ConvTranspose ``output_padding`` that is not smaller than its stride
(PyTorch allows it below the dilation too); such files are valid ONNX, and other runtimes and
convscope's importer read them.

Resize by ``scales`` computes its output size as ``floor(in * scale)`` in float32; a
``scale_factor`` whose output size differs in that arithmetic is refused (use ``size=``), and
where interpolate copies cells whatever the scale (PyTorch's nearest at 1x and 2x the input,
bilinear at 1x) the sizes are written instead of the scales.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, message
from ..nn import Module
from .onnx_common import MIN_OPSET as MIN_OPSET
from .onnx_common import WRAP_OPSET as WRAP_OPSET
from .onnx_common import pad_indices as pad_indices
from .onnx_common import pool_ceil_plan as pool_ceil_plan
from .onnx_common import require_onnx as require_onnx
from .onnx_common import write_atomic
from .onnx_emit import WHERE, Call, Emitter, Ref
from .onnx_export_layers import LAYER_BUILDERS
from .onnx_export_math import MATH_BUILDERS

__all__ = ["export_onnx", "BUILDERS", "MIN_OPSET", "WRAP_OPSET", "require_onnx", "pad_indices",
           "pool_ceil_plan"]

BUILDERS: dict[str, Callable[[Call], str]] = {**LAYER_BUILDERS, **MATH_BUILDERS}
"""The ONNX builder of each graph op (``"conv2d"``, ``"add"`` ...)."""


def _check_args(model: Any, input_shape: Any, opset: Any, onnx: Any) -> tuple[int, int, int]:
    if not isinstance(model, Module):
        raise ArgumentTypeError(message(WHERE, "model must be a convscope model (an nn.Module)",
                                        "build it with cs.parse(spec), cs.nn.Sequential(...), "
                                        "cs.models or your own cs.nn.Module",
                                        f"type {type(model).__name__}"))
    newest = onnx.defs.onnx_opset_version()
    if not isinstance(opset, int) or isinstance(opset, bool) or not MIN_OPSET <= opset <= newest:
        raise ArgumentError(message(WHERE, f"opset must be an int from {MIN_OPSET} to {newest}",
                                    "use opset=17 (read by every current runtime)",
                                    f"opset={opset!r}"))
    shape = input_shape if input_shape is not None else getattr(model, "input_shape", None)
    if (not isinstance(shape, Sequence) or isinstance(shape, str) or len(shape) != 3
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
                       for v in shape)):
        raise ArgumentError(message(WHERE, "the model's input volume (C, H, W) is unknown or "
                                    "not three positive ints",
                                    "pass input_shape=(C, H, W), or build the model with cs.parse "
                                    "from a spec that starts with HxWxD", f"input_shape={shape!r}"))
    return int(shape[0]), int(shape[1]), int(shape[2])


def _needed(graph: Any) -> list[Any]:
    """The nodes the outputs depend on, in order (a value computed and never used is left
    out, as ONNX Runtime would leave it)."""
    by_name = graph.by_name()
    keep = set(graph.outputs)
    for node in reversed(graph.nodes):
        if node.name in keep:
            keep.update(i for i in node.inputs if i in by_name)
    return [n for n in graph.nodes if n.name in keep]


def _params(model: Module) -> dict[str, Any]:
    out: dict[str, Any] = dict(model.named_parameters())
    out.update(dict(model.named_buffers()))
    return out


def _build(model: Module, shape: tuple[int, int, int], opset: int, onnx: Any) -> Emitter:
    from ..graph import trace
    from ..graph.trace import check_shape

    graph = trace(model, shape)
    check_shape(graph)  # a model that does not fit its input: that error, with its numbers
    if len(graph.inputs) != 1:
        raise ArgumentError(message(WHERE, f"the model takes {len(graph.inputs)} inputs; an "
                                    "exported graph has one", "export a model with one input"))
    e = Emitter(onnx, opset, graph, _params(model))
    for node in _needed(graph):
        builder = BUILDERS.get(node.op) if node.kind != "opaque" else None
        if builder is None:
            at = "" if node.name == str(node.index) else f" at {node.name!r}"
            raise ArgumentError(message(
                f"{WHERE} layer {node.index} ({node.layer or node.op}){at}",
                f"the operation {node.op!r} has no ONNX export",
                "build the model from operations that have one: " + ", ".join(sorted(BUILDERS)),
                f"op {node.op!r}, kind {node.kind}"))
        e.values[node.name] = Ref(builder(Call(e, node)), node.shape)
    return e


def _finish(e: Emitter, graph_outputs: tuple[str, ...]) -> list[str]:
    """Name the graph's outputs ``output`` (``output_1`` ...), renaming what made them."""
    names: list[str] = []
    renames: dict[str, str] = {}
    inputs = {s.name for s in e.graph.inputs}
    for k, out in enumerate(graph_outputs):
        want = "output" if k == 0 else f"output_{k}"
        have = e.values[out].name
        if have in inputs or have in renames or have in {i.name for i in e.initializers}:
            e.nodes.append(e.onnx.helper.make_node("Identity", [have], [want],
                                                   name=f"/Identity_{want}"))
        else:
            renames[have] = want
        names.append(want)
    for node in e.nodes:
        for seq in (node.input, node.output):
            for i, name in enumerate(seq):
                if name in renames:
                    seq[i] = renames[name]
    return names


def export_onnx(model: Module, path: str | os.PathLike[str],
                input_shape: Sequence[int] | None = None, opset: int = 17) -> Path:
    """Write ``model`` to ``path`` as an ONNX graph (crash-safe: temp file, then rename).

    Parameters
    ----------
    model : Module
        Any convscope model: a ``Sequential``, a zoo model, your own ``nn.Module`` whose
        ``forward`` adds, concatenates or reuses layers. Traced and exported as in eval mode;
        the model itself is not changed.
    path : str or PathLike
        The ``.onnx`` file to write.
    input_shape : (C, H, W), optional
        The input volume; defaults to ``model.input_shape`` (set by :func:`convscope.parse`
        and the zoo). The batch size stays free (the symbolic dimension ``N``).
    opset : int, default 17
        ONNX opset, from 13 up to what the installed ``onnx`` knows. Circular padding uses
        Pad(mode='wrap') from opset 19 and two Gather nodes below it; GELU is one Gelu node
        from opset 20 and its Erf formula below.

    Returns
    -------
    Path
        ``path``. The graph has passed ``onnx.checker.check_model(full_check=True)``.

    Raises
    ------
    ArgumentError
        The input volume is unknown, the opset is out of range, or an operation has no ONNX
        form (named with its node and the supported list; e.g. BatchNorm2d without running
        statistics, a ceil_mode pooling whose axes disagree).
    ShapeError
        The layers do not fit the input volume.
    ImportError
        The ``onnx`` package is not installed.

    Examples
    --------
    >>> import os, tempfile, convscope as cs
    >>> from convscope.interop import export_onnx, load_onnx
    >>> model = cs.parse("8x8x1 | conv(4, 3, padding=1) | relu | flatten | linear(10)")
    >>> path = export_onnx(model, os.path.join(tempfile.mkdtemp(), "m.onnx"))
    >>> load_onnx(path).spec
    '8x8x1 | conv(4, 3, padding=1) | relu | flatten | linear(10)'
    """
    from .. import __version__

    onnx = require_onnx(WHERE)
    shape = _check_args(model, input_shape, opset, onnx)
    e = _build(model, shape, opset, onnx)
    outputs = _finish(e, e.graph.outputs)
    helper, tp = onnx.helper, onnx.TensorProto
    out_infos = [helper.make_tensor_value_info(name, tp.FLOAT,
                                               ["N", *e.graph.shape_of(o)[1:]])
                 for name, o in zip(outputs, e.graph.outputs, strict=True)]
    graph = helper.make_graph(
        e.nodes, "convscope",
        [helper.make_tensor_value_info("input", tp.FLOAT, ["N", *shape])],
        out_infos, e.initializers)
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="convscope",
                              producer_version=__version__)
    proto.ir_version = helper.find_min_ir_version_for(opsets)
    spec = getattr(model, "spec", None)
    if isinstance(spec, str):
        proto.doc_string = spec
        helper.set_model_props(proto, {"convscope.spec": spec})
    nbytes = proto.ByteSize()
    if nbytes >= 2**31:
        raise ArgumentError(message(WHERE, f"the model needs {nbytes / 2**30:.1f} GiB, above the "
                                    "2 GiB that one ONNX protobuf file can hold",
                                    "save it with convscope.io.save (safetensors) instead",
                                    f"{sum(math.prod(p.shape) for p in model.parameters())} "
                                    "parameters"))
    onnx.checker.check_model(proto, full_check=True)
    p = Path(path)
    write_atomic(p, proto.SerializeToString(), WHERE)
    return p
