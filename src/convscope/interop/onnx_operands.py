"""The base of the ONNX graph walk: its state, its errors and the reading of node operands.

:class:`NodeReader` holds what :class:`~.onnx_graph.GraphChain` keeps while it walks a graph
(the constants, the layers made so far, the current volume, padding waiting for its Conv),
makes the errors that name a node, reads attributes and constant inputs (weights must be
float32 constants of the right shape) and appends a layer after checking it against the
volume. :func:`type_name` and :func:`check_tensor` serve the importer as well.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ConvscopeError, FileFormatError, message
from ..nn import Module
from .onnx_common import require_onnx

__all__ = ["NodeReader", "NotAChain", "check_tensor", "type_name"]


_FLAGS = ("transA", "transB", "ceil_mode", "count_include_pad", "training_mode", "allowzero",
          "keepdims", "antialias", "exclude_outside", "noop_with_empty_axes")
_SIZES = ("kernel_shape", "strides", "dilations", "pads", "output_padding", "group",
          "output_shape")


class NotAChain(FileFormatError):
    """The chain walk's refusal of a graph that the graph walk may still read (branches,
    operators on data that no layer holds). Caught by the importer, never shown as is."""

    def __init__(self, where: str, what: str, received: str | None = None) -> None:
        super().__init__(message(where, what, "read the file as a graph", received))
        self.what, self.received = what, received


def _short_float(value: float) -> float:
    """A float32 attribute as the short decimal it was written from (1e-05, not 9.99e-06)."""
    return float(str(np.float32(value)))


class NodeReader:
    """The state of a walk over one graph's nodes, and the reading of their operands."""

    def __init__(self, path: str, proto: Any, onnx: Any) -> None:
        self.path, self.onnx, self.graph = path, onnx, proto.graph
        self.opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
                          0)
        self.consts: dict[str, Any] = {t.name: t for t in self.graph.initializer}
        self.layers: list[Module] = []
        self.shape: tuple[int, ...] = ()
        self.pending: dict[str, Any] | None = None  # Pad/Gather waiting for its Conv
        self.open_linear: str | None = None  # output of a bias-less MatMul/Gemm, for its Add
        self.side: dict[str, tuple[str, int, np.ndarray]] = {}  # Slice of the chain: src, axis, at
        self.used: dict[str, int] = {}
        for node in self.graph.node:
            for name in node.input:
                self.used[name] = self.used.get(name, 0) + 1
        for out in self.graph.output:
            self.used[out.name] = self.used.get(out.name, 0) + 1

    # ------------------------------------------------------------------ errors
    def fail(self, what: str, fix: str, received: str | None = None) -> FileFormatError:
        return FileFormatError(message(f"ONNX file {self.path!r}", what, fix, received))

    def node_where(self, k: int, node: Any) -> str:
        return f"ONNX file {self.path!r}, node {k} ({node.name or 'unnamed'!r}, {node.op_type})"

    def node_fail(self, k: int, node: Any, what: str, fix: str,
                  received: str | None = None) -> FileFormatError:
        return FileFormatError(message(self.node_where(k, node), what, fix, received))

    # ------------------------------------------------------------------ operands
    def attrs(self, k: int, node: Any) -> dict[str, Any]:
        """A node's attributes; the yes/no ones must say 0 or 1 (ONNX's checker lets 2**62
        through, and runtimes read it differently)."""
        out = {}
        for a in node.attribute:
            value = self.onnx.helper.get_attribute_value(a)
            if isinstance(value, bytes):
                value = value.decode("utf-8", errors="replace")
            if a.name in _FLAGS and value not in (0, 1):
                raise self.node_fail(k, node, f"attribute {a.name!r} must be 0 or 1",
                                     "export the model again", f"{a.name}={value!r}")
            if a.name in _SIZES and any(abs(v) >= 2**31 for v in (
                    value if isinstance(value, list) else [value]) if isinstance(v, int)):
                raise self.node_fail(k, node, f"attribute {a.name!r} holds a size beyond 2**31",
                                     "export the model again", f"{a.name}={value!r}"[:120])
            out[a.name] = value
        return out

    def axis(self, k: int, node: Any, value: Any, rank: int, what: str = "axis") -> int:
        """An axis in ``[-rank, rank)``, as a non-negative index."""
        if not isinstance(value, (int, np.integer)) or not -rank <= int(value) < rank:
            raise self.node_fail(k, node, f"{what} {value} is outside the {rank} axes of its "
                                 "input", "export the model again", f"{what}={value}")
        return int(value) % rank

    def array(self, k: int, node: Any, name: str) -> np.ndarray:
        value = self.consts[name]
        if isinstance(value, np.ndarray):
            return value
        tp = self.onnx.TensorProto
        if value.data_type in (tp.STRING, tp.UNDEFINED):
            raise self.node_fail(k, node, f"tensor {name!r} holds no numbers",
                                 "export the model again", f"data type {value.data_type}")
        try:
            arr = self.onnx.numpy_helper.to_array(value)
        except (ValueError, TypeError) as exc:
            raise self.node_fail(k, node, f"tensor {name!r} is damaged (its data does not fit "
                                 "its shape)", "export the model again; the file may be truncated",
                                 str(exc)[:200]) from None
        self.consts[name] = arr
        return arr

    def weight(self, k: int, node: Any, i: int, role: str,
               shape: tuple[int, ...] | None = None, ndim: int | None = None) -> np.ndarray:
        name = node.input[i] if i < len(node.input) else ""
        if not name:
            raise self.node_fail(k, node, f"its {role} input is missing", "export the model again")
        if name not in self.consts:
            raise self.node_fail(k, node, f"its {role} {name!r} is computed in the graph, not "
                                 "stored as a constant", "export with constant folding "
                                 "(torch.onnx.export(do_constant_folding=True))", f"input {name!r}")
        value = self.consts[name]
        tp = self.onnx.TensorProto
        if not isinstance(value, np.ndarray) and value.data_type != tp.FLOAT:
            kind = type_name(self.onnx, value.data_type)
            raise self.node_fail(k, node, f"its {role} {name!r} holds {kind} values; convscope "
                                 "layers hold float32 weights only",
                                 "convert the model to float32 before exporting it (quantized "
                                 "and half-precision models are not imported)", f"data type {kind}")
        arr = self.array(k, node, name)
        if arr.dtype != np.float32:
            raise self.node_fail(k, node, f"its {role} {name!r} holds {arr.dtype} values; "
                                 "convscope layers hold float32 weights only",
                                 "convert the model to float32 before exporting it",
                                 f"dtype {arr.dtype}")
        if (ndim is not None and arr.ndim != ndim) or (shape is not None and arr.shape != shape):
            want = shape if shape is not None else f"{ndim}-D"
            raise self.node_fail(k, node, f"its {role} {name!r} has the wrong shape",
                                 "export the model again", f"expected {want}, received {arr.shape}")
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if bad:  # inf times a zero of padding is NaN, which runtimes treat differently
            raise self.node_fail(k, node, f"its {role} {name!r} holds {bad} values that are "
                                 "not finite numbers (inf or NaN): the model is damaged",
                                 "export the model again from its trained weights",
                                 f"{bad} of {arr.size} values")
        return arr.copy()

    def ints(self, k: int, node: Any, i: int, role: str) -> list[int] | None:
        name = node.input[i] if i < len(node.input) else ""
        if not name:
            return None
        if name not in self.consts:
            raise self.node_fail(k, node, f"its {role} is computed in the graph at run time",
                                 "export with a fixed input size and constant folding",
                                 f"input {name!r}")
        arr = self.array(k, node, name)
        if arr.dtype.kind not in "iu" or arr.ndim > 1:
            raise self.node_fail(k, node, f"its {role} must be a 1-D integer tensor",
                                 "export the model again", f"{arr.dtype} of shape {arr.shape}")
        return [int(v) for v in arr.reshape(-1)]

    # ------------------------------------------------------------------ the volume
    def add(self, k: int, node: Any, make: Callable[[], Module]) -> Module:
        from ..spec import output_shape

        try:
            layer = make()
            self.shape = output_shape(layer, self.shape)
        except ConvscopeError as exc:
            raise self.node_fail(k, node, f"it does not fit the volume here: {exc}",
                                 "check that the graph is one convscope can run",
                                 f"input volume {self.shape}") from None
        self.layers.append(layer)
        return layer

    def need_volume(self, k: int, node: Any) -> tuple[int, int, int]:
        if len(self.shape) != 3:
            raise self.node_fail(k, node, "it needs a volume (N, C, H, W) but gets flat values",
                                 "put it before the Flatten/Reshape", f"shape (N, {self.shape[0]})")
        return self.shape  # type: ignore[return-value]


def type_name(onnx: Any, code: int) -> str:
    """An ONNX element type's name (FLOAT16 ...), or its number when the file makes one up."""
    try:
        return str(onnx.TensorProto.DataType.Name(code))
    except ValueError:
        return f"type {code}"


def check_tensor(chain: NodeReader | None, t: Any, where: str, path: str = "") -> None:
    """Refuse tensors kept in external files; a size that does not match is caught on use."""
    onnx = chain.onnx if chain is not None else require_onnx("load_onnx")
    if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data):
        where_file = next((e.value for e in t.external_data if e.key == "location"), "?")
        raise FileFormatError(message(
            f"ONNX file {chain.path if chain else path!r}",
            f"tensor {t.name!r} ({where}) keeps its data in an external file ({where_file!r}); "
            "convscope never reads files that a model file points to",
            "save the model as one file: onnx.save_model(model, path, "
            "save_as_external_data=False) (models under 2 GiB)",
            f"external data location {where_file!r}"))
