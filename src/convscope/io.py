"""Model files: a safetensors file holding the weights and, in its header, the architecture.

A saved model is self-describing. A chain of layers keeps its model spec (the text of
:mod:`convscope.spec`); any other model keeps its traced graph as JSON (layer classes and
their arguments, traced functions by name, edges, module paths: :mod:`convscope.graph`),
and a zoo model also its name and arguments. ``cs.load(path)`` rebuilds the architecture
from that data (parsed and checked, never run as code), then loads and checks every
tensor. Nothing is ever unpickled. ``cs.save(model.state_dict(), path)`` writes bare
weights, which ``cs.load`` gives back as a state_dict, as ``torch.save``/``torch.load``.

>>> import tempfile, os, convscope as cs
>>> model = cs.parse("8x8x1 | conv(4, 3, padding=1) | relu | flatten | linear(10)")
>>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
>>> _ = cs.save(model, path, classes=[str(i) for i in range(10)])
>>> cs.load(path).classes[:3]
['0', '1', '2']
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import (
    ArgumentError,
    ArgumentTypeError,
    ConvscopeError,
    FileFormatError,
    SpecError,
    message,
)
from .interop import export_onnx as export_onnx
from .interop import load_onnx as load_onnx
from .nn import Module, Sequential
from .safetensors import load_file, read_metadata, save_file

__all__ = ["save", "load", "load_model", "resolve_model_path", "export_onnx", "load_onnx",
           "FORMAT", "STATE_FORMAT"]

FORMAT = "convscope-model-1"
MAX_SPEC_CHARS = 100_000
"""Longest model spec :func:`load` accepts from a file (a 20-layer spec is ~300 characters)."""
_RESERVED = ("format", "convscope_version", "spec", "input_shape", "classes", "graph", "zoo")
STATE_FORMAT = "convscope-state-1"
MAX_GRAPH_CHARS = 50_000_000
"""Longest graph JSON :func:`load` accepts (ResNet-34's is ~60 kB)."""


def _path(path: object, where: str) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(
            message(
                where,
                "the path must be a str or a pathlib.Path",
                "pass e.g. 'model.safetensors'",
                f"path of type {type(path).__name__}",
            )
        )
    return os.fspath(path)  # type: ignore[return-value]


def _input_volume(model: Sequential, input_shape: Sequence[int] | None) -> tuple[int, int, int]:
    shape = input_shape if input_shape is not None else getattr(model, "input_shape", None)
    if shape is None or len(shape) != 3:
        raise ArgumentError(
            message(
                "save",
                "the model's input volume is unknown",
                "pass input_shape=(C, H, W), or build the model with cs.parse",
                f"input_shape={shape!r}",
            )
        )
    return (int(shape[0]), int(shape[1]), int(shape[2]))


def _architecture(model: Module, shape: tuple[int, int, int]) -> tuple[dict[str, str],
                                                                       dict[str, Any]]:
    """The header entries that describe ``model``'s architecture, and constant tensors.

    A chain of spec layers keeps its spec (readable, and what older convscope reads); any
    other model its traced graph as JSON, plus the zoo name and arguments of a zoo model.
    """
    from .graph import to_json, trace
    from .spec import to_spec

    meta: dict[str, str] = {}
    if isinstance(model, Sequential):
        try:
            meta["spec"] = to_spec(model, shape)
            return meta, {}
        except SpecError:
            pass  # layers the spec language has no words for: the graph says it
    graph = trace(model, shape)
    meta["graph"] = to_json(graph)
    zoo = getattr(model, "zoo", None)
    if zoo is not None:
        meta["zoo"] = json.dumps({"name": zoo[0], "kwargs": zoo[1]})
    constants = {f"__constant__.{name}": src.value for name, src in graph.sources.items()
                 if src.kind == "constant"}
    return meta, constants


def save(
    model: Any,
    path: str | os.PathLike[str],
    classes: Sequence[str] | None = None,
    input_shape: Sequence[int] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` to ``path`` (crash-safe: a complete old or new file, never half of one).

    Parameters
    ----------
    model : Module or a state_dict
        Any convscope model (a chain keeps its spec, any other model its traced graph), or
        a mapping of names to arrays/Tensors (``model.state_dict()``, written as bare
        weights, which :func:`load` returns as a state_dict).
    classes : sequence of str, optional
        Class names, one per output, kept with the weights for ``convscope predict``.
    input_shape : (C, H, W), optional
        Defaults to ``model.input_shape``.
    """
    if isinstance(model, Mapping):
        return _save_state(model, _path(path, "save"), extra)
    if not isinstance(model, Module):
        raise ArgumentTypeError(
            message(
                "save",
                "expected a model or a state_dict",
                "pass a model (cs.parse, nn.Sequential, a Module, cs.models) or "
                "model.state_dict()",
                f"model of type {type(model).__name__}",
            )
        )
    path = _path(path, "save")
    if classes is not None and (
        isinstance(classes, (str, bytes))
        or not isinstance(classes, Sequence)
        or not all(isinstance(c, str) for c in classes)
    ):
        raise ArgumentTypeError(
            message(
                "save",
                "classes must be a list of str, one per output",
                "pass e.g. classes=['cat', 'dog'] (str(c) for numbers)",
                f"classes={classes!r:.80}",
            )
        )
    shape = _input_volume(model, input_shape)
    arch, constants = _architecture(model, shape)
    meta = {
        "format": FORMAT,
        "convscope_version": __version__,
        **arch,
        "input_shape": json.dumps(list(shape)),
        "classes": json.dumps(
            list(classes) if classes is not None else list(getattr(model, "classes", None) or [])
        ),
    }
    meta.update(_extra(extra))
    save_file(path, {**model.state_arrays(), **constants}, meta)
    return Path(path)


def _extra(extra: dict[str, Any] | None) -> dict[str, str]:
    if not extra:
        return {}
    clash = [k for k in extra if k in _RESERVED or not isinstance(k, str)]
    if clash:
        raise ArgumentError(
            message(
                "save",
                f"extra cannot set {clash!r}",
                "use other names; " + ", ".join(_RESERVED) + " are written by save",
                f"extra keys {list(extra)!r:.120}",
            )
        )
    try:
        return {k: v if isinstance(v, str) else json.dumps(v, allow_nan=False)
                for k, v in extra.items()}
    except (TypeError, ValueError) as exc:
        raise ArgumentTypeError(
            message(
                "save",
                "extra values must be str or JSON numbers, lists and dicts",
                "convert them, e.g. str(value)",
                str(exc),
            )
        ) from None


def _save_state(state: Mapping[str, Any], path: str, extra: dict[str, Any] | None) -> Path:
    """Bare weights: every value an array (Tensors, NumPy, torch tensors all accepted)."""
    arrays: dict[str, Any] = {}
    for name, value in state.items():
        if not isinstance(name, str):
            raise ArgumentTypeError(message("save", "a state_dict maps str names to arrays",
                                            "pass model.state_dict()", f"key {name!r:.60}"))
        if hasattr(value, "detach") and hasattr(value, "numpy") and not hasattr(value, "_node"):
            value = value.detach().cpu().numpy()  # a torch tensor
        arr = np.asarray(value)
        arrays[name] = arr if arr.flags.c_contiguous else arr.copy(order="C")  # 0-d stays 0-d
    meta = {"format": STATE_FORMAT, "convscope_version": __version__, **_extra(extra)}
    save_file(path, arrays, meta)
    return Path(path)


def resolve_model_path(path: str | os.PathLike[str]) -> Path:
    """A model file, or a run folder that holds ``model.safetensors``."""
    p = Path(_path(path, "load"))
    if p.is_dir():
        candidate = p / "model.safetensors"
        if not candidate.is_file():
            raise FileFormatError(
                message(
                    "load",
                    f"the folder {p} holds no model.safetensors",
                    "pass a run folder written by `convscope train`, or the file itself",
                    str(p),
                )
            )
        return candidate
    if not p.exists():
        raise FileFormatError(message("load", f"no such file: {p}", "check the path", str(p)))
    return p


def load(path: str | os.PathLike[str]) -> Any:
    """Read what :func:`save` wrote: a model (a file, or a run folder with
    ``model.safetensors``), or a state_dict saved with ``cs.save(model.state_dict(), path)``
    (an OrderedDict of Tensors, for ``model.load_state_dict``).

    A model comes back in eval mode with ``.classes`` (list of str) and ``.input_shape``;
    a chain also has ``.spec``, a zoo model is rebuilt as its class, any other model as a
    :class:`convscope.graph.GraphModule` with the original module paths.
    """
    p = resolve_model_path(path)
    meta = read_metadata(p)
    if meta.get("format") == STATE_FORMAT:
        from collections import OrderedDict

        from .tensor import Tensor

        tensors, _ = load_file(p)
        return OrderedDict((k, Tensor._wrap(v)) for k, v in tensors.items())
    return load_model(p)


def load_model(path: str | os.PathLike[str]) -> Module:
    """:func:`load` for tools that need a model: a state_dict file is refused clearly."""
    p = resolve_model_path(path)
    meta = read_metadata(p)
    if meta.get("format") == STATE_FORMAT:
        raise FileFormatError(
            message(
                "load",
                f"{p} holds bare weights (a state_dict), not a model",
                "build the model and call model.load_state_dict(cs.load(path)), or save the "
                "model itself with cs.save(model, path)",
                f"format {STATE_FORMAT}",
            )
        )
    if meta.get("format") != FORMAT or not ({"spec", "graph", "zoo"} & set(meta)):
        raise FileFormatError(
            message(
                "load",
                f"{p} is a safetensors file but not a convscope model "
                "(no model spec or graph in its header)",
                "for bare weights build the model (cs.parse(spec), cs.models, your class) and "
                "call model.load_state_dict(cs.safetensors.load_file(path)[0]), or "
                "cs.interop.load_weights(model, path)",
                f"metadata keys {sorted(meta)[:20]}",
            )
        )
    for key, limit in (("spec", MAX_SPEC_CHARS), ("graph", MAX_GRAPH_CHARS)):
        if len(meta.get(key, "")) > limit:
            raise FileFormatError(
                message(
                    "load",
                    f"{p}: the model {key} in its header has {len(meta[key])} characters, "
                    f"more than the limit of {limit}",
                    "this is not a model convscope wrote; re-save it",
                    f"{key} starting {meta[key][:60]!r}",
                )
            )
    tensors, _ = load_file(p)
    try:
        classes = json.loads(meta.get("classes", "[]"))
        shape = json.loads(meta.get("input_shape", "null"))
        model = _rebuild(meta, tensors, shape)
    except (ValueError, TypeError, RecursionError) as exc:
        if isinstance(exc, FileFormatError):
            raise
        raise FileFormatError(
            message("load", f"{p} has a damaged header", "re-save the model", str(exc)[:500])
        ) from None
    if not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise FileFormatError(
            message(
                "load",
                f"{p}: class names must be a list of strings",
                "re-save the model",
                repr(classes)[:80],
            )
        )
    want_shape = getattr(model, "input_shape", None)
    if "spec" in meta and shape is not None and (
            not isinstance(shape, list) or tuple(shape) != want_shape):
        raise FileFormatError(
            message(
                "load",
                f"{p}: the input volume in its header does not match its spec",
                "re-save the model",
                f"input_shape {shape!r:.80}, spec volume {want_shape}",
            )
        )
    if "spec" not in meta:
        if not (isinstance(shape, list) and len(shape) == 3 and all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
            raise FileFormatError(message("load", f"{p}: the input volume in its header is not "
                                          "(C, H, W)", "re-save the model", f"{shape!r:.80}"))
        model.input_shape = tuple(shape)
    weights = {k: v for k, v in tensors.items() if not k.startswith("__constant__.")}
    own = model.state_arrays()
    for name, arr in weights.items():
        want = own.get(name)
        if want is not None and arr.dtype.kind != want.dtype.kind:
            raise FileFormatError(
                message(
                    "load",
                    f"{p}: tensor {name!r} has dtype {arr.dtype}, but the model holds "
                    f"{want.dtype} there",
                    "re-save the model (weights are float32)",
                    f"dtype {arr.dtype}, shape {arr.shape}",
                )
            )
    try:
        model.load_state_dict(weights)
    except ValueError as exc:
        raise FileFormatError(
            message(
                "load", f"{p}: weights do not match its "
                + ("spec" if "spec" in meta else "architecture"), "re-save the model",
                str(exc)[:500]
            )
        ) from None
    model.classes = classes
    model.source = str(p)
    model.metadata = meta
    return model.eval()


def _rebuild(meta: dict[str, str], tensors: dict[str, Any], shape: Any) -> Module:
    """The architecture a header describes: its spec, its zoo entry, or its graph."""
    from .graph import GraphModule, from_json
    from .spec import parse

    if "spec" in meta:
        return parse(meta["spec"], seed=0)
    if "zoo" in meta:
        from . import models

        zoo = json.loads(meta["zoo"])
        if not (isinstance(zoo, dict) and isinstance(zoo.get("name"), str)
                and isinstance(zoo.get("kwargs"), dict)) or not models.is_zoo_name(zoo["name"]):
            raise FileFormatError(message("load", "the zoo entry in the header is damaged",
                                          "re-save the model", f"{meta['zoo'][:80]!r}"))
        try:
            model = models.get(zoo["name"], seed=0, **zoo["kwargs"])
        except (TypeError, ConvscopeError):
            model = None
        if model is not None and set(model.state_arrays()) == {
                k for k in tensors if not k.startswith("__constant__.")}:
            return model
        if "graph" not in meta:
            raise FileFormatError(message("load", "the zoo entry does not rebuild this model",
                                          "re-save the model", f"{meta['zoo'][:80]!r}"))
    constants = {k.split(".", 1)[1]: v for k, v in tensors.items()
                 if k.startswith("__constant__.")}
    graph = from_json(meta["graph"], constants)
    params = {name: tensors[name] for name, src in graph.sources.items()
              if src.kind == "param" and name in tensors}
    return GraphModule(graph, params)
