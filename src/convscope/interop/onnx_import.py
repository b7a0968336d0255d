"""Rebuild a convscope model from an ONNX graph.

An ONNX file is protobuf data: parsing it runs nothing. :func:`load_onnx` still trusts
nothing in it: the file size is capped before it is read, tensors stored in external files
are refused (they would make the model read other paths), the graph must be a DAG in which
every edge comes from somewhere and every name is written once (:mod:`.onnx_checks`), every
weight must be a float32 initializer of the shape its layer needs, and every operator one
that convscope has a layer or an operation for:

=====================  ==============================================================
ONNX                   convscope
=====================  ==============================================================
Conv                   Conv2d (with or without bias; pads, auto_pad, strides,
                       dilations, group)
Pad, Gather,           Conv2d's padding_mode: Pad constant 0 / reflect / edge / wrap,
Slice + Concat         or Gather nodes, or Slices concatenated to the tensor, that pick
-> Conv                rows and columns the way a padding mode does (how convscope
                       below opset 19, and PyTorch, write circular padding)
ConvTranspose          ConvTranspose2d (symmetric pads, output_padding, group, dilations)
Relu, Clip, LeakyRelu, ReLU, ReLU6 / Hardtanh, LeakyReLU, ELU, Sigmoid, Tanh, GELU,
Elu, Sigmoid, Tanh,    Hardsigmoid (1/6, 1/2), Hardswish, Softmax, LogSoftmax;
Gelu, HardSigmoid,     GELU's Erf formula, Mul(x, Sigmoid(x)) and Mul(x, HardSigmoid(x))
HardSwish, Softmax,    become GELU, SiLU and Hardswish (:mod:`.onnx_patterns`)
LogSoftmax
MaxPool, AveragePool   MaxPool2d, AvgPool2d (ceil_mode, count_include_pad, dilations)
GlobalAveragePool,     AvgPool2d / MaxPool2d with the whole feature map as window
GlobalMaxPool
Resize                 Upsample: nearest, nearest-exact, bilinear (with or without
                       align_corners), by scales or sizes (:mod:`.onnx_layers`)
BatchNormalization     BatchNorm2d (inference form)
Flatten, Reshape       Flatten to (N, features); other reshapes keeping the batch axis
                       first: ``Tensor.reshape``
Gemm, MatMul (+ Add)   Linear (transB 0 or 1; finite alpha and beta folded into the
                       weights)
Add, Sub, Mul, Div,    ``x + y`` ... between volumes (residual adds) or with constants;
Concat, ReduceMean,    ``cat`` along a feature axis; ``Tensor.mean``/``sum`` over
ReduceSum, Transpose,  feature axes; ``Tensor.transpose`` keeping the batch first;
Neg, Exp, Log, Sqrt,   ``Tensor.neg`` ...; ``Tensor.pow`` by a constant; ``Tensor.matmul``
Pow, MatMul
Dropout, Identity      Dropout (identity in eval mode), nothing
Constant, and Shape,   constants: computed at import (:mod:`.onnx_fold`), e.g. the pads
Concat, Cast ... on    and ``x.view(x.size(0), -1)`` shapes that ``torch.onnx.export``
constants              writes as small graphs
=====================  ==============================================================

A graph that is one chain of layers becomes a ``Sequential`` (read by the chain walk,
:mod:`.onnx_graph`, layers numbered from 0 as ever); any other DAG becomes a
:class:`~convscope.graph.GraphModule` (:mod:`.onnx_dag`) whose module paths come from the
node names PyTorch writes (``/layer1/layer1.0/conv1/Conv`` -> ``layer1.0.conv1``) or from
the weights' names (:mod:`.onnx_names`), so a ResNet exported by PyTorch loads with
torchvision's ``state_dict`` names (exported with constant folding, PyTorch folds each
BatchNormalization into the Conv before it: those Conv layers then have a bias and there is
no ``bn`` layer).

Not imported, and why: several inputs or outputs (a convscope model has one of each);
operators without a layer or an operation (LRN, InstanceNormalization, Erf outside GELU ...)
are refused by name rather than approximated; quantized, float16 and float64 weights are
refused because convscope layers hold float32; an input with a dynamic height, width or
depth is refused because a convscope model has one input volume.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from ..errors import FileFormatError, SpecError, message
from ..nn import Module, Sequential
from .onnx_checks import check_structure
from .onnx_common import require_onnx
from .onnx_dag import SUPPORTED_OPS, GraphDag
from .onnx_graph import GraphChain, check_tensor, type_name
from .onnx_operands import NodeReader, NotAChain

__all__ = ["load_onnx", "SUPPORTED_OPS", "MAX_ONNX_BYTES"]

MAX_ONNX_BYTES = 2 * 2**30
"""Largest ONNX file read by default (protobuf's own limit for one message)."""


def _read_bytes(path: str, max_bytes: int) -> bytes:
    def bad(what: str, fix: str, received: str | None = None) -> FileFormatError:
        return FileFormatError(message(f"ONNX file {path!r}", what, fix, received))

    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise bad("the file does not exist", "check the path") from None
    except OSError as exc:
        raise bad(f"the file cannot be read ({exc.strerror or exc})", "check permissions") from None
    if stat.S_ISDIR(info.st_mode):
        raise bad("the path is a directory", "give the path of a .onnx file")
    if not stat.S_ISREG(info.st_mode):
        raise bad("the path is not a regular file", "give the path of a .onnx file")
    if info.st_size == 0:
        raise bad("the file is empty", "export the model again", "0 bytes")
    if info.st_size > max_bytes:
        raise bad(f"the file holds {info.st_size} bytes, more than the limit of {max_bytes}",
                  "pass a larger max_bytes if you trust this file", f"{info.st_size} bytes")
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise bad("the file grew beyond the size limit while being read", "read it again")
    return data


def _parse(path: str, data: bytes, onnx: Any) -> Any:
    from google.protobuf.message import DecodeError

    def bad(what: str, fix: str, received: str | None = None) -> FileFormatError:
        return FileFormatError(message(f"ONNX file {path!r}", what, fix, received))

    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        kind = ""
        if data[:8] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05") or data[:2] == b"PK":
            kind = " (it looks like a pickle or zip file: a .pt/.npz, not ONNX)"
        raise bad(f"the file is not a complete ONNX model{kind}: it is truncated or corrupt",
                  "export the model again", f"{len(data)} bytes; {str(exc)[:120]}") from None
    if proto.ir_version <= 0 or not proto.HasField("graph") or not proto.graph.node:
        raise bad("the file holds no ONNX graph (it is truncated or not an ONNX model)",
                  "export the model again", f"{len(data)} bytes, ir_version {proto.ir_version}")
    return proto


def _check_io(path: str, proto: Any, onnx: Any) -> tuple[str, tuple[int, int, int], int]:
    g = proto.graph
    names = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in names]

    def bad(what: str, fix: str, received: str | None = None) -> FileFormatError:
        return FileFormatError(message(f"ONNX file {path!r}", what, fix, received))

    if len(inputs) != 1 or len(g.output) != 1:
        raise bad(f"the graph has {len(inputs)} input(s) and {len(g.output)} output(s); a "
                  "convscope model has one of each", "export a model with one image input and "
                  "one output", f"inputs {[i.name for i in inputs]}, outputs "
                  f"{[o.name for o in g.output]}")
    tt = inputs[0].type.tensor_type
    if tt.elem_type != onnx.TensorProto.FLOAT:
        kind = type_name(onnx, tt.elem_type)
        raise bad(f"the input holds {kind} values; convscope models take float32",
                  "export the model with a float32 input", f"input type {kind}")
    dims = list(tt.shape.dim)
    static = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if len(dims) != 4 or not all(v and v > 0 for v in static[1:]):
        shown = [v if v is not None else (d.dim_param or "?")
                 for v, d in zip(static, dims, strict=True)]
        raise bad("the input must be (N, C, H, W) with fixed C, H and W",
                  "export with a fixed image size (only the batch may be dynamic)",
                  f"input shape {shown}")
    batch = static[0] if static[0] else -1
    return inputs[0].name, (static[1], static[2], static[3]), batch


def load_onnx(path: str | os.PathLike[str], max_bytes: int = MAX_ONNX_BYTES) -> Module:
    """Rebuild a convscope model from an ONNX file (see the module docstring for the operators).

    Parameters
    ----------
    path : str or PathLike
        An ``.onnx`` file holding one graph: one float32 input (N, C, H, W) with fixed C, H,
        W, one output, and a DAG of supported operators between them.
    max_bytes : int, default 2 GiB
        Larger files are refused before they are read.

    Returns
    -------
    Sequential or GraphModule
        A ``Sequential`` for a chain of layers, with ``.spec`` (the model-spec text, so
        ``cs.parse(model.spec)`` rebuilds the architecture; None for layers the spec
        language has no words for); a ``GraphModule`` for any other graph, its layers at
        their module paths. In eval mode, with ``.input_shape`` (C, H, W) and ``.source``
        (the path).

    Raises
    ------
    FileFormatError
        The file is missing, too large, truncated or not ONNX; keeps tensors in external
        files; has a cycle, a dangling edge or a name written twice; has several inputs or
        outputs, or weights that are not float32; or holds an operator convscope has no
        layer or operation for. Node errors name the node's index, name and operator, and
        unsupported operators list the supported ones.
    ImportError
        The ``onnx`` package is not installed.
    """
    from ..spec import to_spec

    onnx = require_onnx("load_onnx")
    p = os.fspath(path)
    proto = _parse(p, _read_bytes(p, max_bytes), onnx)
    _refuse_external_data(p, proto, onnx)
    for t in proto.graph.sparse_initializer:
        raise FileFormatError(message(f"ONNX file {p!r}", "sparse initializers are not supported",
                                      "store the weights as dense tensors",
                                      f"sparse initializer {t.values.name!r}"))
    check_structure(p, proto)
    try:
        onnx.checker.check_model(proto)
    except (onnx.checker.ValidationError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FileFormatError(message(f"ONNX file {p!r}", "the file is not a valid ONNX model",
                                      "export it again (or upgrade the onnx package if it was "
                                      "written by a newer one)", first[:300])) from None
    name, shape, batch = _check_io(p, proto, onnx)
    chain = GraphChain(p, proto, onnx)
    try:
        chain.run(name, shape, batch)
        walk: NodeReader = chain
        model: Module = Sequential(*chain.layers)
    except NotAChain:  # branches, or arithmetic on data: the graph walk reads it
        dag = GraphDag(p, proto, onnx)
        model, walk = dag.build(name, shape, batch), dag
    _check_output(walk, proto)
    model.input_shape = shape
    if isinstance(model, Sequential):
        try:
            model.spec = to_spec(model, shape)
        except SpecError:
            model.spec = None  # layers the spec language has no words for
    model.source = str(Path(p))
    return model.eval()


def _refuse_external_data(path: str, proto: Any, onnx: Any) -> None:
    """Every tensor anywhere in the model (weights, node attributes, subgraphs, functions)
    must hold its own data: reading ``external_data`` would open other files."""
    kinds = onnx.AttributeProto

    def graph(g: Any, where: str) -> None:
        for t in g.initializer:
            check_tensor(None, t, f"{where}initializer", path)
        for t in g.sparse_initializer:
            check_tensor(None, t.values, f"{where}sparse initializer", path)
        nodes(g.node, where)

    def nodes(items: Any, where: str) -> None:
        for k, node in enumerate(items):
            here = f"{where}node {k} ({node.name or 'unnamed'!r}, {node.op_type})"
            for a in node.attribute:
                tensors = [a.t] if a.type == kinds.TENSOR else list(a.tensors)
                if a.type == kinds.SPARSE_TENSOR:
                    tensors.append(a.sparse_tensor.values)
                tensors += [sp.values for sp in a.sparse_tensors]
                for t in tensors:
                    check_tensor(None, t, f"{here}, attribute {a.name!r}", path)
                for sub in ([a.g] if a.type == kinds.GRAPH else list(a.graphs)):
                    graph(sub, f"{here}, subgraph {a.name!r}: ")

    graph(proto.graph, "")
    for f in proto.functions:
        nodes(f.node, f"function {f.name!r}: ")


def _check_output(chain: NodeReader, proto: Any) -> None:
    """A declared output shape that disagrees with convscope's arithmetic is an error."""
    dims = list(proto.graph.output[0].type.tensor_type.shape.dim)
    declared = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if not declared:
        return
    got = [None] + list(chain.shape)
    if len(declared) != len(got) or any(
            d is not None and d != g for d, g in zip(declared[1:], got[1:], strict=True)):
        raise chain.fail("the graph declares an output shape that convscope's layers do not make",
                         "export the model again; if it is correct, please report this",
                         f"declared {declared}, computed (N, {', '.join(map(str, chain.shape))})")
