"""Write a convscope model as an ONNX graph.

Each layer becomes one ONNX operator (two where a padding mode needs its own node), named
after the layer's index, and each weight an initializer named as in ``model.state_dict()``::

    Conv2d        Conv (zero padding in its ``pads``); other padding modes put a node first:
                  reflect -> Pad(mode='reflect'), replicate -> Pad(mode='edge'),
                  circular -> Pad(mode='wrap') from opset 19, and below 19 two Gather nodes
                  that pick the wrapped rows and columns (exact, and readable by any runtime)
    ReLU          Relu
    MaxPool2d     MaxPool (dilations, ceil_mode)
    AvgPool2d     AveragePool (ceil_mode, count_include_pad)
    BatchNorm2d   BatchNormalization with the running statistics (inference form)
    Flatten       Flatten(axis=1)
    Linear        Gemm(transB=1)
    Dropout       Dropout without training_mode: the identity, as in eval mode
    Identity      Identity

The graph has one input ``input`` of shape (N, C, H, W) with a symbolic batch ``N`` and one
output ``output``. The exported graph is the model in eval mode, whatever mode it is in.

ceil_mode: ONNX's shape rule keeps a last window that starts in the right padding, PyTorch's
(and convscope's) drops it. Where the two disagree the layer is written with ceil_mode=0
(which then gives the same windows), so that ONNX shape inference, ONNX Runtime and convscope
agree on every size.

Known limit of ONNX Runtime, not of the file: ORT refuses pooling padding that is not smaller
than the kernel, which a dilated MaxPool2d may have (``maxpool(2, padding=2, dilation=3)``);
the exported file is valid ONNX and other runtimes and convscope's importer read it.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import shapes
from ..errors import ArgumentError, ArgumentTypeError, FileFormatError, message
from ..nn import (
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Identity,
    Linear,
    MaxPool2d,
    Module,
    ReLU,
    Sequential,
)

__all__ = ["export_onnx", "MIN_OPSET", "WRAP_OPSET", "require_onnx", "pad_indices",
           "pool_ceil_plan"]

MIN_OPSET = 13
"""Oldest opset written: Flatten, Gemm, Pad with a pads input, MaxPool dilations and ceil_mode."""
WRAP_OPSET = 19
"""First opset whose Pad has mode 'wrap' (circular padding)."""
_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}
_WHERE = "export_onnx"


def require_onnx(where: str) -> Any:
    """Import the optional ``onnx`` package, or say how to install it."""
    try:
        import onnx
    except ImportError:
        raise ImportError(message(where, "ONNX support needs the `onnx` package, which is not "
                                  "installed",
                                  "pip install 'convscope[onnx]' (or pip install onnx)",
                                  "import onnx failed")) from None
    return onnx


def pad_indices(size: int, before: int, after: int, mode: str) -> np.ndarray:
    """Indices into an axis of ``size`` that pad it by ``before``/``after`` in ``mode``.

    ``x.take(pad_indices(...), axis)`` pads exactly as ``Conv2d(padding_mode=mode)``:

    >>> pad_indices(4, 2, 1, "circular").tolist(), pad_indices(4, 2, 1, "reflect").tolist()
    ([2, 3, 0, 1, 2, 3, 0], [2, 1, 0, 1, 2, 3, 2])
    >>> pad_indices(4, 2, 1, "replicate").tolist()
    [0, 0, 0, 1, 2, 3, 3]
    """
    i = np.arange(-before, size + after, dtype=np.int64)
    if mode == "circular":
        return i % size
    if mode == "reflect":
        i = np.abs(i)
        return np.where(i >= size, 2 * (size - 1) - i, i)
    return np.clip(i, 0, size - 1)


def pool_ceil_plan(sizes: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                   pad: Sequence[int], dilation: Sequence[int]) -> tuple[int, list[int]] | None:
    """How to write a ``ceil_mode=True`` pooling in ONNX terms: ``(ceil_mode, extra_end_pads)``.

    ONNX computes a ceil-mode size as ``ceil(span / stride) + 1``, without PyTorch's rule that
    drops a last window starting in the right padding. Where the rule drops a window, the
    result equals floor mode; where it does not, ONNX's ceil mode agrees. Only when the two
    axes need different flags is one of them given extra end padding (``extra_end_pads``
    nonzero), which only a pooling that ignores padding may use. ``None``: no plan fits
    ONNX Runtime's limit (padding smaller than the kernel).
    """
    floor_ok, ceil_ok, extra = [], [], []
    for n, k, s, p, d in zip(sizes, kernel, stride, pad, dilation, strict=True):
        want = shapes.pool_out(n, k, s, p, d, ceil_mode=True)
        span = n + 2 * p - d * (k - 1) - 1
        floor_ok.append(want == span // s + 1)
        ceil_ok.append(want == -(-span // s) + 1)
        extra.append(max(0, (want - 1) * s + d * (k - 1) + 1 - (n + 2 * p)))
    if all(ceil_ok):
        return 1, [0, 0]
    if all(floor_ok):
        return 0, [0, 0]
    extra = [0 if ok else e for ok, e in zip(floor_ok, extra, strict=True)]
    if any(p + e >= k for p, e, k in zip(pad, extra, kernel, strict=True)):
        return None
    return 0, extra


# --------------------------------------------------------------------------- the builder
class _Builder:
    """Collects nodes and initializers while the layers are walked in order."""

    def __init__(self, onnx: Any, opset: int) -> None:
        self.onnx, self.opset = onnx, opset
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.current = "input"

    def const(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(array, order="C"),
                                                                   name))
        return name

    def node(self, index: int, op: str, inputs: Sequence[str], **attrs: Any) -> None:
        out = f"/{index}/{op}_output_{len(self.nodes)}"
        name = f"/{index}/{op}"
        if any(n.name == name for n in self.nodes):  # node names must be unique
            name += f"_{len(self.nodes)}"
        self.nodes.append(self.onnx.helper.make_node(op, [self.current, *inputs], [out],
                                                     name=name, **attrs))
        self.current = out


def _f32(array: Any) -> np.ndarray:
    return np.asarray(array, dtype=np.float32)


def _conv(b: _Builder, i: int, layer: Conv2d, shape: tuple[int, ...]) -> None:
    geo = shapes.conv_geometry((1,) + tuple(shape), layer.weight.shape, layer.stride,
                               layer.padding, layer.dilation, layer.groups, layer.label)
    (pt, pb), (pl, pr) = geo.padding
    pads = [pt, pl, pb, pr]
    if layer.padding_mode != "zeros" and any(pads):
        if layer.padding_mode == "circular" and b.opset < WRAP_OPSET:
            h, w = shape[1], shape[2]
            if pt or pb:
                b.node(i, "Gather", [b.const(f"{i}.pad_rows", pad_indices(h, pt, pb, "circular"))],
                       axis=2)
            if pl or pr:
                b.node(i, "Gather", [b.const(f"{i}.pad_cols", pad_indices(w, pl, pr, "circular"))],
                       axis=3)
        else:
            b.node(i, "Pad", [b.const(f"{i}.pads", np.array([0, 0, pt, pl, 0, 0, pb, pr],
                                                            np.int64))],
                   mode=_PAD_MODE[layer.padding_mode])
        pads = [0, 0, 0, 0]
    inputs = [b.const(f"{i}.weight", _f32(layer.weight.data))]
    if layer.bias is not None:
        inputs.append(b.const(f"{i}.bias", _f32(layer.bias.data)))
    b.node(i, "Conv", inputs, kernel_shape=list(layer.kernel_size), strides=list(geo.stride),
           pads=pads, dilations=list(geo.dilation), group=geo.groups)


def _pool(b: _Builder, i: int, layer: MaxPool2d | AvgPool2d, shape: tuple[int, ...]) -> None:
    is_max = isinstance(layer, MaxPool2d)
    dilation = layer.extra.get("dilation", (1, 1))
    ceil, extra = 0, [0, 0]
    if layer.extra["ceil_mode"]:
        plan = pool_ceil_plan(shape[1:], layer.kernel_size, layer.stride, layer.padding, dilation)
        count_pad = not is_max and layer.extra["count_include_pad"]
        if plan is None or (count_pad and any(plan[1])):
            raise ArgumentError(message(
                f"{_WHERE} layer {i} ({type(layer).__name__})",
                "this ceil_mode pooling keeps a partial last window along one axis and not the "
                "other, which ONNX's single ceil_mode flag cannot say"
                + ("" if plan is None else " when padding counts toward the average"),
                "use ceil_mode=False, or an input size where both axes agree"
                + ("" if plan is None else ", or count_include_pad=False"),
                f"input {shape[1]}x{shape[2]}, kernel_size={layer.kernel_size}, "
                f"stride={layer.stride}, padding={layer.padding}"))
        ceil, extra = plan
    (ph, pw), (eh, ew) = layer.padding, extra
    attrs: dict[str, Any] = dict(kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                                 pads=[ph, pw, ph + eh, pw + ew], ceil_mode=ceil)
    if is_max:
        b.node(i, "MaxPool", [], dilations=list(dilation), **attrs)
    else:
        b.node(i, "AveragePool", [], count_include_pad=int(layer.extra["count_include_pad"]),
               **attrs)


def _batchnorm(b: _Builder, i: int, layer: BatchNorm2d) -> None:
    if not layer.track_running_stats:
        raise ArgumentError(message(
            f"{_WHERE} layer {i} (BatchNorm2d)",
            "this BatchNorm2d keeps no running statistics, so even in eval mode it normalises by "
            "the batch's own statistics, which ONNX's inference BatchNormalization cannot do",
            "build it with track_running_stats=True and train it", "track_running_stats=False"))
    c = layer.num_features
    scale = layer.weight.data if layer.weight is not None else np.ones(c, np.float32)
    shift = layer.bias.data if layer.bias is not None else np.zeros(c, np.float32)
    b.node(i, "BatchNormalization",
           [b.const(f"{i}.weight", _f32(scale)), b.const(f"{i}.bias", _f32(shift)),
            b.const(f"{i}.running_mean", _f32(layer.running_mean)),
            b.const(f"{i}.running_var", _f32(layer.running_var))], epsilon=float(layer.eps))


def _linear(b: _Builder, i: int, layer: Linear) -> None:
    inputs = [b.const(f"{i}.weight", _f32(layer.weight.data))]
    if layer.bias is not None:
        inputs.append(b.const(f"{i}.bias", _f32(layer.bias.data)))
    b.node(i, "Gemm", inputs, transB=1)


def _check_args(model: Any, input_shape: Any, opset: Any,
                onnx: Any) -> tuple[list[Module], tuple[int, int, int]]:
    if isinstance(model, Sequential):
        layers = list(model)
    elif isinstance(model, Module):
        layers = [model]
    else:
        raise ArgumentTypeError(message(_WHERE, "model must be a convscope Sequential or layer",
                                        "build it with cs.parse(spec) or cs.nn.Sequential(...)",
                                        f"type {type(model).__name__}"))
    newest = onnx.defs.onnx_opset_version()
    if not isinstance(opset, int) or isinstance(opset, bool) or not MIN_OPSET <= opset <= newest:
        raise ArgumentError(message(_WHERE, f"opset must be an int from {MIN_OPSET} to {newest}",
                                    "use opset=17 (read by every current runtime)",
                                    f"opset={opset!r}"))
    shape = input_shape if input_shape is not None else getattr(model, "input_shape", None)
    if (not isinstance(shape, Sequence) or len(shape) != 3
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
                       for v in shape)):
        raise ArgumentError(message(_WHERE, "the model's input volume (C, H, W) is unknown or "
                                    "not three positive ints",
                                    "pass input_shape=(C, H, W), or build the model with cs.parse "
                                    "from a spec that starts with HxWxD", f"input_shape={shape!r}"))
    return layers, (int(shape[0]), int(shape[1]), int(shape[2]))


def _build(layers: list[Module], shape: tuple[int, int, int], opset: int, onnx: Any
           ) -> tuple[_Builder, tuple[int, ...]]:
    from ..spec import output_shape

    b = _Builder(onnx, opset)
    cur: tuple[int, ...] = shape
    for i, layer in enumerate(layers):
        after = output_shape(layer, cur)  # checks that the layer fits, with convscope's errors
        if isinstance(layer, Conv2d):
            _conv(b, i, layer, cur)
        elif isinstance(layer, ReLU):
            b.node(i, "Relu", [])
        elif isinstance(layer, (MaxPool2d, AvgPool2d)):
            _pool(b, i, layer, cur)
        elif isinstance(layer, BatchNorm2d):
            _batchnorm(b, i, layer)
        elif isinstance(layer, Flatten):
            b.node(i, "Flatten", [], axis=1)
        elif isinstance(layer, Linear):
            _linear(b, i, layer)
        elif isinstance(layer, Dropout):
            b.node(i, "Dropout", [b.const(f"{i}.ratio", np.array(layer.p, np.float32))])
        elif isinstance(layer, Identity):
            b.node(i, "Identity", [])
        else:  # output_shape refuses unknown layers first; kept for layers it may learn later
            raise ArgumentError(message(f"{_WHERE} layer {i}",
                                        f"{type(layer).__name__} has no ONNX form here",
                                        "build the model from convscope's layers"))
        cur = after
    return b, cur


def _write_atomic(path: Path, data: bytes) -> None:
    folder = str(path.parent) or "."
    if path.is_dir():
        raise FileFormatError(message(f"{_WHERE}({str(path)!r})", "the path is a directory",
                                      "give a file name such as model.onnx", str(path)))
    if not os.path.isdir(folder):
        raise FileFormatError(message(f"{_WHERE}({str(path)!r})",
                                      "the folder to write into does not exist",
                                      "create it first or choose another path", folder))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        try:
            dfd = os.open(folder, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)
    except OSError as exc:
        raise FileFormatError(message(f"{_WHERE}({str(path)!r})",
                                      f"could not write the file ({exc.strerror or exc})",
                                      "free disk space or check permissions; any previous file "
                                      "at this path is unchanged", f"errno {exc.errno}")) from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def export_onnx(model: Sequential | Module, path: str | os.PathLike[str],
                input_shape: Sequence[int] | None = None, opset: int = 17) -> Path:
    """Write ``model`` to ``path`` as an ONNX graph (crash-safe: temp file, then rename).

    Parameters
    ----------
    model : Sequential or Module
        Made of Conv2d, ReLU, MaxPool2d, AvgPool2d, BatchNorm2d, Flatten, Linear, Dropout and
        Identity layers. Exported as in eval mode; the model itself is not changed.
    path : str or PathLike
        The ``.onnx`` file to write.
    input_shape : (C, H, W), optional
        The input volume; defaults to ``model.input_shape`` (set by :func:`convscope.parse`).
        The batch size stays free (the symbolic dimension ``N``).
    opset : int, default 17
        ONNX opset, from 13 up to what the installed ``onnx`` knows. Circular padding uses
        Pad(mode='wrap') from opset 19 and two Gather nodes below it.

    Returns
    -------
    Path
        ``path``. The graph has passed ``onnx.checker.check_model(full_check=True)``.

    Raises
    ------
    ArgumentError
        The input volume is unknown, the opset is out of range, or a layer has no ONNX form
        (BatchNorm2d without running statistics; a ceil_mode pooling whose axes disagree).
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

    onnx = require_onnx(_WHERE)
    layers, shape = _check_args(model, input_shape, opset, onnx)
    b, out_shape = _build(layers, shape, opset, onnx)
    helper, tp = onnx.helper, onnx.TensorProto
    if not b.nodes:  # an empty model: the identity
        b.node(0, "Identity", [])
    b.nodes[-1].output[0] = "output"
    graph = helper.make_graph(
        b.nodes, "convscope",
        [helper.make_tensor_value_info("input", tp.FLOAT, ["N", *shape])],
        [helper.make_tensor_value_info("output", tp.FLOAT, ["N", *out_shape])],
        b.initializers)
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
        raise ArgumentError(message(_WHERE, f"the model needs {nbytes / 2**30:.1f} GiB, above the "
                                    "2 GiB that one ONNX protobuf file can hold",
                                    "save it with convscope.io.save (safetensors) instead",
                                    f"{sum(math.prod(p.shape) for p in model.parameters())} "
                                    "parameters"))
    onnx.checker.check_model(proto, full_check=True)
    p = Path(path)
    _write_atomic(p, proto.SerializeToString())
    return p
