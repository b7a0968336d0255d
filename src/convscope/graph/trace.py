"""Record one forward pass of any model as a :class:`~convscope.graph.Graph`.

:func:`trace` calls the model on an input (zeros of the given volume, or real images) with
a recorder listening to the hooks of :mod:`convscope.tracing`. By default only shapes are
worked out: a leaf layer answers from its ``output_shape`` without computing anything, so
a ResNet is traced in milliseconds and nothing is compiled; ``values=True`` runs the real
computation and keeps every node's output (what the pictures show). The model runs in
eval mode during a trace (batch norm uses its running statistics and updates nothing,
dropout passes values through) and gets its modes back afterwards.

A model that cannot run is traced up to the operation that fails: the graph holds the
nodes before it and ``failure`` says which operation, with which input volumes, and why.
"""

from __future__ import annotations

import inspect
import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import tracing
from ..errors import ArgumentError, ArgumentTypeError, ConvscopeError, ShapeError, message
from ..tensor import Tensor, as_array
from .ir import Graph, Node, Source, TraceFailure

__all__ = ["trace", "input_batch"]

Shape = tuple[int, ...]


def _plain(value: Any) -> tuple[bool, Any]:
    """(ok, value as JSON-able data): tuples stay tuples; anything else is not plain."""
    if value is None or isinstance(value, (bool, str)):
        return True, value
    if isinstance(value, (int, np.integer)):
        return True, int(value)
    if isinstance(value, (float, np.floating)):
        return True, float(value)
    if isinstance(value, slice):
        ok, parts = _plain((value.start, value.stop, value.step))
        return ok, {"$slice": parts}
    if value is Ellipsis:
        return True, {"$ellipsis": True}
    if isinstance(value, (tuple, list)):
        items = [_plain(v) for v in value]
        if all(ok for ok, _ in items):
            return True, tuple(v for _, v in items)
    return False, None


class _Recorder:
    """Receives the calls of one trace (see :mod:`convscope.tracing`) and builds the graph."""

    def __init__(self, model: Any, values: bool) -> None:
        self.model = model
        self.keep_values = values
        self.nodes: list[Node] = []
        self.sources: dict[str, Source] = {}
        self.names: dict[int, str] = {}  # id(tensor or array) -> the node or source making it
        self.keep: list[Any] = []  # every object in `names`, so that no id is reused
        self.values: dict[str, np.ndarray] = {}
        self.stack: list[str] = []
        self.uses: Counter[str] = Counter()
        self.containers: dict[str, str] = {}
        self.failure: TraceFailure | None = None
        self.paths: dict[int, str] = {}
        self.owned: dict[int, str] = {}  # id(parameter or buffer) -> its state_dict name
        if model is not None:
            for path, mod in model.named_modules():
                self.paths.setdefault(id(mod), path)
            for name, p in model.named_parameters():
                self.owned.setdefault(id(p), name)
            for name, b in model.named_buffers():
                self.owned.setdefault(id(b), name)

    # ------------------------------------------------------------------ names
    def _unique(self, name: str) -> str:
        self.uses[name] += 1
        k = self.uses[name]
        return name if k == 1 else f"{name}#{k}"

    def _where(self) -> str:
        return self.stack[-1] if self.stack else ""

    def _bind(self, obj: Any, name: str) -> None:
        self.names[id(obj)] = name
        self.keep.append(obj)

    def source(self, name: str, kind: str, value: np.ndarray, obj: Any) -> str:
        from ..nn.module import Parameter

        arr = np.asarray(value)
        self.sources[name] = Source(name, kind, tuple(arr.shape), str(arr.dtype),
                                    arr.copy() if kind == "constant" else None,
                                    isinstance(obj, Parameter))
        self._bind(obj, name)
        if self.keep_values:
            self.values[name] = arr
        return name

    def ref(self, value: Any) -> str:
        """The name of the node or source that made ``value`` (a Tensor or an array)."""
        name = self.names.get(id(value))
        if name is not None:
            return name
        arr = value.data if isinstance(value, Tensor) else np.asarray(value)
        owner = self.owned.get(id(value))
        if owner is not None:
            return self.source(owner, "param", arr, value)
        k = sum(s.kind == "constant" for s in self.sources.values())
        return self.source(f"constant_{k}", "constant", arr, value)

    def add_node(self, name: str, op: str, kind: str, inputs: tuple[str, ...], out: Any,
                 target: str = "", attrs: dict | None = None, module: Any = None) -> None:
        data = out.data if isinstance(out, Tensor) else np.asarray(out)
        node = Node(len(self.nodes), name, op, kind, inputs, tuple(data.shape), str(data.dtype),
                    self._where() if module is None else target, target, attrs or {},
                    type(module).__name__ if module is not None else "", module)
        self.nodes.append(node)
        self._bind(out, name)
        if self.keep_values:
            self.values[name] = data

    def fail(self, name: str, op: str, layer: str, path: str, args: Sequence[Any],
             exc: Exception) -> None:
        if self.failure is None:  # the innermost failure is the one to report
            tensors = [a for a in args if isinstance(a, (Tensor, np.ndarray))]
            self.failure = TraceFailure(
                name, op, layer, path,
                tuple(self.names.get(id(a), "?") for a in tensors),
                tuple(tuple(np.shape(a.data if isinstance(a, Tensor) else a)) for a in tensors),
                exc)

    # ------------------------------------------------------------------ the hooks
    def call_module(self, module: Any, args: tuple, kwargs: dict) -> Any:
        path = self.paths.get(id(module))
        if path is None:  # a module made inside forward(): named after its class
            where = self._where()
            path = (f"{where}." if where else "") + type(module).__name__.lower()
        if not type(module).is_leaf():
            self.stack.append(path)
            try:
                out = module.forward(*args, **kwargs)
            finally:
                self.stack.pop()
            name = self.names.get(id(out)) if isinstance(out, Tensor) else None
            if name is not None and path:
                self.containers.setdefault(path, name)
            return out
        tensors = [a for a in args if isinstance(a, Tensor)]
        inputs = tuple(self.ref(a) for a in tensors)
        name = self._unique(path or "0")
        try:
            shape_of = getattr(module, "output_shape", None)
            if not self.keep_values and shape_of is not None and len(tensors) == len(args) == 1 \
                    and not kwargs:
                out = _virtual(shape_of(tuple(tensors[0].shape)), tensors[0].dtype)
            else:
                with tracing.inside():
                    out = module.forward(*args, **kwargs)
        except ConvscopeError as exc:
            self.fail(name, module.op, type(module).__name__, path, args, exc)
            raise
        if not isinstance(out, Tensor):
            raise ArgumentTypeError(message(f"trace: layer {name} ({type(module).__name__})",
                                            "a layer must return one Tensor",
                                            "return a Tensor from forward()",
                                            type(out).__name__))
        config = module.get_config() if hasattr(module, "get_config") else {}
        self.add_node(name, module.op, "module", inputs, out, path, config, module)
        return out

    def call_function(self, op: str, key: str, fn: Callable, args: tuple, kwargs: dict) -> Any:
        where = self._where()
        name = self._unique(f"{where}.{op}" if where else op)
        try:
            bound = _signature(fn).bind(*args, **kwargs)
        except TypeError:
            with tracing.inside():
                return fn(*args, **kwargs)  # the function itself will say what is wrong
        inputs: list[str] = []
        attrs: dict[str, Any] = {}
        replayable = True

        def convert(value: Any) -> Any:
            nonlocal replayable
            if isinstance(value, (Tensor, np.ndarray)):
                inputs.append(self.ref(value))
                return {"$in": len(inputs) - 1}
            if isinstance(value, (list, tuple)) and any(
                    isinstance(v, (Tensor, np.ndarray)) for v in value):
                return [convert(v) for v in value]
            ok, plain = _plain(value)
            if not ok:
                replayable = replayable and _droppable(value)
                return None
            return plain

        for pname, value in bound.arguments.items():
            attrs[pname] = convert(value)
        if op in _RESHAPES:
            _batch_generic(attrs, args)
        try:
            with tracing.inside():
                out = fn(*args, **kwargs)
        except ConvscopeError as exc:
            self.fail(name, op, "", where, [a for a in _flat(args)], exc)
            raise
        except ValueError as exc:  # NumPy's broadcasting refusal: said in our words
            shapes_ = " and ".join(str(tuple(a.shape)) for a in _flat(args)
                                   if isinstance(a, (Tensor, np.ndarray)))
            err = ShapeError(message(op, f"the operands do not fit together: {shapes_}",
                                     "make their shapes equal (or broadcastable)", str(exc)))
            self.fail(name, op, "", where, [a for a in _flat(args)], err)
            raise err from None
        kind, target = ("function", key) if replayable else ("opaque", "")
        if isinstance(out, Tensor):
            self.add_node(name, op, kind, tuple(inputs), out, target, attrs)
        elif isinstance(out, tuple) and out and all(isinstance(o, Tensor) for o in out):
            for k, item in enumerate(out):
                self.add_node(f"{name}[{k}]", op, kind, tuple(inputs), item, target,
                              {**attrs, "$item": k})
        return out

    def made(self, op: str, parents: tuple, out: Any) -> None:
        where = self._where()
        name = self._unique(f"{where}.{op}" if where else op)
        self.add_node(name, op, "opaque", tuple(self.ref(p) for p in parents), out)


_RESHAPES = ("reshape", "view")


def _batch_generic(attrs: dict[str, Any], args: tuple) -> None:
    """``x.reshape(x.shape[0], -1)``: record the first size as "the input's batch size"
    (``{"$size": [0, 0]}``, ONNX Reshape's 0), so the graph runs on any batch."""
    x = args[0] if args and isinstance(args[0], Tensor) else None
    sizes = [k for k in attrs if k not in ("self", "input")]
    if x is None or not x.ndim or not sizes:
        return
    shape = attrs[sizes[0]]
    if isinstance(shape, tuple) and len(shape) == 1 and isinstance(shape[0], tuple):
        shape = shape[0]  # reshape((n, -1)) rather than reshape(n, -1)
        if shape and shape[0] == x.shape[0]:
            attrs[sizes[0]] = (({"$size": [0, 0]},) + shape[1:],)
    elif isinstance(shape, tuple) and shape and shape[0] == x.shape[0]:
        attrs[sizes[0]] = ({"$size": [0, 0]},) + shape[1:]


_SIGNATURES: dict[Callable, inspect.Signature] = {}


def _signature(fn: Callable) -> inspect.Signature:
    sig = _SIGNATURES.get(fn)
    if sig is None:
        sig = _SIGNATURES[fn] = inspect.signature(fn)
    return sig


def _droppable(value: Any) -> bool:
    """Arguments that replay may leave out (a random generator: the default one is used)."""
    from ..random import Generator

    return isinstance(value, (np.random.Generator, Generator))


def _flat(args: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for a in args:
        if isinstance(a, (list, tuple)):
            out.extend(_flat(a))
        else:
            out.append(a)
    return out


# --------------------------------------------------------------------------- trace
def _virtual(shape: Shape, dtype: Any) -> Tensor:
    """Zeros of ``shape`` that take no memory (one value seen through zero strides): what a
    shapes-only trace passes between layers, so a 100000x100000 input costs nothing."""
    return Tensor._wrap(np.broadcast_to(np.zeros((), dtype=dtype), tuple(shape)))


def input_batch(input_shape: Any, batch: int = 1, where: str = "trace") -> Shape:
    """(N, C, H, W) from ``(C, H, W)``, ``"HxWxD"`` or an (N, ...) shape given whole."""
    from ..spec import parse_volume

    if isinstance(input_shape, str):
        return (batch,) + parse_volume(input_shape)
    try:
        shape = tuple(int(v) for v in input_shape)
        ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                 for v in input_shape)
    except (TypeError, ValueError):
        ok = False
    if not ok or len(shape) < 1:
        raise ArgumentError(message(where, "the input volume must be positive ints",
                                    "pass input_shape=(3, 64, 64) or '64x64x3'",
                                    f"input_shape={input_shape!r:.60}"))
    return shape if len(shape) in (2, 4) else (batch,) + shape


def trace(model: Any, input_shape: Any = None, *, inputs: Any = None, values: bool = False,
          batch: int = 1, strict: bool = False) -> Graph:
    """Record one forward pass of ``model`` as a :class:`Graph`.

    Parameters
    ----------
    model : Module, or a spec string (built by :func:`convscope.parse`)
    input_shape : (C, H, W), "HxWxD" or a whole shape with the batch axis, optional
        The volume of zeros to trace with; defaults to ``model.input_shape``.
    inputs : array, Tensor or a tuple of them, optional
        Real inputs instead (several for a model whose forward takes several).
    values : bool
        Compute every node for real and keep its output in ``graph.values`` (pictures).
    batch : int
        Batch size of the zeros traced with.
    strict : bool
        Raise the error of an operation that cannot run, instead of returning the graph
        up to it with ``graph.failure`` set.
    """
    from ..nn import Module
    from ..spec import parse

    if isinstance(model, str):
        model = parse(model)
    if not isinstance(model, Module):
        raise ArgumentTypeError(message("trace", "expected a convscope model (an nn.Module)",
                                        "pass a model, or a spec such as '64x64x3 | conv(8, 5)'",
                                        type(model).__name__))
    if inputs is None:
        shape = input_shape if input_shape is not None else getattr(model, "input_shape", None)
        if shape is None:
            raise ArgumentError(message("trace", "the input volume is unknown",
                                        "pass input_shape=(3, 64, 64) (or --input 64x64x3 on "
                                        "the command line), or build the model with cs.parse"))
        dtype = next((p.dtype for p in model.parameters()), np.dtype(np.float32))
        xs = (_virtual(input_batch(shape, batch), dtype),)
    else:
        items = inputs if isinstance(inputs, tuple) else (inputs,)
        xs = tuple(i if isinstance(i, Tensor) else Tensor._wrap(
            np.ascontiguousarray(as_array(i, "trace"))) for i in items)
    rec = _Recorder(model, values)
    for k, x in enumerate(xs):
        rec.source("input" if k == 0 else f"input_{k}", "input", x.data, x)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    out: Any = None
    try:
        with tracing.recording(rec):
            out = model(*xs)
    except ConvscopeError as exc:
        if strict:
            raise
        if rec.failure is None:
            rec.failure = TraceFailure("?", "?", "", "", (), (), exc)
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
    outputs: tuple[str, ...] = ()
    is_tuple = isinstance(out, (tuple, list))
    if rec.failure is None:
        items = tuple(out) if is_tuple else (out,)
        if not items or not all(isinstance(o, Tensor) for o in items):
            raise ArgumentTypeError(message("trace", "forward() must return a Tensor or a "
                                            "tuple of Tensors to be traced",
                                            "return the model's output tensor(s)",
                                            type(out).__name__))
        outputs = tuple(rec.ref(o) for o in items)
    return Graph(rec.nodes, rec.sources, outputs, is_tuple, rec.containers, model,
                 rec.values if values else None, rec.failure)


def attrs_json(attrs: dict[str, Any]) -> str:
    """The attributes as JSON text (tuples written as lists)."""
    return json.dumps(attrs, allow_nan=True)


def check_shape(graph: Graph) -> None:
    """Raise the failure of a partial graph (for tools that need the whole model)."""
    f = graph.failure
    if f is not None:
        raise type(f.error)(str(f.error)) if isinstance(f.error, ConvscopeError) else \
            ShapeError(str(f.error))
